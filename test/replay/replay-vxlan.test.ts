/**
 * Replay acceptance of the VXLAN overlay: frames built by test/helpers/frames.ts, written to
 * pcaps and replayed on the lab node (captures/replay/lab.yaml) with flannel.1 and one peer
 * node (10.244.2.0/24 at 192.168.50.12): the encapsulated output checked byte by byte against
 * a frame built independently (outer Ethernet, IPv4, UDP, VXLAN, then the inner frame with
 * TTL−1 and the VTEP MACs), the source port per flow, decapsulation to the right pod, the
 * drops with their reasons, and fragmentation needed with MTU 1450. Where tshark is installed,
 * Wireshark decodes the output as VXLAN too.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as F from '../helpers/frames.ts';
import { findTool, inCI, tsharkFields } from '../helpers/tshark.ts';
import { type FrameIn, runFrames } from './replay-helpers.ts';

const T0 = 1_700_000_000_000_000;
const MS = 1000;
const VXLAN = `vxlan:
  - name: flannel.1
    vni: 1
    local: 192.168.50.11
    address: 10.244.1.0/32
    mac: 0e:00:00:00:00:01
    peers:
      - { vtep: 192.168.50.12, mac: 0e:00:00:00:00:02, subnet: 10.244.2.0/24 }
`;
const GW_MAC = '0a:58:0a:f4:01:01';
const UP_MAC = '02:00:00:00:50:11';
const NODE = '192.168.50.11';
const N2 = { mac: '02:00:00:00:50:12', ip: '192.168.50.12', vtepMac: '0e:00:00:00:00:02' };
const FLANNEL_MAC = '0e:00:00:00:00:01';
const A = { port: 'pa', mac: '0a:58:0a:f4:01:02', ip: '10.244.1.2' };
const B = { port: 'pb', mac: '0a:58:0a:f4:01:03', ip: '10.244.1.3' };
const POD2 = '10.244.2.5';

const arpAsk = (port: string, mac: string, ip: string, target: string, tsUs = T0): FrameIn => ({
  port,
  tsUs,
  frame: F.ethernet('ff:ff:ff:ff:ff:ff', mac, 0x0806, F.arp(1, mac, ip, '00:00:00:00:00:00', target)),
});

/** The pods ask for their gateway, node 2 for this node: every neighbour known. */
const introductions = (): FrameIn[] => [arpAsk('pa', A.mac, A.ip, '10.244.1.1'), arpAsk('pb', B.mac, B.ip, '10.244.1.1'), arpAsk('up', N2.mac, N2.ip, NODE)];

const innerUdp = (src: string, dst: string, sport: number, dport: number, data: number[], ttl = 64, id = 0x1234, df = false): number[] =>
  F.ipv4({ src, dst, proto: 17, ttl, id, df }, F.udp(src, dst, sport, dport, data));

/** What node 2 sends: an inner IPv4 datagram in Ethernet in VXLAN in UDP, from its underlay address. */
function fromNode2(inner: number[], o: { vni?: number; src?: string; hdr?: number[]; innerDst?: string } = {}): Buffer {
  const vni = o.vni ?? 1;
  const hdr = o.hdr ?? [0x08, 0, 0, 0, (vni >> 16) & 255, (vni >> 8) & 255, vni & 255, 0];
  const src = o.src ?? N2.ip;
  const udp = F.udp(src, NODE, 51000, 8472, [...hdr, ...F.mac(o.innerDst ?? FLANNEL_MAC), ...F.mac(N2.vtepMac), 0x08, 0x00, ...inner]);
  udp[6] = udp[7] = 0;
  return F.ethernet(UP_MAC, N2.mac, 0x0800, F.ipv4({ src, dst: NODE, proto: 17 }, udp));
}

