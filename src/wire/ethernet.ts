/**
 * Ethernet II frames (IEEE 802.3 with an EtherType) and 802.1Q / 802.1ad VLAN tags.
 *
 *      0                   1                   2                   3
 *      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |                    Destination MAC (6 octets)                 |
 *     +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |                               |                               |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
 *     |                      Source MAC (6 octets)                    |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |       EtherType / TPID        |  PCP|D|   VLAN ID (if tagged) |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |  inner EtherType (if tagged)  |  payload ...
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Field offsets (from the start of the frame):
 *
 *     ETH_DST   0  6 bytes
 *     ETH_SRC   6  6 bytes
 *     ETH_TYPE 12  2 bytes  EtherType, or TPID 0x8100 (802.1Q) / 0x88a8 (802.1ad) / 0x9100
 *     VLAN_TCI 14  2 bytes  PCP (3 bits) | DEI (1 bit) | VID (12 bits), when tagged
 *              16  2 bytes  next EtherType / TPID, when tagged
 *
 * `payloadOffset()` walks any number of stacked tags and reports the offset of the payload
 * and the innermost EtherType through the module-level `ethPayload` object (no allocation).
 */

import { rd16, wr16, writeMacHiLo } from './bytes.ts';
import { formatMac, readMac, writeMac } from './mac.ts';
import { WireView } from './view.ts';

export const ETH_HLEN = 14;
export const ETH_DST = 0;
export const ETH_SRC = 6;
export const ETH_TYPE = 12;
export const VLAN_TCI = 14;
export const VLAN_HLEN = 4;
/** Minimum frame length on the wire without FCS (shorter frames are padded). */
export const ETH_ZLEN = 60;

export const enum EtherType {
  IPV4 = 0x0800,
  ARP = 0x0806,
  /** 802.1Q customer tag. */
  VLAN = 0x8100,
  /** 802.1ad service tag (QinQ). */
  QINQ = 0x88a8,
  /** Pre-standard QinQ tag still seen in the wild. */
  QINQ_OLD = 0x9100,
  IPV6 = 0x86dd,
}

/** True for the TPIDs whose 4-byte tag `payloadOffset` walks over. */
export function isVlanTpid(type: number): boolean {
  return type === 0x8100 || type === 0x88a8 || type === 0x9100;
}

/** Zero-copy view of an Ethernet header. Rebind it per frame; never construct per packet. */
export class EthernetView extends WireView {
  /** null when the fixed 14-byte header is present; otherwise why not. */
  checkLen(): string | null {
    return this.len < ETH_HLEN ? 'truncated ethernet header' : null;
  }

  get dst(): number {
    return readMac(this.buf, this.off + ETH_DST);
  }
  set dst(mac: number) {
    writeMac(this.buf, this.off + ETH_DST, mac);
  }
  get src(): number {
    return readMac(this.buf, this.off + ETH_SRC);
  }
  set src(mac: number) {
    writeMac(this.buf, this.off + ETH_SRC, mac);
  }
  /** The EtherType field at offset 12 (a TPID when the frame is tagged). */
  get etherType(): number {
    return (this.buf[this.off + ETH_TYPE] << 8) | this.buf[this.off + ETH_TYPE + 1]; // hot
  }
  set etherType(v: number) {
    this.setU16(ETH_TYPE, v);
  }
  /** The first tag's TCI; only meaningful when `etherType` is a TPID and len >= 18. */
  get tci(): number {
    return this.u16(VLAN_TCI);
  }
  set tci(v: number) {
    this.setU16(VLAN_TCI, v);
  }
  get vlanId(): number {
    return this.tci & 0x0fff;
  }
  get pcp(): number {
    return this.tci >>> 13;
  }
  get payloadOffset(): number {
    return this.off + ETH_HLEN;
  }
}

/**
 * Result of `payloadOffset()`, overwritten by every call:
 * `offset` of the payload (-1 when a tag is cut off), the innermost `etherType`, the number
 * of `tags` walked, and the TCIs of the first two tags (`outerTci`, `innerTci`, -1 if absent)
 * with their TPIDs.
 */
export const ethPayload = {
  offset: 0,
  etherType: 0,
  tags: 0,
  outerTpid: 0,
  outerTci: -1,
  innerTpid: 0,
  innerTci: -1,
};

/**
 * Walks 802.1Q/802.1ad tags after the MACs of the frame at `buf[off .. off+len)`.
 * Returns the offset of the payload (also in `ethPayload.offset`) or -1 when the header or
 * a tag is truncated; `ethPayload.etherType` is the EtherType after the last tag.
 */
