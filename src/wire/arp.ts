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

import { wr16, wr32, writeMacHiLo } from './bytes.ts';
import { formatIpv4 } from './ipv4-address.ts';
import { formatMac, macHi, macLo, readMac, writeMac } from './mac.ts';
import { WireView } from './view.ts';

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

/** Zero-copy view of an Ethernet/IPv4 ARP packet. */
export class ArpView extends WireView {
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
    return this.u16(HTYPE);
  }
  get ptype(): number {
    return this.u16(PTYPE);
  }
  get hlen(): number {
    return this.buf[this.off + HLEN];
  }
  get plen(): number {
    return this.buf[this.off + PLEN];
  }
  get op(): number {
    return this.u16(OPER);
  }
  set op(v: number) {
    this.setU16(OPER, v);
  }
  get sha(): number {
    return readMac(this.buf, this.off + SHA);
  }
  set sha(mac: number) {
    writeMac(this.buf, this.off + SHA, mac);
  }
  get spa(): number {
    return this.u32(SPA);
  }
  set spa(a: number) {
    this.setU32(SPA, a);
  }
  get tha(): number {
    return readMac(this.buf, this.off + THA);
  }
  set tha(mac: number) {
    writeMac(this.buf, this.off + THA, mac);
  }
  get tpa(): number {
    return this.u32(TPA);
  }
  set tpa(a: number) {
    this.setU32(TPA, a);
  }
}

/** Writes a complete Ethernet/IPv4 ARP packet; returns 28. */
export function writeArp(buf: Buffer, off: number, op: number, sha: number, spa: number, tha: number, tpa: number): number {
  return writeArpHiLo(buf, off, op, macHi(sha), macLo(sha), spa, macHi(tha), macLo(tha), tpa);
}

/**
 * writeArp with each MAC as its high 16 and low 32 bits (int32 or uint32), as the tables
 * keep them: what the packet path calls, with no 48-bit number made. Returns 28.
 */
export function writeArpHiLo(
  buf: Buffer, off: number, op: number, shaHi: number, shaLo: number, spa: number, thaHi: number, thaLo: number, tpa: number,
): number {
  wr16(buf, off + HTYPE, ARP_HTYPE_ETHERNET);
  wr16(buf, off + PTYPE, ARP_PTYPE_IPV4);
  buf[off + HLEN] = 6;
  buf[off + PLEN] = 4;
  wr16(buf, off + OPER, op);
  writeMacHiLo(buf, off + SHA, shaHi, shaLo);
  wr32(buf, off + SPA, spa);
  writeMacHiLo(buf, off + THA, thaHi, thaLo);
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
