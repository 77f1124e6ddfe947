/**
 * The UDP cleanup of Services in steps (src/dataplane/udp-cleanup.ts), on the stage tests' lab
 * node with 1,000,000 conntrack entries: removing a UDP endpoint flushes exactly its UDP flows
 * — no TCP flow, no flow to another endpoint, no untranslated flow — walking at most 32,768
 * ids per step; a packet of a flushed flow that comes before the walk reaches its entry goes
 * to a remaining endpoint all the same; and a later apply that brings the endpoint back
 * before the walk is done stops flushing its flows.
 */
import { describe, expect, it } from 'vitest';
import { CT_DNAT, CT_LIVE, IPPROTO_TCP, IPPROTO_UDP } from '../../src/tables/conntrack.ts';
import type { ServiceSpec } from '../../src/tables/service-spec.ts';
import { WALK_STEP } from '../../src/dataplane/udp-cleanup.ts';
import { parseIpv4 } from '../../src/wire/ipv4-address.ts';
import { A, B, C, GW, Harness, LAB, introduce, ip4Of, udpFrame } from './stage-harness.test.ts';

const VIP = '10.96.0.53';
const ip = (s: string): number => parseIpv4(s) | 0;
const ENTRIES = 1_000_000;

function dns(endpoints: (string | { ip: string; ready: boolean })[]): ServiceSpec {
  return {
    name: 'dns',
    namespace: 'kube-system',
    type: 'ClusterIP',
    clusterIP: VIP,
    externalIPs: [],
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800,
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
    ports: [
      { name: 'dns', protocol: 'UDP', port: 53, targetPort: 5353 },
      { name: 'dns-tcp', protocol: 'TCP', port: 53, targetPort: 5353 },
    ],
    endpoints: endpoints.map((e) => (typeof e === 'string' ? { ip: e, ready: true, nodeName: 'node1' } : { ...e, nodeName: 'node1' })),
  };
}

/** Kinds of entries the table is filled with, by id modulo 4. */
const enum Kind {
  UDP_TO_B,
  UDP_TO_C,
  TCP_TO_B,
  UDP_ELSEWHERE,
}

/**
 * A lab node tracking ENTRIES flows from pods of another node (10.245.0.0/16) to the Service
 * (bound as the DNAT hook binds them: reply tuple from the endpoint, service tag) or to an
 * address outside it; and A's flows 60000.. to the Service, one per endpoint, at the end.
 */
function filled(entries = ENTRIES): { h: Harness; kinds: Uint8Array; aToB: number; aToC: number } {
  const h = new Harness(LAB + 'nat: { clusterCIDR: 10.244.0.0/16 }\nconntrack: { max: 1000000 }\n');
  h.dp.applyServices([dns([B.ip, C.ip])]);
  for (const p of [A, B, C]) introduce(h, p);
  const ct = h.dp.ctx.conntrack!;
  const t = h.dp.conntrackHooks!.services.table;
  const [udpSp, tcpSp] = t.servicePortsOf('kube-system', 'dns');
  const epOf = (sp: number, addr: string): number => [...t.spEndpoints[sp]].find((e) => t.epAddr[e] === ip(addr))!;
  const vip = ip(VIP);
  const kinds = new Uint8Array(ct.idCapacity);
  const tag = (sp: number, addr: string): number => epOf(sp, addr) + 1;
  const tags = [tag(udpSp, B.ip), tag(udpSp, C.ip), tag(tcpSp, B.ip)];
  const addrs = [ip(B.ip), ip(C.ip), ip(B.ip)];
  // (Plain checks in the loop: a million expect() calls would take most of the test's time.)
  const bind = (id: number, kind: number): void => {
    if (!ct.bindDnat(id, addrs[kind], 5353)) throw new Error(`entry ${id}: reply tuple taken`);
    ct.setServiceTag(id, tags[kind]);
  };
  for (let i = 0; ct.count < entries - 2; i++) {
    const kind = i & 3;
    const src = 0x0af50000 | (i >>> 10);
    const id = ct.create(kind === Kind.TCP_TO_B ? IPPROTO_TCP : IPPROTO_UDP, src, kind === Kind.UDP_ELSEWHERE ? ip('10.200.0.5') : vip, 1024 + (i & 1023), 53);
    if (id < 0) throw new Error('table full');
    kinds[id] = kind;
    if (kind !== Kind.UDP_ELSEWHERE) bind(id, kind);
  }
  // Two real flows of A, at the end of the table (the walk reaches them last).
  const aToB = ct.create(IPPROTO_UDP, ip(A.ip), vip, 60000, 53);
  bind(aToB, Kind.UDP_TO_B);
  kinds[aToB] = Kind.UDP_TO_B;
  const aToC = ct.create(IPPROTO_UDP, ip(A.ip), vip, 60001, 53);
  bind(aToC, Kind.UDP_TO_C);
  kinds[aToC] = Kind.UDP_TO_C;
  expect(ct.count).toBe(entries);
  return { h, kinds, aToB, aToC };
}

/** Live entries of each kind. */
function census(h: Harness, kinds: Uint8Array): number[] {
  const ct = h.dp.ctx.conntrack!;
  const n = [0, 0, 0, 0];
  for (let id = 0; id < ct.highWater; id++) if ((ct.statusOf(id) & CT_LIVE) !== 0) n[kinds[id]]++;
  return n;
}

