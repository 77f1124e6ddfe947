/**
 * Replay acceptance of Services (issue: Kubernetes Services): frames built by
 * test/helpers/frames.ts, written to pcaps and replayed on the lab node (captures/replay/
 * lab.yaml: pods A, B, C on cni0 10.244.1.0/24, uplink `up` 192.168.50.11/24, a link `slow`
 * towards 10.200.0.0/16 standing in for another node's pods) with nat.clusterCIDR and the
 * Services below, on the virtual clock. What leaves each port is decoded by our decoder, every
 * checksum verified (and by Wireshark where tshark is installed); endpoint choices read from
 * the replay trace. The node routes the Service network to the upstream router, as a real
 * node's default route does: a ClusterIP is a forwarded destination until DNAT.
 *
 * Changes of Services while flows run use the library's replay() with `changes`: the config
 * reloaded between two parts of the frames, as SIGHUP reloads it (an endpoint removed flushes
 * its UDP entries). More cases at the dataplane itself: test/unit/stage-services.test.ts.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig, replay } from '../../src/api/index.ts';
import * as F from '../helpers/frames.ts';
import { findTool, inCI, tsharkFields } from '../helpers/tshark.ts';
import { type FrameIn, type FramesRun, labConfigText, type OutFrame, runFrames } from './replay-helpers.ts';

const T0 = 1_700_000_000_000_000;
const SEC = 1_000_000;
const GW = { mac: '0a:58:0a:f4:01:01', ip: '10.244.1.1' };
const UP_MAC = '02:00:00:00:50:11';
const UPSTREAM_MAC = '02:00:00:00:50:01';
const NODE = '192.168.50.11';
const CLIENT = '203.0.113.5';
const A = { port: 'pa', mac: '0a:58:0a:f4:01:02', ip: '10.244.1.2' };
const B = { port: 'pb', mac: '0a:58:0a:f4:01:03', ip: '10.244.1.3' };
const C = { port: 'pc', mac: '0a:58:0a:f4:01:04', ip: '10.244.1.4' };
const REMOTE = '10.200.0.5';
type Pod = typeof A;

const SERVICES = `
nat: { clusterCIDR: 10.244.0.0/16 }
services:
  - name: web
    type: LoadBalancer
    clusterIP: 10.96.0.10
    loadBalancerIP: 192.168.50.200
    externalIPs: [198.51.100.7]
    ports: [{ name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080 }]
    endpoints: [{ ip: ${B.ip} }]
  - name: spread
    clusterIP: 10.96.0.20
    ports: [{ protocol: UDP, port: 53, targetPort: 5353 }]
    endpoints: [{ ip: ${B.ip} }, { ip: ${C.ip} }, { ip: ${REMOTE}, nodeName: node2 }]
  - name: sticky
    clusterIP: 10.96.0.21
    sessionAffinity: ClientIP
    sessionAffinityTimeoutSeconds: 10
    ports: [{ protocol: UDP, port: 53, targetPort: 5353 }]
    endpoints: [{ ip: ${B.ip} }, { ip: ${C.ip} }, { ip: ${REMOTE}, nodeName: node2 }]
  - name: local
    type: NodePort
    clusterIP: 10.96.0.22
    externalTrafficPolicy: Local
    ports: [{ name: a, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30081 }]
    endpoints: [{ ip: ${C.ip} }, { ip: ${REMOTE}, nodeName: node2 }]
  - name: elsewhere
    type: NodePort
    clusterIP: 10.96.0.23
    externalTrafficPolicy: Local
    ports: [{ protocol: TCP, port: 80, targetPort: 8080, nodePort: 30082 }]
    endpoints: [{ ip: ${REMOTE}, nodeName: node2 }]
  - name: self
    clusterIP: 10.96.0.30
    ports: [{ protocol: TCP, port: 80, targetPort: 8080 }]
    endpoints: [{ ip: ${A.ip} }]
  - name: empty
    clusterIP: 10.96.0.40
    ports: [{ protocol: TCP, port: 80, targetPort: 8080 }]
    endpoints: [{ ip: ${C.ip}, ready: false }]
`;

/** The lab node's routes plus the Service network's, and the Services: every replay of this file. */
const SERVICE_ROUTES = ['{ dst: 10.96.0.0/12, via: 192.168.50.1 }'];
const replayServices = (frames: FrameIn[], settle = 1, inspect?: (outDir: string) => void): FramesRun => runFrames(SERVICES, frames, settle, inspect, SERVICE_ROUTES);

