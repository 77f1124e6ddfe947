/**
 * The nodeplane addon (native/, one binary): TAP devices (tap.c, used through tap-native.ts),
 * libpcap's filter compiler and interpreter (pcap-filter.c, used through
 * capture/bpf-filter.ts), copyRanges (copy-ranges.c, capture/capture-ring.ts), page-aligned
 * memory for the capture writer's O_DIRECT (aligned-buffer.c, capture-ring.ts) and SCHED_FIFO
 * for `run --realtime` (realtime.c, realtime.ts). One binary
 * because node-gyp-build and prebuildify ship one per package.
 *
 * Loaded lazily through node-gyp-build: a build from source in build/Release when there is
 * one (a checkout, or an install that compiled), else the prebuilt binary shipped in
 * prebuilds/linux-x64/ (N-API, so any Node version of this ABI family loads it). Importing
 * this module never fails; `nativeAddon()` returns the addon or the reason it is unavailable.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The package root: build/Release (a build from source) and prebuilds/ (shipped) live there. */
const PACKAGE_ROOT_RELATIVE = '../..';

/** The package root, with its trailing slash. */
function packageRoot(): string {
  return fileURLToPath(new URL(PACKAGE_ROOT_RELATIVE, import.meta.url));
}

let addon: unknown;
let loadError: string | undefined;

/** The addon's exports, or `{ error }` saying why it cannot be loaded here. */
export function nativeAddon(): { addon: unknown } | { error: string } {
  if (addon !== undefined) return { addon };
  if (loadError !== undefined) return { error: loadError };
  const root = packageRoot();
  if (process.platform !== 'linux') {
    loadError = `the nodeplane addon needs Linux (this is ${process.platform})`;
    return { error: loadError };
  }
  const require = createRequire(import.meta.url);
  try {
    const load = require('node-gyp-build') as (dir: string) => unknown;
    addon = load(root);
    return { addon };
  } catch (err) {
    const message = (err as Error).message;
    loadError = /No native build was found/.test(message)
      ? `the nodeplane addon is not built and no prebuilt one fits this machine (looked in ${root}build/Release and ${root}prebuilds): ` +
        'run `npx node-gyp rebuild` in the package (needs python3, make, a C compiler and libpcap-dev)'
      : `cannot load the nodeplane addon (from ${root}): ${message}`;
    return { error: loadError };
  }
}

/** The loaded addon's file (for a worker thread to load it too), or undefined without one. */
export function nativeAddonPath(): string | undefined {
  if (!('addon' in nativeAddon())) return undefined;
  try {
    return (createRequire(import.meta.url)('node-gyp-build') as { resolve(dir: string): string }).resolve(packageRoot());
  } catch {
    return undefined;
  }
}
