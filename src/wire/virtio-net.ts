/**
 * The virtio-net header a TAP opened with IFF_VNET_HDR puts in front of every frame
 * (struct virtio_net_hdr, 10 bytes, little-endian on the hosts Linux runs TAPs on):
 *
 *     0        1         2               4               6                8               10
 *     +--------+---------+---------------+---------------+----------------+---------------+
 *     | flags  | gsoType |    hdrLen     |    gsoSize    |   csumStart    |  csumOffset   |
 *     +--------+---------+---------------+---------------+----------------+---------------+
 *
 * flags: NEEDS_CSUM (1) — the L4 checksum holds only the pseudo header; the sum over
 * [csumStart, end) is to be stored at csumStart + csumOffset. gsoType: NONE (0), TCPV4 (1),
 * UDP (3), TCPV6 (4), ECN bit (0x80) — a super-frame to be cut into gsoSize-byte segments.
 *
 * With UDP-tunnel GSO (TUN_F_UDP_TUNNEL_GSO, Linux 6.17+) the header is the 24-byte struct
 * virtio_net_hdr_v1_hash_tunnel: the above, num_buffers (2 bytes), the hash fields (value,
 * report, padding: 8 bytes), then
 *
 *     20                22                24
 *     +-----------------+-----------------+
 *     | outer_th_offset | inner_nh_offset |
 *     +-----------------+-----------------+
 *
 * from the frame start: the outer UDP header and the inner IP header. gsoType then adds
 * UDP_TUNNEL_IPV4 (0x20) or UDP_TUNNEL_IPV6 (0x40) to the inner type (TCPV4, TCPV6), which
 * must come with NEEDS_CSUM at the inner TCP header (virtio_net_hdr_tnl_to_skb); flag
 * UDP_TUNNEL_CSUM (8) says the outer UDP checksum is partial too (a kernel vxlan device with
 * its default udpcsum sends those; nodeplane's own outer checksum is zero, so it never sets it).
 */
import { wr16le } from './bytes.ts';

export const VIRTIO_NET_HDR_LEN = 10;
/** struct virtio_net_hdr_v1_hash_tunnel: the header size TUNSETVNETHDRSZ gets for tunnel GSO. */
export const VIRTIO_NET_HDR_TUNNEL_LEN = 24;

export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_UDP_TUNNEL_CSUM = 8;

export const enum VirtioGso {
  NONE = 0,
  TCPV4 = 1,
  UDP = 3,
  TCPV6 = 4,
  UDP_TUNNEL_IPV4 = 0x20,
  UDP_TUNNEL_IPV6 = 0x40,
  ECN = 0x80,
}

/** Both UDP-tunnel bits. */
export const VIRTIO_GSO_UDP_TUNNEL = 0x60;

export const VIRTIO_FLAGS = 0;
export const VIRTIO_GSO_TYPE = 1;
export const VIRTIO_HDR_LEN = 2;
export const VIRTIO_GSO_SIZE = 4;
export const VIRTIO_CSUM_START = 6;
export const VIRTIO_CSUM_OFFSET = 8;
export const VIRTIO_OUTER_TH_OFFSET = 20;
export const VIRTIO_INNER_NH_OFFSET = 22;

/** Offset of the TCP checksum in its header: csumOffset of every TCP super-frame. */
export const TCP_CSUM_OFFSET = 16;

/**
 * Writes a virtio-net header of `size` bytes (10 or 24) at `at`. The tunnel offsets go in
 * only with the 24-byte form; bytes 10–19 (num_buffers and the hash fields, which a TAP
 * ignores on write) are zeroed, since the headroom may hold anything.
 */
export function writeVirtioNetHdr(
  data: Buffer,
  at: number,
  size: number,
  flags: number,
  gsoType: number,
  hdrLen: number,
  gsoSize: number,
  csumStart: number,
  csumOffset: number,
  outerTh: number,
  innerNh: number,
): void {
  data[at] = flags;
  data[at + VIRTIO_GSO_TYPE] = gsoType;
  wr16le(data, at + VIRTIO_HDR_LEN, hdrLen);
  wr16le(data, at + VIRTIO_GSO_SIZE, gsoSize);
  wr16le(data, at + VIRTIO_CSUM_START, csumStart);
  wr16le(data, at + VIRTIO_CSUM_OFFSET, csumOffset);
  if (size < VIRTIO_NET_HDR_TUNNEL_LEN) return;
  for (let i = at + VIRTIO_NET_HDR_LEN; i < at + VIRTIO_OUTER_TH_OFFSET; i++) data[i] = 0;
  wr16le(data, at + VIRTIO_OUTER_TH_OFFSET, outerTh);
  wr16le(data, at + VIRTIO_INNER_NH_OFFSET, innerNh);
}