const arpAsk = (port: string, mac: string, ip: string, target: string, tsUs = T0): FrameIn => ({
  port,
  tsUs,
  frame: F.ethernet('ff:ff:ff:ff:ff:ff', mac, 0x0806, F.arp(1, mac, ip, '00:00:00:00:00:00', target)),
});

/** Every pod asks for its gateway and the upstream router for the node: every neighbour known. */
const introductions = (tsUs = T0): FrameIn[] => [
  ...[A, B, C].map((p) => arpAsk(p.port, p.mac, p.ip, GW.ip, tsUs)),
  arpAsk('up', UPSTREAM_MAC, '192.168.50.1', NODE, tsUs),
];

const podUdp = (pod: Pod, tsUs: number, dst: string, sport: number, dport: number, seed = 1): FrameIn => ({
  port: pod.port,
  tsUs,
  frame: F.ethernet(GW.mac, pod.mac, 0x0800, F.ipv4({ src: pod.ip, dst, proto: 17 }, F.udp(pod.ip, dst, sport, dport, F.bytes(24, seed)))),
});

/** A pod's UDP frame to another pod on cni0 (bridged). */
const bridgedUdp = (from: Pod, to: Pod, tsUs: number, sport: number, dport: number): FrameIn => ({
  port: from.port,
  tsUs,
  frame: F.ethernet(to.mac, from.mac, 0x0800, F.ipv4({ src: from.ip, dst: to.ip, proto: 17 }, F.udp(from.ip, to.ip, sport, dport, F.bytes(40, 9)))),
});

const podTcp = (pod: Pod, tsUs: number, dst: string, sport: number, dport: number, flags: number, seq: number, ack: number, data: number[] = []): FrameIn => ({
  port: pod.port,
  tsUs,
  frame: F.ethernet(GW.mac, pod.mac, 0x0800, F.ipv4({ src: pod.ip, dst, proto: 6 }, F.tcp(pod.ip, dst, sport, dport, flags, seq, ack, data))),
});

/** A pod's TCP segment to another pod on cni0 (bridged: an endpoint answering its client). */
const bridgedTcp = (from: Pod, to: Pod, tsUs: number, sport: number, dport: number, flags: number, seq: number, ack: number, data: number[] = []): FrameIn => ({
  port: from.port,
  tsUs,
  frame: F.ethernet(to.mac, from.mac, 0x0800, F.ipv4({ src: from.ip, dst: to.ip, proto: 6 }, F.tcp(from.ip, to.ip, sport, dport, flags, seq, ack, data))),
});

const clientTcp = (tsUs: number, dst: string, sport: number, dport: number, flags: number, seq: number, ack: number): FrameIn => ({
  port: 'up',
  tsUs,
  frame: F.ethernet(UP_MAC, UPSTREAM_MAC, 0x0800, F.ipv4({ src: CLIENT, dst, proto: 6 }, F.tcp(CLIENT, dst, sport, dport, flags, seq, ack))),
});

const ipv4Of = (frames: OutFrame[]): OutFrame[] => frames.filter((f) => f.ip !== undefined);

/** The trace's Service notes, in order ("service default/web:http -> ..."). */
const serviceNotes = (trace: string[]): string[] => trace.map((l) => /: (service .*)$/.exec(l)?.[1]).filter((x): x is string => x !== undefined);

