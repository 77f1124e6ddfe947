/**
 * The convenient, allocating frame decoder behind `nodeplane decode` and the tests (the
 * counterpart of gopacket's non-fast path; the dataplane uses the wire views directly).
 *
 * Input: the captured bytes of one frame, its captured and wire lengths and its link type.
 * Output: a DecodedFrame (see types.ts for every representation choice). It never throws on
 * malformed input: it decodes as far as the bytes allow and names the first problem in
 * `error` (the same reason texts as the wire views' checkLen()).
 *
 * Layers: Ethernet (any number of 802.1Q/802.1ad tags) -> ARP | IPv4 | IPv6;
 * IPv4/IPv6 -> ICMP/ICMPv6 | UDP | TCP (first fragments: headers only, no checksum; later
 * fragments: no L4); ICMP errors -> the quoted IPv4 header and L4 ports; UDP to 4789 or
 * 8472 -> VXLAN -> inner Ethernet (nested up to MAX_DEPTH tunnels).
 *
 * Truncated captures (caplen < wire length) are decoded as far as they go: a layer whose
 * header is cut short reports the fields it has and an error "truncated <proto> header";
 * a layer whose payload is cut short gets no checksum verdict and no error.
 */

import { ArpView } from '../wire/arp.ts';
import { internetChecksum, onesComplementSum } from '../wire/checksum.ts';
import { ethPayload, payloadOffset } from '../wire/ethernet.ts';
import { icmpHasIdSeq, isIcmpError, IcmpView } from '../wire/icmp.ts';
import { formatIpv4 } from '../wire/ipv4-address.ts';
import { Ipv4View } from '../wire/ipv4.ts';
import { formatMac, readMac } from '../wire/mac.ts';
import { flagsString, TcpView } from '../wire/tcp.ts';
import { UdpView } from '../wire/udp.ts';
import { isVxlanPort, VxlanView } from '../wire/vxlan.ts';
import { formatIpv6 } from './ipv6-text.ts';
import type { DecodedFrame, DecodedIcmp, DecodedLayers, DecodedTcp, DecodedUdp, DecodedVlanTag } from './types.ts';

/** Link types understood by decodeFrame. */
export const LINKTYPE_NULL = 0;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LOOP = 108;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;

/** Deepest VXLAN nesting decoded; deeper tunnels stop with an error. */
export const MAX_DEPTH = 8;

interface Ctx {
  /** The capture cut the frame short (caplen < wire length). */
  truncated: boolean;
  /** Decoding a datagram quoted inside an ICMP error (cut short by design). */
  quoted: boolean;
  depth: number;
}

