/**
 * BpfFilter: tcpdump's filter language (`icmp or arp`, `tcp port 8080 and host 10.244.1.3`)
 * for captures and `trace --match`, compiled by libpcap's pcap_compile and run by its
 * bpf_filter over whole batches of frames in the pool (native/pcap-filter.c, the
 * nodeplane_pcap addon): one call into C per batch, never a hand-written parser.
 *
 * A filter sees every frame whole (the snaplen cuts what is written, not what is matched),
 * as Ethernet (DLT_EN10MB). An expression libpcap refuses is a UserError with libpcap's
 * message, as tcpdump prints it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { FramePool } from '../core/frame-pool.ts';
import { UserError } from '../user-error.ts';

interface NativePcap {
  compile(expr: string, snaplen: number): Buffer;
  filterBatch(prog: Buffer, data: Buffer, start: Int32Array, len: Int32Array, slots: Int32Array, n: number, verdicts: Uint8Array): number;
}

const ADDON_RELATIVE = '../../build/Release/nodeplane_pcap.node';
let native: NativePcap | undefined;

function addon(): NativePcap {
  if (native) return native;
  const path = fileURLToPath(new URL(ADDON_RELATIVE, import.meta.url));
  if (!existsSync(path)) {
    throw new UserError(`capture filters need the nodeplane_pcap addon (${path} is missing): install libpcap-dev and run \`npm ci\``);
  }
  native = createRequire(import.meta.url)(path) as NativePcap;
  return native;
}

/** Whether filters can be compiled here (the addon is built). */
export function filtersAvailable(): boolean {
  try {
    addon();
    return true;
  } catch {
    return false;
  }
}

export class BpfFilter {
  /** Frames matched and not matched so far. */
  accepted = 0;
  rejected = 0;
  private readonly prog: Buffer;
  private readonly native: NativePcap;
  private one = new Int32Array(1);
  private oneVerdict = new Uint8Array(1);

  constructor(
    /** The expression, as given. */
    readonly expression: string,
    snaplen = 262144,
  ) {
    this.native = addon();
    try {
      this.prog = this.native.compile(expression, snaplen);
    } catch (e) {
      throw new UserError(`capture filter "${expression}": ${(e as Error).message}`);
    }
  }

  /**
   * Matches the frames of `slots[0..n)`: `verdicts[i]` is 1 for a match, 0 otherwise.
   * Returns how many matched.
   */
  matchBatch(pool: FramePool, slots: Int32Array, n: number, verdicts: Uint8Array): number {
    if (n === 0) return 0;
    const k = this.native.filterBatch(this.prog, pool.data, pool.start, pool.len, slots, n, verdicts);
    this.accepted += k;
    this.rejected += n - k;
    return k;
  }

  /** Matches one frame (off the packet path: trace, tests). */
  matches(pool: FramePool, slot: number): boolean {
    this.one[0] = slot;
    return this.matchBatch(pool, this.one, 1, this.oneVerdict) === 1;
  }
}
