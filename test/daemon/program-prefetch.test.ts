// The order in which a program's start is asked for (program-prefetch.ts): its interpreter and
// libraries first, then its own code as soon as they have been asked for, not once they are in,
// so the link carries them back to back. Over a real image built by `create` (64 KiB chunks, so the
// program's code is several), with reads answered from the files' bytes, the libraries' held.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProgramPrefetch } from '../../src/daemon/program-prefetch.js';
import { createLayer } from '../../src/convert/create.js';
import { tarBytes } from '../../src/convert/tar/write.js';
import { RafsImage } from '../../src/rafs/reader.js';
import type { ChunkRef } from '../../src/rafs/tree.js';
import { linkedProgram } from '../helpers/elf.js';

const CHUNK = 64 << 10;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;

const strings = '\0libfoo.so.1\0';
const program = linkedProgram([[DT_NEEDED, 1], [DT_STRTAB, 0x401800], [DT_STRSZ, strings.length], [0, 0]], strings, 4 * CHUNK);
// code past the headers, distinct in every chunk (alike chunks would be one)
for (let at = 0x2000; at < program.length; at += 4) program.writeUInt32LE(at, at);
const files: Record<string, Buffer> = {
  'bin/prog': program,
  'lib64/ld-linux-x86-64.so.2': Buffer.alloc(3000, 'interpreter '),
  'lib/x86_64-linux-gnu/libfoo.so.1': Buffer.alloc(5000, 'library '),
};

let dir: string;
let rafs: RafsImage;
const nids = new Map<string, number>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nydusify-program-prefetch-'));
  const tar = await tarBytes(async (w) => {
    for (const [path, data] of Object.entries(files)) await w.file({ path, size: data.length, mode: 0o755 }, data);
  });
  const bootstrapPath = join(dir, 'bootstrap');
  await createLayer({ source: (async function* () { yield tar; })(), bootstrapPath, blobDir: join(dir, 'blobs'), compressor: 'zstd', digester: 'sha256', chunkSize: CHUNK });
  rafs = RafsImage.open(await readFile(bootstrapPath));
  for (const path of Object.keys(files)) {
    let nid = rafs.root;
    for (const name of path.split('/')) nid = rafs.lookup(nid, name)!;
    nids.set(path, nid);
  }
});

afterAll(() => rm(dir, { recursive: true, force: true }));

describe('ProgramPrefetch', () => {
  it('asks for the program\'s code once its interpreter and libraries are asked for, before they are in', async () => {
    const events: string[] = [];
    const held: (() => void)[] = [];
    const pathOf = (nid: number): string => [...nids].find(([, n]) => n === nid)![0];
    let prefetched!: (refs: ChunkRef[]) => void;
    const code = new Promise<ChunkRef[]>((resolve) => (prefetched = resolve));
    const programs = new ProgramPrefetch({
      rafs,
      traced: () => false,
      read: async (nid, offset, length) => {
        const path = pathOf(nid);
        const bytes = files[path]!.subarray(offset, offset + length);
        if (path === 'bin/prog') return bytes;
        events.push(`asked ${path}`);
        await new Promise<void>((resolve) => held.push(resolve));
        events.push(`in ${path}`);
        return bytes;
      },
      prefetch: (refs) => {
        events.push('code');
        prefetched(refs);
      },
    }, 1 << 30);
    programs.started(nids.get('bin/prog')!);
    const refs = await code;
    expect(events).toEqual(['asked lib64/ld-linux-x86-64.so.2', 'asked lib/x86_64-linux-gnu/libfoo.so.1', 'code']);
    // the program's whole code segment: every chunk of the file, each once
    expect(refs.map((r) => r.ciIndex).sort()).toEqual(rafs.chunksForRange(nids.get('bin/prog')!, 0, 4 * CHUNK).map((s) => s.chunk.ciIndex).sort());
    for (const release of held) release();
  });
});
