/**
 * Replay acceptance of connection tracking and masquerade: frames built by
 * test/helpers/frames.ts, written to pcaps and replayed on the lab node (captures/replay/
 * lab.yaml) with `nat: { clusterCIDR: 10.244.0.0/16 }`, on the virtual clock: what leaves
 * each port, decoded by our decoder and, where tshark is installed, checked by Wireshark's
 * checksum verdicts too; conntrack states and timeouts from the replay trace.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONNTRACK_TIMEOUTS } from '../../src/tables/conntrack.ts';
import * as F from '../helpers/frames.ts';
import { findTool, inCI, tsharkFields } from '../helpers/tshark.ts';
import { type FrameIn, type OutFrame, runFrames } from './replay-helpers.ts';

const T0 = 1_700_000_000_000_000;
const SEC = 1_000_000;
const NAT = 'nat: { clusterCIDR: 10.244.0.0/16 }\n';
const GW_MAC = '0a:58:0a:f4:01:01';
const UP_MAC = '02:00:00:00:50:11';
const UPSTREAM_MAC = '02:00:00:00:50:01';
const NODE = '192.168.50.11';
const SERVER = '203.0.113.5';
const A = { port: 'pa', mac: '0a:58:0a:f4:01:02', ip: '10.244.1.2' };
const B = { port: 'pb', mac: '0a:58:0a:f4:01:03', ip: '10.244.1.3' };
type Pod = typeof A;

const arpAsk = (port: string, mac: string, ip: string, target: string, tsUs = T0): FrameIn => ({
  port,
  tsUs,
  frame: F.ethernet('ff:ff:ff:ff:ff:ff', mac, 0x0806, F.arp(1, mac, ip, '00:00:00:00:00:00', target)),
});

/** Both pods ask for their gateway and the upstream router for the node: every neighbour known. */
const introductions = (): FrameIn[] => [
  arpAsk('pa', A.mac, A.ip, '10.244.1.1'),
  arpAsk('pb', B.mac, B.ip, '10.244.1.1'),
  arpAsk('up', UPSTREAM_MAC, '192.168.50.1', NODE),
];

const podUdp = (pod: Pod, tsUs: number, sport: number, dport = 53, dst = SERVER): FrameIn => ({
  port: pod.port,
  tsUs,
  frame: F.ethernet(GW_MAC, pod.mac, 0x0800, F.ipv4({ src: pod.ip, dst, proto: 17 }, F.udp(pod.ip, dst, sport, dport, F.bytes(24, sport)))),
});

const serverUdp = (tsUs: number, sport: number, dport: number, src = SERVER): FrameIn => ({
  port: 'up',
  tsUs,
  frame: F.ethernet(UP_MAC, UPSTREAM_MAC, 0x0800, F.ipv4({ src, dst: NODE, proto: 17 }, F.udp(src, NODE, sport, dport, F.bytes(40, dport)))),
});

const podTcp = (pod: Pod, tsUs: number, sport: number, flags: number, seq: number, ack: number, data: number[] = []): FrameIn => ({
  port: pod.port,
  tsUs,
  frame: F.ethernet(GW_MAC, pod.mac, 0x0800, F.ipv4({ src: pod.ip, dst: SERVER, proto: 6 }, F.tcp(pod.ip, SERVER, sport, 443, flags, seq, ack, data))),
});

const serverTcp = (tsUs: number, dport: number, flags: number, seq: number, ack: number, data: number[] = []): FrameIn => ({
  port: 'up',
  tsUs,
  frame: F.ethernet(UP_MAC, UPSTREAM_MAC, 0x0800, F.ipv4({ src: SERVER, dst: NODE, proto: 6 }, F.tcp(SERVER, NODE, 443, dport, flags, seq, ack, data))),
});

const ipv4Of = (frames: OutFrame[]): OutFrame[] => frames.filter((f) => f.ip !== undefined);

/** The trace's conntrack notes for the input frame received at `tsUs`, e.g. "ct new (...)". */
function ctNotes(trace: string[], tsUs: number): string[] {
  const at = `at ${(tsUs / 1e6).toFixed(6)} `;
  const start = trace.findIndex((l) => l.startsWith('#') && l.includes(at));
  if (start < 0) return [];
  const end = trace.findIndex((l, i) => i > start && (l.startsWith('#') || l.startsWith('timers')));
  return trace
    .slice(start, end < 0 ? undefined : end)
    .map((l) => /: (ct .*)$/.exec(l)?.[1])
    .filter((x): x is string => x !== undefined);
}

