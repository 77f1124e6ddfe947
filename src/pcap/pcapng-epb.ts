/**
 * pcapng Enhanced Packet Blocks laid straight into a caller's memory (a capture ring, a batch
 * buffer): the fast path of live captures, where PcapngWriter's block-by-block writes to a
 * sink would cost a scratch copy and a call per packet.
 *
 * `EpbLayout` writes into one Buffer through an Int32Array over the same memory, at offsets
 * that are multiples of 4 (every pcapng block is): the fixed words, the first `caplen` bytes of
 * the frame copied once from the pool, zero padding to 32 bits, then epb_flags (the
 * direction) and/or an opt_comment, opt_endofopt, and the total length. Given a `CopyRanges`
 * (the addon's copyRanges), the bytes are not copied one block at a time: their ranges are
 * noted and copied all at once by `flushCopies()`, in one call (a capture's shared memory,
 * which V8 copies into slowly). Timestamps are in
 * microseconds (the interfaces' default if_tsresol), hi and lo words set once per batch.
 * Little-endian, as PcapngWriter writes the section header: on a big-endian host the words are
 * swapped.
 *
 * Page placement (`pagePadding`, shared with PcapngWriter's pageAligned option): before a
 * block that would cross a 4096-byte file page, padding blocks fill the page, so that a
 * SIGKILL, which stops a write(2) between pages, never cuts a block (pcapng-writer.ts has the
 * details and the cost).
 */
import { endianness } from 'node:os';
import { BlockType, OptionCode } from './pcapng-format.ts';
import { PacketDirection } from './record.ts';

/** File page size the kernel copies writes in (x86-64 and arm64 with 4 KiB pages). */
export const FILE_PAGE_SIZE = 4096;
/** Block type of page padding: pcapng's local-use range, never copied by editors. */
export const PAD_BLOCK_TYPE = 0x80000bad;
/** Smallest padding block: type, total length, total length; empty body. */
export const MIN_PAD = 12;

/** epb_flags values: direction in bits 0-1. */
export const EPB_INBOUND = PacketDirection.INBOUND;
export const EPB_OUTBOUND = PacketDirection.OUTBOUND;

const LITTLE_ENDIAN = endianness() === 'LE';

function swap32(v: number): number {
  return ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24);
}

/** True when n bytes fill `room` exactly or leave enough of it for a padding block. */
function fitsIn(n: number, room: number): boolean {
  return n === room || n + MIN_PAD <= room;
}

/**
 * The padding to write before an n-byte block at file position `pos` so it lies within one
 * page: 0, 1 or 2 padding blocks, their sizes in out[0] and out[1]. Nothing goes before the
 * section header (pos 0) or at a position that is not a multiple of 4 (not ours).
 */
export function pagePadding(pos: number, n: number, out: Int32Array): number {
  if (pos === 0 || pos % 4 !== 0) return 0;
  let count = 0;
  let gap = FILE_PAGE_SIZE - (pos % FILE_PAGE_SIZE);
  if (gap < MIN_PAD) {
    // Only after a block that could not be protected: this padding crosses the boundary itself,
    // but leaves a usable gap again.
    out[count++] = MIN_PAD;
    gap += FILE_PAGE_SIZE - MIN_PAD;
  }
  if (fitsIn(n, gap)) return count;
  if (fitsIn(n, FILE_PAGE_SIZE)) {
    out[count++] = gap;
    return count;
  }
  // Cannot lie within one page: written as it is, but not so that it leaves a gap of 4 or 8.
  const after = (((gap - n) % FILE_PAGE_SIZE) + FILE_PAGE_SIZE) % FILE_PAGE_SIZE;
  if (after > 0 && after < MIN_PAD) out[count++] = MIN_PAD;
  return count;
}

/** Bytes of an EPB with caplen captured bytes, epb_flags when `flags`, and a comment of commentLen bytes. */
export function epbBytes(caplen: number, flags: boolean, commentLen: number): number {
  const options = (flags ? 8 : 0) + (commentLen > 0 ? 4 + ((commentLen + 3) & ~3) : 0);
  return 32 + ((caplen + 3) & ~3) + (options > 0 ? options + 4 : 0);
}

/**
 * Copies ranges into `dst`: for each i < n, ops[3i] is an offset in dst, ops[3i+1] an offset
 * in src or -1 (zero the range), ops[3i+2] a length.
 */
