/**
 * NAT header rewrites: change an IPv4 packet's source or destination address and its TCP/UDP
 * port (or ICMP echo identifier) in place, keeping every checksum right by RFC 1624
 * incremental updates — never a recomputation over the payload.
 *
 * What each checksum covers, and so what a rewrite must touch:
 *   - the IPv4 header checksum covers the addresses;
 *   - TCP and UDP checksums cover a pseudo header with both addresses, and the ports;
 *   - the ICMP checksum covers the ICMP message only (the echo identifier, and for errors the
 *     quoted datagram), no pseudo header.
 *
 * Offloaded frames (virtio-net NEEDS_CSUM, `partial` here): the L4 checksum field holds only
 * the pseudo-header sum, not inverted, and the device sums the rest. An address change then
 * adjusts that partial sum (as Linux's inet_proto_csum_replace4 does for CHECKSUM_PARTIAL),
 * and a port change leaves it alone: ports are not in the pseudo header.
 *
 * UDP keeps RFC 768's rules: a zero checksum means "none" and stays zero; a computed zero is
 * sent as 0xffff.
 *
 * ICMP errors quote the datagram they are about. Translating one (Linux's
 * nf_nat_icmp_reply_translation) rewrites the quoted header with `rewriteQuoted*` — the
 * quoted IPv4 header checksum incrementally, the quoted TCP/UDP checksum only when the quote
 * is long enough to hold it — and then the ICMP checksum over the whole message with
 * `refreshIcmpChecksum`.
 */
import { rd16, rd32, wr16, wr32 } from './bytes.ts';
import { internetChecksum, updateChecksum16, updateChecksum32 } from './checksum.ts';
import { IPV4_CHECKSUM, IPV4_DST, IPV4_SRC } from './ipv4.ts';

/** Which end of a packet a rewrite changes. */
export const enum NatSide {
  SOURCE = 0,
  DESTINATION = 1,
}

const PROTO_ICMP = 1;
const PROTO_TCP = 6;
const PROTO_UDP = 17;
const TCP_CHECKSUM = 16;
const UDP_CHECKSUM = 6;
const ICMP_CHECKSUM = 2;
const ICMP_ECHO_ID = 4;

/**
 * A stored checksum after the data it covers changed by `delta`, the one's-complement sum of
 * the changed words' complements and their new values (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
 */
