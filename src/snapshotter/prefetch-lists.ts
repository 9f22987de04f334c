// Files to fetch first at an image's next mount, by image reference: what an NRI plugin gives the
// system API (PUT /api/v1/prefetch, system-api.ts). Each list is used once, as nydus-snapshotter does.
export class PrefetchLists {
  private readonly lists = new Map<string, string[]>();

  set(ref: string, paths: string[]): void {
    this.lists.set(ref, paths);
  }

  /** The list for `ref`, forgotten as it is taken. */
  take(ref: string): string[] | undefined {
    const paths = this.lists.get(ref);
    this.lists.delete(ref);
    return paths;
  }
}
