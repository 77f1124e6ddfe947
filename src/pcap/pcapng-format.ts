/**
 * pcapng (draft-ietf-opsawg-pcapng): block and option constants shared by the reader and
 * writer, and the option walker.
 *
 *   every block                       options (inside the block body)
 *   0  block type         u32         0  code   u16   (0 = opt_endofopt)
 *   4  block total length u32         2  length u16   (unpadded)
 *   8  body ...                       4  value, zero-padded to 32 bits
 *   L-4 block total length u32
 *
 * A Section Header Block's byte-order magic (0x1A2B3C4D) fixes the byte order of everything
 * up to the next SHB; the SHB block type 0x0A0D0D0A reads the same either way round.
 */
import { CaptureFormatError } from './errors.ts';

export const enum BlockType {
  SHB = 0x0a0d0d0a,
  IDB = 0x00000001,
  /** Obsolete Packet Block, still written by old tools; Wireshark reads it. */
  OPB = 0x00000002,
  SPB = 0x00000003,
  NRB = 0x00000004,
  ISB = 0x00000005,
  EPB = 0x00000006,
  DSB = 0x0000000a,
}

export const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
/** Minimum lengths: header + fixed fields + trailer. */
export const MIN_BLOCK_LEN = 12;
export const MIN_SHB_LEN = 28;
export const MIN_IDB_LEN = 20;
export const MIN_EPB_LEN = 32;
export const MIN_SPB_LEN = 16;
export const MIN_OPB_LEN = 32;
/** Wireshark's MAX_BLOCK_SIZE: anything larger is treated as corruption, not as data. */
export const MAX_BLOCK_LEN = 16 * 1024 * 1024;

export const enum OptionCode {
  END = 0,
  COMMENT = 1,
  /** shb_userappl */
  SHB_USERAPPL = 4,
  IF_NAME = 2,
  IF_DESCRIPTION = 3,
  IF_TSRESOL = 9,
  IF_FCSLEN = 13,
  IF_TSOFFSET = 14,
  /** epb_flags (pack_flags in the OPB) */
  EPB_FLAGS = 2,
}

/** Called once per option with its code and value position; return false to stop early. */
export type OptionVisitor = (code: number, valueStart: number, valueLen: number) => boolean | void;

/**
 * Walks the options in buf[start, end) until opt_endofopt or the end of the area.
 * An option whose length runs past the area is malformed (Wireshark rejects it too).
 */
export function walkOptions(
  buf: Buffer,
  start: number,
  end: number,
  le: boolean,
  visit: OptionVisitor,
  file: string,
  blockOffset: number,
): void {
  let p = start;
  while (p + 4 <= end) {
    const code = le ? buf.readUInt16LE(p) : buf.readUInt16BE(p);
    const len = le ? buf.readUInt16LE(p + 2) : buf.readUInt16BE(p + 2);
    if (code === OptionCode.END) return;
    if (p + 4 + len > end) {
      throw new CaptureFormatError(
        file,
        blockOffset,
        `option ${code} of length ${len} runs past the end of its block`,
      );
    }
    if (visit(code, p + 4, len) === false) return;
    p += 4 + ((len + 3) & ~3);
  }
}

/** An option string: UTF-8, with the trailing NULs some writers add removed. */
export function optionString(buf: Buffer, start: number, len: number): string {
  let end = start + len;
  while (end > start && buf[end - 1] === 0) end--;
  return buf.toString('utf8', start, end);
}

/** Bytes a value of `len` bytes takes once padded to 32 bits. */
export function pad4(len: number): number {
  return (len + 3) & ~3;
}
