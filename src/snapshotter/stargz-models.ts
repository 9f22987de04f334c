// eStargz layer models made off the snapshotter's thread (stargz-model-worker.ts says why). The
// worker is started on first use and again after it stops (its models are then read again when a
// build needs them); every call in flight when it stops fails with the reason.
import { Worker } from 'node:worker_threads';
import type { BlobRangeReader } from '../image/stargz-image.js';
import type { Descriptor } from '../registry/media-types.js';
import { getLogLevel, log } from '../util/log.js';
import { type ModelReply, type ModelRequest, type ModelWorkerData, ownBytes } from './stargz-model-worker.js';

interface Call {
  resolve: (bootstrap: Buffer | undefined) => void;
  reject: (err: Error) => void;
}

export class StargzModels {
  private worker: Worker | undefined;
  private nextCall = 0;
  private nextImage = 0;
  private readonly calls = new Map<number, Call>();
  /** Each open image's name (for messages) and the reader of its blobs. */
  private readonly images = new Map<number, { name: string; read: BlobRangeReader }>();

  /** An image whose layers' models are made and kept until `drop`; returns its number. */
  open(name: string, read: BlobRangeReader): number {
    const image = this.nextImage++;
    this.images.set(image, { name, read });
    return image;
  }

  /**
   * Resolves once the worker holds the layer's model (its TOC read, verified and made a model);
   * rejects with why it cannot. `rank`: the layer's place in its image, bottom first.
   */
  async model(image: number, layer: Descriptor, rank: number): Promise<void> {
    const name = this.nameOf(image);
    await this.call((id) => ({ kind: 'model', id, image, name, layer, rank }));
  }

  /** The chain's bootstrap, merged from the models of `layers` (any not kept yet are made first). */
  async build(image: number, layers: Descriptor[]): Promise<Buffer> {
    const name = this.nameOf(image);
    const bootstrap = await this.call((id) => ({ kind: 'build', id, image, name, layers }));
    if (!bootstrap) throw new Error('the eStargz model worker built no bootstrap');
    return bootstrap;
  }

  /** Lets go of the image's models and blob reader. */
  drop(image: number): void {
    this.images.delete(image);
    this.worker?.postMessage({ kind: 'drop', image } satisfies ModelRequest);
  }

  /** Starts the worker and has it run the chain path over a made-up image (stargz-rehearsal.ts). */
  async rehearse(): Promise<void> {
    await this.call((id) => ({ kind: 'rehearse', id }));
  }

  private nameOf(image: number): string {
    const open = this.images.get(image);
    if (!open) throw new Error(`no open image ${image}`);
    return open.name;
  }

  /** Posts the request `ask` makes with a new call id; settles with the worker's answer to it. */
  private call(ask: (id: number) => ModelRequest): Promise<Buffer | undefined> {
    const id = this.nextCall++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      this.thread().postMessage(ask(id));
    });
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./stargz-model-worker.js', import.meta.url), { workerData: { logLevel: getLogLevel() } satisfies ModelWorkerData });
    worker.on('message', (m: ModelReply) => (m.kind === 'read' ? this.read(worker, m) : this.done(m)));
    const stopped = (why: string): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      log.warn('the eStargz model worker stopped', { reason: why });
      const calls = [...this.calls.values()];
      this.calls.clear();
      for (const c of calls) c.reject(new Error(`the eStargz model worker stopped: ${why}`));
    };
    worker.on('error', (err) => stopped(err.message));
    worker.on('exit', (code) => stopped(`exit ${code}`));
    // after the listeners, which would ref it again: the snapshotter's own handles keep the process up
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private done(m: Extract<ModelReply, { kind: 'done' }>): void {
    const call = this.calls.get(m.id);
    this.calls.delete(m.id);
    if (m.error !== undefined) call?.reject(new Error(m.error));
    else call?.resolve(m.bootstrap && Buffer.from(m.bootstrap.buffer, m.bootstrap.byteOffset, m.bootstrap.byteLength));
  }

  /** The worker wants blob bytes of an open image: read here, where the registry connection is. */
  private read(worker: Worker, m: Extract<ModelReply, { kind: 'read' }>): void {
    const open = this.images.get(m.image);
    const bytes = open ? open.read(m.digest, m.offset, m.length) : Promise.reject(new Error(`image ${m.image} is no longer open`));
    bytes.then(
      (b) => {
        const own = ownBytes(b);
        worker.postMessage({ kind: 'bytes', id: m.id, bytes: own } satisfies ModelRequest, [own.buffer as ArrayBuffer]);
      },
      (err: Error) => worker.postMessage({ kind: 'bytes', id: m.id, error: err.message } satisfies ModelRequest),
    );
  }
}
