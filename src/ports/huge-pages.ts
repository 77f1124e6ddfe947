/**
 * Huge pages for the dataplane's large buffers: the frame pool and a capture's ring. The
 * addon's adviseHugePages (native/huge-pages.c) asks the kernel for 2 MiB pages over a
 * buffer not yet written; the buffer is used as it is either way.
 *
 * Why: both span thousands of 4 KiB pages, more than the TLB holds, and on a CPU with
 * page-table isolation and no PCID every system call empties the TLB, so each page touched
 * afterwards costs a page walk. Measured in docs/benchmarks.md ("Huge pages").
 */
import { nativeAddon } from './native-addon.ts';

/** Bytes of `view` now backed by huge pages when first written; 0 without the addon or THP. */
export function adviseHugePages(view: Uint8Array): number {
  const r = nativeAddon();
  if (!('addon' in r)) return 0;
  const advise = (r.addon as { adviseHugePages?: (v: Uint8Array) => number }).adviseHugePages;
  return advise === undefined ? 0 : advise(view);
}
