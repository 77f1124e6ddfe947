/**
 * UDP (RFC 768).
 *
 *      0                   1                   2                   3
 *      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |          Source Port          |       Destination Port        |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |            Length             |           Checksum            |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |  data ...
 *     +-+-+-+-+-+-+-+-+
 *
 * Field offsets: SRC_PORT 0, DST_PORT 2, LENGTH 4, CHECKSUM 6.
 * The view is bound to the IP payload; `length` (header + data) must fit in it. The checksum
 * covers the IPv4 pseudo header and `length` bytes; 0 means "no checksum" and a computed
 * 0 is sent as 0xffff.
 */

import { wr16 } from './bytes.ts';
import { internetChecksum, pseudoHeaderSum } from './checksum.ts';
import { WireView } from './view.ts';

export const UDP_HLEN = 8;
const SRC_PORT = 0;
const DST_PORT = 2;
const LENGTH = 4;
const CHECKSUM = 6;

export class UdpView extends WireView {
  /** null when the header is present and `length` is between 8 and the bytes present. */
  checkLen(): string | null {
    if (this.len < UDP_HLEN) return 'truncated udp header';
    const l = this.length;
    if (l < UDP_HLEN || l > this.len) return 'bad udp length';
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
  get length(): number {
    return (this.buf[this.off + LENGTH] << 8) | this.buf[this.off + LENGTH + 1]; // hot
  }
  set length(v: number) {
    this.setU16(LENGTH, v);
  }
  get checksum(): number {
    return (this.buf[this.off + CHECKSUM] << 8) | this.buf[this.off + CHECKSUM + 1]; // hot
  }
  set checksum(v: number) {
    this.setU16(CHECKSUM, v);
  }
  get payloadOffset(): number {
    return this.off + UDP_HLEN;
  }
  get payloadLength(): number {
    return this.length - UDP_HLEN;
  }

  /** The checksum verifies against the IPv4 pseudo header; a zero checksum (none) is ok. */
  checksumOk(src: number, dst: number): boolean {
    if (this.checksum === 0) return true;
    const l = this.length;
    return internetChecksum(this.buf, this.off, l, pseudoHeaderSum(src, dst, 17, l)) === 0;
  }

  /** Computes and stores the checksum over `length` bytes (0 is sent as 0xffff). */
  fillChecksum(src: number, dst: number): void {
    this.checksum = 0;
    const l = this.length;
    const c = internetChecksum(this.buf, this.off, l, pseudoHeaderSum(src, dst, 17, l));
    this.checksum = c === 0 ? 0xffff : c;
  }
}

/** Writes the 8-byte header (`length` = header + data); returns 8. */
export function writeUdpHeader(buf: Buffer, off: number, srcPort: number, dstPort: number, length: number, checksum = 0): number {
  wr16(buf, off + SRC_PORT, srcPort);
  wr16(buf, off + DST_PORT, dstPort);
  wr16(buf, off + LENGTH, length);
  wr16(buf, off + CHECKSUM, checksum);
  return UDP_HLEN;
}

/** High-level representation of a UDP header (tests, control code). */
export interface UdpRepr {
  srcPort: number;
  dstPort: number;
  payloadLen: number;
}

export const UdpRepr = {
  parse(buf: Buffer, off: number, len: number, src: number, dst: number): UdpRepr | string {
    const v = new UdpView().bind(buf, off, len);
    const err = v.checkLen();
    if (err !== null) return err;
    if (!v.checksumOk(src, dst)) return 'bad udp checksum';
    return { srcPort: v.srcPort, dstPort: v.dstPort, payloadLen: v.payloadLength };
  },
  /** Writes the header in front of `payloadLen` bytes already in place and fills the checksum. */
  emit(r: UdpRepr, buf: Buffer, off: number, src: number, dst: number): number {
    writeUdpHeader(buf, off, r.srcPort, r.dstPort, UDP_HLEN + r.payloadLen);
    new UdpView().bind(buf, off, UDP_HLEN + r.payloadLen).fillChecksum(src, dst);
    return UDP_HLEN;
  },
};
