// The floor of a lazy start: what a command really touches in an image, compressed, over the link.
//
// The image is unpacked (skopeo + umoci) into an ext4 file system image (mkfs.ext4 -d), mounted
// read-only on a loop device whose readahead is set to 0, the page cache is dropped, the command
// runs in a chroot of it (three times, caches dropped before each: the median is its cold run), and
// mincore(2) over every regular file says which pages it touched.
// Those pages, each file's concatenated and zstd-compressed (level 3, one stream per file: the
// best any chunked store could do), are the bytes a perfect lazy start fetches. The floor time is
// then the command's cold local run + those bytes at the link rate + a few round trips (manifest,
// bootstrap, first data). Used by bench/lazy and bench/containerd-lazy.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** Cold local runs of the command whose median is the floor's local run. */
const COLD_RUNS = 3;

const sh = (script) => {
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`floor: failed (${r.status}): ${script}\n${r.stderr.slice(-3000)}`);
  return r.stdout;
};

// mincore over every regular file below a root: {path: [[start, end], ...]} of resident pages
const MINCORE = String.raw`
import ctypes, json, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
page = os.sysconf('SC_PAGE_SIZE')
root = sys.argv[1]
out = {}
for d, _, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f)
        if os.path.islink(p) or not os.path.isfile(p): continue
        size = os.path.getsize(p)
        if size == 0: continue
        n = (size + page - 1) // page
        vec = ctypes.create_string_buffer(n)
        with open(p, 'rb') as fh:
            # a private (copy-on-write) map: writable for ctypes, and it never writes the file
            m = mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_COPY)
            c = ctypes.c_char.from_buffer(m)
            if libc.mincore(ctypes.addressof(c), size, vec) != 0: raise OSError(ctypes.get_errno(), p)
            del c
            m.close()
        ranges, start, raw = [], None, vec.raw
        for i in range(n):
            if raw[i] & 1:
                if start is None: start = i
            elif start is not None:
                ranges.append([start * page, min(i * page, size)]); start = None
        if start is not None: ranges.append([start * page, size])
        if ranges: out[os.path.relpath(p, root)] = ranges
json.dump(out, sys.stdout)
`;

/**
 * Measures the floor of `cmd` (argv inside the image) in the OCI image `ociRef` (an `oci:DIR:TAG` or
 * `docker://…` skopeo source), working in `work` (made and removed). Returns the touched bytes (pages),
 * their compressed size, the files touched and the cold local run's seconds.
 */
