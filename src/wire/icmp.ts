/**
 * ICMP for IPv4 (RFC 792; errors per RFC 1812 §4.3.2.3; "fragmentation needed" MTU per RFC 1191).
 *
 *      0                   1                   2                   3
 *      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |     Type      |     Code      |          Checksum             |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |           Identifier          |        Sequence Number        |  echo
 *     |            unused             |         Next-Hop MTU          |  dest unreach, code 4
 *     |                            unused                             |  other errors
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |  Data: echo payload, or the quoted IP header + first bytes ...
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Field offsets: TYPE 0, CODE 1, CHECKSUM 2, IDENT 4, SEQ 6, NEXT_HOP_MTU 6, DATA 8; a
 * timestamp message (types 13, 14) has ORIGINATE 8, RECEIVE 12, TRANSMIT 16.
 * The checksum covers the whole ICMP message (the view's `len`, i.e. the IP payload).
 */

import { wr16, wr32 } from './bytes.ts';
import { internetChecksum, updateChecksum16 } from './checksum.ts';
import { WireView } from './view.ts';

export const ICMP_HLEN = 8;
/** A timestamp request or reply: the header and three 32-bit timestamps. */
export const ICMP_TIMESTAMP_LEN = 20;
/** RFC 1812: an ICMP error should not make the datagram exceed 576 bytes. */
export const ICMP_ERROR_MAX_DATAGRAM = 576;

const TYPE = 0;
const CODE = 1;
const CHECKSUM = 2;
const IDENT = 4;
const SEQ = 6;
const MTU = 6;
const ORIGINATE = 8;
const RECEIVE = 12;
const TRANSMIT = 16;

export const enum IcmpType {
  ECHO_REPLY = 0,
  DEST_UNREACH = 3,
  SOURCE_QUENCH = 4,
  REDIRECT = 5,
  ECHO_REQUEST = 8,
  TIME_EXCEEDED = 11,
  PARAM_PROBLEM = 12,
  TIMESTAMP = 13,
  TIMESTAMP_REPLY = 14,
}

/** Codes of DEST_UNREACH. */
export const enum IcmpUnreachCode {
  NET_UNREACH = 0,
  HOST_UNREACH = 1,
  PROTO_UNREACH = 2,
  PORT_UNREACH = 3,
  FRAG_NEEDED = 4,
  ADMIN_PROHIBITED = 13,
}

/** Codes of TIME_EXCEEDED. */
export const enum IcmpTimeExceededCode {
  TTL_EXCEEDED = 0,
  FRAG_REASSEMBLY = 1,
}

/** Types that carry an original datagram after the 8-byte header. */
export function isIcmpError(type: number): boolean {
  return type === 3 || type === 4 || type === 5 || type === 11 || type === 12;
}

/** Types whose bytes 4-7 are identifier and sequence number (echo, timestamp, info, mask). */
export function icmpHasIdSeq(type: number): boolean {
  return type === 0 || type === 8 || (type >= 13 && type <= 18);
}

/** Zero-copy view of an ICMP message. */
export class IcmpView extends WireView {
  checkLen(): string | null {
    return this.len < ICMP_HLEN ? 'truncated icmp header' : null;
  }

  get type(): number {
    return this.buf[this.off + TYPE];
  }
  set type(v: number) {
    this.buf[this.off + TYPE] = v;
  }
  get code(): number {
    return this.buf[this.off + CODE];
  }
  set code(v: number) {
    this.buf[this.off + CODE] = v;
  }
  get checksum(): number {
    return this.u16(CHECKSUM);
  }
  set checksum(v: number) {
    this.setU16(CHECKSUM, v);
  }
  get ident(): number {
    return this.u16(IDENT);
  }
  set ident(v: number) {
    this.setU16(IDENT, v);
  }
  get seq(): number {
    return this.u16(SEQ);
  }
  set seq(v: number) {
    this.setU16(SEQ, v);
  }
  get nextHopMtu(): number {
    return this.u16(MTU);
  }
  set nextHopMtu(v: number) {
    this.setU16(MTU, v);
  }
  get dataOffset(): number {
    return this.off + ICMP_HLEN;
  }
  /** Timestamps of a timestamp message (types 13, 14; len >= ICMP_TIMESTAMP_LEN). */
  get originate(): number {
    return this.u32(ORIGINATE);
  }
  get receive(): number {
    return this.u32(RECEIVE);
  }
  get transmit(): number {
    return this.u32(TRANSMIT);
  }

  /** The checksum over the `len` bytes of the message verifies. */
  checksumOk(): boolean {
    return internetChecksum(this.buf, this.off, this.len) === 0;
  }

  /** Computes and stores the checksum over `len` bytes (default: the bound length). */
  fillChecksum(len = this.len): void {
    this.checksum = 0;
    this.checksum = internetChecksum(this.buf, this.off, len);
  }