function applyDelta(checksum: number, delta: number): number {
  let s = (~checksum & 0xffff) + delta;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** Offset of the L4 checksum field for `proto`, or -1 when the protocol has none we keep. */
function l4ChecksumOffset(proto: number): number {
  if (proto === PROTO_TCP) return TCP_CHECKSUM;
  if (proto === PROTO_UDP) return UDP_CHECKSUM;
  return -1;
}

/**
 * The packet's `side` end becomes addr:port — a TCP or UDP packet only (`proto` 6 or 17) —
 * with one update per checksum: the address change to the IPv4 checksum, address and port
 * changes together to the L4 checksum (the port alone with `partial`, see the header). The
 * same result as rewriteAddress then rewritePort, in less work: this is every translated
 * packet's path.
 */
export function rewriteL4End(data: Buffer, ip: number, l4: number, proto: number, side: NatSide, addr: number, port: number, partial: boolean): void {
  const at = ip + (side === NatSide.SOURCE ? IPV4_SRC : IPV4_DST);
  const pat = l4 + (side === NatSide.SOURCE ? 0 : 2);
  const oldHi = (data[at] << 8) | data[at + 1];
  const oldLo = (data[at + 2] << 8) | data[at + 3];
  const oldPort = (data[pat] << 8) | data[pat + 1];
  const newHi = (addr >>> 16) & 0xffff;
  const newLo = addr & 0xffff;
  let addrDelta = 0;
  if (oldHi !== newHi || oldLo !== newLo) {
    data[at] = newHi >>> 8;
    data[at + 1] = newHi;
    data[at + 2] = newLo >>> 8;
    data[at + 3] = newLo;
    addrDelta = (~oldHi & 0xffff) + (~oldLo & 0xffff) + newHi + newLo;
    const ic = ip + IPV4_CHECKSUM;
    const updated = applyDelta((data[ic] << 8) | data[ic + 1], addrDelta);
    data[ic] = updated >>> 8;
    data[ic + 1] = updated;
  }
  let l4Delta = addrDelta;
  if (oldPort !== port) {
    data[pat] = port >>> 8;
    data[pat + 1] = port;
    if (!partial) l4Delta += (~oldPort & 0xffff) + port;
  }
  if (l4Delta === 0) return;
  const c = l4 + (proto === PROTO_TCP ? TCP_CHECKSUM : UDP_CHECKSUM);
  const sum = (data[c] << 8) | data[c + 1];
  let updated: number;
  if (partial) {
    updated = ~applyDelta(~sum & 0xffff, l4Delta) & 0xffff;
  } else {
    if (proto === PROTO_UDP && sum === 0) return;
    updated = applyDelta(sum, l4Delta);
    if (proto === PROTO_UDP && updated === 0) updated = 0xffff;
  }
  data[c] = updated >>> 8;
  data[c + 1] = updated;
}

/**
 * Rewrites the source or destination address of the IPv4 header at `ip` to `addr`, fixing
 * the header checksum and, for TCP/UDP at `l4` (with at least 8 bytes there), the L4
 * checksum's pseudo-header part. `partial`: the L4 checksum is an offload partial sum.
 */
export function rewriteAddress(data: Buffer, ip: number, l4: number, proto: number, side: NatSide, addr: number, partial: boolean): void {
  const at = ip + (side === NatSide.SOURCE ? IPV4_SRC : IPV4_DST);
  // 16-bit halves as small integers: an address above 2^31 never becomes a double here.
  const oldHi = (data[at] << 8) | data[at + 1];
  const oldLo = (data[at + 2] << 8) | data[at + 3];
  const newHi = (addr >>> 16) & 0xffff;
  const newLo = addr & 0xffff;
  if (oldHi === newHi && oldLo === newLo) return;
  data[at] = newHi >>> 8;
  data[at + 1] = newHi;
  data[at + 2] = newLo >>> 8;
  data[at + 3] = newLo;
  // One delta for every checksum the address is in: the IPv4 header's and the pseudo header's.
  const delta = (~oldHi & 0xffff) + (~oldLo & 0xffff) + newHi + newLo;
  wr16(data, ip + IPV4_CHECKSUM, applyDelta(rd16(data, ip + IPV4_CHECKSUM), delta));
  const csumField = l4ChecksumOffset(proto);
  if (csumField < 0) return;
  const c = l4 + csumField;
  const sum = rd16(data, c);
  if (partial) {
    // The partial sum is stored uninverted: adjust its complement (inet_proto_csum_replace4).
    wr16(data, c, ~applyDelta(~sum & 0xffff, delta) & 0xffff);
    return;
  }
  if (proto === PROTO_UDP && sum === 0) return;
  const updated = applyDelta(sum, delta);
  wr16(data, c, proto === PROTO_UDP && updated === 0 ? 0xffff : updated);
}

/**
 * Rewrites the source or destination port of the TCP/UDP header at `l4` (for ICMP echo, the
 * identifier, whichever side is asked), fixing the L4 checksum. `partial`: an offload
 * partial sum, which ports do not enter.
 */
export function rewritePort(data: Buffer, l4: number, proto: number, side: NatSide, port: number, partial: boolean): void {
  if (proto === PROTO_ICMP) {
    const old = rd16(data, l4 + ICMP_ECHO_ID);
    if (old === port) return;
    wr16(data, l4 + ICMP_ECHO_ID, port);
    wr16(data, l4 + ICMP_CHECKSUM, updateChecksum16(rd16(data, l4 + ICMP_CHECKSUM), old, port));
    return;
  }
  const at = l4 + (side === NatSide.SOURCE ? 0 : 2);
  const old = rd16(data, at);
  if (old === port) return;
  wr16(data, at, port);
  const csumField = l4ChecksumOffset(proto);
  if (csumField < 0 || partial) return;
  const c = l4 + csumField;
  const sum = rd16(data, c);
  if (proto === PROTO_UDP && sum === 0) return;
  const updated = updateChecksum16(sum, old, port);
  wr16(data, c, proto === PROTO_UDP && updated === 0 ? 0xffff : updated);
}

/**
 * Rewrites an address of a datagram quoted inside an ICMP error: the quoted IPv4 header at
 * `ip` (its checksum updated), and the quoted TCP/UDP checksum when `quotedLen` bytes from
 * `l4` reach it. The ICMP checksum is left to `refreshIcmpChecksum`.
 */
export function rewriteQuotedAddress(data: Buffer, ip: number, l4: number, quotedLen: number, proto: number, side: NatSide, addr: number): void {
  const at = ip + (side === NatSide.SOURCE ? IPV4_SRC : IPV4_DST);
  const old = rd32(data, at);
  const next = addr >>> 0;
  if (old === next) return;
  wr32(data, at, next);
  wr16(data, ip + IPV4_CHECKSUM, updateChecksum32(rd16(data, ip + IPV4_CHECKSUM), old, next));
  const csumField = l4ChecksumOffset(proto);
  if (csumField < 0 || quotedLen < csumField + 2) return;
  const c = l4 + csumField;
  const sum = rd16(data, c);
  if (proto === PROTO_UDP && sum === 0) return;
  const updated = updateChecksum32(sum, old, next);
  wr16(data, c, proto === PROTO_UDP && updated === 0 ? 0xffff : updated);
}

/** Rewrites a quoted TCP/UDP port (or echo identifier) inside an ICMP error; see above. */
export function rewriteQuotedPort(data: Buffer, l4: number, quotedLen: number, proto: number, side: NatSide, port: number): void {
  if (proto === PROTO_ICMP) {
    if (quotedLen < ICMP_ECHO_ID + 2) return;
    const old = rd16(data, l4 + ICMP_ECHO_ID);
    if (old === port) return;
    wr16(data, l4 + ICMP_ECHO_ID, port);
    wr16(data, l4 + ICMP_CHECKSUM, updateChecksum16(rd16(data, l4 + ICMP_CHECKSUM), old, port));
    return;
  }
  const at = l4 + (side === NatSide.SOURCE ? 0 : 2);
  if (quotedLen < (at - l4) + 2) return;
  const old = rd16(data, at);
  if (old === port) return;
  wr16(data, at, port);
  const csumField = l4ChecksumOffset(proto);
  if (csumField < 0 || quotedLen < csumField + 2) return;
  const c = l4 + csumField;
  const sum = rd16(data, c);
  if (proto === PROTO_UDP && sum === 0) return;
  const updated = updateChecksum16(sum, old, port);
  wr16(data, c, proto === PROTO_UDP && updated === 0 ? 0xffff : updated);
}

/** Recomputes the checksum of the ICMP message at `icmp`, `len` bytes long. */
export function refreshIcmpChecksum(data: Buffer, icmp: number, len: number): void {
  wr16(data, icmp + ICMP_CHECKSUM, 0);
  wr16(data, icmp + ICMP_CHECKSUM, internetChecksum(data, icmp, len));
}
