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
 */

export const VIRTIO_NET_HDR_LEN = 10;

export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;

export const enum VirtioGso {
  NONE = 0,
  TCPV4 = 1,
  UDP = 3,
  TCPV6 = 4,
  ECN = 0x80,
}

export const VIRTIO_FLAGS = 0;
export const VIRTIO_GSO_TYPE = 1;
export const VIRTIO_HDR_LEN = 2;
export const VIRTIO_GSO_SIZE = 4;
export const VIRTIO_CSUM_START = 6;
export const VIRTIO_CSUM_OFFSET = 8;
