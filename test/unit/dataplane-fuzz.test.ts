/**
 * Bad input never crashes the dataplane: 200,000 random and mutated frames (truncations, bit
 * flips, lying length fields, random EtherTypes) on every port of the lab, with time moving
 * on so timers fire. No exception may escape, every slot must come back to the pool, and
 * every frame must be accounted for as processed by ethernet-input.
 *
 * The same again with connection tracking and masquerade on (`nat`), with seeds that make
 * flows leave and come back translated (TCP, UDP, echo, fragments, ICMP errors quoting
 * them); then, once the clock has passed the longest conntrack timeout, no entry is left.
 * And with Services (ClusterIP, NodePort with a Local policy, ClientIP affinity, one without
 * endpoints), seeds that reach them and answer from their endpoints, and the Services changed
 * every few thousand frames (endpoints removed and added, UDP entries flushed meanwhile).
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { Random } from '../../src/core/random.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import type { ServiceSpec } from '../../src/tables/service-spec.ts';
import { mutate, seeds } from '../helpers/fuzz-frames.ts';
import * as F from '../helpers/frames.ts';
import { A, B, C, GW, LAB, T0, UP } from './stage-harness.test.ts';

const SERVER = '203.0.113.5';
const UPSTREAM2_MAC = '02:00:00:00:50:02';

/** Frames of masqueraded flows both ways, and errors about them. */
function natSeeds(): Buffer[] {
  const out = (proto: number, l4: number[]): Buffer => F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: SERVER, proto }, l4));
  const back = (proto: number, l4: number[], ttl = 64): Buffer => F.ethernet(UP.mac, UPSTREAM2_MAC, 0x0800, F.ipv4({ src: SERVER, dst: UP.ip, proto, ttl }, l4));
  const sentUdp = F.ipv4({ src: UP.ip, dst: SERVER, proto: 17 }, F.udp(UP.ip, SERVER, 40000, 53, F.bytes(8)));
  const sentTcp = F.ipv4({ src: UP.ip, dst: SERVER, proto: 6 }, F.tcp(UP.ip, SERVER, 41000, 443, F.TCP_SYN, 1, 0));
  const big = F.udp(A.ip, SERVER, 40001, 53, F.bytes(2000, 3));
  const frag = (off: number, mf: boolean): Buffer => F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: SERVER, proto: 17, id: 9, mf, fragOffset: off }, big.slice(off, off + 1200)));
  return [
    out(17, F.udp(A.ip, SERVER, 40000, 53, F.bytes(8))),
    back(17, F.udp(SERVER, UP.ip, 53, 40000, F.bytes(8))),
    back(17, F.udp(SERVER, UP.ip, 53, 40000, F.bytes(8)), 1),
    out(6, F.tcp(A.ip, SERVER, 41000, 443, F.TCP_SYN, 1, 0)),
    back(6, F.tcp(SERVER, UP.ip, 443, 41000, F.TCP_SYN | F.TCP_ACK, 9, 2)),
    out(6, F.tcp(A.ip, SERVER, 41000, 443, F.TCP_ACK, 2, 10)),
    out(6, F.tcp(A.ip, SERVER, 41000, 443, F.TCP_FIN | F.TCP_ACK, 2, 10)),
    back(6, F.tcp(SERVER, UP.ip, 443, 41000, F.TCP_RST, 10, 0)),
    out(1, F.icmpEcho(8, 7, 1, F.bytes(8))),
    back(1, F.icmpEcho(0, 7, 1, F.bytes(8))),
    back(1, F.icmpError(3, 3, sentUdp.slice(0, 28))),
    back(1, F.icmpError(11, 0, sentTcp)),
    back(1, F.icmpError(3, 4, sentUdp.slice(0, 24), 1400)),
    frag(0, true),
    frag(1200, false),
    F.ethernet(B.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: B.ip, proto: 6 }, F.tcp(A.ip, B.ip, 5, 6, F.TCP_SYN, 1, 0))),
  ];
}

const VIP = '10.96.0.10';

