/**
 * The socket underlay (`vxlan[].underlay: socket`) without a socket: what vxlan-encap hands a
 * device's socket driver (the VXLAN header and the inner frame, the remote VTEP as next hop),
 * what a received datagram becomes once placed behind the headers it came with (the inner
 * frame decapsulated to the right pod, an unknown VTEP dropped), super-frames cut first, and
 * the config rules for `local`. The real kernel socket is in test/e2e/vxlan-socket.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { FramePool } from '../../src/core/frame-pool.ts';
import { parseConfig } from '../../src/config/load.ts';
import { placeDatagram } from '../../src/ports/vxlan-socket.ts';
import * as F from '../helpers/frames.ts';
import { A, GW, Harness, ethOf, introduce, ip4Of, udpFrame } from './stage-harness.test.ts';

const SOCKET_LAB = `
node: { name: node1 }
bridges:
  - { name: cni0, address: 10.244.1.1/24, mac: 0a:58:0a:f4:01:01 }
ports:
  - { name: pa, bridge: cni0 }
vxlan:
  - name: flannel.1
    vni: 1
    local: 192.168.60.11
    address: 10.244.1.0/32
    mac: 0e:00:00:00:00:01
    underlay: socket
    peers:
      - { vtep: 192.168.60.12, mac: 0e:00:00:00:00:02, subnet: 10.244.2.0/24 }
`;
const LOCAL = 0xc0a83c0b | 0;
const PEER = 0xc0a83c0c | 0;

interface Sent {
  bytes: Buffer;
  to: number;
}

function lab(): { h: Harness; sent: Sent[] } {
  const h = new Harness(SOCKET_LAB);
  introduce(h, A);
  const sent: Sent[] = [];
  h.dp.setVxlanSocket('flannel.1', {
    transmit(pool: FramePool, slots: Int32Array, n: number): number {
      for (let i = 0; i < n; i++) sent.push({ bytes: Buffer.from(pool.view(slots[i])), to: pool.nextHop[slots[i]] });
      return n;
    },
  });
  return { h, sent };
}

describe('underlay: socket', () => {
  it('hands the socket the VXLAN header and the inner frame, to the remote VTEP', () => {
    const { h, sent } = lab();
    const frame = udpFrame({ from: A, toMac: GW.mac, dst: '10.244.2.7', sport: 40000, dport: 53, dataLen: 100 });
    h.rx('pa', frame);
    expect(sent).toHaveLength(1);
    const [{ bytes, to }] = sent;
    expect(to).toBe(PEER);
    expect([...bytes.subarray(0, 8)]).toEqual([0x08, 0, 0, 0, 0, 0, 1, 0]);
    const inner = bytes.subarray(8);
    expect(inner.length).toBe(frame.length);
    expect(ethOf(inner)).toEqual({ dst: '0e:00:00:00:00:02', src: '0e:00:00:00:00:01', type: 0x0800 });
    expect(ip4Of(inner)).toMatchObject({ ttl: 63, src: A.ip, dst: '10.244.2.7', checksumOk: true });
    expect(h.counters('vxlan-socket-tx').packets).toBe(1);
  });

  it('counts a frame for a device whose socket is not open as dropped', () => {
    const h = new Harness(SOCKET_LAB);
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.244.2.7' }));
    expect(h.counters('vxlan-socket-tx').drops).toEqual({ 'vxlan.no-socket': 1 });
  });

  it('decapsulates a received datagram to the right pod; one from an unknown VTEP is dropped', () => {
    const { h } = lab();
    const inner = F.ethernet('0e:00:00:00:00:01', '0e:00:00:00:00:02', 0x0800, F.ipv4({ src: '10.244.2.7', dst: A.ip, proto: 17, ttl: 64 }, F.udp('10.244.2.7', A.ip, 53, 40000, F.bytes(40, 3))));
    const msg = Buffer.from([0x08, 0, 0, 0, 0, 0, 1, 0, ...inner]);
    for (const src of [PEER, 0xc0a83c63 | 0]) {
      const slot = placeDatagram(h.dp.pool, msg, src, 51234, LOCAL, 8472);
      expect(slot).toBeGreaterThanOrEqual(0);
      // The headers it came with: a valid IPv4 header from the VTEP, UDP to the device's port.
      const placed = Buffer.from(h.dp.pool.view(slot));
      expect(ip4Of(placed, 0)).toMatchObject({ proto: 17, total: msg.length + 28, checksumOk: true });
      expect(placed.readUInt16BE(22)).toBe(8472);
      h.dp.receiveVxlanDatagram(slot);
      h.dp.run();
    }
    const [out, ...rest] = h.take('pa');
    expect(rest).toEqual([]);
    expect(ethOf(out)).toEqual({ dst: A.mac, src: GW.mac, type: 0x0800 });
    expect(ip4Of(out)).toMatchObject({ ttl: 63, src: '10.244.2.7', dst: A.ip });
    expect(h.counters('vxlan-decap').drops).toEqual({ 'vxlan.unknown-vtep': 1 });
  });

  it('a datagram too large for a slot is refused', () => {
    const { h } = lab();
    expect(placeDatagram(h.dp.pool, Buffer.alloc(h.dp.pool.maxFrame), PEER, 1, LOCAL, 8472)).toBe(-1);
  });

  it('local is the machine\'s address: not one of the config\'s interfaces', () => {
    expect(parseConfig(SOCKET_LAB, 'test').vxlan[0]).toMatchObject({ underlay: 'socket', local: '192.168.60.11' });
    const errors = (yaml: string): string[] => {
      try {
        parseConfig(yaml, 'test');
        return [];
      } catch (err) {
        return (err as { errors?: string[] }).errors ?? [(err as Error).message];
      }
    };
    expect(errors(SOCKET_LAB.replace('local: 192.168.60.11', 'local: 10.244.1.1'))).toEqual([
      'vxlan[0].local: 10.244.1.1 is the address of bridge cni0; with underlay: socket it must be the machine\'s own address, where a kernel UDP socket binds',
    ]);
    // Without `underlay: socket`, local must be an L3 port's address, as before.
    expect(errors(SOCKET_LAB.replace('    underlay: socket\n', ''))).toEqual(['vxlan[0].local: 192.168.60.11 is not the address of an L3 port']);
  });
});