  /** Echo request -> echo reply in place, checksum updated incrementally. */
  makeEchoReply(): void {
    const oldWord = (this.type << 8) | this.code;
    this.type = IcmpType.ECHO_REPLY;
    this.checksum = updateChecksum16(this.checksum, oldWord, (IcmpType.ECHO_REPLY << 8) | this.code);
  }
}

/**
 * Writes an ICMP error: the 8-byte header (bytes 4-5 zero, 6-7 `mtuOrZero`) followed by
 * `quoted[quotedOff .. quotedOff+quotedLen)` (the original IP header and the start of its
 * payload; the caller chooses how much), and fills the checksum. Returns 8 + quotedLen.
 * `quoted` may be the same buffer as `buf` if the ranges do not overlap.
 */
export function writeIcmpError(
  buf: Buffer, off: number, type: number, code: number, mtuOrZero: number,
  quoted: Buffer, quotedOff: number, quotedLen: number,
): number {
  quoted.copy(buf, off + ICMP_HLEN, quotedOff, quotedOff + quotedLen);
  buf[off + TYPE] = type;
  buf[off + CODE] = code;
  wr16(buf, off + CHECKSUM, 0);
  wr16(buf, off + 4, 0);
  wr16(buf, off + MTU, mtuOrZero);
  const total = ICMP_HLEN + quotedLen;
  wr16(buf, off + CHECKSUM, internetChecksum(buf, off, total));
  return total;
}

/**
 * Writes an echo header in front of `dataLen` bytes already in place at `off + 8` and fills
 * the checksum over both. `code` is 0 but for a reply that keeps its request's code, as
 * Linux's icmp_echo does. Returns 8 + dataLen.
 */
export function writeIcmpEcho(buf: Buffer, off: number, type: number, ident: number, seq: number, dataLen: number, code = 0): number {
  buf[off + TYPE] = type;
  buf[off + CODE] = code;
  wr16(buf, off + CHECKSUM, 0);
  wr16(buf, off + IDENT, ident);
  wr16(buf, off + SEQ, seq);
  const total = ICMP_HLEN + dataLen;
  wr16(buf, off + CHECKSUM, internetChecksum(buf, off, total));
  return total;
}

/**
 * Writes a timestamp request or reply (RFC 792: type 13/14, identifier, sequence number,
 * then originate, receive and transmit timestamps, milliseconds since midnight UTC) and
 * fills the checksum. Returns ICMP_TIMESTAMP_LEN.
 */
export function writeIcmpTimestamp(
  buf: Buffer, off: number, type: number, code: number, ident: number, seq: number,
  originate: number, receive: number, transmit: number,
): number {
  buf[off + TYPE] = type;
  buf[off + CODE] = code;
  wr16(buf, off + CHECKSUM, 0);
  wr16(buf, off + IDENT, ident);
  wr16(buf, off + SEQ, seq);
  wr32(buf, off + ORIGINATE, originate);
  wr32(buf, off + RECEIVE, receive);
  wr32(buf, off + TRANSMIT, transmit);
  wr16(buf, off + CHECKSUM, internetChecksum(buf, off, ICMP_TIMESTAMP_LEN));
  return ICMP_TIMESTAMP_LEN;
}

/** High-level representation of an ICMP echo or error header (tests, control code). */
export interface IcmpRepr {
  type: number;
  code: number;
  /** Echo identifier (echo types only). */
  ident?: number;
  seq?: number;
  /** Next-hop MTU (dest unreach / frag needed only). */
  mtu?: number;
  data: Buffer;
}

export const IcmpRepr = {
  parse(buf: Buffer, off: number, len: number): IcmpRepr | string {
    const v = new IcmpView().bind(buf, off, len);
    const err = v.checkLen();
    if (err !== null) return err;
    if (!v.checksumOk()) return 'bad icmp checksum';
    const r: IcmpRepr = { type: v.type, code: v.code, data: Buffer.from(buf.subarray(off + ICMP_HLEN, off + len)) };
    if (icmpHasIdSeq(v.type)) {
      r.ident = v.ident;
      r.seq = v.seq;
    }
    if (v.type === IcmpType.DEST_UNREACH && v.code === IcmpUnreachCode.FRAG_NEEDED) r.mtu = v.nextHopMtu;
    return r;
  },
  bufferLen(r: IcmpRepr): number {
    return ICMP_HLEN + r.data.length;
  },
  emit(r: IcmpRepr, buf: Buffer, off: number): number {
    if (icmpHasIdSeq(r.type)) {
      r.data.copy(buf, off + ICMP_HLEN);
      const n = writeIcmpEcho(buf, off, r.type, r.ident ?? 0, r.seq ?? 0, r.data.length);
      if (r.code !== 0) {
        const v = new IcmpView().bind(buf, off, n);
        v.code = r.code;
        v.fillChecksum();
      }
      return n;
    }
    return writeIcmpError(buf, off, r.type, r.code, r.mtu ?? 0, r.data, 0, r.data.length);
  },
};