/** Services over pods A, B, C and a remote pod; `round` varies their endpoints. */
function services(round: number): ServiceSpec[] {
  const ep = (ip: string, o: { ready?: boolean; nodeName?: string; terminating?: boolean; serving?: boolean } = {}) => ({ ip, ready: true, nodeName: 'node1', ...o });
  const all = [ep(A.ip), ep(B.ip), ep(C.ip, { ready: false, serving: true, terminating: true }), ep('10.244.2.5', { nodeName: 'node2' })];
  const base = {
    namespace: 'default',
    externalIPs: ['198.51.100.7'],
    sessionAffinityTimeoutSeconds: 5,
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
  };
  return [
    {
      ...base,
      name: 'web',
      type: 'NodePort',
      clusterIP: VIP,
      sessionAffinity: round % 3 === 0 ? 'ClientIP' : 'None',
      externalTrafficPolicy: round % 2 === 0 ? 'Local' : 'Cluster',
      ports: [
        { name: 'dns', protocol: 'UDP', port: 53, targetPort: 5353, nodePort: 30053 },
        { name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 },
      ],
      endpoints: all.filter((_, k) => ((round >> k) & 1) === 0),
    },
    { ...base, name: 'empty', type: 'ClusterIP', clusterIP: '10.96.0.40', externalIPs: [], sessionAffinity: 'None', ports: [{ protocol: 'UDP', port: 53, targetPort: 53 }], endpoints: [] },
  ];
}

/** Frames to the Services and answers from their endpoints (bridged, hairpin, from outside). */
function serviceSeeds(): Buffer[] {
  const toVip = (proto: number, l4: number[], dst = VIP): Buffer => F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst, proto }, l4));
  const fromB = (proto: number, l4: number[]): Buffer => F.ethernet(A.mac, B.mac, 0x0800, F.ipv4({ src: B.ip, dst: A.ip, proto }, l4));
  const outside = (proto: number, l4: number[], dst = UP.ip): Buffer => F.ethernet(UP.mac, UPSTREAM2_MAC, 0x0800, F.ipv4({ src: SERVER, dst, proto }, l4));
  return [
    toVip(17, F.udp(A.ip, VIP, 40000, 53, F.bytes(8))),
    toVip(6, F.tcp(A.ip, VIP, 41000, 80, F.TCP_SYN, 1, 0)),
    toVip(6, F.tcp(A.ip, VIP, 41000, 80, F.TCP_ACK, 2, 10)),
    toVip(17, F.udp(A.ip, '10.96.0.40', 40002, 53, F.bytes(8)), '10.96.0.40'),
    fromB(17, F.udp(B.ip, A.ip, 5353, 40000, F.bytes(8))),
    fromB(6, F.tcp(B.ip, A.ip, 8080, 41000, F.TCP_SYN | F.TCP_ACK, 9, 2)),
    F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: GW.ip, proto: 17 }, F.udp(A.ip, GW.ip, 5353, 40000, F.bytes(8)))),
    outside(17, F.udp(SERVER, UP.ip, 50000, 30053, F.bytes(8))),
    outside(6, F.tcp(SERVER, UP.ip, 50001, 30080, F.TCP_SYN, 1, 0)),
    outside(6, F.tcp(SERVER, '198.51.100.7', 50002, 80, F.TCP_SYN, 1, 0), '198.51.100.7'),
  ];
}

function fuzz(yaml: string, base: Buffer[], seed: number, every?: (i: number, dp: Dataplane) => void) {
  const clock = new VirtualClock();
  clock.set(T0);
  const dp = new Dataplane(parseConfig(yaml, 'fuzz'), { clock, poolSize: 1024 });
  let sent = 0;
  dp.ctx.ports.names.forEach((_, p) => dp.setDriver(p, { transmit: (_pool, _s, n) => ((sent += n), n) }));
  const free = dp.pool.available;
  const r = new Random(seed);
  const ports = dp.ctx.ports.count;
  let now = T0;
  let received = 0;
  for (let i = 0; i < 200_000; i++) {
    now += r.below(20_000);
    while (dp.nextTimerUs() <= now) {
      clock.set(dp.nextTimerUs());
      dp.run();
    }
    clock.set(now);
    const frame = mutate(r, base[r.below(base.length)]);
    if (dp.receive(r.below(ports), frame)) received++;
    if (r.below(8) === 0) dp.run();
    every?.(i, dp);
  }
  dp.run();
  return { dp, clock, now, free, received, sent: () => sent };
}