const hex16 = (v: number) => '0x' + v.toString(16).padStart(4, '0');
const rd16 = (b: Buffer, o: number) => (b[o] << 8) | b[o + 1];
const rd32 = (b: Buffer, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

function fail(out: DecodedLayers, reason: string): void {
  if (out.error === undefined) out.error = reason;
}

/**
 * Decodes one captured frame. `data` holds the captured bytes (only the first `caplen` are
 * used), `origLen` is the length on the wire.
 */
export function decodeFrame(data: Buffer, caplen: number = data.length, origLen: number = caplen, linkType = LINKTYPE_ETHERNET): DecodedFrame {
  const n = Math.max(0, Math.min(caplen, data.length));
  const frame: DecodedFrame = { len: origLen, caplen };
  const ctx: Ctx = { truncated: n < origLen, quoted: false, depth: 0 };
  switch (linkType) {
    case LINKTYPE_ETHERNET:
      decodeEthernet(data, 0, n, frame, ctx);
      break;
    case LINKTYPE_NULL:
    case LINKTYPE_LOOP: {
      if (n < 4) {
        fail(frame, 'truncated loopback header');
        break;
      }
      // NULL: host byte order of the writer; LOOP: network order. Families fit in one byte.
      const family = linkType === LINKTYPE_LOOP || (data[0] === 0 && data[1] === 0) ? rd32(data, 0) : data.readUInt32LE(0);
      frame.loopback = { family };
      if (family === 2) decodeIpv4(data, 4, n, frame, ctx);
      else if (family === 10 || family === 24 || family === 28 || family === 30) decodeIpv6(data, 4, n, frame, ctx);
      break;
    }
    case LINKTYPE_RAW:
    case LINKTYPE_IPV4:
    case LINKTYPE_IPV6:
      if (n < 1) fail(frame, 'truncated ip header');
      else if (data[0] >>> 4 === 6) decodeIpv6(data, 0, n, frame, ctx);
      else decodeIpv4(data, 0, n, frame, ctx);
      break;
    default:
      fail(frame, `unsupported link type ${linkType}`);
  }
  return frame;
}

function decodeEthernet(buf: Buffer, off: number, end: number, out: DecodedLayers, ctx: Ctx): void {
  if (end - off < 14) {
    fail(out, 'truncated ethernet header');
    return;
  }
  out.eth = { src: formatMac(readMac(buf, off + 6)), dst: formatMac(readMac(buf, off)), type: hex16(rd16(buf, off + 12)) };
  const p = payloadOffset(buf, off, end - off);
  const tagCount = ethPayload.tags;
  const type = ethPayload.etherType;
  if (tagCount > 0 || p < 0) {
    // Walk the tags again to list them all (payloadOffset keeps only the first two).
    const tags: DecodedVlanTag[] = [];
    let q = off + 12;
    for (let i = 0; i < tagCount || (p < 0 && q + 4 <= end && i === tagCount); i++) {
      if (q + 4 > end) break;
      const tci = rd16(buf, q + 2);
      tags.push({ tpid: hex16(rd16(buf, q)), id: tci & 0xfff, pcp: tci >>> 13 });
      q += 4;
    }
    if (tags.length > 0) {
      out.vlan = { id: tags[0].id, pcp: tags[0].pcp };
      if (p >= 0) out.vlan.type = hex16(type);
      if (tags.length > 1) out.vlan.tags = tags;
    }
  }
  if (p < 0) {
    fail(out, 'truncated vlan tag');
    return;
  }
  if (type === 0x0800) decodeIpv4(buf, p, end, out, ctx);
  else if (type === 0x0806) decodeArp(buf, p, end, out);
  else if (type === 0x86dd) decodeIpv6(buf, p, end, out, ctx);
}

function decodeArp(buf: Buffer, off: number, end: number, out: DecodedLayers): void {
  const avail = end - off;
  const v = new ArpView().bind(buf, off, avail);
  const err = v.checkLen();
  if (avail < 8) {
    fail(out, err ?? 'truncated arp header');
    return;
  }
  // Addresses are placed by the header's own lengths, so an odd ARP still shows what fits.
  const arp: DecodedLayers['arp'] = { op: v.op };
  const hl = v.hlen;
  const pl = v.plen;
  const sha = off + 8;
  const spa = sha + hl;
  const tha = spa + pl;
  const tpa = tha + hl;
  const macOk = hl === 6 && v.htype === 1;
  const ipOk = pl === 4 && v.ptype === 0x0800;
  if (macOk && sha + 6 <= end) arp.sha = formatMac(readMac(buf, sha));
  if (ipOk && spa + 4 <= end) arp.spa = formatIpv4(rd32(buf, spa));
  if (macOk && tha + 6 <= end) arp.tha = formatMac(readMac(buf, tha));
  if (ipOk && tpa + 4 <= end) arp.tpa = formatIpv4(rd32(buf, tpa));
  out.arp = arp;
  if (err !== null) fail(out, err);
}

function decodeIpv4(buf: Buffer, off: number, end: number, out: DecodedLayers, ctx: Ctx): void {
  const avail = end - off;
  const v = new Ipv4View().bind(buf, off, avail);
  if (avail < 20) {
    fail(out, 'truncated ipv4 header');
    return;
  }
  if (v.version !== 4) {
    fail(out, 'bad ipv4 version');
    return;
  }
  const hl = v.ihl;
  const tl = v.totalLength;
  if (hl < 20) {
    fail(out, 'bad ipv4 header length');
    return;
  }
  if (tl < hl) {
    fail(out, 'bad ipv4 total length');
    return;
  }
  if (hl > avail) {
    fail(out, 'truncated ipv4 header');
    return;
  }
  out.ip = {
    src: formatIpv4(v.src), dst: formatIpv4(v.dst), proto: v.protocol, ttl: v.ttl, id: v.ident,
    df: v.df, mf: v.mf, fragOffset: v.fragOffset, len: tl, checksumOk: v.checksumOk(), hl,
  };
  // Bytes of the datagram present; a complete datagram may be followed by Ethernet padding.
  let complete = true;
  let pend = off + tl;
  if (tl > avail) {
    pend = end;
    complete = false;
    if (!ctx.truncated && !ctx.quoted) fail(out, 'bad ipv4 total length');
  }
  if (v.fragOffset !== 0) return; // a later fragment: no L4 header here
  const frag = v.mf;
  // Quoted datagrams are verified too when the quote holds all of them (as Wireshark does).
  const verify = complete && !frag;
  const l4len = tl - hl;
  const p = off + hl;
  const src = v.src;
  const dst = v.dst;
  switch (v.protocol) {
    case 1:
      decodeIcmp(buf, p, pend, out, ctx, verify);
      break;
    case 6:
      decodeTcp(buf, p, pend, l4len, out, verify ? pseudo4(src, dst, 6, l4len) : -1);
      break;
    case 17:
      // UDP covers its own length, so a verdict is possible even when the IP total length lies.
      decodeUdp(buf, p, pend, l4len, out, ctx, frag, frag ? null : (len) => pseudo4(src, dst, 17, len));
      break;
  }
}

function pseudo4(src: number, dst: number, proto: number, len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len;
}

function decodeIpv6(buf: Buffer, off: number, end: number, out: DecodedLayers, ctx: Ctx): void {
  const avail = end - off;
  if (avail < 40) {
    fail(out, 'truncated ipv6 header');
    return;
  }
  if (buf[off] >>> 4 !== 6) {
    fail(out, 'bad ipv6 version');
    return;
  }
  const plen = rd16(buf, off + 4);
  const nxt = buf[off + 6];
  out.ip6 = { src: formatIpv6(buf, off + 8), dst: formatIpv6(buf, off + 24), nxt, plen, hlim: buf[off + 7] };
  let pend = off + 40 + plen;
  let complete = true;
  if (40 + plen > avail) {
    pend = end;
    complete = false;
    if (!ctx.truncated && !ctx.quoted) fail(out, 'bad ipv6 payload length');
  }
  // Walk the extension headers that only carry options, and the fragment header.
  let p = off + 40;
  let proto = nxt;
  let frag = false;
  for (let hops = 0; hops < 8; hops++) {
    if (proto === 0 || proto === 43 || proto === 60) {
      if (p + 8 > pend) return;
      proto = buf[p];
      p += (buf[p + 1] + 1) * 8;
    } else if (proto === 44) {
      if (p + 8 > pend) return;
      const offFlags = rd16(buf, p + 2);
      if (offFlags >>> 3 !== 0) return; // a later fragment: no upper-layer header here
      frag = (offFlags & 1) !== 0;
      proto = buf[p];
      p += 8;
    } else {
      break;
    }
  }
  if (p > pend) return;
  const l4len = off + 40 + plen - p;
  const verify = complete && !frag;
  const pseudo6 = (pr: number, len: number) =>
    onesComplementSum(buf, off + 8, 32) + Math.floor(len / 0x10000) + (len & 0xffff) + pr;
  switch (proto) {
    case 6:
      decodeTcp(buf, p, pend, l4len, out, verify ? pseudo6(6, l4len) : -1);
      break;
    case 17:
      decodeUdp(buf, p, pend, l4len, out, ctx, frag, frag ? null : (len) => pseudo6(17, len), true);
      break;
    case 58:
      if (pend - p >= 1) out.icmp6 = { type: buf[p] };
      if (pend - p >= 2) out.icmp6!.code = buf[p + 1];
      if (pend - p < 4) fail(out, 'truncated icmpv6 header');
      break;
  }
}

function decodeIcmp(buf: Buffer, off: number, end: number, out: DecodedLayers, ctx: Ctx, verify: boolean): void {
  const avail = end - off;
  const icmp: DecodedIcmp = {};
  if (avail >= 1) icmp.type = buf[off];
  if (avail >= 2) icmp.code = buf[off + 1];
  const type = buf[off];
  if (avail >= 1) out.icmp = icmp;
  const v = new IcmpView().bind(buf, off, avail);
  if (icmpHasIdSeq(type)) {
    if (avail >= 6) icmp.id = v.ident;
    if (avail >= 8) icmp.seq = v.seq;
  }
  if (avail < 8) {
    fail(out, v.checkLen() ?? 'truncated icmp header');
    return;
  }
  if (type === 3 && buf[off + 1] === 4) icmp.mtu = v.nextHopMtu;
  if (verify) icmp.checksumOk = v.checksumOk();
  if (isIcmpError(type) && !ctx.quoted && avail > 8) {
    const quoted: DecodedLayers = {};
    decodeIpv4(buf, off + 8, end, quoted, { truncated: ctx.truncated, quoted: true, depth: ctx.depth });
    delete quoted.error; // a quote is cut short by design; its oddities are not the frame's
    if (quoted.ip) icmp.quoted = quoted;
  }
}

/**
 * `l4len` is the L4 length the IP header declares; `frag` marks a first fragment (the UDP
 * length then covers the whole datagram); `pseudo` is null when no checksum verdict is due.
 */
function decodeUdp(
  buf: Buffer, off: number, end: number, l4len: number, out: DecodedLayers, ctx: Ctx, frag: boolean,
  pseudo: ((len: number) => number) | null, v6 = false,
): void {
  const avail = end - off;
  const udp: DecodedUdp = {};
  if (avail >= 2) udp.sport = rd16(buf, off);
  if (avail >= 4) udp.dport = rd16(buf, off + 2);
  if (avail >= 6) udp.len = rd16(buf, off + 4);
  if (avail >= 2) out.udp = udp;
  if (avail < 8) {
    fail(out, 'truncated udp header');
    return;
  }
  const v = new UdpView().bind(buf, off, avail);
  const len = v.length;
  if (len < 8 || (!frag && len > l4len)) {
    fail(out, 'bad udp length');
    return;
  }
  if (pseudo !== null && len <= avail) {
    if (v.checksum !== 0) udp.checksumOk = internetChecksum(buf, off, len, pseudo(len)) === 0;
    else if (v6) udp.checksumOk = false; // RFC 8200: a zero UDP checksum is invalid over IPv6
  }
  if (ctx.quoted) return;
  if (isVxlanPort(v.dstPort)) decodeVxlan(buf, off + 8, off + Math.min(len, avail), out, ctx);
}

/** `pseudo` is the pseudo-header accumulator, or -1 when no checksum verdict is due. */
function decodeTcp(buf: Buffer, off: number, end: number, l4len: number, out: DecodedLayers, pseudo: number): void {
  const avail = end - off;
  const tcp: DecodedTcp = {};
  if (avail >= 2) tcp.sport = rd16(buf, off);
  if (avail >= 4) tcp.dport = rd16(buf, off + 2);
  if (avail >= 8) tcp.seq = rd32(buf, off + 4);
  if (avail >= 12) tcp.ack = rd32(buf, off + 8);
  if (avail >= 14) tcp.flags = flagsString(((buf[off + 12] & 1) << 8) | buf[off + 13]);
  if (avail >= 2) out.tcp = tcp;
  const v = new TcpView().bind(buf, off, avail);
  if (avail < 20) {
    fail(out, 'truncated tcp header');
    return;
  }
  if (v.dataOffset < 20 || v.dataOffset > l4len) {
    fail(out, 'bad tcp data offset');
    return;
  }
  const err = v.checkLen();
  if (err !== null) {
    fail(out, err);
    return;
  }
  if (pseudo >= 0 && l4len <= avail) tcp.checksumOk = internetChecksum(buf, off, l4len, pseudo) === 0;
}

function decodeVxlan(buf: Buffer, off: number, end: number, out: DecodedLayers, ctx: Ctx): void {
  const v = new VxlanView().bind(buf, off, end - off);
  const err = v.checkLen();
  if (err === 'truncated vxlan header') {
    fail(out, err);
    return;
  }
  out.vxlan = { vni: v.vni, flags: v.flags };
  if (err !== null) {
    fail(out, err);
    return;
  }
  if (ctx.depth + 1 > MAX_DEPTH) {
    fail(out, 'vxlan nested too deep');
    return;
  }
  const inner: DecodedLayers = {};
  decodeEthernet(buf, off + 8, end, inner, { truncated: ctx.truncated, quoted: false, depth: ctx.depth + 1 });
  out.vxlan.inner = inner;
  if (inner.error !== undefined) fail(out, inner.error);
}
