/**
 * The shape of a decoded frame: what `nodeplane decode --json` prints (SPEC §5), plus a few
 * documented extensions. Every layer object is optional; a layer whose header is cut short
 * carries only the fields whose bytes were captured, and `error` says why decoding stopped.
 *
 * Representations:
 *   - MAC addresses lower-case colon-separated, IPv4 dotted quad, IPv6 RFC 5952 text.
 *   - `eth.type` is the 16-bit field at offset 12 as a "0x%04x" string (Wireshark's and
 *     tcpdump's notation): for a tagged frame it is the outer TPID ("0x8100", "0x88a8"), and
 *     a value below 0x0600 is an 802.3 length, not a type.
 *   - `vlan` is the outermost tag; `vlan.tags` lists every tag, outermost first, when there
 *     is more than one (802.1ad S-tag then 802.1Q C-tag for QinQ); `vlan.type` is the
 *     EtherType after the last tag.
 *   - `ip.fragOffset` is in bytes (the wire field times 8).
 *   - `tcp.flags` is one letter a set bit in bit order FIN first: F S R P A U E C, N for AE
 *     ("SA" is SYN-ACK).
 *   - `*.checksumOk` (extension): the verdict on a checksum, present only when it could be
 *     verified (all bytes captured, not a fragment, not quoted inside an ICMP error, and for
 *     UDP only when a checksum is present, i.e. non-zero).
 *   - `icmp.quoted` (extension): the IP header and the start of the datagram quoted by an
 *     ICMP error; `icmp6` and `ip6` (extension) for IPv6 frames; `vxlan.inner` may itself
 *     hold `vxlan` (nested tunnels); `loopback` for frames of the NULL/LOOP link types.
 */

export interface DecodedEth {
  src: string;
  dst: string;
  type: string;
}

export interface DecodedVlanTag {
  tpid: string;
  id: number;
  pcp: number;
}

export interface DecodedVlan {
  id: number;
  pcp: number;
  /** EtherType after the last tag. */
  type?: string;
  /** Every tag, outermost first, when there are several. */
  tags?: DecodedVlanTag[];
}

export interface DecodedArp {
  op?: number;
  sha?: string;
  spa?: string;
  tha?: string;
  tpa?: string;
}

export interface DecodedIp {
  src: string;
  dst: string;
  proto: number;
  ttl: number;
  id: number;
  df: boolean;
  mf: boolean;
  /** Bytes. */
  fragOffset: number;
  /** Total length field. */
  len: number;
  checksumOk: boolean;
  /** Header length in bytes (extension). */
  hl: number;
}

export interface DecodedIp6 {
  src: string;
  dst: string;
  nxt: number;
  /** Payload length field. */
  plen: number;
  hlim: number;
}

export interface DecodedIcmp {
  type?: number;
  code?: number;
  id?: number;
  seq?: number;
  /** Next-hop MTU of "fragmentation needed". */
  mtu?: number;
  checksumOk?: boolean;
  quoted?: DecodedLayers;
}

export interface DecodedIcmp6 {
  type?: number;
  code?: number;
}

export interface DecodedUdp {
  sport?: number;
  dport?: number;
  len?: number;
  checksumOk?: boolean;
}

export interface DecodedTcp {
  sport?: number;
  dport?: number;
  seq?: number;
  ack?: number;
  flags?: string;
  checksumOk?: boolean;
}

export interface DecodedVxlan {
  vni: number;
  flags: number;
  inner?: DecodedLayers;
}

export interface DecodedLoopback {
  family: number;
}

export interface DecodedLayers {
  loopback?: DecodedLoopback;
  eth?: DecodedEth;
  vlan?: DecodedVlan;
  arp?: DecodedArp;
  ip?: DecodedIp;
  ip6?: DecodedIp6;
  icmp?: DecodedIcmp;
  icmp6?: DecodedIcmp6;
  udp?: DecodedUdp;
  tcp?: DecodedTcp;
  vxlan?: DecodedVxlan;
  error?: string;
}

export interface DecodedFrame extends DecodedLayers {
  /** Length on the wire. */
  len: number;
  caplen: number;
}