describe('replay: vxlan overlay', () => {
  it('encapsulates as Linux does, byte for byte, with one source port per flow', () => {
    const data = F.bytes(40, 3);
    const frames: FrameIn[] = [...introductions()];
    // Flow 1 twice, flow 2 once, flow 3 (another pod on node 2) once.
    const flows = [[40000, POD2], [40000, POD2], [40001, POD2], [40000, '10.244.2.6']] as const;
    flows.forEach(([sport, dst], i) =>
      frames.push({ port: 'pa', tsUs: T0 + (10 + i) * MS, frame: F.ethernet(GW_MAC, A.mac, 0x0800, innerUdp(A.ip, dst, sport, 53, data, 64, 0x100 + i)) }),
    );
    const run = runFrames(VXLAN, frames, 1, (dir) => {
      if (!findTool('tshark')) {
        if (inCI()) throw new Error('tshark is required under CI=true');
        return;
      }
      const rows = tsharkFields(join(dir, 'up.pcap'), ['vxlan.vni', 'ip.src', 'ip.dst', 'udp.dstport', 'eth.dst'], ['-d', 'udp.port==8472,vxlan', '-E', 'occurrence=a', '-Y', 'vxlan']);
      expect(rows).toHaveLength(4);
      expect(rows[0]).toEqual(['1', `${NODE},${A.ip}`, `${N2.ip},${POD2}`, '8472,53', `${N2.mac},${N2.vtepMac}`]);
    });
    const up = run.out.up.filter((f) => f.udp?.dport === 8472);
    expect(up).toHaveLength(4);
    const ports = up.map((f) => f.udp!.sport);
    expect(ports[1]).toBe(ports[0]);
    expect(new Set(ports).size).toBe(3);
    up.forEach((f, i) => {
      const [sport, dst] = flows[i];
      // The inner frame as node 2 must receive it: the VTEP MACs, TTL 63.
      const inner = F.ethernet(N2.vtepMac, FLANNEL_MAC, 0x0800, innerUdp(A.ip, dst, sport, 53, data, 63, 0x100 + i));
      const vx = [0x08, 0, 0, 0, 0, 0, 1, 0, ...inner];
      const sp = ports[i]!;
      const udp = [(sp >> 8) & 255, sp & 255, 0x21, 0x18, ((8 + vx.length) >> 8) & 255, (8 + vx.length) & 255, 0, 0, ...vx];
      const outerIp = F.ipv4({ src: NODE, dst: N2.ip, proto: 17, ttl: 64, id: f.ip!.id }, udp);
      const expected = F.ethernet(N2.mac, UP_MAC, 0x0800, outerIp);
      expect(f.bytes.equals(expected)).toBe(true);
      expect(f.vxlan).toMatchObject({ vni: 1, inner: { eth: { src: FLANNEL_MAC, dst: N2.vtepMac }, ip: { ttl: 63, src: A.ip, dst } } });
    });
  });

  it('decapsulates to the right pod, and drops wrong VNI, unknown VTEP and malformed headers with their reasons', () => {
    const toB = innerUdp(POD2, B.ip, 5000, 6000, F.bytes(30, 1), 63);
    const frames: FrameIn[] = [
      ...introductions(),
      { port: 'up', tsUs: T0 + 10 * MS, frame: fromNode2(toB) },
      { port: 'up', tsUs: T0 + 11 * MS, frame: fromNode2(toB, { vni: 7 }) },
      { port: 'up', tsUs: T0 + 12 * MS, frame: fromNode2(toB, { src: '192.168.50.13' }) },
      { port: 'up', tsUs: T0 + 13 * MS, frame: fromNode2(toB, { hdr: [0x00, 0, 0, 0, 0, 0, 1, 0] }) },
      { port: 'up', tsUs: T0 + 14 * MS, frame: fromNode2(toB, { hdr: [0x08, 0x40, 0, 0, 0, 0, 1, 0] }) },
    ];
    const run = runFrames(VXLAN, frames);
    expect(run.out.pa.filter((f) => f.ip)).toEqual([]);
    const toPodB = run.out.pb.filter((f) => f.ip);
    expect(toPodB).toHaveLength(1);
    expect(toPodB[0].eth).toMatchObject({ src: GW_MAC, dst: B.mac });
    expect(toPodB[0].ip).toMatchObject({ src: POD2, dst: B.ip, ttl: 62, checksumOk: true });
    expect(toPodB[0].bytes.subarray(34).equals(Buffer.from(toB.slice(20)))).toBe(true);
    expect(run.counters['vxlan-decap'].drops).toEqual({
      'vxlan.wrong-vni': 1,
      'vxlan.unknown-vtep': 1,
      'vxlan.malformed': 2,
    });
  });

  it('answers a DF packet over the overlay MTU with fragmentation needed, MTU 1450', () => {
    const frames: FrameIn[] = [
      ...introductions(),
      { port: 'pa', tsUs: T0 + 10 * MS, frame: F.ethernet(GW_MAC, A.mac, 0x0800, innerUdp(A.ip, POD2, 1, 2, F.bytes(1451 - 28, 2), 64, 1, true)) },
    ];
    const run = runFrames(VXLAN, frames);
    expect(run.out.up.filter((f) => f.udp?.dport === 8472)).toEqual([]);
    const errs = run.out.pa.filter((f) => f.icmp);
    expect(errs).toHaveLength(1);
    expect(errs[0].icmp).toMatchObject({ type: 3, code: 4 });
    expect(errs[0].bytes.readUInt16BE(34 + 6)).toBe(1450);
    expect(errs[0].ip).toMatchObject({ src: '10.244.1.1', dst: A.ip });
  });
});