describe('replay: masquerade', () => {
  it('masquerades two pods with the same source port to one server: the first keeps it, the second gets another; replies reach the right pod', () => {
    const second = T0 + 10_000;
    const run1 = runFrames(NAT, [...introductions(), podUdp(A, T0 + 1000, 40000), podUdp(B, second, 40000)]);
    const [fromA, fromB] = ipv4Of(run1.out.up);
    expect(fromA.ip).toMatchObject({ src: NODE, dst: SERVER, ttl: 63, checksumOk: true });
    expect(fromA.udp).toMatchObject({ sport: 40000, dport: 53, checksumOk: true });
    expect(fromB.ip).toMatchObject({ src: NODE, dst: SERVER, checksumOk: true });
    expect(fromB.udp).toMatchObject({ dport: 53, checksumOk: true });
    const bPort = fromB.udp!.sport!;
    expect(bPort).not.toBe(40000);

    // The same inputs plus the server's answers to both translated ports (the choice is seeded, so it repeats).
    const run2 = runFrames(NAT, [...introductions(), podUdp(A, T0 + 1000, 40000), podUdp(B, second, 40000), serverUdp(T0 + SEC, 53, bPort), serverUdp(T0 + SEC + 1000, 53, 40000)]);
    expect(ipv4Of(run2.out.up)[1].udp!.sport).toBe(bPort);
    const [toB] = ipv4Of(run2.out.pb);
    const [toA] = ipv4Of(run2.out.pa);
    expect(toB.eth).toMatchObject({ src: GW_MAC, dst: B.mac });
    expect(toB.ip).toMatchObject({ src: SERVER, dst: B.ip, ttl: 63, checksumOk: true });
    expect(toB.udp).toMatchObject({ sport: 53, dport: 40000, checksumOk: true });
    expect(toA.ip).toMatchObject({ src: SERVER, dst: A.ip, checksumOk: true });
    expect(toA.udp).toMatchObject({ sport: 53, dport: 40000, checksumOk: true });
    expect(ipv4Of(run2.out.pa)).toHaveLength(1);
    expect(ipv4Of(run2.out.pb)).toHaveLength(1);
    expect(ctNotes(run2.trace, T0 + 1000)).toEqual(['ct new (entry 0, original; expires in 30 s)']);
    expect(ctNotes(run2.trace, T0 + SEC)).toEqual(['ct established (entry 1, reply; expires in 30 s)']);
  });

  it('brings an ICMP port unreachable from outside about a masqueraded flow to the pod, both headers translated, every checksum right', () => {
    const sent = podUdp(B, T0 + 2000, 40000);
    // A's flow first, so B's source port is remapped and the quote must change port too.
    const first = runFrames(NAT, [...introductions(), podUdp(A, T0 + 1000, 40000), sent]);
    const wire = ipv4Of(first.out.up)[1].bytes;
    const quoted = [...wire.subarray(14, 14 + 28)];
    const natPort = wire.readUInt16BE(34);
    expect(natPort).not.toBe(40000);
    const error: FrameIn = { port: 'up', tsUs: T0 + SEC, frame: F.ethernet(UP_MAC, UPSTREAM_MAC, 0x0800, F.ipv4({ src: SERVER, dst: NODE, proto: 1 }, F.icmpError(3, 3, quoted))) };
    let wireshark: string[][] = [];
    const tshark = findTool('tshark');
    const run = runFrames(NAT, [...introductions(), podUdp(A, T0 + 1000, 40000), sent, error], 1, (out) => {
      if (tshark !== null) {
        wireshark = tsharkFields(join(out, 'pb.pcap'), ['ip.checksum.status', 'icmp.checksum.status', 'ip.src', 'ip.dst', 'udp.srcport'], [
          '-o', 'ip.check_checksum:TRUE', '-E', 'occurrence=a', '-E', 'aggregator=,', 'icmp',
        ]);
      }
    });
    const [err] = ipv4Of(run.out.pb);
    expect(err.ip).toMatchObject({ src: SERVER, dst: B.ip, proto: 1, ttl: 63, checksumOk: true });
    expect(err.icmp).toMatchObject({ type: 3, code: 3, checksumOk: true });
    expect(err.icmp!.quoted!.ip).toMatchObject({ src: B.ip, dst: SERVER, checksumOk: true });
    expect(err.icmp!.quoted!.udp).toMatchObject({ sport: 40000, dport: 53 });
    // The quoted UDP checksum is the one B sent (its source address and port are back).
    expect(err.bytes.readUInt16BE(14 + 20 + 8 + 20 + 6)).toBe(sent.frame.readUInt16BE(14 + 20 + 6));
    expect(ipv4Of(run.out.pa)).toHaveLength(0);
    // RELATED: the entry's timer is not refreshed by an error about it.
    expect(ctNotes(run.trace, T0 + SEC)).toEqual(['ct related (entry 1, reply; expires in 29 s)']);
    if (tshark === null) {
      expect(inCI(), 'tshark is required when CI=true').toBe(false);
      console.log('replay-nat: tshark not found, Wireshark checksum verdicts skipped');
      return;
    }
    // Outer and quoted IPv4 header checksums good (1), ICMP checksum good; addresses outer then quoted.
    expect(wireshark).toEqual([['1,1', '1', `${SERVER},${B.ip}`, `${B.ip},${SERVER}`, '40000']]);
  });
});

