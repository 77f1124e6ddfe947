/**
 * The dataplane's one source of time, in microseconds since the Unix epoch.
 * Live it follows the system clock; in replay it is set to each frame's timestamp, so
 * every timer (ARP retries, ageing, conntrack expiry) fires at the same virtual instant
 * on every run.
 */
export interface Clock {
  /** Current time in microseconds. Integral; exact up to 2^53 µs (year 2255). */
  nowUs(): number;
}

export class SystemClock implements Clock {
  nowUs(): number {
    return Math.floor((performance.timeOrigin + performance.now()) * 1000);
  }
}

export class VirtualClock implements Clock {
  private now = 0;
  nowUs(): number {
    return this.now;
  }
  /** Moves time to `us`; time never goes backwards (out-of-order capture records keep the later time). */
  set(us: number): void {
    if (us > this.now) this.now = us;
  }
}
