/**
 * Writes the input pcaps of the replay tests into captures/replay/<case>/<port>.pcap.
 * Frames come from test/helpers/frames.ts, a builder independent of src/wire.
 * Run: npx tsx scripts/make-replay-fixtures.ts   (the output is committed; rerunning must not change it)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { arp, bytes, ethernet, icmpEcho, ipv4, pcapFile, udp, type PcapRecordIn } from '../test/helpers/frames.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'captures', 'replay');

export const T0 = 1_700_000_000_000_000; // µs
export const GW_MAC = '0a:58:0a:f4:01:01';
export const A = { mac: '0a:58:0a:f4:01:02', ip: '10.244.1.2' };
export const B = { mac: '0a:58:0a:f4:01:03', ip: '10.244.1.3' };
export const UPSTREAM = { mac: '02:00:00:00:50:01', ip: '192.168.50.1' };
export const UP_MAC = '02:00:00:00:50:11';
const BCAST = 'ff:ff:ff:ff:ff:ff';

const ETH_IP = 0x0800;
const ETH_ARP = 0x0806;

/** Pod A asks for its gateway, as every pod does before its first routed packet. */
const arpForGateway = (): Buffer => ethernet(BCAST, A.mac, ETH_ARP, arp(1, A.mac, A.ip, '00:00:00:00:00:00', '10.244.1.1'));
const udpFromA = (dst: string, o: { ttl?: number; df?: boolean; size?: number } = {}): Buffer =>
  ethernet(GW_MAC, A.mac, ETH_IP, ipv4({ src: A.ip, dst, proto: 17, ttl: o.ttl, df: o.df, id: 0x4242 }, udp(A.ip, dst, 40000, 53, bytes(o.size ?? 32))));

const cases: Record<string, Record<string, PcapRecordIn[]>> = {
  'flood-learn': {
    pa: [
      { tsUs: T0, frame: ethernet(B.mac, A.mac, ETH_IP, ipv4({ src: A.ip, dst: B.ip, proto: 17 }, udp(A.ip, B.ip, 1000, 2000, bytes(20)))) },
      { tsUs: T0 + 200_000, frame: ethernet(B.mac, A.mac, ETH_IP, ipv4({ src: A.ip, dst: B.ip, proto: 17, id: 2 }, udp(A.ip, B.ip, 1000, 2000, bytes(20, 2)))) },
    ],
    pb: [{ tsUs: T0 + 100_000, frame: ethernet(A.mac, B.mac, ETH_IP, ipv4({ src: B.ip, dst: A.ip, proto: 17 }, udp(B.ip, A.ip, 2000, 1000, bytes(20, 3)))) }],
  },
  'arp-gateway': {
    pa: [{ tsUs: T0, frame: arpForGateway() }],
  },
  'ping-gateway': {
    pa: [
      { tsUs: T0, frame: arpForGateway() },
      { tsUs: T0 + 10_000, frame: ethernet(GW_MAC, A.mac, ETH_IP, ipv4({ src: A.ip, dst: '10.244.1.1', proto: 1, id: 7 }, icmpEcho(8, 0x77, 1, bytes(56)))) },
    ],
  },
  'routed-arp': {
    pa: [{ tsUs: T0, frame: udpFromA('203.0.113.5') }],
    up: [{ tsUs: T0 + 50_000, frame: ethernet(UP_MAC, UPSTREAM.mac, ETH_ARP, arp(2, UPSTREAM.mac, UPSTREAM.ip, UP_MAC, '192.168.50.11')) }],
  },
  'ttl-expiry': {
    pa: [
      { tsUs: T0, frame: arpForGateway() },
      { tsUs: T0 + 10_000, frame: udpFromA('203.0.113.5', { ttl: 1 }) },
    ],
  },
  'no-route': {
    pa: [
      { tsUs: T0, frame: arpForGateway() },
      { tsUs: T0 + 10_000, frame: udpFromA('198.51.100.7') },
    ],
  },
  'neigh-fail': {
    pa: [
      { tsUs: T0, frame: arpForGateway() },
      { tsUs: T0 + 10_000, frame: udpFromA('192.168.50.99') },
    ],
  },
  'frag-needed': {
    pa: [
      { tsUs: T0, frame: arpForGateway() },
      { tsUs: T0 + 10_000, frame: udpFromA('10.200.1.1', { df: true, size: 1372 }) },
      { tsUs: T0 + 20_000, frame: udpFromA('10.200.1.1', { df: false, size: 1372 }) },
    ],
  },
  malformed: {
    pa: [
      { tsUs: T0, frame: arpForGateway() },
      // A runt: shorter than an Ethernet header.
      { tsUs: T0 + 1_000, frame: Buffer.from(bytes(10)) },
      // Bad IPv4 header checksum.
      { tsUs: T0 + 2_000, frame: ethernet(GW_MAC, A.mac, ETH_IP, ipv4({ src: A.ip, dst: '10.244.1.1', proto: 1, badChecksum: true }, icmpEcho(8, 1, 1, bytes(8)))) },
      // IPv6 version nibble in an IPv4 EtherType.
      { tsUs: T0 + 3_000, frame: ethernet(GW_MAC, A.mac, ETH_IP, [0x60, ...ipv4({ src: A.ip, dst: '10.244.1.1', proto: 1 }, icmpEcho(8, 1, 2, bytes(8))).slice(1)]) },
      // Total length claims more than the frame carries.
      { tsUs: T0 + 4_000, frame: ethernet(GW_MAC, A.mac, ETH_IP, ipv4({ src: A.ip, dst: '10.244.1.1', proto: 1 }, icmpEcho(8, 1, 3, bytes(64))).slice(0, 40)) },
      // And a good echo request after them all.
      { tsUs: T0 + 5_000, frame: ethernet(GW_MAC, A.mac, ETH_IP, ipv4({ src: A.ip, dst: '10.244.1.1', proto: 1 }, icmpEcho(8, 1, 4, bytes(8)))) },
    ],
  },
};

for (const [name, ports] of Object.entries(cases)) {
  for (const [port, records] of Object.entries(ports)) {
    const file = join(root, name, `${port}.pcap`);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, pcapFile(records));
  }
}
process.stdout.write(`wrote ${Object.keys(cases).length} cases under captures/replay/\n`);
