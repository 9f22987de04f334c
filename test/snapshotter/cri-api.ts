// The CRI image service as kubelet calls it (cri-api.proto beside this file): messages encoded by
// protobuf's own encoder, and a client for a socket that serves it.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const definition = protoLoader.loadSync(fileURLToPath(new URL('./cri-api.proto', import.meta.url)), { keepCase: false, longs: Number, defaults: true });
const ImageService = (grpc.loadPackageDefinition(definition) as unknown as { runtime: { v1: { ImageService: grpc.ServiceClientConstructor } } }).runtime.v1.ImageService;

/** The request of `method` as kubelet puts it on the wire. */
export const encodeRequest = (method: string, request: object): Buffer => ImageService.service[method]!.requestSerialize(request);

type Unary = (req: unknown, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

/** A client of the image service at unix socket `socket`: call(METHOD, request) → the answer or the gRPC error. */
export function imageServiceClient(socket: string): { call<T>(method: string, req: object): Promise<T>; close(): void } {
  const client = new ImageService(`unix://${socket}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, Unary>;
  return {
    call: <T>(method: string, req: object) => new Promise<T>((done, fail) => client[method]!(req, (err, res) => (err ? fail(err) : done(res as T)))),
    close: () => client.close(),
  };
}
