// The snapshotter's gRPC service called as containerd calls it, for tests that drive a snapshotter directly.
import * as grpc from '@grpc/grpc-js';
import { snapshotsService } from '../../src/snapshotter/service.js';

type Unary = (req: unknown, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
type Streaming = (req: unknown) => NodeJS.ReadableStream;

export interface SnapshotsClient {
  /** One unary call (Prepare, Commit, Stat, Cleanup, …): its answer, or the gRPC error. */
  call<T = unknown>(method: string, req: unknown): Promise<T>;
  /** List (a server stream): every snapshot info it sends. */
  list(filters?: string[]): Promise<unknown[]>;
  close(): void;
}

/** A client of the snapshotter listening on unix socket `socket`. */
export function snapshotsClient(socket: string): SnapshotsClient {
  const Client = grpc.makeGenericClientConstructor(snapshotsService, 'Snapshots');
  const client = new Client(`unix://${socket}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, Unary> & { List: Streaming };
  return {
    call: <T>(method: string, req: unknown) => new Promise<T>((done, fail) => client[method]!(req, (err, res) => (err ? fail(err) : done(res as T)))),
    list: (filters = []) => new Promise((done, fail) => {
      const infos: unknown[] = [];
      const stream = client.List({ filters });
      stream.on('data', (m: { info: unknown[] }) => infos.push(...m.info));
      stream.on('end', () => done(infos));
      stream.on('error', fail);
    }),
    close: () => client.close(),
  };
}