describe('dataplane fuzz', () => {
  it('survives 200,000 random and mutated frames on every port without throwing or leaking a slot', () => {
    const { dp, clock, now, free, received, sent } = fuzz(LAB + 'arp: { queueLen: 2 }\n', seeds(), 12345);
    // Let every timer (ARP retries, reassembly expiry, neighbour states) run out.
    clock.set(now + 600_000_000);
    for (let guard = 0; guard < 100_000 && dp.nextTimerUs() <= clock.nowUs(); guard++) dp.run();
    dp.run();
    expect(dp.graph.stages.filter((s) => s.queued !== 0).map((s) => s.name)).toEqual([]);
    expect(dp.pool.available).toBe(free);
    expect(dp.stageCounters()['ethernet-input'].packets).toBe(received);
    expect(received).toBeGreaterThan(180_000);
    expect(sent()).toBeGreaterThan(1_000);
  });

  it('survives them with connection tracking and masquerade on, and leaves no entry once every timeout has passed', () => {
    const yaml = LAB + 'arp: { queueLen: 2 }\nnat: { clusterCIDR: 10.244.0.0/16 }\nconntrack: { max: 4096 }\n';
    const { dp, clock, now, free, received, sent } = fuzz(yaml, [...seeds(), ...natSeeds(), ...natSeeds()], 54321);
    const ct = dp.ctx.conntrack!;
    const hooks = dp.conntrackHooks!;
    expect(ct.created).toBeGreaterThan(1_000);
    expect(hooks.masquerade.masqueraded).toBeGreaterThan(100);
    expect(dp.stageCounters()['bridge-ip4'].packets).toBeGreaterThan(100);
    // Past the longest timeout (ESTABLISHED, a day), every timer runs at its own instant.
    const longest = Math.max(...Object.values(ct.timeouts)) * 1_000_000;
    const end = now + longest + 10_000_000;
    for (let guard = 0; guard < 1_000_000 && dp.nextTimerUs() <= end; guard++) {
      clock.set(dp.nextTimerUs());
      dp.run();
    }
    clock.set(end);
    dp.run();
    expect(ct.count).toBe(0);
    expect(ct.nextDeadline()).toBe(Infinity);
    expect(dp.graph.stages.filter((s) => s.queued !== 0).map((s) => s.name)).toEqual([]);
    expect(dp.pool.available).toBe(free);
    expect(dp.stageCounters()['ethernet-input'].packets).toBe(received);
    expect(sent()).toBeGreaterThan(1_000);
  });

  it('survives them with Services changing under the traffic, and leaves no entry once every timeout has passed', () => {
    const yaml = LAB + 'arp: { queueLen: 2 }\nnat: { clusterCIDR: 10.244.0.0/16 }\nconntrack: { max: 4096 }\n';
    let applied = 0;
    const { dp, clock, now, free, received } = fuzz(yaml, [...seeds(), ...natSeeds(), ...serviceSeeds(), ...serviceSeeds()], 777, (i, d) => {
      if (i % 5000 === 0) d.applyServices(services(applied++));
    });
    const svc = dp.conntrackHooks!.services;
    expect(applied).toBe(40);
    // The seeds are a few flows (a flow is translated once), mutated copies mostly fail checksums.
    expect(svc.prerouting.translated).toBeGreaterThan(50);
    expect(svc.prerouting.rejected).toBeGreaterThan(500);
    expect(svc.masquerade.masqueraded).toBeGreaterThan(10);
    expect(svc.flushed).toBeGreaterThan(10);
    const ct = dp.ctx.conntrack!;
    const longest = Math.max(...Object.values(ct.timeouts)) * 1_000_000;
    const end = now + longest + 10_000_000;
    for (let guard = 0; guard < 1_000_000 && dp.nextTimerUs() <= end; guard++) {
      clock.set(dp.nextTimerUs());
      dp.run();
    }
    clock.set(end);
    dp.run();
    expect(ct.count).toBe(0);
    expect(dp.graph.stages.filter((s) => s.queued !== 0).map((s) => s.name)).toEqual([]);
    expect(dp.pool.available).toBe(free);
    expect(dp.stageCounters()['ethernet-input'].packets).toBe(received);
    // Removing every Service leaves the table empty.
    dp.applyServices([]);
    expect([svc.table.serviceCount, svc.table.servicePortCount, svc.table.endpointCount, svc.table.frontendCount]).toEqual([0, 0, 0, 0]);
  });
});
