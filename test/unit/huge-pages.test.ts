/**
 * adviseHugePages (src/ports/huge-pages.ts, native/huge-pages.c): the 2 MiB-aligned pages
 * inside a buffer are advised, nothing outside it, and a buffer with no whole huge page in it
 * gets none. Whether the kernel then backs them with huge pages depends on its memory; the
 * advice is what is ours.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { adviseHugePages } from '../../src/ports/huge-pages.ts';
import { nativeAddon } from '../../src/ports/native-addon.ts';

const MiB = 1024 * 1024;
const thp = (() => {
  try {
    return !/\[never\]/.test(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'));
  } catch {
    return false;
  }
})();
const addon = 'addon' in nativeAddon();
if (!addon || !thp) process.stdout.write(`skipping adviseHugePages: ${addon ? 'transparent huge pages are off on this machine' : 'the addon is not built'}\n`);

describe.skipIf(!addon || !thp)('adviseHugePages', () => {
  it('advises the whole 2 MiB pages inside a buffer', () => {
    const buf = Buffer.allocUnsafeSlow(9 * MiB);
    const advised = adviseHugePages(buf);
    expect(advised % (2 * MiB)).toBe(0);
    // 9 MiB from anywhere hold at least three whole aligned 2 MiB pages, at most four.
    expect(advised).toBeGreaterThanOrEqual(6 * MiB);
    expect(advised).toBeLessThanOrEqual(8 * MiB);
  });

  it('a view of a SharedArrayBuffer (a capture ring) is advised as well', () => {
    expect(adviseHugePages(new Uint8Array(new SharedArrayBuffer(8 * MiB)))).toBeGreaterThanOrEqual(6 * MiB);
  });

  it('a buffer smaller than a huge page gets none', () => {
    expect(adviseHugePages(Buffer.allocUnsafeSlow(MiB))).toBe(0);
  });
});