describe('replay: ClusterIP', () => {
  it('translates a TCP handshake and data to a ClusterIP both ways, every checksum right (ours and Wireshark\'s)', () => {
    const t = (ms: number): number => T0 + 1000 + ms * 1000;
    const frames = [
      ...introductions(),
      podTcp(A, t(0), '10.96.0.10', 40000, 80, F.TCP_SYN, 100, 0),
      bridgedTcp(B, A, t(10), 8080, 40000, F.TCP_SYN | F.TCP_ACK, 900, 101),
      podTcp(A, t(20), '10.96.0.10', 40000, 80, F.TCP_ACK, 101, 901),
      podTcp(A, t(30), '10.96.0.10', 40000, 80, F.TCP_ACK | F.TCP_PSH, 101, 901, F.bytes(100, 3)),
      bridgedTcp(B, A, t(40), 8080, 40000, F.TCP_ACK | F.TCP_PSH, 901, 201, F.bytes(300, 4)),
    ];
    let wireshark: string[][] = [];
    const tshark = findTool('tshark');
    const run = replayServices(frames, 1, (out) => {
      if (tshark === null) return;
      for (const port of ['pa', 'pb']) {
        wireshark.push(
          ...tsharkFields(join(out, `${port}.pcap`), ['ip.src', 'ip.dst', 'tcp.srcport', 'tcp.dstport', 'ip.checksum.status', 'tcp.checksum.status'], [
            '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', 'tcp',
          ]),
        );
      }
    });
    const toB = ipv4Of(run.out.pb);
    const toA = ipv4Of(run.out.pa);
    expect(toB.map((f) => [f.ip!.src, f.ip!.dst, f.tcp!.sport, f.tcp!.dport, f.tcp!.flags, f.ip!.checksumOk, f.tcp!.checksumOk])).toEqual([
      [A.ip, B.ip, 40000, 8080, 'S', true, true],
      [A.ip, B.ip, 40000, 8080, 'A', true, true],
      [A.ip, B.ip, 40000, 8080, 'PA', true, true],
    ]);
    expect(toA.map((f) => [f.ip!.src, f.ip!.dst, f.tcp!.sport, f.tcp!.dport, f.tcp!.flags, f.ip!.checksumOk, f.tcp!.checksumOk])).toEqual([
      ['10.96.0.10', A.ip, 80, 40000, 'SA', true, true],
      ['10.96.0.10', A.ip, 80, 40000, 'PA', true, true],
    ]);
    expect(toA[1].bytes.subarray(14 + 20 + 20)).toEqual(Buffer.from(F.bytes(300, 4)));
    if (tshark === null) {
      expect(inCI(), 'tshark is required when CI=true').toBe(false);
      console.log('replay-services: tshark not found, Wireshark checksum verdicts skipped');
      return;
    }
    // Wireshark's checksum status 1: good.
    expect(wireshark.every((r) => r[4] === '1' && r[5] === '1'), JSON.stringify(wireshark)).toBe(true);
    expect(wireshark).toHaveLength(5);
  });

  it('spreads 1,000 flows over 3 endpoints within statistical bounds, every packet of a flow to one endpoint', () => {
    const flows = 1000;
    const frames = [...introductions()];
    for (let k = 0; k < flows; k++) {
      // Two datagrams per flow, the second 0.4 ms after the first, flows 0.5 ms apart.
      frames.push(podUdp(A, T0 + 1000 + k * 500, '10.96.0.20', 20000 + k, 53, 1));
      frames.push(podUdp(A, T0 + 1000 + k * 500 + 400, '10.96.0.20', 20000 + k, 53, 2));
    }
    const run = replayServices(frames);
    const endpointOf = new Map<number, Set<string>>();
    const add = (where: string, f: OutFrame): void => {
      expect(f.udp).toMatchObject({ dport: 5353, checksumOk: true });
      expect(f.ip!.checksumOk).toBe(true);
      const set = endpointOf.get(f.udp!.sport!) ?? new Set<string>();
      set.add(`${where} ${f.ip!.dst}`);
      endpointOf.set(f.udp!.sport!, set);
    };
    for (const f of ipv4Of(run.out.pb)) add('pb', f);
    for (const f of ipv4Of(run.out.pc)) add('pc', f);
    for (const f of ipv4Of(run.out.slow)) add('slow', f);
    expect(endpointOf.size).toBe(flows);
    const counts = new Map<string, number>();
    for (const set of endpointOf.values()) {
      expect(set.size).toBe(1);
      const ep = [...set][0];
      counts.set(ep, (counts.get(ep) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual([`pb ${B.ip}`, `pc ${C.ip}`, `slow ${REMOTE}`]);
    // Pearson's chi-square against uniform, 2 degrees of freedom: 13.8 is its 0.1% tail.
    const expected = flows / 3;
    const chi2 = [...counts.values()].reduce((s, n) => s + (n - expected) ** 2 / expected, 0);
    expect(chi2).toBeLessThan(13.8);
    expect(ipv4Of(run.out.pb).length + ipv4Of(run.out.pc).length + ipv4Of(run.out.slow).length).toBe(2 * flows);
  });

  it('pins a client with ClientIP affinity while it keeps connecting, and lets the pin expire after 10 s without one', () => {
    const frames = [...introductions()];
    for (let k = 0; k < 8; k++) frames.push(podUdp(A, T0 + 1000 + k * SEC, '10.96.0.21', 30000 + k, 53));
    // The last new flow at 7 s, then 11 s of silence: the pin has expired at 18 s.
    const later = T0 + 18 * SEC;
    frames.push(...introductions(later - 1000));
    for (let k = 0; k < 8; k++) frames.push(podUdp(A, later + k * 1000, '10.96.0.21', 31000 + k, 53));
    const run = replayServices(frames);
    const notes = serviceNotes(run.trace).filter((n) => n.startsWith('service default/sticky'));
    expect(notes).toHaveLength(16);
    const target = (n: string): string => /-> (\S+)/.exec(n)![1];
    expect(notes[0]).toMatch(/\(random of 3\)$/);
    for (const n of notes.slice(1, 8)) expect(n).toBe(`service default/sticky:53/UDP -> ${target(notes[0])} (ClientIP affinity)`);
    // Each round: the first flow chooses, the 7 after it are pinned.
    expect(run.result.dataplane.conntrackHooks!.services.prerouting.pinned).toBe(7 + 7);
    expect(notes[8]).toMatch(/\(random of 3\)$/);
    for (const n of notes.slice(9)) expect(n).toBe(`service default/sticky:53/UDP -> ${target(notes[8])} (ClientIP affinity)`);
  });

  it('brings a UDP ClusterIP answer from an endpoint on the same bridge back from the Service address', () => {
    const frames = [...introductions(), podUdp(A, T0 + 1000, '10.96.0.20', 40001, 53)];
    const first = replayServices(frames);
    const sent = [...ipv4Of(first.out.pb).map(() => B), ...ipv4Of(first.out.pc).map(() => C)];
    if (sent.length === 0) throw new Error('seeded choice went to the remote endpoint; pick another source port');
    const ep = sent[0];
    const second = replayServices([...frames, bridgedUdp(ep, A, T0 + 2000, 5353, 40001)]);
    const [back] = ipv4Of(second.out.pa);
    expect(back.eth).toMatchObject({ src: ep.mac, dst: A.mac });
    expect(back.ip).toMatchObject({ src: '10.96.0.20', dst: A.ip, ttl: 64, checksumOk: true });
    expect(back.udp).toMatchObject({ sport: 53, dport: 40001, checksumOk: true });
  });
});

describe('replay: from outside the cluster', () => {
  /** A SYN from the client to dst:dport, the endpoint's SYN-ACK, and what came of both. */
  function handshake(dst: string, dport: number, endpoint: Pod): { atEndpoint: OutFrame; atClient: OutFrame } {
    const syn = clientTcp(T0 + 1000, dst, 50000, dport, F.TCP_SYN, 7, 0);
    const first = replayServices([...introductions(), syn]);
    const [atEndpoint] = ipv4Of(first.out[endpoint.port]);
    expect(atEndpoint, `SYN to ${dst}:${dport} at ${endpoint.port}`).toBeDefined();
    const synAck = {
      port: endpoint.port,
      tsUs: T0 + 2000,
      frame: F.ethernet(GW.mac, endpoint.mac, 0x0800, F.ipv4({ src: endpoint.ip, dst: atEndpoint.ip!.src, proto: 6 }, F.tcp(endpoint.ip, atEndpoint.ip!.src, 8080, atEndpoint.tcp!.sport!, F.TCP_SYN | F.TCP_ACK, 70, 8))),
    };
    const second = replayServices([...introductions(), syn, synAck]);
    const [atClient] = ipv4Of(second.out.up);
    return { atEndpoint, atClient };
  }

  for (const [what, dst, dport] of [
    ['a NodePort through the L3 port', NODE, 30080],
    ['the LoadBalancer IP', '192.168.50.200', 80],
    ['an external IP', '198.51.100.7', 80],
  ] as const) {
    it(`reaches ${what}, masqueraded to the bridge address (policy Cluster), and answers from it`, () => {
      const { atEndpoint, atClient } = handshake(dst, dport, B);
      expect(atEndpoint.ip).toMatchObject({ src: GW.ip, dst: B.ip, ttl: 63, checksumOk: true });
      expect(atEndpoint.tcp).toMatchObject({ dport: 8080, flags: 'S', checksumOk: true });
      // MASQUERADE --random-fully: the seeded generator's port, not the client's 50000.
      expect(atEndpoint.tcp!.sport).not.toBe(50000);
      expect(atClient.ip).toMatchObject({ src: dst, dst: CLIENT, ttl: 63, checksumOk: true });
      expect(atClient.tcp).toMatchObject({ sport: dport, dport: 50000, flags: 'SA', checksumOk: true });
    });
  }

  it('keeps the client address under externalTrafficPolicy Local, only to local endpoints, and drops when none is local', () => {
    const frames = [...introductions()];
    for (let k = 0; k < 20; k++) frames.push(clientTcp(T0 + 1000 + k * 1000, NODE, 51000 + k, 30081, F.TCP_SYN, 7, 0));
    frames.push(clientTcp(T0 + 30_000, NODE, 52000, 30082, F.TCP_SYN, 7, 0));
    const run = replayServices(frames);
    const toC = ipv4Of(run.out.pc);
    expect(toC).toHaveLength(20);
    for (const f of toC) {
      expect(f.ip).toMatchObject({ src: CLIENT, dst: C.ip, checksumOk: true });
      expect(f.tcp).toMatchObject({ dport: 8080, checksumOk: true });
    }
    expect(ipv4Of(run.out.slow)).toHaveLength(0);
    expect(ipv4Of(run.out.up)).toHaveLength(0);
    expect(run.counters.prerouting.drops['service.no-local-endpoint']).toBe(1);
  });
});

describe('replay: edge cases', () => {
  it('hairpin: a pod reaching itself through its Service is masqueraded to the bridge address, and the reply comes back from the Service', () => {
    const first = replayServices([...introductions(), podTcp(A, T0 + 1000, '10.96.0.30', 40000, 80, F.TCP_SYN, 1, 0)]);
    const [hair] = ipv4Of(first.out.pa);
    expect(hair.eth).toMatchObject({ src: GW.mac, dst: A.mac });
    expect(hair.ip).toMatchObject({ src: GW.ip, dst: A.ip, checksumOk: true });
    expect(hair.tcp).toMatchObject({ dport: 8080, flags: 'S', checksumOk: true });
    const natPort = hair.tcp!.sport!;
    const second = replayServices([
      ...introductions(),
      podTcp(A, T0 + 1000, '10.96.0.30', 40000, 80, F.TCP_SYN, 1, 0),
      podTcp(A, T0 + 2000, GW.ip, 8080, natPort, F.TCP_SYN | F.TCP_ACK, 50, 2),
    ]);
    const back = ipv4Of(second.out.pa)[1];
    expect(back.ip).toMatchObject({ src: '10.96.0.30', dst: A.ip, checksumOk: true });
    expect(back.tcp).toMatchObject({ sport: 80, dport: 40000, flags: 'SA', checksumOk: true });
  });

  it('answers a Service without a ready endpoint with ICMP port unreachable from the node, quoting what the client sent as forwarded (TTL 63)', () => {
    const run = replayServices([...introductions(), podTcp(A, T0 + 1000, '10.96.0.40', 40000, 80, F.TCP_SYN, 1, 0)]);
    const [err] = ipv4Of(run.out.pa);
    expect(err.ip).toMatchObject({ src: GW.ip, dst: A.ip, proto: 1, checksumOk: true });
    expect(err.icmp).toMatchObject({ type: 3, code: 3, checksumOk: true });
    // Linux's REJECT is at FORWARD for a ClusterIP: after ip_forward took one off the TTL.
    expect(err.icmp!.quoted!.ip).toMatchObject({ src: A.ip, dst: '10.96.0.40', ttl: 63 });
    expect(err.icmp!.quoted!.tcp).toMatchObject({ sport: 40000, dport: 80 });
    expect(ipv4Of(run.out.pc)).toHaveLength(0);
    expect(run.result.dataplane.conntrackHooks!.services.prerouting.rejected).toBe(1);
    expect(serviceNotes(run.trace)).toEqual(['service default/empty:80/TCP: no endpoints, rejected (icmp port unreachable)']);
  });
});

describe('replay: Services changed while flows run (replay() with changes)', () => {
  const dns = (endpoints: Pod[]): string => `
nat: { clusterCIDR: 10.244.0.0/16 }
services:
  - name: dns
    clusterIP: 10.96.0.50
    ports: [{ protocol: UDP, port: 53, targetPort: 5353 }]
    endpoints: [${endpoints.map((p) => `{ ip: ${p.ip} }`).join(', ')}]
`;
  const config = (endpoints: Pod[]) => parseConfig(labConfigText(dns(endpoints), SERVICE_ROUTES), 'lab.yaml');
  const inputs = (frames: FrameIn[]): Record<string, { bytes: Buffer; tsUs: number }[]> => {
    const by: Record<string, { bytes: Buffer; tsUs: number }[]> = {};
    for (const f of frames) (by[f.port] ??= []).push({ bytes: f.frame, tsUs: f.tsUs });
    return by;
  };

  it('flushes a removed UDP endpoint\'s entries: the next datagram of its flows goes to a remaining endpoint, flows to that one untouched', async () => {
    const N = 12;
    const CHANGE = T0 + 1 * SEC;
    const flows = Array.from({ length: N }, (_, i) => 20000 + i);
    const frames: FrameIn[] = [
      ...introductions(),
      ...flows.map((sport, i) => podUdp(A, T0 + 1000 + i * 100, '10.96.0.50', sport, 53, 1)),
      // After B is removed: the second datagram of every flow, then C answers each.
      ...flows.map((sport, i) => podUdp(A, T0 + 2 * SEC + i * 100, '10.96.0.50', sport, 53, 2)),
      ...flows.map((sport, i) => bridgedUdp(C, A, T0 + 3 * SEC + i * 100, 5353, sport)),
    ];
    const r = await replay({ config: config([B, C]), inputs: inputs(frames), trace: true, changes: [{ atUs: CHANGE, config: config([C]) }] });
    expect(r.reloads).toEqual([{ atUs: CHANGE, changes: ['services: 1 → 1'] }]);

    const udpTo = (port: string, before: boolean): number[] =>
      r.ports[port]
        .filter((f) => f.decoded.udp !== undefined && f.tsUs < CHANGE === before)
        .map((f) => {
          expect([f.decoded.ip?.src, f.decoded.udp?.dport, f.decoded.udp?.checksumOk]).toEqual([A.ip, 5353, true]);
          return f.decoded.udp!.sport!;
        });
    const onB = udpTo('pb', true);
    const onC = udpTo('pc', true);
    // The seeded draws sent flows to both endpoints, every flow to one.
    expect(onB.length).toBeGreaterThan(0);
    expect(onC.length).toBeGreaterThan(0);
    expect([...onB, ...onC].sort()).toEqual(flows);

    // After the change nothing reaches B: its flows' entries were flushed and drawn again.
    expect(udpTo('pb', false)).toEqual([]);
    expect(udpTo('pc', false)).toEqual(flows);
    const after = r.trace!.slice(r.trace!.findIndex((l) => l.startsWith('change at 1700000001.000000: config reloaded')));
    expect(after.length).toBeGreaterThan(1);
    // New choices after the change only for B's flows (C's kept their entries), all to C.
    expect(serviceNotes(after)).toEqual(onB.map(() => expect.stringMatching(/^service default\/dns:53\/UDP -> 10\.244\.1\.4:5353 /)));

    // C's answers come back from the Service address, to every flow.
    const back = r.ports.pa.filter((f) => f.decoded.udp !== undefined);
    expect(back.map((f) => [f.decoded.ip?.src, f.decoded.udp?.sport, f.decoded.udp?.dport, f.decoded.udp?.checksumOk])).toEqual(flows.map((sport) => ['10.96.0.50', 53, sport, true]));
  });
});
