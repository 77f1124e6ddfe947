/**
 * BpfFilter: tcpdump's filter language (`icmp or arp`, `tcp port 8080 and host 10.244.1.3`)
 * for captures and `trace --match`, compiled by libpcap's pcap_compile and run by its
 * bpf_filter over whole batches of frames in the pool (native/pcap-filter.c, in the
 * nodeplane addon, which opens libpcap with dlopen): one call into C per batch, never a
 * hand-written parser.
 *
 * A filter sees every frame whole (the snaplen cuts what is written, not what is matched),
 * as Ethernet (DLT_EN10MB). An expression libpcap refuses is a UserError with libpcap's
 * message, as tcpdump prints it.
 */
import type { FramePool } from '../core/frame-pool.ts';
import { nativeAddon } from '../ports/native-addon.ts';
import { UserError } from '../user-error.ts';

interface NativePcap {
  filterLoad(): string | null;
  filterCompile(expr: string, snaplen: number): Buffer;
  filterBatch(prog: Buffer, data: Buffer, start: Int32Array, len: Int32Array, slots: Int32Array, n: number, verdicts: Uint8Array): number;
}

/** The addon with libpcap loaded, or the reason filters cannot run here. */
function load(): { native: NativePcap } | { error: string } {
  const r = nativeAddon();
  if ('error' in r) return { error: r.error };
  const native = r.addon as NativePcap;
  const why = native.filterLoad();
  return why === null ? { native } : { error: `${why}: install libpcap (Debian: apt-get install libpcap0.8)` };
}

function addon(): NativePcap {
  const r = load();
  if ('error' in r) throw new UserError(`capture filters need libpcap: ${r.error}`);
  return r.native;
}

/** Whether filters can be compiled here (the addon loads and finds libpcap). */
export function filtersAvailable(): boolean {
  return 'native' in load();
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
      this.prog = this.native.filterCompile(expression, snaplen);
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