export type CopyRanges = (dst: Uint8Array, src: Uint8Array, ops: Int32Array, n: number) => void;

/** Ranges noted before a flushCopies(). */
const MAX_OPS = 512;
const NO_SOURCE = Buffer.alloc(0);

/** Writes EPBs and padding blocks into one Buffer (see the header). */
export class EpbLayout {
  readonly buf: Buffer;
  private readonly w: Int32Array;
  private readonly ops: Int32Array | null;
  private nops = 0;
  private opsSrc: Buffer = NO_SOURCE;

  constructor(
    buf: Buffer,
    private readonly copyRanges: CopyRanges | null = null,
  ) {
    if (buf.byteOffset % 4 !== 0) throw new RangeError('EpbLayout: the buffer must start at a multiple of 4');
    this.buf = buf;
    this.w = new Int32Array(buf.buffer, buf.byteOffset, buf.length >> 2);
    this.ops = copyRanges === null ? null : new Int32Array(MAX_OPS * 3);
  }

  /** Copies the ranges noted so far (with a CopyRanges; nothing to do without). */
  flushCopies(): void {
    if (this.nops === 0) return;
    this.copyRanges!(this.buf, this.opsSrc, this.ops!, this.nops);
    this.nops = 0;
  }

  /** len bytes of src from start to dst: at once, or noted. */
  private copy(src: Buffer, start: number, dst: number, len: number): void {
    const ops = this.ops;
    if (ops === null) {
      src.copy(this.buf, dst, start, start + len);
      return;
    }
    if (src !== this.opsSrc) {
      this.flushCopies();
      this.opsSrc = src;
    }
    if (this.nops === MAX_OPS) this.flushCopies();
    const k = this.nops++ * 3;
    ops[k] = dst;
    ops[k + 1] = start;
    ops[k + 2] = len;
  }

  /** len zero bytes at dst (a multiple of 4): at once, or noted. */
  private zero(dst: number, len: number): void {
    const ops = this.ops;
    if (ops === null) {
      this.w.fill(0, dst >> 2, (dst + len) >> 2);
      return;
    }
    if (this.nops === MAX_OPS) this.flushCopies();
    const k = this.nops++ * 3;
    ops[k] = dst;
    ops[k + 1] = -1;
    ops[k + 2] = len;
  }

  private word(off: number, v: number): void {
    this.w[off >> 2] = LITTLE_ENDIAN ? v : swap32(v);
  }

  /**
   * Lays out one EPB at `off` (a multiple of 4): interface `ifId`, timestamp ticks hi/lo, the
   * first `caplen` bytes of src at `start`, `origLen` on the wire, epb_flags `flags` (0: none),
   * `comment` (UTF-8, or null). Returns the block's size.
   */
  epb(off: number, ifId: number, tsHi: number, tsLo: number, src: Buffer, start: number, caplen: number, origLen: number, flags: number, comment: Buffer | null): number {
    const body = (caplen + 3) & ~3;
    this.word(off, BlockType.EPB);
    this.word(off + 8, ifId);
    this.word(off + 12, tsHi);
    this.word(off + 16, tsLo);
    this.word(off + 20, caplen);
    this.word(off + 24, origLen);
    this.copy(src, start, off + 28, caplen);
    let at = off + 28 + caplen;
    // Zero the pad bytes of the last word (the frame's bytes end anywhere in it).
    while (at < off + 28 + body) this.buf[at++] = 0;
    if (comment !== null) {
      const clen = comment.length;
      this.word(at, OptionCode.COMMENT | (clen << 16));
      this.copy(comment, 0, at + 4, clen);
      at += 4 + clen;
      const end = off + 28 + body + 4 + ((clen + 3) & ~3);
      while (at < end) this.buf[at++] = 0;
    }
    if (flags !== 0) {
      this.word(at, OptionCode.EPB_FLAGS | (4 << 16));
      this.word(at + 4, flags);
      at += 8;
    }
    if (at !== off + 28 + body) {
      this.word(at, 0); // opt_endofopt
      at += 4;
    }
    const total = at + 4 - off;
    this.word(off + 4, total);
    this.word(at, total);
    return total;
  }

  /** Lays out a padding block of `size` bytes (a multiple of 4, at least MIN_PAD) at `off`. */
  pad(off: number, size: number): void {
    this.word(off, PAD_BLOCK_TYPE);
    this.word(off + 4, size);
    this.zero(off + 8, size - 12);
    this.word(off + size - 4, size);
  }
}
