// The CRI image service, proxied: kubelet is pointed at the snapshotter's socket for images
// (--image-service-endpoint), each call goes on to containerd's image service unchanged, and the
// credentials of each PullImage are kept in the keychain (cri-keychain.ts) for that image's layers,
// as nydus-snapshotter's enable_cri_keychain does. Requests and answers pass through as bytes (runtime.v1
// and v1alpha2 alike); only the image reference and credentials are read out of them. A status from
// containerd comes back to kubelet as it was; one that could not reach containerd is UNAVAILABLE.
import * as grpc from '@grpc/grpc-js';
import { log } from '../util/log.js';
import { CriMessageError, pullAuth, requestImage } from './cri-image-requests.js';
import type { CriKeychain } from './cri-keychain.js';

/** containerd's socket, where its CRI image service listens (nydus-snapshotter's default too). */
export const DEFAULT_IMAGE_SERVICE_ADDRESS = '/run/containerd/containerd.sock';

const PACKAGES = ['runtime.v1', 'runtime.v1alpha2'];
const METHODS = ['ListImages', 'ImageStatus', 'PullImage', 'RemoveImage', 'ImageFsInfo'];
/** Headers of the call itself, which the forwarded call makes its own. */
const HOP_HEADERS = /^(:|grpc-|content-type$|user-agent$|te$|host$)/;

const bytes = (b: Buffer): Buffer => b;

export class CriImageProxy {
  private readonly client: grpc.Client;

  /** `address`: containerd's socket (a path, or unix:///path). */
  constructor(address: string, private readonly keychain: CriKeychain) {
    this.client = new grpc.Client(address.startsWith('unix:') ? address : `unix://${address}`, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 16 << 20,
    });
  }

  /** Serves the image service on `server` (before it listens). */
  addTo(server: grpc.Server): void {
    for (const pkg of PACKAGES) {
      const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
      const handlers: grpc.UntypedServiceImplementation = {};
      for (const method of METHODS) {
        const path = `/${pkg}.ImageService/${method}`;
        definition[method] = { path, requestStream: false, responseStream: false, requestSerialize: bytes, requestDeserialize: bytes, responseSerialize: bytes, responseDeserialize: bytes };
        handlers[method] = (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => this.forward(method, path, call, done);
      }
      server.addService(definition, handlers);
    }
  }

  private forward(method: string, path: string, call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>): void {
    try {
      this.observe(method, call.request);
    } catch (err) {
      if (!(err instanceof CriMessageError)) throw err;
      done({ code: grpc.status.INVALID_ARGUMENT, details: `${method}: ${err.message}` });
      return;
    }
    const metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(call.metadata.getMap())) if (!HOP_HEADERS.test(key)) metadata.set(key, value);
    this.client.makeUnaryRequest(path, bytes, bytes, call.request, metadata, { deadline: call.getDeadline() }, (err, answer) => {
      if (err && err.code === grpc.status.UNAVAILABLE) log.warn('the CRI image service is unreachable', { method, error: err.details });
      done(err, answer);
    });
  }

  /** A pull's credentials are kept before containerd pulls (the pull's layers come to the snapshotter meanwhile). */
  private observe(method: string, request: Buffer): void {
    if (method !== 'PullImage' && method !== 'RemoveImage') return;
    const image = requestImage(request);
    const auth = method === 'PullImage' ? pullAuth(request) : undefined;
    if (image === undefined) return;
    try {
      if (method === 'PullImage') this.keychain.remember(image, auth);
      else this.keychain.forget(image);
    } catch (err) {
      // a reference we cannot parse is containerd's to refuse
      log.debug('CRI image request not kept in the keychain', { method, image, error: (err as Error).message });
    }
  }

  close(): void {
    this.client.close();
  }
}
