/**
 * IcmpRateLimits: Linux's per-destination ICMP error rate limit (inet_peer_xrlim_allow with
 * net.ipv4.icmp_ratelimit and XRLIM_BURST_FACTOR): each destination earns one token per
 * `intervalUs`, holds at most `burst`, and a new destination starts full. Errors of the
 * types in Linux's default icmp_ratemask (destination unreachable but fragmentation needed,
 * source quench, time exceeded, parameter problem) spend one each.
 *
 * Destinations are keyed in a KeyIndex; when it is full, the table starts afresh (every
 * destination full again), which errs towards sending.
 */
import { KeyIndex } from './key-index.ts';

export class IcmpRateLimits {
  private readonly index: KeyIndex;
  private readonly tokensUs: Float64Array;
  private readonly lastUs: Float64Array;
  resets = 0;

  /** `intervalUs` 0 (the default): no limit, as icmp_ratelimit=0. */
  constructor(
    private intervalUs = 0,
    private burst = 0,
    capacity = 4096,
  ) {
    this.index = new KeyIndex(capacity);
    this.tokensUs = new Float64Array(capacity);
    this.lastUs = new Float64Array(capacity);
  }

  /** New limits; every destination is forgotten (starts full again), as in a new table. */
  configure(intervalUs: number, burst: number): void {
    this.intervalUs = intervalUs;
    this.burst = burst;
    this.index.clear();
  }

  /** Whether an error to `dst` may be sent at `nowUs` (and if so, spends a token). */
  allow(dst: number, nowUs: number): boolean {
    if (this.intervalUs <= 0) return true;
    const cap = this.burst * this.intervalUs;
    let id = this.index.find(0, dst);
    if (id < 0) {
      id = this.index.insert(0, dst);
      if (id < 0) {
        this.index.clear();
        this.resets++;
        id = this.index.insert(0, dst);
      }
      this.tokensUs[id] = cap;
      this.lastUs[id] = nowUs;
    }
    const tokens = Math.min(cap, this.tokensUs[id] + (nowUs - this.lastUs[id]));
    this.lastUs[id] = nowUs;
    if (tokens >= this.intervalUs) {
      this.tokensUs[id] = tokens - this.intervalUs;
      return true;
    }
    this.tokensUs[id] = tokens;
    return false;
  }
}
