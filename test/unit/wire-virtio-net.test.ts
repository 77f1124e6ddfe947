/**
 * The virtio-net header as a TAP reads it: the 10-byte struct virtio_net_hdr, and the 24-byte
 * struct virtio_net_hdr_v1_hash_tunnel of UDP-tunnel GSO, byte for byte. The 24-byte
 * expectation is what Linux 6.18 wrote for a VXLAN-in-IPv4 TCP super-frame it had taken from
 * one TAP and handed to another (both opened with TUN_F_UDP_TUNNEL_GSO).
 */
import { describe, expect, it } from 'vitest';
import { VIRTIO_NET_HDR_LEN, VIRTIO_NET_HDR_TUNNEL_LEN, VirtioGso, writeVirtioNetHdr } from '../../src/wire/virtio-net.ts';

describe('writeVirtioNetHdr', () => {
  it('writes the tunnel form as the kernel does: TCPV4 | UDP_TUNNEL_IPV4, the offsets at 20 and 22', () => {
    const b = Buffer.alloc(30, 0xee);
    writeVirtioNetHdr(b, 2, VIRTIO_NET_HDR_TUNNEL_LEN, 1, VirtioGso.TCPV4 | VirtioGso.UDP_TUNNEL_IPV4, 104, 1398, 84, 16, 34, 64);
    expect(b.subarray(2, 26).toString('hex')).toBe('012168007605540010000000000000000000000022004000');
    // Nothing outside the header is touched.
    expect([b[0], b[1], b[26], b[29]]).toEqual([0xee, 0xee, 0xee, 0xee]);
  });

  it('writes the 10-byte form alone when the device has no tunnel header', () => {
    const b = Buffer.alloc(24, 0xee);
    writeVirtioNetHdr(b, 0, VIRTIO_NET_HDR_LEN, 1, VirtioGso.TCPV4, 54, 1448, 34, 16, 34, 64);
    expect(b.subarray(0, 10).toString('hex')).toBe('01013600a8052200' + '1000');
    expect(b.subarray(10).equals(Buffer.alloc(14, 0xee))).toBe(true);
  });
});
