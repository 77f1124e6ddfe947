/**
 * IPv4 headers (RFC 791), options preserved.
 *
 *      0                   1                   2                   3
 *      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |Version|  IHL  |   DSCP    |ECN|          Total Length         |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |         Identification        |0|D|M|      Fragment Offset    |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |  Time to Live |    Protocol   |         Header Checksum       |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |                       Source Address                          |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |                    Destination Address                        |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |                    Options (IHL > 5)          |    Padding    |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Field offsets:
 *
 *     VER_IHL 0, TOS 1, TOTAL_LEN 2, IDENT 4, FLAGS_FRAG 6, TTL 8, PROTO 9, CHECKSUM 10,
 *     SRC 12, DST 16, OPTIONS 20.
 *
 * `ihl` and `headerLength` are in bytes; `fragOffset` is in bytes, `fragOffsetUnits` in the
 * 8-byte units of the wire. `checkLen()` validates version, IHL and total length against the
 * bytes the view was bound to; after it passes no accessor can read out of bounds. A frame
 * may carry Ethernet padding after the packet: `totalLength` may be less than `len`.
 */

import { rd16, wr16, wr32 } from './bytes.ts';
import { internetChecksum, updateChecksum16 } from './checksum.ts';
import { formatIpv4 } from './ipv4-address.ts';
import { WireView } from './view.ts';

export const IPV4_MIN_HLEN = 20;
export const IPV4_MAX_HLEN = 60;

export const IPV4_VER_IHL = 0;
export const IPV4_TOS = 1;
export const IPV4_TOTAL_LEN = 2;
export const IPV4_IDENT = 4;
export const IPV4_FLAGS_FRAG = 6;
export const IPV4_TTL = 8;
export const IPV4_PROTO = 9;
export const IPV4_CHECKSUM = 10;
export const IPV4_SRC = 12;
export const IPV4_DST = 16;

/** Bits of the 16-bit flags/fragment-offset word. */
export const IPV4_FLAG_DF = 0x4000;
export const IPV4_FLAG_MF = 0x2000;
export const IPV4_FRAG_MASK = 0x1fff;

export const enum IpProto {
  ICMP = 1,
  TCP = 6,
  UDP = 17,
}

/** Zero-copy view of an IPv4 header. Rebind it per packet. */
export class Ipv4View extends WireView {
  /**
   * null when the header is complete and consistent with the bytes present; otherwise one
   * of "truncated ipv4 header", "bad ipv4 version", "bad ipv4 header length",
   * "bad ipv4 total length".
   */
  checkLen(): string | null {
    if (this.len < IPV4_MIN_HLEN) return 'truncated ipv4 header';
    if (this.version !== 4) return 'bad ipv4 version';
    const hl = this.ihl;
    if (hl < IPV4_MIN_HLEN) return 'bad ipv4 header length';
    const tl = this.totalLength;
    if (tl < hl) return 'bad ipv4 total length';
    if (hl > this.len) return 'truncated ipv4 header';
    if (tl > this.len) return 'bad ipv4 total length';
    return null;
  }

