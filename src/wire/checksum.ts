/**
 * The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
 *
 * The checksum is the 16-bit one's complement of the one's complement sum of the data
 * taken as big-endian 16-bit words (an odd last byte is padded with zero on the right).
 *
 *   onesComplementSum  -> an unfolded accumulator (a plain JS number: exact far beyond any
 *                         packet size, so no carry is lost)
 *   foldChecksum       -> folds the carries back in and complements: the value to store
 *   internetChecksum   -> both at once
 *   pseudoHeaderSum    -> the IPv4 pseudo header of UDP/TCP (RFC 768, RFC 793) as an
 *                         accumulator to pass on as `acc`
 *   checksumVerifies   -> whether a block of at most 64 KiB (an IPv4 header, say), checksum
 *                         field included, verifies: the same answer as the two above, in
 *                         int32 arithmetic, read through a DataView
 *   wordsVerify        -> the same for a 20-byte header already read as five 32-bit words
 *
 * A received block verifies when the sum over it, checksum field included, folds to
 * 0xffff, i.e. `internetChecksum(...) === 0`.
 *
 * Incremental update, RFC 1624 eqn. 3:  HC' = ~(~HC + ~m + m')
 * where HC is the old checksum, m the old 16-bit word and m' the new one. As long as the
 * old checksum was produced by a full computation over data that is not all zero, the
 * result is identical to a full recomputation (it stays in 0x0000..0xfffe). UDP callers
 * must keep the RFC 768 rules themselves: a zero checksum means "none" (leave it), and a
 * computed 0x0000 is sent as 0xffff.
 */

/** Adds the 16-bit big-endian words of `buf[off .. off+len)` to `acc` (unfolded). */
export function onesComplementSum(buf: Buffer, off: number, len: number, acc = 0): number {
  let sum = acc;
  const end = off + len - 1;
  let i = off;
  for (; i < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i === end) sum += buf[i] << 8;
  return sum;
}

/** Folds an accumulator to 16 bits with end-around carry and complements it. */
export function foldChecksum(acc: number): number {
  let s = acc;
  if (s <= 0x7fffffff) {
    // An int32 (every header, every frame of a 4 KiB slot): integer folds.
    s = (s & 0xffff) + (s >>> 16);
    s = (s & 0xffff) + (s >>> 16);
    return ~s & 0xffff;
  }
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

/**
 * Whether `view[off .. off+len)`, its checksum field included, verifies (sums to 0xffff), for
 * len ≤ 65536: at most 32,768 words of at most 0xffff sum below 2^31, so the sum stays an
 * int32 and two end-around folds finish it, with no division. It reads through a DataView
 * (FramePool.dataView): a 20-byte block, an IPv4 header without options (nearly every one),
 * is five 32-bit reads in one expression, against twenty byte reads.
 */
export function checksumVerifies(view: DataView, off: number, len: number): boolean {
  if (len === 20) return wordsVerify(view.getInt32(off), view.getInt32(off + 4), view.getInt32(off + 8), view.getInt32(off + 12), view.getInt32(off + 16));
  let sum = 0;
  const end = off + len - 1;
  let i = off;
  for (; i < end; i += 2) sum += view.getUint16(i);
  if (i === end) sum += view.getUint8(i) << 8;
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

/**
 * Whether five big-endian 32-bit words (a 20-byte IPv4 header a stage has read already)
 * verify: checksumVerifies of those 20 bytes.
 */
export function wordsVerify(w0: number, w1: number, w2: number, w3: number, w4: number): boolean {
  let sum = (w0 >>> 16) + (w0 & 0xffff) + (w1 >>> 16) + (w1 & 0xffff) + (w2 >>> 16) + (w2 & 0xffff) + (w3 >>> 16) + (w3 & 0xffff) + (w4 >>> 16) + (w4 & 0xffff);
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

/** The checksum to store for `buf[off .. off+len)` (with `acc` added, e.g. a pseudo header). */
export function internetChecksum(buf: Buffer, off: number, len: number, acc = 0): number {
  return foldChecksum(onesComplementSum(buf, off, len, acc));
}

/** The IPv4 pseudo header (src, dst, zero, protocol, L4 length) as an accumulator. */
export function pseudoHeaderSum(src: number, dst: number, proto: number, l4len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + l4len;
}

/** RFC 1624 eqn. 3: the checksum after one 16-bit word changed from `oldWord` to `newWord`. */
export function updateChecksum16(oldChecksum: number, oldWord: number, newWord: number): number {
  let s = (~oldChecksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** The checksum after a 32-bit value (an IPv4 address) changed: two 16-bit updates. */
export function updateChecksum32(oldChecksum: number, oldValue32: number, newValue32: number): number {
  const c = updateChecksum16(oldChecksum, oldValue32 >>> 16, newValue32 >>> 16);
  return updateChecksum16(c, oldValue32 & 0xffff, newValue32 & 0xffff);
}