describe('UDP cleanup in steps', () => {
  it('flushes exactly the removed endpoint\'s UDP flows among 1,000,000 entries, at most 32,768 ids a step; a packet ahead of the walk is not sent to it', () => {
    const { h, kinds, aToB, aToC } = filled();
    const ct = h.dp.ctx.conntrack!;
    const cleanup = h.dp.conntrackHooks!.services.cleanup;
    const before = census(h, kinds);
    expect(before.reduce((a, b) => a + b)).toBe(ENTRIES);
    const steps0 = cleanup.steps;

    const applied = h.dp.applyServices([dns([C.ip])]);
    // The apply took one step: part of B's entries are gone, the walk goes on.
    expect(cleanup.pending).toBe(true);
    expect(applied.flushed).toBeGreaterThan(0);
    expect(applied.flushed).toBeLessThanOrEqual(WALK_STEP);
    expect(ct.staleUdp).toBe(cleanup);

    // A's flow to B is far beyond the walk: its next datagram meets the stale entry, which
    // goes there and then; the datagram goes to C, the one endpoint left.
    const created = ct.created;
    h.dp.receive(h.port('pa'), udpFrame({ from: A, toMac: GW.mac, dst: VIP, sport: 60000, dport: 53 }));
    h.dp.receive(h.port('pa'), udpFrame({ from: A, toMac: GW.mac, dst: VIP, sport: 60001, dport: 53 }));
    const stepsBefore = cleanup.steps;
    h.dp.run();
    expect(h.take('pb')).toEqual([]);
    const atC = h.take('pc').map((f) => ip4Of(f).dst);
    expect(atC).toEqual([C.ip, C.ip]);
    expect((ct.statusOf(aToB) & CT_LIVE) === 0).toBe(true);
    // A's flow to C kept its entry; the flushed one got a new entry (one created, one flushed).
    expect(ct.statusOf(aToC) & (CT_LIVE | CT_DNAT)).toBe(CT_LIVE | CT_DNAT);
    expect(ct.created).toBe(created + 1);
    expect(cleanup.steps).toBe(stepsBefore + 1);
    // The new entry may have a freed id: it is a flow to C now.
    const moved = ct.lookup(IPPROTO_UDP, ip(A.ip), ip(VIP), 60000, 53) >> 1;
    expect(ct.srcOf((moved << 1) | 1)).toBe(ip(C.ip));
    kinds[moved] = Kind.UDP_TO_C;

    // The rest of the walk, one step per run, none longer than WALK_STEP ids.
    let runs = 0;
    while (h.dp.hasBackgroundWork()) {
      h.dp.run();
      runs++;
    }
    const high = ct.highWater;
    expect(cleanup.steps - steps0).toBe(Math.ceil(high / WALK_STEP));
    expect(runs).toBe(Math.ceil(high / WALK_STEP) - 2);
    expect(ct.staleUdp).toBeNull();

    const after = census(h, kinds);
    expect(after[Kind.UDP_TO_B]).toBe(0);
    expect(after[Kind.TCP_TO_B]).toBe(before[Kind.TCP_TO_B]);
    expect(after[Kind.UDP_ELSEWHERE]).toBe(before[Kind.UDP_ELSEWHERE]);
    expect(after[Kind.UDP_TO_C]).toBe(before[Kind.UDP_TO_C] + 1);
    expect(h.dp.conntrackHooks!.services.flushed).toBe(before[Kind.UDP_TO_B]);
    expect(ct.count).toBe(ENTRIES - before[Kind.UDP_TO_B] + 1);
  }, 20_000);

  it('stops flushing an endpoint that a later apply makes a candidate again before the walk is done (kube-proxy would have seen no change)', () => {
    const { h, kinds } = filled(200_000);
    const cleanup = h.dp.conntrackHooks!.services.cleanup;
    const before = census(h, kinds);
    // B not ready: no longer a candidate, its UDP flows stale (its id stays).
    const first = h.dp.applyServices([dns([{ ip: B.ip, ready: false }, C.ip])]).flushed;
    expect(cleanup.pending).toBe(true);
    expect(first).toBeGreaterThan(0);
    h.dp.run();
    const walked = h.dp.conntrackHooks!.services.flushed;
    expect(walked).toBeGreaterThan(first);
    // Ready again: what the walk did not reach stays.
    h.dp.applyServices([dns([B.ip, C.ip])]);
    expect(cleanup.pending).toBe(false);
    expect(h.dp.ctx.conntrack!.staleUdp).toBeNull();
    const after = census(h, kinds);
    expect(after[Kind.UDP_TO_B]).toBe(before[Kind.UDP_TO_B] - walked);
    expect(after[Kind.UDP_TO_C]).toBe(before[Kind.UDP_TO_C]);
  }, 20_000);

  it('keeps walking for what is still stale when a later apply brings back only part of it', () => {
    const { h, kinds } = filled(200_000);
    const before = census(h, kinds);
    h.dp.applyServices([dns([{ ip: B.ip, ready: false }, { ip: C.ip, ready: false }])]);
    // Both unready: the Service falls back to nothing (none serving-and-terminating) — REJECT.
    h.dp.applyServices([dns([{ ip: B.ip, ready: false }, C.ip])]);
    while (h.dp.hasBackgroundWork()) h.dp.run();
    const after = census(h, kinds);
    expect(after[Kind.UDP_TO_B]).toBe(0);
    expect(after[Kind.UDP_TO_C]).toBeLessThan(before[Kind.UDP_TO_C]);
    expect(after[Kind.UDP_TO_C]).toBeGreaterThan(0);
    expect(after[Kind.TCP_TO_B] + after[Kind.UDP_ELSEWHERE]).toBe(before[Kind.TCP_TO_B] + before[Kind.UDP_ELSEWHERE]);
  }, 20_000);
});
