/**
 * pcapng timestamps: a 64-bit tick count (two 32-bit halves) at a per-interface resolution,
 * converted to and from (seconds, nanoseconds) without BigInt and without losing precision.
 *
 * Why not just `hi * 2 ** 32 + lo`: at nanosecond resolution today's tick counts are around
 * 1.7e18, far beyond 2^53, so a double would silently round the low bits. The conversions
 * below work in 8- or 16-bit digits so every intermediate stays an exact integer.
 */

/** How one interface's ticks map to nanoseconds. */
export interface TickScale {
  /** Ticks per second (10^k or 2^k). */
  ticksPerSec: number;
  /** For decimal resolutions: ns = rem * nsMul / nsDiv (one of them is 1). 0 for power of two. */
  nsMul: number;
  nsDiv: number;
  /** Nanoseconds per tick as a number (CaptureInterface.tsResolNs). */
  nsPerTick: number;
}

/** Largest ticks-per-second value the exact long division supports (8-bit digits). */
const MAX_TICKS_PER_SEC = 2 ** 45;

/**
 * Decodes an if_tsresol byte: high bit clear means 10^-v seconds per tick, set means 2^-v.
 * Returns undefined when the resolution is too fine to convert exactly (beyond 2^45 ticks/s,
 * about 28 fs: no real capture uses that).
 */
export function tickScaleFromTsresol(v: number): TickScale | undefined {
  const exp = v & 0x7f;
  if (v & 0x80) {
    const tps = 2 ** exp;
    if (tps > MAX_TICKS_PER_SEC) return undefined;
    return { ticksPerSec: tps, nsMul: 0, nsDiv: 0, nsPerTick: 1e9 / tps };
  }
  const tps = 10 ** exp;
  if (tps > MAX_TICKS_PER_SEC) return undefined;
  return exp <= 9
    ? { ticksPerSec: tps, nsMul: 10 ** (9 - exp), nsDiv: 1, nsPerTick: 10 ** (9 - exp) }
    : { ticksPerSec: tps, nsMul: 1, nsDiv: 10 ** (exp - 9), nsPerTick: 1 / 10 ** (exp - 9) };
}

/** The pcapng default: microseconds (if_tsresol absent, or 6). */
export const MICROSECOND_SCALE: TickScale = tickScaleFromTsresol(6)!;
export const NANOSECOND_SCALE: TickScale = tickScaleFromTsresol(9)!;

/** Result holder so the reader does not allocate per record. */
export interface SecNsec {
  sec: number;
  nsec: number;
}

/**
 * Splits the tick count hi:lo into whole seconds and nanoseconds. Long division by
 * ticksPerSec, one byte of the 64-bit dividend at a time: the running remainder stays below
 * ticksPerSec, so `rem * 256 + byte` stays below 2^53. Only the seconds themselves must fit
 * in 2^53, which fails only for garbage such as 2^63 ticks at one tick per second.
 */
export function ticksToTime(hi: number, lo: number, s: TickScale, out: SecNsec): SecNsec {
  const tps = s.ticksPerSec;
  let sec: number;
  let rem: number;
  if (hi < 0x200000) {
    // Fast path: the whole count fits in 53 bits (always true at µs resolution until year 2255).
    const t = hi * 0x100000000 + lo;
    sec = Math.floor(t / tps);
    rem = t - sec * tps;
  } else {
    sec = 0;
    rem = 0;
    for (let shift = 24; shift >= 0; shift -= 8) {
      const cur = rem * 256 + ((hi >>> shift) & 0xff);
      const q = Math.floor(cur / tps);
      sec = sec * 256 + q;
      rem = cur - q * tps;
    }
    for (let shift = 24; shift >= 0; shift -= 8) {
      const cur = rem * 256 + ((lo >>> shift) & 0xff);
      const q = Math.floor(cur / tps);
      sec = sec * 256 + q;
      rem = cur - q * tps;
    }
  }
  out.sec = sec;
  if (s.nsDiv !== 0) {
    out.nsec = s.nsDiv === 1 ? rem * s.nsMul : Math.floor(rem / s.nsDiv);
  } else if (rem * 1e9 <= Number.MAX_SAFE_INTEGER) {
    // Power-of-two ticks: truncate like Wireshark does.
    out.nsec = Math.floor((rem * 1e9) / tps);
  } else {
    out.nsec = Number((BigInt(rem) * 1_000_000_000n) / BigInt(tps));
  }
  return out;
}

/** Result holder for timeToTicks. */
export interface HiLo {
  hi: number;
  lo: number;
}

/**
 * Converts (sec, nsec) to a tick count hi:lo at a decimal resolution of at most 1e9 ticks/s
 * (the writer only produces µs and ns). tsSec is split in 16-bit halves so every product is
 * below 2^53: sec * tps = (s1 * 2^16 + s0) * tps.
 */
export function timeToTicks(tsSec: number, tsNsec: number, s: TickScale, out: HiLo): HiLo {
  const tps = s.ticksPerSec;
  const sub = Math.floor(tsNsec / s.nsMul); // ticks within the second
  const s1 = Math.floor(tsSec / 0x10000);
  const s0 = tsSec - s1 * 0x10000;
  const t1 = s1 * tps; // < 2^17 * 2^30
  const t1hi = Math.floor(t1 / 0x10000);
  const low = (t1 - t1hi * 0x10000) * 0x10000 + s0 * tps + sub; // < 2^32 + 2^46 + 2^30
  const carry = Math.floor(low / 0x100000000);
  out.hi = t1hi + carry;
  out.lo = low - carry * 0x100000000;
  return out;
}