  get version(): number {
    return this.buf[this.off] >>> 4;
  }
  set version(v: number) {
    this.buf[this.off] = ((v & 0xf) << 4) | (this.buf[this.off] & 0x0f);
  }
  /** Header length in bytes (IHL * 4). */
  get ihl(): number {
    return (this.buf[this.off] & 0x0f) << 2;
  }
  /** Sets the header length in bytes (a multiple of 4). */
  set ihl(bytes: number) {
    this.buf[this.off] = (this.buf[this.off] & 0xf0) | ((bytes >>> 2) & 0x0f);
  }
  get headerLength(): number {
    return (this.buf[this.off] & 0x0f) << 2;
  }
  get tos(): number {
    return this.buf[this.off + IPV4_TOS];
  }
  set tos(v: number) {
    this.buf[this.off + IPV4_TOS] = v;
  }
  get dscp(): number {
    return this.buf[this.off + IPV4_TOS] >>> 2;
  }
  set dscp(v: number) {
    this.buf[this.off + IPV4_TOS] = ((v & 0x3f) << 2) | (this.buf[this.off + IPV4_TOS] & 3);
  }
  get ecn(): number {
    return this.buf[this.off + IPV4_TOS] & 3;
  }
  set ecn(v: number) {
    this.buf[this.off + IPV4_TOS] = (this.buf[this.off + IPV4_TOS] & 0xfc) | (v & 3);
  }
  get totalLength(): number {
    return (this.buf[this.off + IPV4_TOTAL_LEN] << 8) | this.buf[this.off + IPV4_TOTAL_LEN + 1]; // hot
  }
  set totalLength(v: number) {
    this.setU16(IPV4_TOTAL_LEN, v);
  }
  get ident(): number {
    return (this.buf[this.off + IPV4_IDENT] << 8) | this.buf[this.off + IPV4_IDENT + 1]; // hot
  }
  set ident(v: number) {
    this.setU16(IPV4_IDENT, v);
  }
  /** The raw flags/fragment-offset word. */
  get flagsAndFrag(): number {
    return this.u16(IPV4_FLAGS_FRAG);
  }
  set flagsAndFrag(v: number) {
    this.setU16(IPV4_FLAGS_FRAG, v);
  }
  get df(): boolean {
    return (this.buf[this.off + IPV4_FLAGS_FRAG] & 0x40) !== 0;
  }
  set df(on: boolean) {
    const o = this.off + IPV4_FLAGS_FRAG;
    this.buf[o] = on ? this.buf[o] | 0x40 : this.buf[o] & ~0x40;
  }
  get mf(): boolean {
    return (this.buf[this.off + IPV4_FLAGS_FRAG] & 0x20) !== 0;
  }
  set mf(on: boolean) {
    const o = this.off + IPV4_FLAGS_FRAG;
    this.buf[o] = on ? this.buf[o] | 0x20 : this.buf[o] & ~0x20;
  }
  /** Fragment offset in 8-byte units, as on the wire. */
  get fragOffsetUnits(): number {
    return this.u16(IPV4_FLAGS_FRAG) & IPV4_FRAG_MASK;
  }
  set fragOffsetUnits(units: number) {
    const w = this.u16(IPV4_FLAGS_FRAG);
    this.setU16(IPV4_FLAGS_FRAG, (w & ~IPV4_FRAG_MASK) | (units & IPV4_FRAG_MASK));
  }
  /** Fragment offset in bytes. */
  get fragOffset(): number {
    // hot
    const o = this.off + IPV4_FLAGS_FRAG;
    return (((this.buf[o] << 8) | this.buf[o + 1]) & IPV4_FRAG_MASK) << 3;
  }
  set fragOffset(bytes: number) {
    this.fragOffsetUnits = bytes >>> 3;
  }
  /** A fragment of a larger datagram (MF set or offset non-zero). */
  get isFragment(): boolean {
    // hot
    const o = this.off + IPV4_FLAGS_FRAG;
    return (((this.buf[o] << 8) | this.buf[o + 1]) & (IPV4_FLAG_MF | IPV4_FRAG_MASK)) !== 0;
  }
  get ttl(): number {
    return this.buf[this.off + IPV4_TTL];
  }
  set ttl(v: number) {
    this.buf[this.off + IPV4_TTL] = v;
  }
  get protocol(): number {
    return this.buf[this.off + IPV4_PROTO];
  }
  set protocol(v: number) {
    this.buf[this.off + IPV4_PROTO] = v;
  }
  get checksum(): number {
    return this.u16(IPV4_CHECKSUM);
  }
  set checksum(v: number) {
    this.setU16(IPV4_CHECKSUM, v);
  }
  get src(): number {
    // hot
    const b = this.buf;
    const o = this.off + IPV4_SRC;
    return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
  }
  set src(a: number) {
    this.setU32(IPV4_SRC, a);
  }
  get dst(): number {
    // hot
    const b = this.buf;
    const o = this.off + IPV4_DST;
    return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
  }
  set dst(a: number) {
    this.setU32(IPV4_DST, a);
  }
  /** Absolute offset of the payload in `buf`. */
  get payloadOffset(): number {
    return this.off + this.ihl;
  }
  /** totalLength minus the header length. */
  get payloadLength(): number {
    return this.totalLength - this.ihl;
  }

  /** The header checksum verifies (options included). */
  checksumOk(): boolean {
    return internetChecksum(this.buf, this.off, this.ihl) === 0;
  }

  /** Computes and stores the header checksum. */
  fillChecksum(): void {
    this.setU16(IPV4_CHECKSUM, 0);
    this.setU16(IPV4_CHECKSUM, internetChecksum(this.buf, this.off, this.ihl));
  }

  /** TTL minus one, checksum updated incrementally (RFC 1624). The caller checks ttl > 1 first. */
  decrementTtl(): void {
    const o = this.off + IPV4_TTL;
    const oldWord = rd16(this.buf, o);
    this.buf[o] = this.buf[o] - 1;
    const newWord = rd16(this.buf, o);
    this.setU16(IPV4_CHECKSUM, updateChecksum16(this.checksum, oldWord, newWord));
  }
}

/** TTL minus one in the header at `off`, checksum updated incrementally (RFC 1624). The caller checks ttl > 1 first. */
export function decrementIpv4Ttl(buf: Buffer, off: number): void {
  const o = off + IPV4_TTL;
  const oldWord = rd16(buf, o);
  buf[o] = (oldWord >>> 8) - 1;
  const c = updateChecksum16(rd16(buf, off + IPV4_CHECKSUM), oldWord, oldWord - 0x100);
  wr16(buf, off + IPV4_CHECKSUM, c);
}

