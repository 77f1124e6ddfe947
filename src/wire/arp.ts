/**
 * ARP for IPv4 over Ethernet (RFC 826). Other hardware or protocol types are rejected.
 *
 *      0                   1                   2                   3
 *      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |      Hardware type (1)        |     Protocol type (0x0800)    |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |  HLEN (6)     |   PLEN (4)    |          Operation            |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |                Sender hardware address (6 octets)             |
 *     +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |                               |  Sender protocol address ...  |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |  ... (4 octets)               |                               |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
 *     |                Target hardware address (6 octets)             |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |                Target protocol address (4 octets)             |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Field offsets:  HTYPE 0, PTYPE 2, HLEN 4, PLEN 5, OPER 6, SHA 8, SPA 14, THA 18, TPA 24.
 */

import { formatIpv4 } from './ipv4-address.ts';
import { formatMac, readMac, writeMac } from './mac.ts';

export const ARP_LEN = 28;
/** Length of the fixed part before the addresses. */
export const ARP_FIXED_LEN = 8;

const HTYPE = 0;
const PTYPE = 2;
const HLEN = 4;
const PLEN = 5;
const OPER = 6;
const SHA = 8;
const SPA = 14;
const THA = 18;
const TPA = 24;

export const ARP_HTYPE_ETHERNET = 1;
export const ARP_PTYPE_IPV4 = 0x0800;

export const enum ArpOp {
  REQUEST = 1,
  REPLY = 2,
}

function rd32(b: Buffer, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
function wr32(b: Buffer, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

/** Zero-copy view of an Ethernet/IPv4 ARP packet. */
export class ArpView {
  buf: Buffer = Buffer.alloc(0);
  off = 0;
  len = 0;

  bind(buf: Buffer, off: number, len: number): this {
    this.buf = buf;
    this.off = off;
    this.len = len;
    return this;
  }

  /** null when this is a complete Ethernet/IPv4 ARP packet; otherwise why not. */
  checkLen(): string | null {
    if (this.len < ARP_FIXED_LEN) return 'truncated arp header';
    if (this.htype !== ARP_HTYPE_ETHERNET) return 'unsupported arp hardware type';
    if (this.ptype !== ARP_PTYPE_IPV4) return 'unsupported arp protocol type';
    if (this.hlen !== 6) return 'bad arp hardware address length';
    if (this.plen !== 4) return 'bad arp protocol address length';
    if (this.len < ARP_LEN) return 'truncated arp packet';
    return null;
  }

  get htype(): number {
    return (this.buf[this.off + HTYPE] << 8) | this.buf[this.off + HTYPE + 1];
  }
  get ptype(): number {
    return (this.buf[this.off + PTYPE] << 8) | this.buf[this.off + PTYPE + 1];
  }
  get hlen(): number {
    return this.buf[this.off + HLEN];
  }
  get plen(): number {
    return this.buf[this.off + PLEN];
  }
  get op(): number {
    return (this.buf[this.off + OPER] << 8) | this.buf[this.off + OPER + 1];
  }
  set op(v: number) {
    this.buf[this.off + OPER] = v >>> 8;
    this.buf[this.off + OPER + 1] = v;
  }
  get sha(): number {
    return readMac(this.buf, this.off + SHA);
  }
  set sha(mac: number) {
    writeMac(this.buf, this.off + SHA, mac);
  }
  get spa(): number {
    return rd32(this.buf, this.off + SPA);
  }
  set spa(a: number) {
    wr32(this.buf, this.off + SPA, a);
  }
  get tha(): number {
    return readMac(this.buf, this.off + THA);
  }
  set tha(mac: number) {
    writeMac(this.buf, this.off + THA, mac);
  }
  get tpa(): number {
    return rd32(this.buf, this.off + TPA);
  }
  set tpa(a: number) {
    wr32(this.buf, this.off + TPA, a);
  }
}

/** Writes a complete Ethernet/IPv4 ARP packet; returns 28. */
export function writeArp(buf: Buffer, off: number, op: number, sha: number, spa: number, tha: number, tpa: number): number {
  buf[off + HTYPE] = 0;
  buf[off + HTYPE + 1] = ARP_HTYPE_ETHERNET;
  buf[off + PTYPE] = ARP_PTYPE_IPV4 >>> 8;
  buf[off + PTYPE + 1] = ARP_PTYPE_IPV4 & 0xff;
  buf[off + HLEN] = 6;
  buf[off + PLEN] = 4;
  buf[off + OPER] = op >>> 8;
  buf[off + OPER + 1] = op;
  writeMac(buf, off + SHA, sha);
  wr32(buf, off + SPA, spa);
  writeMac(buf, off + THA, tha);
  wr32(buf, off + TPA, tpa);
  return ARP_LEN;
}

/** High-level representation of an Ethernet/IPv4 ARP packet (tests, control code). */
export interface ArpRepr {
  op: number;
  sha: number;
  spa: number;
  tha: number;
  tpa: number;
}

export const ArpRepr = {
  parse(buf: Buffer, off: number, len: number): ArpRepr | string {
    const v = new ArpView().bind(buf, off, len);
    const err = v.checkLen();
    if (err !== null) return err;
    return { op: v.op, sha: v.sha, spa: v.spa, tha: v.tha, tpa: v.tpa };
  },
  bufferLen(): number {
    return ARP_LEN;
  },
  emit(r: ArpRepr, buf: Buffer, off: number): number {
    return writeArp(buf, off, r.op, r.sha, r.spa, r.tha, r.tpa);
  },
  format(r: ArpRepr): string {
    if (r.op === ArpOp.REQUEST) return `Request who-has ${formatIpv4(r.tpa)} tell ${formatIpv4(r.spa)}`;
    if (r.op === ArpOp.REPLY) return `Reply ${formatIpv4(r.spa)} is-at ${formatMac(r.sha)}`;
    return `op ${r.op}`;
  },
};
