/**
 * AsciiWriter: writes ASCII text into a Buffer without allocating — constant strings,
 * unsigned integers (up to 2^53, as counters are doubles) and IPv4 addresses as dotted quads.
 *
 * For output made on the packet thread in bulk (the conntrack listing: a million lines). A
 * line built as a template string is a tree of pieces and number-to-string conversions, a
 * kilobyte of garbage that makes the young generation fill and scavenge every few
 * milliseconds; written here, a line costs no heap at all. The caller keeps room: nothing is
 * checked against the end of the buffer (see `room`).
 */
export class AsciiWriter {
  buf: Buffer;
  pos = 0;

  constructor(buf: Buffer) {
    this.buf = buf;
  }

  /** Bytes left. */
  get room(): number {
    return this.buf.length - this.pos;
  }

  /** Starts over on `buf`. */
  reset(buf: Buffer): void {
    this.buf = buf;
    this.pos = 0;
  }

  /** An ASCII string (each char code taken as one byte). */
  text(s: string): void {
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < s.length; i++) buf[p++] = s.charCodeAt(i);
    this.pos = p;
  }

  byte(c: number): void {
    this.buf[this.pos++] = c;
  }

  /** A whole number 0 .. 2^53 in decimal. */
  uint(n: number): void {
    const buf = this.buf;
    if (n < 10) {
      buf[this.pos++] = 48 + n;
      return;
    }
    let digits = 1;
    for (let p = 10; p <= n; p *= 10) digits++;
    const end = this.pos + digits;
    let x = n;
    for (let i = end - 1; i >= this.pos; i--) {
      const q = Math.floor(x / 10);
      buf[i] = 48 + (x - q * 10);
      x = q;
    }
    this.pos = end;
  }

  /** An IPv4 address (u32 or int32) as a dotted quad. */
  ipv4(a: number): void {
    this.uint(a >>> 24);
    this.buf[this.pos++] = 46;
    this.uint((a >>> 16) & 0xff);
    this.buf[this.pos++] = 46;
    this.uint((a >>> 8) & 0xff);
    this.buf[this.pos++] = 46;
    this.uint(a & 0xff);
  }

  /** What was written, as a string (tests, small outputs). */
  toString(): string {
    return this.buf.toString('latin1', 0, this.pos);
  }
}
