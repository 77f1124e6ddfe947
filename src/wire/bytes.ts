/**
 * Big-endian field access for the packet path: plain index arithmetic on a Buffer, which V8
 * inlines; no bounds checks (callers validate lengths first) and no allocation. MACs travel
 * as a high 16-bit and a low 32-bit integer so they never become heap numbers.
 */

export function rd16(b: Buffer, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

export function rd32(b: Buffer, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

export function wr16(b: Buffer, o: number, v: number): void {
  b[o] = v >>> 8;
  b[o + 1] = v;
}

export function wr32(b: Buffer, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

/** High 16 bits of the MAC at `o`. */
export function macHiAt(b: Buffer, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

/**
 * Low 32 bits of the MAC at `o`, as an int32: half of all MACs have the top bit set, and as
 * a uint32 such a value is no V8 small integer (it would be boxed when passed to a call).
 * Tables keep MAC halves as int32 too; use `>>> 0` only for display.
 */
export function macLoAt(b: Buffer, o: number): number {
  return (b[o + 2] << 24) | (b[o + 3] << 16) | (b[o + 4] << 8) | b[o + 5];
}

export function writeMacHiLo(b: Buffer, o: number, hi: number, lo: number): void {
  b[o] = hi >>> 8;
  b[o + 1] = hi;
  b[o + 2] = lo >>> 24;
  b[o + 3] = lo >>> 16;
  b[o + 4] = lo >>> 8;
  b[o + 5] = lo;
}

/** Little-endian 16-bit read (virtio-net headers are little-endian). */
export function rd16le(b: Buffer, o: number): number {
  return b[o] | (b[o + 1] << 8);
}

export function wr16le(b: Buffer, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
}

/**
 * The 32-bit value at `o` as an int32 (an IPv4 address as table keys hold it): read with
 * `rd32`, an address above 2^31 is no V8 small integer and would be boxed when passed to a
 * call V8 does not inline.
 */
export function rd32i(b: Buffer, o: number): number {
  return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
}
