/**
 * TokenBucket: rate limiting on the dataplane clock (ICMP errors, as Linux's
 * icmp_msgs_per_sec / icmp_msgs_burst do). Deterministic in replay because time is passed in.
 * A bucket made without limits lets nothing through until `configure` gives it some.
 */
export class TokenBucket {
  private tokens: number;
  private lastUs = -1;

  constructor(
    private ratePerSec = 0,
    private burst = 0,
  ) {
    this.tokens = burst;
  }

  /** New limits; the bucket starts full again, as a new one would. */
  configure(ratePerSec: number, burst: number): void {
    this.ratePerSec = ratePerSec;
    this.burst = burst;
    this.tokens = burst;
    this.lastUs = -1;
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
