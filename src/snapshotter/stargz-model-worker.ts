// The worker thread of stargz-models.ts: reads eStargz layers' TOCs (through the main thread, which
// holds the registry connections), makes their layer models, keeps them per image, and merges a
// chain's models into its bootstrap. All of that is CPU work (a 6,671-entry TOC parses in ~100 ms,
// a chain merges and writes in 50–140 ms on 2 busy cores): here, the snapshotter's own thread keeps
// answering containerd's calls while it runs, so the pull is not held up behind it.
import { parentPort, workerData } from 'node:worker_threads';
import { buildStargzChain, type LayerModelReader, rangeModelReader } from '../image/stargz-image.js';
import { rehearseStargzChain } from '../image/stargz-rehearsal.js';
import type { Descriptor } from '../registry/media-types.js';
import { isLogLevel, log, setLogLevel } from '../util/log.js';

/** What the main thread asks. `image` numbers an image being pulled (its models are kept under it). */
export type ModelRequest =
  /** `rank`: the layer's place in its image (bottom first): of TOCs read at once, the lowest-ranked is parsed first, as containerd commits it first. */
  | { kind: 'model'; id: number; image: number; name: string; layer: Descriptor; rank: number }
  | { kind: 'build'; id: number; image: number; name: string; layers: Descriptor[] }
  | { kind: 'drop'; image: number }
  | { kind: 'rehearse'; id: number }
  /** The answer to a `read`: the bytes, or why there are none. */
  | { kind: 'bytes'; id: number; bytes?: Uint8Array; error?: string };

/** What the worker answers (`done`, with the bootstrap of a `build`), or asks for (`read`: blob bytes). */
export type ModelReply =
  | { kind: 'done'; id: number; error?: string; bootstrap?: Uint8Array }
  | { kind: 'read'; id: number; image: number; digest: string; offset: number; length: number };

/** A Uint8Array that owns all of its ArrayBuffer, so it can be transferred rather than cloned with whatever it is a view into. */
export function ownBytes(b: Uint8Array): Uint8Array {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : new Uint8Array(b);
}

type LayerModel = Awaited<ReturnType<LayerModelReader>>;

function serve(port: NonNullable<typeof parentPort>): void {
  /** Each image's layer models by layer digest (a failed one is forgotten, so it is read again when asked). */
  const models = new Map<number, Map<string, Promise<LayerModel>>>();
  const reads = new Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>();
  let nextRead = 0;
  const post = (reply: ModelReply, transfer: ArrayBuffer[] = []): void => port.postMessage(reply, transfer);

  /** When each blob's last read came in (what a model's time after it is: parsing). */
  const arrived = new Map<string, number>();
  /** Each image's models being made, with their ranks: a TOC waits for lower-ranked ones before it is parsed. */
  const making = new Map<number, Map<string, { rank: number; settled: Promise<void> }>>();
  const reader = (image: number, name: string, beforeParse: (layer: Descriptor) => Promise<void>): LayerModelReader => rangeModelReader(name, (digest, offset, length) => new Promise((resolve, reject) => {
    const id = nextRead++;
    reads.set(id, {
      resolve: (bytes) => {
        arrived.set(digest, performance.now());
        resolve(bytes);
      },
      reject,
    });
    post({ kind: 'read', id, image, digest, offset, length });
  }), beforeParse);
  const model = (image: number, name: string, layer: Descriptor, rank: number): Promise<LayerModel> => {
    const own = models.get(image) ?? models.set(image, new Map()).get(image)!;
    let made = own.get(layer.digest);
    if (!made) {
      const started = performance.now();
      const turns = making.get(image) ?? making.set(image, new Map()).get(image)!;
      const lower = (): Promise<unknown> => Promise.all([...turns.values()].filter((t) => t.rank < rank).map((t) => t.settled));
      made = reader(image, name, () => lower().then(() => undefined))(layer);
      turns.set(layer.digest, { rank, settled: made.then(() => undefined, () => undefined) });
      void made.then(() => {
        const now = performance.now();
        log.debug('eStargz layer model made', { image: name, layer: layer.digest, ms: Math.round(now - started), afterReadsMs: Math.round(now - (arrived.get(layer.digest) ?? started)) });
      }, () => undefined).finally(() => {
        turns.delete(layer.digest);
        arrived.delete(layer.digest);
      });
      made.catch(() => own.delete(layer.digest));
      own.set(layer.digest, made);
    }
    return made;
  };
  const answer = (id: number, work: Promise<Buffer | void>): void => void work.then(
    (out) => {
      const bootstrap = out ? ownBytes(out) : undefined;
      post({ kind: 'done', id, bootstrap }, bootstrap ? [bootstrap.buffer as ArrayBuffer] : []);
    },
    (err: Error) => post({ kind: 'done', id, error: err.message }),
  );

  port.on('message', (m: ModelRequest) => {
    switch (m.kind) {
      case 'model':
        return answer(m.id, model(m.image, m.name, m.layer, m.rank).then(() => undefined));
      case 'build':
        return answer(m.id, buildStargzChain(m.layers, (layer) => model(m.image, m.name, layer, m.layers.indexOf(layer))));
      case 'drop':
        making.delete(m.image);
        return void models.delete(m.image);
      case 'rehearse':
        return answer(m.id, rehearseStargzChain().then(() => undefined));
      case 'bytes': {
        const r = reads.get(m.id);
        reads.delete(m.id);
        if (m.bytes) r?.resolve(Buffer.from(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength));
        else r?.reject(new Error(m.error ?? 'the read failed'));
      }
    }
  });
}

/** What the worker is started with. */
export interface ModelWorkerData {
  logLevel: string;
}

if (parentPort) {
  const { logLevel } = workerData as ModelWorkerData;
  if (isLogLevel(logLevel)) setLogLevel(logLevel);
  serve(parentPort);
}