describe('replay: conntrack timeouts on the virtual clock', () => {
  it('expires an unreplied UDP entry at 30 s: a reply at 29 s is translated back, one at 31 s is not', () => {
    const run = runFrames(NAT, [
      ...introductions(),
      podUdp(A, T0 + 1000, 40001),
      podUdp(A, T0 + 2000, 40002),
      serverUdp(T0 + 1000 + 29 * SEC, 53, 40001),
      // The upstream router makes itself known again (its neighbour entry has gone stale).
      arpAsk('up', UPSTREAM_MAC, '192.168.50.1', NODE, T0 + 31 * SEC),
      serverUdp(T0 + 2000 + 31 * SEC, 53, 40002),
    ], 200);
    const toA = ipv4Of(run.out.pa);
    expect(toA.map((f) => [f.ip!.dst, f.udp?.dport])).toEqual([[A.ip, 40001]]);
    // The late reply met no entry: a new one, to the node itself, which has no such port, and
    // the port unreachable the node answers is RELATED to that new entry.
    expect(ctNotes(run.trace, T0 + 2000 + 31 * SEC)).toEqual(['ct new (entry 1, original; expires in 30 s)', 'ct related (entry 1, reply; expires in 30 s)']);
    const unreachable = ipv4Of(run.out.up).filter((f) => f.icmp?.type === 3);
    expect(unreachable.map((f) => [f.ip!.dst, f.icmp!.code, f.icmp!.quoted!.udp!.dport])).toEqual([[SERVER, 3, 40002]]);
    // The 40002 entry had expired by then (destroyed on its timer, or by the lookup that found it past its deadline).
    const ct = run.result.dataplane.ctx.conntrack!;
    expect(ct.expired).toBeGreaterThanOrEqual(1);
    // The clock runs on 200 s after the last frame: expiry timers reclaim every entry.
    expect(ct.count).toBe(0);
    expect(ct.expired).toBe(3);
  });

  it('moves a TCP entry through handshake, data and FIN with Linux\'s timeouts (kube-proxy\'s established), and an RST to CLOSE', () => {
    const t = (ms: number): number => T0 + 1000 + ms * 1000;
    const frames = [
      ...introductions(),
      podTcp(A, t(0), 41000, F.TCP_SYN, 100, 0),
      serverTcp(t(10), 41000, F.TCP_SYN | F.TCP_ACK, 900, 101),
      podTcp(A, t(20), 41000, F.TCP_ACK, 101, 901),
      podTcp(A, t(30), 41000, F.TCP_ACK | F.TCP_PSH, 101, 901, F.bytes(100, 1)),
      serverTcp(t(40), 41000, F.TCP_ACK, 901, 201),
      podTcp(A, t(50), 41000, F.TCP_FIN | F.TCP_ACK, 201, 901),
      serverTcp(t(60), 41000, F.TCP_FIN | F.TCP_ACK, 901, 202),
      podTcp(A, t(70), 41000, F.TCP_ACK, 202, 902),
      // A second connection, reset by the server once established.
      podTcp(A, t(100), 41001, F.TCP_SYN, 100, 0),
      serverTcp(t(110), 41001, F.TCP_SYN | F.TCP_ACK, 900, 101),
      podTcp(A, t(120), 41001, F.TCP_ACK, 101, 901),
      serverTcp(t(130), 41001, F.TCP_RST, 901, 0),
    ];
    const run = runFrames(NAT, frames);
    const to = DEFAULT_CONNTRACK_TIMEOUTS;
    const note = (ms: number) => ctNotes(run.trace, t(ms))[0];
    expect(note(0)).toBe(`ct new (entry 0, original; SYN_SENT, expires in ${to.tcpSynSent} s)`);
    expect(note(10)).toBe(`ct established (entry 0, reply; SYN_RECV, expires in ${to.tcpSynRecv} s)`);
    expect(note(20)).toBe(`ct established (entry 0, original; ESTABLISHED, expires in ${to.tcpEstablished} s)`);
    expect(to.tcpEstablished).toBe(86400);
    expect(note(30)).toBe(`ct established (entry 0, original; ESTABLISHED, expires in 86400 s)`);
    expect(note(40)).toBe(`ct established (entry 0, reply; ESTABLISHED, expires in 86400 s)`);
    expect(note(50)).toBe(`ct established (entry 0, original; FIN_WAIT, expires in ${to.tcpFinWait} s)`);
    expect(note(60)).toBe(`ct established (entry 0, reply; LAST_ACK, expires in ${to.tcpLastAck} s)`);
    expect(note(70)).toBe(`ct established (entry 0, original; TIME_WAIT, expires in ${to.tcpTimeWait} s)`);
    expect(note(130)).toBe(`ct established (entry 1, reply; CLOSE, expires in ${to.tcpClose} s)`);
    // Every segment went through, translated each way.
    expect(ipv4Of(run.out.up).filter((f) => f.tcp).map((f) => [f.ip!.src, f.tcp!.sport, f.tcp!.flags])).toEqual([
      [NODE, 41000, 'S'], [NODE, 41000, 'A'], [NODE, 41000, 'PA'], [NODE, 41000, 'FA'], [NODE, 41000, 'A'],
      [NODE, 41001, 'S'], [NODE, 41001, 'A'],
    ]);
    expect(ipv4Of(run.out.pa).filter((f) => f.tcp).map((f) => [f.ip!.dst, f.tcp!.dport, f.tcp!.flags, f.tcp!.checksumOk])).toEqual([
      [A.ip, 41000, 'SA', true], [A.ip, 41000, 'A', true], [A.ip, 41000, 'FA', true],
      [A.ip, 41001, 'SA', true], [A.ip, 41001, 'R', true],
    ]);
  });

  it('drops an ACK that starts nothing when it would be forwarded (ctstate INVALID)', () => {
    const run = runFrames(NAT, [...introductions(), podTcp(A, T0 + 1000, 41000, F.TCP_ACK, 5, 7)]);
    expect(ipv4Of(run.out.up)).toHaveLength(0);
    expect(run.counters.postrouting.drops).toEqual({ 'conntrack.invalid': 1 });
    expect(ctNotes(run.trace, T0 + 1000)).toEqual(['ct invalid']);
    expect(run.result.dataplane.ctx.conntrack!.count).toBe(0);
  });
});