export function payloadOffset(buf: Buffer, off: number, len: number): number {
  const r = ethPayload;
  r.tags = 0;
  r.outerTpid = 0;
  r.outerTci = -1;
  r.innerTpid = 0;
  r.innerTci = -1;
  r.etherType = 0;
  r.offset = -1;
  const end = off + len;
  let p = off + ETH_TYPE;
  if (p + 2 > end) return -1;
  let type = rd16(buf, p);
  while (isVlanTpid(type)) {
    if (p + 6 > end) {
      r.etherType = type;
      return -1;
    }
    const tci = rd16(buf, p + 2);
    if (r.tags === 0) {
      r.outerTpid = type;
      r.outerTci = tci;
    } else if (r.tags === 1) {
      r.innerTpid = type;
      r.innerTci = tci;
    }
    r.tags++;
    p += VLAN_HLEN;
    type = rd16(buf, p);
  }
  r.etherType = type;
  r.offset = p + 2;
  return r.offset;
}

/** Writes an untagged Ethernet header; returns 14. */
export function writeEthernetHeader(buf: Buffer, off: number, dst: number, src: number, type: number): number {
  writeMac(buf, off + ETH_DST, dst);
  writeMac(buf, off + ETH_SRC, src);
  wr16(buf, off + ETH_TYPE, type);
  return ETH_HLEN;
}

/**
 * writeEthernetHeader with each MAC as its high 16 and low 32 bits (int32 or uint32), as the
 * tables keep them: what the packet path calls. Returns 14.
 */
export function writeEthernetHiLo(
  buf: Buffer, off: number, dstHi: number, dstLo: number, srcHi: number, srcLo: number, type: number,
): number {
  writeMacHiLo(buf, off + ETH_DST, dstHi, dstLo);
  writeMacHiLo(buf, off + ETH_SRC, srcHi, srcLo);
  buf[off + ETH_TYPE] = type >>> 8;
  buf[off + ETH_TYPE + 1] = type;
  return ETH_HLEN;
}

/** Writes an Ethernet header with one 802.1Q tag; returns 18. */
export function writeEthernetVlanHeader(
  buf: Buffer, off: number, dst: number, src: number, tci: number, type: number, tpid = 0x8100,
): number {
  writeEthernetHeader(buf, off, dst, src, tpid);
  wr16(buf, off + VLAN_TCI, tci);
  wr16(buf, off + VLAN_TCI + 2, type);
  return ETH_HLEN + VLAN_HLEN;
}

/** High-level representation of an Ethernet header (tests, control code). */
export interface EthernetRepr {
  dst: number;
  src: number;
  /** The EtherType of the payload (after the tag when tagged). */
  etherType: number;
  /** One 802.1Q tag. */
  vlan?: { id: number; pcp: number; dei?: boolean };
}

export const EthernetRepr = {
  /** Parses the header (and at most one tag); returns a reason string when it cannot. */
  parse(buf: Buffer, off: number, len: number): EthernetRepr | string {
    const v = new EthernetView().bind(buf, off, len);
    const err = v.checkLen();
    if (err !== null) return err;
    const repr: EthernetRepr = { dst: v.dst, src: v.src, etherType: v.etherType };
    if (v.etherType === 0x8100) {
      if (len < ETH_HLEN + VLAN_HLEN) return 'truncated vlan tag';
      repr.vlan = { id: v.tci & 0xfff, pcp: v.tci >>> 13, dei: (v.tci & 0x1000) !== 0 };
      repr.etherType = rd16(buf, off + VLAN_TCI + 2);
    }
    return repr;
  },
  bufferLen(repr: EthernetRepr): number {
    return repr.vlan ? ETH_HLEN + VLAN_HLEN : ETH_HLEN;
  },
  emit(repr: EthernetRepr, buf: Buffer, off: number): number {
    if (repr.vlan) {
      const tci = ((repr.vlan.pcp & 7) << 13) | (repr.vlan.dei ? 0x1000 : 0) | (repr.vlan.id & 0xfff);
      return writeEthernetVlanHeader(buf, off, repr.dst, repr.src, tci, repr.etherType);
    }
    return writeEthernetHeader(buf, off, repr.dst, repr.src, repr.etherType);
  },
  format(repr: EthernetRepr): string {
    const tag = repr.vlan ? ` vlan ${repr.vlan.id} p ${repr.vlan.pcp}` : '';
    return `${formatMac(repr.src)} > ${formatMac(repr.dst)}${tag} ethertype 0x${repr.etherType.toString(16).padStart(4, '0')}`;
  },
};
