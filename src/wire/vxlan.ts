/**
 * VXLAN (RFC 7348): an Ethernet frame inside UDP.
 *
 *      0                   1                   2                   3
 *      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |R|R|R|R|I|R|R|R|            Reserved                           |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |                VXLAN Network Identifier (VNI) |   Reserved    |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |  inner Ethernet frame ...
 *
 * Field offsets: FLAGS 0 (I flag 0x08), VNI 4 (24 bits), inner frame at 8.
 * UDP destination port 4789 (IANA) or 8472 (Linux's and flannel's default).
 */

import { writeUdpHeader } from './udp.ts';
import { WireView } from './view.ts';

export const VXLAN_HLEN = 8;
export const VXLAN_PORT_IANA = 4789;
export const VXLAN_PORT_LINUX = 8472;
export const VXLAN_FLAG_I = 0x08;

const FLAGS = 0;
const VNI = 4;

export class VxlanView extends WireView {
  /** null when the header is present and the I flag (valid VNI) is set. */
  checkLen(): string | null {
    if (this.len < VXLAN_HLEN) return 'truncated vxlan header';
    if (!this.iFlag) return 'vxlan I flag not set';
    return null;
  }

  get flags(): number {
    return this.buf[this.off + FLAGS];
  }
  set flags(v: number) {
    this.buf[this.off + FLAGS] = v;
  }
  get iFlag(): boolean {
    return (this.buf[this.off + FLAGS] & VXLAN_FLAG_I) !== 0;
  }
  get vni(): number {
    const o = this.off + VNI;
    return (this.buf[o] << 16) | (this.buf[o + 1] << 8) | this.buf[o + 2];
  }
  set vni(v: number) {
    const o = this.off + VNI;
    this.buf[o] = v >>> 16;
    this.buf[o + 1] = v >>> 8;
    this.buf[o + 2] = v;
  }
  get payloadOffset(): number {
    return this.off + VXLAN_HLEN;
  }
}

/** True for the UDP destination ports decoded as VXLAN. */
export function isVxlanPort(port: number): boolean {
  return port === VXLAN_PORT_IANA || port === VXLAN_PORT_LINUX;
}

/** Writes the 8-byte header with the I flag and `vni`; returns 8. */
export function writeVxlanHeader(buf: Buffer, off: number, vni: number): number {
  buf[off] = VXLAN_FLAG_I;
  buf[off + 1] = 0;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  buf[off + 4] = vni >>> 16;
  buf[off + 5] = vni >>> 8;
  buf[off + 6] = vni;
  buf[off + 7] = 0;
  return VXLAN_HLEN;
}

export interface VxlanRepr {
  vni: number;
}

export const VxlanRepr = {
  parse(buf: Buffer, off: number, len: number): VxlanRepr | string {
    const v = new VxlanView().bind(buf, off, len);
    const err = v.checkLen();
    return err ?? { vni: v.vni };
  },
  emit(r: VxlanRepr, buf: Buffer, off: number): number {
    return writeVxlanHeader(buf, off, r.vni);
  },
};

/**
 * The outer IPv4 (20 bytes, no options, DF clear), UDP and VXLAN headers of an encapsulated
 * frame, at `ip`: `total` the IPv4 total length, UDP length `total - 20`, UDP checksum zero,
 * the I flag and `vni`. The IPv4 header checksum is summed from the fields, not read back.
 */
export function writeVxlanOuterHeaders(
  buf: Buffer, ip: number, tos: number, total: number, ident: number, ttl: number, src: number, dst: number, sport: number, dport: number, vni: number,
): void {
  buf[ip] = 0x45;
  buf[ip + 1] = tos;
  buf[ip + 2] = total >>> 8;
  buf[ip + 3] = total;
  buf[ip + 4] = ident >>> 8;
  buf[ip + 5] = ident;
  buf[ip + 6] = 0;
  buf[ip + 7] = 0;
  buf[ip + 8] = ttl;
  buf[ip + 9] = 17;
  buf[ip + 12] = src >>> 24;
  buf[ip + 13] = src >>> 16;
  buf[ip + 14] = src >>> 8;
  buf[ip + 15] = src;
  buf[ip + 16] = dst >>> 24;
  buf[ip + 17] = dst >>> 16;
  buf[ip + 18] = dst >>> 8;
  buf[ip + 19] = dst;
  let sum = (0x4500 | tos) + total + ident + ((ttl << 8) | 17) + (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff);
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = ~((sum & 0xffff) + (sum >>> 16));
  buf[ip + 10] = sum >>> 8;
  buf[ip + 11] = sum;
  const udp = ip + 20;
  writeUdpHeader(buf, udp, sport, dport, total - 20);
  writeVxlanHeader(buf, udp + 8, vni);
}
