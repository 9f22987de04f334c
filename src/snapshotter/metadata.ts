// The snapshotter's durable metadata: every snapshot by key (active, view) or name (committed), with
// its directory id, parent, labels and times, in one JSON file under the root. Each change is
// applied to a copy, written to a temporary file, fsynced and renamed over the old one, and only
// then becomes the live state: a crash at any point leaves the old state or the new, never a mix.
// Snapshot directories are created before a record names them and deleted after it is gone, so a
// crash leaves at most an orphan directory, which Cleanup removes.
// Keys and label keys come from requests: any string, `__proto__` and `constructor` included. So
// snapshots are a Map and labels null-prototype objects, never plain objects indexed by them.
import { readFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { labelsOf, type RemoteLayer } from './labels.js';

export type Kind = 'view' | 'active' | 'committed';

export interface SnapshotRecord {
  /** Directory name under snapshots/ (never reused). */
  id: string;
  kind: Kind;
  /** The parent's name (always a committed snapshot). */
  parent?: string;
  labels: Record<string, string>;
  createdAt: string;
  updatedAt: string;
  /** Disk use fixed at commit (committed snapshots do not change). */
  usage?: { size: number; inodes: number };
  /** A Nydus layer served by a daemon; its directory stays empty. */
  remote?: RemoteLayer;
  /** The image mount an active snapshot or view reads through (its lower dir). */
  image?: string;
  /** A plain layer kept as an EROFS image (erofs-layers.ts): its files, relative to the snapshot's directory; `fs` is its mount. */
  erofs?: { bootstrap: string; blob?: string };
}

export interface MetadataState {
  nextId: number;
  /** Records are replaced, never changed in place: a draft shares them with the live state. */
  snapshots: Map<string, SnapshotRecord>;
}

/** The file: snapshots as a JSON object (its own properties, whatever their names). */
interface MetadataFile {
  version: 1;
  nextId: number;
  snapshots: Record<string, SnapshotRecord>;
}

const FILE = 'metadata.json';

export class MetadataStore {
  private state: MetadataState;
  private readonly path: string;

  constructor(root: string) {
    this.path = join(root, FILE);
    this.state = MetadataStore.load(this.path);
  }

  private static load(path: string): MetadataState {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { nextId: 1, snapshots: new Map() };
      throw err;
    }
    // JSON.parse makes every key an own property, `__proto__` included
    const file = JSON.parse(text) as MetadataFile;
    if (file.version !== 1 || typeof file.nextId !== 'number' || typeof file.snapshots !== 'object') throw new Error(`${path}: not a snapshotter metadata file (version ${String(file.version)})`);
    const snapshots = Object.entries(file.snapshots).map(([key, rec]): [string, SnapshotRecord] => [key, { ...rec, labels: labelsOf(rec.labels) }]);
    return { nextId: file.nextId, snapshots: new Map(snapshots) };
  }

  get(key: string): SnapshotRecord | undefined {
    return this.state.snapshots.get(key);
  }

  entries(): [string, SnapshotRecord][] {
    return [...this.state.snapshots];
  }

  /**
   * Applies `change` to a copy of the state and makes it durable; the live state changes only if
   * both succeed. Callers serialize their read-check-update sequences (the snapshotter's lock). The
   * write and fsync run off the event loop: a pull commits a layer per request, and a synchronous
   * fsync each time stalled the TOC reads and bootstrap builds of the same pull.
   */
  async update<T>(change: (draft: MetadataState) => T): Promise<T> {
    const draft: MetadataState = { nextId: this.state.nextId, snapshots: new Map(this.state.snapshots) };
    const result = change(draft);
    // Object.fromEntries defines own properties: a `__proto__` key is written like any other
    const file: MetadataFile = { version: 1, nextId: draft.nextId, snapshots: Object.fromEntries(draft.snapshots) };
    const tmp = `${this.path}.tmp`;
    const handle = await open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify(file));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, this.path);
    this.state = draft;
    return result;
  }
}
