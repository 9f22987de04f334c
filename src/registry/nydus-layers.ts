// How a Nydus image is laid out on top of OCI (docs/rafs-v6.md §4), what its readers need to know:
// one nydus blob layer per source layer, then a gzip tar layer holding the merged bootstrap at
// image/image.boot, last; annotations under containerd.io/snapshot/ so containerd passes them to
// snapshotters. Building such layers is convert/nydus-image.ts.

/** Media type of a Nydus data blob layer (also used inside Docker schema2 manifests). */
export const NYDUS_BLOB_MEDIA_TYPE = 'application/vnd.oci.image.layer.nydus.blob.v1';

/** The os.feature of a Nydus manifest beside an OCI one of the same platform in an index (nydusify --merge-platform; nydus-snapshotter looks for it). */
export const NYDUS_OS_FEATURE = 'nydus.remoteimage.v1';

export const Annotation = {
  NYDUS_BLOB: 'containerd.io/snapshot/nydus-blob',
  NYDUS_BOOTSTRAP: 'containerd.io/snapshot/nydus-bootstrap',
  NYDUS_FS_VERSION: 'containerd.io/snapshot/nydus-fs-version',
  /**
   * On the blob layer that starts with an optimized image's hot region (`optimize`): the region's
   * compressed bytes, in decimal. The region holds the chunks a traced start touched, in first-touch
   * order, so a mount streams it at once.
   */
  HOT_REGION: 'org.nydusify-ts.hot-region',
  /**
   * On the layer holding an optimized image's hot pack (rafs/hot-pack.ts: its hot region's chunks
   * in a few large zstd frames): which hot blob, and the frames (JSON). A Nydus blob layer to anyone else.
   */
  HOT_PACK: 'org.nydusify-ts.hot-pack',
} as const;

/** Where the bootstrap sits inside the bootstrap layer. */
export const BOOTSTRAP_PATH = 'image/image.boot';

export function isNydusBlob(d: { mediaType?: string; annotations?: Record<string, string> }): boolean {
  return d.mediaType === NYDUS_BLOB_MEDIA_TYPE || d.annotations?.[Annotation.NYDUS_BLOB] === 'true';
}

export function isNydusBootstrap(d: { annotations?: Record<string, string> }): boolean {
  return d.annotations?.[Annotation.NYDUS_BOOTSTRAP] === 'true';
}

/**
 * The hot region's compressed bytes at the start of blob layer `d`, when it declares one that fits
 * in the layer (an annotation is untrusted: anything else declares none).
 */
export function hotRegionBytes(d: { size: number; annotations?: Record<string, string> }): number | undefined {
  const text = d.annotations?.[Annotation.HOT_REGION];
  if (text === undefined || !/^[1-9][0-9]{0,15}$/.test(text)) return undefined;
  const bytes = Number(text);
  return bytes <= d.size ? bytes : undefined;
}