describe('replay: a full table', () => {
  it('early-drops an unassured entry, then drops new flows, while an established flow keeps going', () => {
    const t = (ms: number): number => T0 + 1000 + ms * 1000;
    const assuredUdp = (pod: Pod, ms: number, port: number): FrameIn[] => [podUdp(pod, t(ms), port), serverUdp(t(ms + 1), 53, port), podUdp(pod, t(ms + 2), port)];
    const frames = [
      ...introductions(),
      // The established flow, ASSURED once the handshake is done.
      podTcp(A, t(0), 41000, F.TCP_SYN, 100, 0),
      serverTcp(t(1), 41000, F.TCP_SYN | F.TCP_ACK, 900, 101),
      podTcp(A, t(2), 41000, F.TCP_ACK, 101, 901),
      // Two ASSURED UDP flows and one unreplied: the table (max 4) is full.
      ...assuredUdp(B, 10, 50001),
      ...assuredUdp(B, 20, 50002),
      podUdp(B, t(30), 50003),
      // A new flow: the unreplied entry is evicted for it (early drop); it becomes ASSURED too.
      ...assuredUdp(B, 40, 50004),
      // Now every entry is ASSURED: a new flow is dropped.
      podUdp(B, t(50), 50005),
      // The established flow goes on, both ways.
      podTcp(A, t(60), 41000, F.TCP_ACK | F.TCP_PSH, 101, 901, F.bytes(50, 2)),
      serverTcp(t(61), 41000, F.TCP_ACK, 901, 151),
    ];
    const run = runFrames(NAT + 'conntrack: { max: 4 }\n', frames);
    const ct = run.result.dataplane.ctx.conntrack!;
    expect([ct.earlyDrop, ct.drop]).toEqual([1, 1]);
    expect(run.counters.prerouting.drops).toEqual({ 'conntrack.table-full': 1 });
    const outPorts = ipv4Of(run.out.up).filter((f) => f.udp).map((f) => f.udp!.sport);
    expect(outPorts).toEqual([50001, 50001, 50002, 50002, 50003, 50004, 50004]);
    const tcpOut = ipv4Of(run.out.up).filter((f) => f.tcp);
    expect(tcpOut.at(-1)).toMatchObject({ ip: { src: NODE }, tcp: { sport: 41000, flags: 'PA', checksumOk: true } });
    const tcpIn = ipv4Of(run.out.pa).filter((f) => f.tcp);
    expect(tcpIn.at(-1)).toMatchObject({ ip: { dst: A.ip }, tcp: { dport: 41000, flags: 'A', checksumOk: true } });
    expect(ctNotes(run.trace, t(61))).toEqual(['ct established (entry 0, reply; ESTABLISHED, expires in 86400 s)']);
  });
});
