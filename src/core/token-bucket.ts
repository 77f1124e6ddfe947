/**
 * TokenBucket: rate limiting on the dataplane clock (ICMP errors, as Linux's
 * icmp_msgs_per_sec / icmp_msgs_burst do). Deterministic in replay because time is passed in.
 */
export class TokenBucket {
  private tokens: number;
  private lastUs = -1;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  /** Takes one token if available at time `nowUs`. */
  take(nowUs: number): boolean {
    if (this.lastUs >= 0 && nowUs > this.lastUs) {
      this.tokens = Math.min(this.burst, this.tokens + ((nowUs - this.lastUs) * this.ratePerSec) / 1e6);
    }
    this.lastUs = nowUs;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }
}