/**
 * Writes the fixed 20 bytes of a header and fills its checksum. `flagsAndFrag` is the raw
 * word (IPV4_FLAG_DF | IPV4_FLAG_MF | offset in 8-byte units). With `hlen` > 20 the header
 * keeps the option bytes already at `off + 20 .. off + hlen` (a reply built in place over
 * the request's header, say): IHL says `hlen` and the checksum covers them. Returns `hlen`.
 */
export function writeIpv4(
  buf: Buffer, off: number, tos: number, totalLen: number, ident: number, flagsAndFrag: number,
  ttl: number, proto: number, src: number, dst: number, hlen = IPV4_MIN_HLEN,
): number {
  buf[off] = 0x40 | (hlen >>> 2);
  buf[off + IPV4_TOS] = tos;
  wr16(buf, off + IPV4_TOTAL_LEN, totalLen);
  wr16(buf, off + IPV4_IDENT, ident);
  wr16(buf, off + IPV4_FLAGS_FRAG, flagsAndFrag);
  buf[off + IPV4_TTL] = ttl;
  buf[off + IPV4_PROTO] = proto;
  wr16(buf, off + IPV4_CHECKSUM, 0);
  wr32(buf, off + IPV4_SRC, src);
  wr32(buf, off + IPV4_DST, dst);
  wr16(buf, off + IPV4_CHECKSUM, internetChecksum(buf, off, hlen));
  return hlen;
}

/** Fields for `writeIpv4Header` (control path). */
export interface Ipv4HeaderFields {
  tos?: number;
  /** Header plus payload, in bytes. */
  totalLength: number;
  ident?: number;
  df?: boolean;
  mf?: boolean;
  /** In bytes (a multiple of 8). */
  fragOffset?: number;
  ttl?: number;
  protocol: number;
  src: number;
  dst: number;
  /** Raw option bytes, padded by the caller to a multiple of 4 (at most 40). */
  options?: Uint8Array;
}

/** Writes a header (options included) and fills its checksum; returns the header length. */
export function writeIpv4Header(buf: Buffer, off: number, f: Ipv4HeaderFields): number {
  const optLen = f.options ? f.options.length : 0;
  if (optLen % 4 !== 0 || optLen > 40) throw new Error('ipv4 options must be a multiple of 4 bytes, at most 40');
  const hl = IPV4_MIN_HLEN + optLen;
  const ff = (f.df ? IPV4_FLAG_DF : 0) | (f.mf ? IPV4_FLAG_MF : 0) | (((f.fragOffset ?? 0) >>> 3) & IPV4_FRAG_MASK);
  if (optLen > 0) buf.set(f.options!, off + IPV4_MIN_HLEN);
  return writeIpv4(buf, off, f.tos ?? 0, f.totalLength, f.ident ?? 0, ff, f.ttl ?? 64, f.protocol, f.src, f.dst, hl);
}

/** High-level representation of an IPv4 header (tests, control code). */
export interface Ipv4Repr {
  src: number;
  dst: number;
  protocol: number;
  ttl: number;
  tos: number;
  ident: number;
  df: boolean;
  mf: boolean;
  /** Bytes. */
  fragOffset: number;
  payloadLen: number;
}

export const Ipv4Repr = {
  /** Parses and verifies the header checksum; returns a reason string on failure. */
  parse(buf: Buffer, off: number, len: number): Ipv4Repr | string {
    const v = new Ipv4View().bind(buf, off, len);
    const err = v.checkLen();
    if (err !== null) return err;
    if (!v.checksumOk()) return 'bad ipv4 checksum';
    return {
      src: v.src, dst: v.dst, protocol: v.protocol, ttl: v.ttl, tos: v.tos, ident: v.ident,
      df: v.df, mf: v.mf, fragOffset: v.fragOffset, payloadLen: v.payloadLength,
    };
  },
  bufferLen(): number {
    return IPV4_MIN_HLEN;
  },
  emit(r: Ipv4Repr, buf: Buffer, off: number): number {
    return writeIpv4Header(buf, off, {
      tos: r.tos, totalLength: IPV4_MIN_HLEN + r.payloadLen, ident: r.ident, df: r.df, mf: r.mf,
      fragOffset: r.fragOffset, ttl: r.ttl, protocol: r.protocol, src: r.src, dst: r.dst,
    });
  },
  format(r: Ipv4Repr): string {
    return `IP ${formatIpv4(r.src)} > ${formatIpv4(r.dst)} proto ${r.protocol} ttl ${r.ttl} len ${IPV4_MIN_HLEN + r.payloadLen}`;
  },
};
