// How stargz-family layers announce themselves in an image manifest (annotations containerd passes
// to snapshotters as labels): eStargz by the digest of its TOC JSON, zstd:chunked by the checksum and
// position of its compressed TOC (two generations of key names). Reading such layers is src/stargz.

/** The digest of an eStargz layer's TOC JSON (also a snapshot label). */
export const TOC_DIGEST_ANNOTATION = 'containerd.io/snapshot/stargz/toc.digest';
export const ZSTD_CHUNKED_CHECKSUM_ANNOTATIONS = [
  'io.github.containers.zstd-chunked.manifest-checksum',
  'io.containers.zstd-chunked.manifest-checksum',
] as const;
export const ZSTD_CHUNKED_POSITION_ANNOTATIONS = [
  'io.github.containers.zstd-chunked.manifest-position',
  'io.containers.zstd-chunked.manifest-position',
] as const;

/** A layer whose manifest entry says how to verify its TOC: one that can be served lazily as it is. */
export function isStargzLayer(d: { annotations?: Record<string, string> }): boolean {
  const a = d.annotations ?? {};
  return a[TOC_DIGEST_ANNOTATION] !== undefined || ZSTD_CHUNKED_CHECKSUM_ANNOTATIONS.some((k) => a[k] !== undefined);
}