export function measureFloor({ source, cmd, work, env }) {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const mnt = join(work, 'mnt');
  const img = join(work, 'rootfs.ext4');
  try {
    sh(`skopeo copy -q --src-tls-verify=false '${source}' oci:${work}/oci:floor && umoci unpack --image ${work}/oci:floor ${work}/bundle`);
    const kb = Number(sh(`du -sk ${work}/bundle/rootfs | cut -f1`));
    sh(`truncate -s ${Math.ceil(kb * 1.3 + 65536)}K ${img} && mkfs.ext4 -q -d ${work}/bundle/rootfs ${img} && rm -rf ${work}/bundle ${work}/oci`);
    mkdirSync(mnt);
    const dev = sh(`losetup --find --show --read-only ${img}`).trim();
    try {
      sh(`blockdev --setra 0 ${dev} && mount -t ext4 -o ro ${dev} ${mnt}`);
      try {
        // the median of a few cold runs: one moves by ±0.08 s between benches (the pages of the last are measured)
        const runs = [];
        for (let i = 0; i < COLD_RUNS; i++) {
          sh('sync && echo 3 > /proc/sys/vm/drop_caches');
          const t0 = performance.now();
          const r = spawnSync('/usr/sbin/chroot', [mnt, ...cmd], { env, encoding: 'utf8' });
          runs.push((performance.now() - t0) / 1000);
          if (r.status !== 0) throw new Error(`floor: chroot ${cmd.join(' ')} → ${r.error?.message ?? `exit ${r.status}`}\n${r.stderr}`);
        }
        const localRun = runs.sort((x, y) => x - y)[Math.floor(runs.length / 2)];
        const touched = JSON.parse(sh(`python3 -c '${MINCORE.replaceAll("'", "'\\''")}' ${mnt}`));
        let touchedBytes = 0;
        let compressedBytes = 0;
        const files = [];
        for (const [path, ranges] of Object.entries(touched)) {
          const bytes = readRanges(join(mnt, path), ranges);
          const z = spawnSync('zstd', ['-3', '-c', '-q'], { input: bytes, maxBuffer: 1 << 30 });
          if (z.status !== 0) throw new Error(`floor: zstd failed on ${path}`);
          touchedBytes += bytes.length;
          compressedBytes += z.stdout.length;
          files.push({ path: `/${path}`, touched: bytes.length, compressed: z.stdout.length, ranges });
        }
        files.sort((a, b) => b.touched - a.touched);
        return { touchedBytes, compressedBytes, localRun, files };
      } finally {
        spawnSync('umount', [mnt]);
      }
    } finally {
      spawnSync('losetup', ['-d', dev]);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Floor seconds: the cold local run, the compressed touched bytes at `rateBytesPerSec`, and `trips` round trips. */
export const floorSeconds = (floor, { localRun, rateBytesPerSec, rttSeconds, trips = 3 }) =>
  localRun + floor.compressedBytes / rateBytesPerSec + trips * rttSeconds;

/** "200mbit" → bytes per second. */
export function rateBytes(rate) {
  const m = /^(\d+(?:\.\d+)?)(k|m|g)?bit$/i.exec(rate);
  if (!m) throw new Error(`floor: cannot read the rate ${rate}`);
  return (Number(m[1]) * { k: 1e3, m: 1e6, g: 1e9, undefined: 1 }[m[2]?.toLowerCase()]) / 8;
}

/**
 * The bytes a lazy start of an image with fixed members must fetch: each layer's footer and TOC,
 * and every member holding a page of `floor.files` (touched ranges), a file taken from the topmost
 * layer that has it (hardlinks followed; whiteouts are not looked at: the floor image has none over
 * the touched files). `layers`, bottom first: { blobSize, toc } with toc a resolved StargzToc.
 */
export function memberFloor(floor, layers) {
  let bytes = 0;
  let members = 0;
  for (const { blobSize, toc } of layers) bytes += blobSize - toc.footer.tocOffset;
  const byName = layers.map(({ toc }) => {
    const m = new Map();
    for (const e of toc.entries) if (e.type === 'reg' || e.type === 'chunk' || e.type === 'hardlink') m.set(e.name, [...(m.get(e.name) ?? []), e]);
    return m;
  });
  const counted = new Set();
  for (const file of floor.files) {
    let name = file.path.replace(/^\/+/, '');
    const layer = byName.findLastIndex((m) => m.has(name));
    if (layer < 0) throw new Error(`floor: no layer has ${file.path}`);
    const link = byName[layer].get(name).find((e) => e.type === 'hardlink');
    if (link) name = link.linkName;
    for (const piece of byName[layer].get(name) ?? []) {
      if (piece.type === 'hardlink' || piece.compressedSize === 0) continue;
      const end = piece.chunkOffset + piece.chunkSize;
      if (!file.ranges.some(([s, e]) => s < end && e > piece.chunkOffset)) continue;
      const key = `${layer}:${piece.offset}`;
      if (counted.has(key)) continue;
      counted.add(key);
      bytes += piece.compressedSize;
      members++;
    }
  }
  return { bytes, members };
}

function readRanges(file, ranges) {
  const parts = [];
  const fd = openSync(file, 'r');
  try {
    for (const [start, end] of ranges) {
      const b = Buffer.allocUnsafe(end - start);
      let got = 0;
      while (got < b.length) {
        const n = readSync(fd, b, got, b.length - got, start + got);
        if (n === 0) break;
        got += n;
      }
      parts.push(b.subarray(0, got));
    }
  } finally {
    closeSync(fd);
  }
  return Buffer.concat(parts);
}
