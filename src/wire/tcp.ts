/**
 * TCP headers (RFC 9293; ECN bits RFC 3168; AE, formerly NS, RFC 3540/AccECN).
 *
 *      0                   1                   2                   3
 *      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |          Source Port          |       Destination Port        |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |                        Sequence Number                        |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |                    Acknowledgment Number                      |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |  Data |     |A|C|E|U|A|P|R|S|F|                               |
 *     | Offset| Rsv |E|W|C|R|C|S|S|Y|I|            Window             |
 *     |       |     | |R|E|G|K|H|T|N|N|                               |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |           Checksum            |         Urgent Pointer        |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |                    Options                    |    Padding    |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Field offsets: SRC_PORT 0, DST_PORT 2, SEQ 4, ACK 8, DATA_OFF 12 (high nibble; low bit AE),
 * FLAGS 13, WINDOW 14, CHECKSUM 16, URGENT 18, OPTIONS 20.
 *
 * `flags` is byte 13 (TcpFlag bits); `flagsString` writes one letter a set bit in bit order,
 * FIN first: F S R P A U E C (and N for AE, bit 8) — a SYN-ACK is "SA", a FIN-ACK "FA",
 * PSH-ACK "PA" (the order scapy uses; tcpdump uses the same order but writes ACK as ".").
 */

import { wr16, wr32 } from './bytes.ts';
import { internetChecksum, pseudoHeaderSum } from './checksum.ts';
import { WireView } from './view.ts';

export const TCP_MIN_HLEN = 20;
const SRC_PORT = 0;
const DST_PORT = 2;
const SEQ = 4;
const ACK = 8;
const DATA_OFF = 12;
const FLAGS = 13;
const WINDOW = 14;
const CHECKSUM = 16;
const URGENT = 18;

export const enum TcpFlag {
  FIN = 0x01,
  SYN = 0x02,
  RST = 0x04,
  PSH = 0x08,
  ACK = 0x10,
  URG = 0x20,
  ECE = 0x40,
  CWR = 0x80,
  /** AE (formerly NS): bit 0 of byte 12; only in `flags9`. */
  AE = 0x100,
}

const FLAG_LETTERS = 'FSRPAUECN';

/** Letters of the set bits of a 9-bit flags value, FIN first ("SA" for SYN-ACK, "" for none). */
export function flagsString(flags: number): string {
  let s = '';
  for (let i = 0; i < 9; i++) if (flags & (1 << i)) s += FLAG_LETTERS[i];
  return s;
}

/** Zero-copy view of a TCP segment, bound to the IP payload. */
export class TcpView extends WireView {
  /** null when the header and its options are present; otherwise why not. */
  checkLen(): string | null {
    if (this.len < TCP_MIN_HLEN) return 'truncated tcp header';
    const d = this.dataOffset;
    if (d < TCP_MIN_HLEN) return 'bad tcp data offset';
    if (d > this.len) return 'truncated tcp options';
    return null;
  }

  get srcPort(): number {
    return (this.buf[this.off + SRC_PORT] << 8) | this.buf[this.off + SRC_PORT + 1]; // hot
  }
  set srcPort(v: number) {
    this.setU16(SRC_PORT, v);
  }
  get dstPort(): number {
    return (this.buf[this.off + DST_PORT] << 8) | this.buf[this.off + DST_PORT + 1]; // hot
  }
  set dstPort(v: number) {
    this.setU16(DST_PORT, v);
  }
  get seq(): number {
    // hot
    const b = this.buf;
    const o = this.off + SEQ;
    return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
  }
  set seq(v: number) {
    this.setU32(SEQ, v);
  }
  get ack(): number {
    // hot
    const b = this.buf;
    const o = this.off + ACK;
    return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
  }
  set ack(v: number) {
    this.setU32(ACK, v);
  }
  /** Header length in bytes (data offset * 4). */
  get dataOffset(): number {
    return (this.buf[this.off + DATA_OFF] >>> 4) << 2;
  }
  set dataOffset(bytes: number) {
    this.buf[this.off + DATA_OFF] = (((bytes >>> 2) & 0xf) << 4) | (this.buf[this.off + DATA_OFF] & 0x0f);
  }
  /** Byte 13: CWR ECE URG ACK PSH RST SYN FIN. */
  get flags(): number {
    return this.buf[this.off + FLAGS];
  }
  set flags(v: number) {
    this.buf[this.off + FLAGS] = v;
  }
  /** `flags` plus AE as bit 8. */
  get flags9(): number {
    return ((this.buf[this.off + DATA_OFF] & 1) << 8) | this.buf[this.off + FLAGS];
  }
  get window(): number {
    return this.u16(WINDOW);
  }
  set window(v: number) {
    this.setU16(WINDOW, v);
  }
  get checksum(): number {
    return this.u16(CHECKSUM);
  }
  set checksum(v: number) {
    this.setU16(CHECKSUM, v);
  }
  get urgent(): number {
    return this.u16(URGENT);
  }
  set urgent(v: number) {
    this.setU16(URGENT, v);
  }
  get payloadOffset(): number {
    return this.off + this.dataOffset;
  }

  /** The checksum over `segmentLength` bytes (header + data) and the IPv4 pseudo header verifies. */
  checksumOk(src: number, dst: number, segmentLength: number): boolean {
    return internetChecksum(this.buf, this.off, segmentLength, pseudoHeaderSum(src, dst, 6, segmentLength)) === 0;
  }

  /** Computes and stores the checksum over `segmentLength` bytes. */
  fillChecksum(src: number, dst: number, segmentLength: number): void {
    this.checksum = 0;
    this.checksum = internetChecksum(this.buf, this.off, segmentLength, pseudoHeaderSum(src, dst, 6, segmentLength));
  }
}

/** Writes a 20-byte header without options, checksum zero; returns 20. */
export function writeTcpHeader(
  buf: Buffer, off: number, srcPort: number, dstPort: number, seq: number, ack: number, flags: number, window: number,
): number {
  wr16(buf, off + SRC_PORT, srcPort);
  wr16(buf, off + DST_PORT, dstPort);
  wr32(buf, off + SEQ, seq);
  wr32(buf, off + ACK, ack);
  buf[off + DATA_OFF] = (5 << 4) | ((flags >>> 8) & 1);
  buf[off + FLAGS] = flags;
  wr16(buf, off + WINDOW, window);
  wr16(buf, off + CHECKSUM, 0);
  wr16(buf, off + URGENT, 0);
  return TCP_MIN_HLEN;
}

/** High-level representation of a TCP header without options (tests, control code). */
export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  payloadLen: number;
}

export const TcpRepr = {
  parse(buf: Buffer, off: number, len: number, src: number, dst: number): TcpRepr | string {
    const v = new TcpView().bind(buf, off, len);
    const err = v.checkLen();
    if (err !== null) return err;
    if (!v.checksumOk(src, dst, len)) return 'bad tcp checksum';
    return {
      srcPort: v.srcPort, dstPort: v.dstPort, seq: v.seq, ack: v.ack, flags: v.flags9, window: v.window,
      payloadLen: len - v.dataOffset,
    };
  },
  /** Writes the header in front of `payloadLen` bytes already in place and fills the checksum. */
  emit(r: TcpRepr, buf: Buffer, off: number, src: number, dst: number): number {
    writeTcpHeader(buf, off, r.srcPort, r.dstPort, r.seq, r.ack, r.flags, r.window);
    new TcpView().bind(buf, off, TCP_MIN_HLEN + r.payloadLen).fillChecksum(src, dst, TCP_MIN_HLEN + r.payloadLen);
    return TCP_MIN_HLEN;
  },
};
