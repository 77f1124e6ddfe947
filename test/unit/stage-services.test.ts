/**
 * Services at the hooks, on the stage tests' lab node (pods A, B, C on cni0 10.244.1.0/24, an
 * uplink `up` 192.168.50.11/24, nat.clusterCIDR 10.244.0.0/16): what needs the dataplane
 * between batches — Services applied while flows run (Dataplane.applyServices), several
 * datagrams in one batch — and the edge cases of kube-proxy users: the two datagrams of a new
 * UDP flow in one batch, the UDP black hole that must not be, UDP entries flushed with their
 * endpoint, hairpin, Local policies, ICMP 3/3 without endpoints, trace notes.
 * Every checksum is verified independently of the code under test.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { TextTracer } from '../../src/decode/text-tracer.ts';
import type { ServiceSpec } from '../../src/tables/service-spec.ts';
import { conntrackEntryView } from '../../src/tables/conntrack-views.ts';
import * as F from '../helpers/frames.ts';
import { A, B, C, GW, Harness, LAB, SEC, UP, UPSTREAM2, icmpOf, introduce, ip4Of, udpFrame } from './stage-harness.test.ts';

const VIP = '10.96.0.53';
const NAT = LAB + 'nat: { clusterCIDR: 10.244.0.0/16 }\n';
const REMOTE = '10.244.2.5';
const CLIENT = '203.0.113.9';

function dns(endpoints: { ip: string; ready?: boolean; nodeName?: string }[], extra: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    name: 'dns',
    namespace: 'kube-system',
    type: 'NodePort',
    clusterIP: VIP,
    externalIPs: [],
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800,
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
    ports: [
      { name: 'dns', protocol: 'UDP', port: 53, targetPort: 5353, nodePort: 30053 },
      { name: 'dns-tcp', protocol: 'TCP', port: 53, targetPort: 5353, nodePort: 30053 },
    ],
    endpoints: endpoints.map((e) => ({ ready: true, nodeName: 'node1', ...e })),
    ...extra,
  };
}

/** The TCP/UDP checksum of the frame's datagram sums right. */
function l4ChecksumOk(f: Buffer): boolean {
  const ip = ip4Of(f);
  const seg = [...f.subarray(14 + ip.ihl, 14 + ip.total)];
  return F.checksum([...F.ip(ip.src), ...F.ip(ip.dst), 0, ip.proto, seg.length >> 8, seg.length & 0xff, ...seg]) === 0;
}
const ports = (f: Buffer): [number, number] => {
  const l4 = 14 + ip4Of(f).ihl;
  return [f.readUInt16BE(l4), f.readUInt16BE(l4 + 2)];
};
const query = (sport: number, seed = 7): Buffer => udpFrame({ from: A, toMac: GW.mac, dst: VIP, sport, dport: 53, seed });

/** A dataplane with the lab, nat, and `services` applied as the manifest loader would. */
function withServices(services: ServiceSpec[], yaml = NAT): Harness {
  const h = new Harness(yaml);
  h.dp.applyServices(services);
  for (const p of [A, B, C]) introduce(h, p);
  return h;
}

describe('a UDP ClusterIP', () => {
  it('sends both datagrams of a new flow in one batch (glibc\'s parallel A and AAAA) to one endpoint, and both answers back from the Service', () => {
    const h = withServices([dns([{ ip: B.ip }, { ip: C.ip }, { ip: REMOTE, nodeName: 'node2' }])]);
    for (let k = 0; k < 20; k++) {
      const sport = 41000 + k;
      h.rxBatch('pa', [query(sport, 1), query(sport, 2)]);
      const got = [...h.take('pb').map(() => 'B'), ...h.take('pc').map(() => 'C'), ...h.take('up').map(() => 'remote')];
      expect(got, `flow ${sport}`).toHaveLength(2);
      expect(got[0]).toBe(got[1]);
      if (got[0] === 'remote') continue;
      const ep = got[0] === 'B' ? B : C;
      h.rxBatch(ep.port, [1, 2].map((seed) => udpFrame({ from: ep, toMac: A.mac, dst: A.ip, sport: 5353, dport: sport, seed })));
      const answers = h.take('pa');
      expect(answers).toHaveLength(2);
      for (const f of answers) {
        expect(ip4Of(f)).toMatchObject({ src: VIP, dst: A.ip, checksumOk: true });
        expect(ports(f)).toEqual([53, sport]);
        expect(l4ChecksumOk(f)).toBe(true);
      }
    }
    expect(h.dp.ctx.conntrack!.insertFailed).toBe(0);
  });

  it('rejects a flow while the Service has no endpoint (ICMP 3/3 from the node), keeps no entry for it, and sends it to the first endpoint that appears', () => {
    const h = withServices([dns([])]);
    h.rx('pa', query(42000));
    const [err] = h.take('pa');
    expect(ip4Of(err)).toMatchObject({ src: GW.ip, dst: A.ip, proto: 1, checksumOk: true });
    expect(icmpOf(err)).toMatchObject({ type: 3, code: 3 });
    // The quote is what A sent: to the Service, untranslated, with the TTL ip_forward left it
    // (Linux rejects a routed destination at FORWARD), its header checksum updated.
    expect(ip4Of(err, 14 + 20 + 8)).toMatchObject({ src: A.ip, dst: VIP, ttl: 63, checksumOk: true });
    expect(h.dp.conntrackHooks!.services.prerouting.rejected).toBe(1);
    expect(h.dp.ctx.conntrack!.count).toBe(0);
    // kubernetes#48370: an endpoint appears; the same flow (same source port) reaches it at once.
    h.dp.applyServices([dns([{ ip: B.ip }])]);
    h.rx('pa', query(42000), h.now + 100_000);
    const [atB] = h.take('pb');
    expect(ip4Of(atB)).toMatchObject({ src: A.ip, dst: B.ip, checksumOk: true });
    expect(ports(atB)).toEqual([42000, 5353]);
    expect(l4ChecksumOk(atB)).toBe(true);
  });

  it('rejects a NodePort (a local address: INPUT) quoting the TTL as sent; a routed frontend with TTL 1 gets time exceeded, as ip_forward answers before FORWARD', () => {
    const h = withServices([dns([])]);
    h.rx('up', F.ethernet(UP.mac, UPSTREAM2.mac, 0x0800, F.ipv4({ src: CLIENT, dst: UP.ip, proto: 17 }, F.udp(CLIENT, UP.ip, 42100, 30053, F.bytes(20, 1)))));
    const [np] = h.take('up');
    expect(ip4Of(np)).toMatchObject({ src: UP.ip, dst: CLIENT, proto: 1, checksumOk: true });
    expect(icmpOf(np)).toMatchObject({ type: 3, code: 3 });
    expect(ip4Of(np, 14 + 20 + 8)).toMatchObject({ src: CLIENT, dst: UP.ip, ttl: 64, checksumOk: true });
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: VIP, sport: 42101, dport: 53, ttl: 1 }));
    const [expired] = h.take('pa');
    expect(ip4Of(expired)).toMatchObject({ src: GW.ip, dst: A.ip, proto: 1, checksumOk: true });
    expect(icmpOf(expired)).toMatchObject({ type: 11, code: 0 });
    expect(ip4Of(expired, 14 + 20 + 8)).toMatchObject({ src: A.ip, dst: VIP, ttl: 1 });
    expect(h.dp.conntrackHooks!.services.prerouting.rejected).toBe(1);
    expect(h.dp.ctx.conntrack!.count).toBe(0);
  });

  it('flushes the UDP entries of an endpoint removed (the next datagram goes to one that remains) but leaves TCP flows alone', () => {
    const h = withServices([dns([{ ip: B.ip }])]);
    h.rx('pa', query(43000));
    h.rx('pa', F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: VIP, proto: 6 }, F.tcp(A.ip, VIP, 43001, 53, F.TCP_SYN, 1, 0))));
    expect(h.take('pb')).toHaveLength(2);
    const ct = h.dp.ctx.conntrack!;
    expect(ct.count).toBe(2);
    const applied = h.dp.applyServices([dns([{ ip: C.ip }])]);
    expect(applied.flushed).toBe(1);
    expect(ct.count).toBe(1);
    expect(conntrackEntryView(ct, 1)?.proto).toBe(6);
    h.rx('pa', query(43000));
    expect(h.take('pb')).toHaveLength(0);
    expect(ports(h.take('pc')[0])).toEqual([43000, 5353]);
  });

  it('flushes an entry made before the Service existed (no DNAT), once the Service has an endpoint', () => {
    const h = withServices([]);
    h.rx('pa', query(44000));
    // No Service yet: routed by the default route, and masqueraded like any pod traffic leaving.
    expect(ip4Of(h.take('up')[0]).dst).toBe(VIP);
    h.dp.applyServices([dns([{ ip: B.ip }])]);
    expect(h.dp.ctx.conntrack!.count).toBe(0);
    h.rx('pa', query(44000));
    expect(ip4Of(h.take('pb')[0]).dst).toBe(B.ip);
  });
});

describe('reload', () => {
  it('applies the config\'s services by diff: a flow to an endpoint that stays keeps it, a removed UDP endpoint\'s flow moves', () => {
    const yaml = (eps: string[]): string =>
      NAT + `services:\n  - { name: dns, clusterIP: ${VIP}, ports: [{ protocol: UDP, port: 53, targetPort: 5353 }], endpoints: [${eps.map((e) => `{ ip: ${e} }`).join(', ')}] }\n`;
    const h = new Harness(yaml([B.ip]));
    for (const p of [A, B, C]) introduce(h, p);
    h.rx('pa', query(50000));
    expect(h.take('pb')).toHaveLength(1);
    const ct = h.dp.ctx.conntrack!;
    const created = ct.created;
    const result = h.dp.reload(parseConfig(yaml([B.ip, C.ip]), 'test'));
    expect(result).toEqual({ ok: true, changes: ['services: 1 → 1'] });
    // B stays: the flow keeps going to B, whatever the new choice would be.
    for (let k = 0; k < 5; k++) h.rx('pa', query(50000));
    expect(h.take('pb')).toHaveLength(5);
    expect([ct.created, h.dp.conntrackHooks!.services.flushed]).toEqual([created, 0]);
    expect(h.dp.reload(parseConfig(yaml([C.ip]), 'test')).ok).toBe(true);
    h.rx('pa', query(50000));
    expect(h.take('pc')).toHaveLength(1);
    expect(h.dp.conntrackHooks!.services.flushed).toBe(1);
  });
});

describe('edge cases', () => {
  it('masquerades a pod reaching itself through its Service (hairpin) to the bridge address with a random port, and translates the reply back', () => {
    const h = withServices([dns([{ ip: A.ip }])]);
    h.rx('pa', query(45000));
    const [hair] = h.take('pa');
    expect(ip4Of(hair)).toMatchObject({ src: GW.ip, dst: A.ip, checksumOk: true });
    // MASQUERADE --random-fully: a port from 1024–65535, not the client's although it is free.
    const [p, dport] = ports(hair);
    expect([p !== 45000, p >= 1024 && p <= 65535, dport]).toEqual([true, true, 5353]);
    expect(l4ChecksumOk(hair)).toBe(true);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: GW.ip, sport: 5353, dport: p }));
    const [back] = h.take('pa');
    expect(ip4Of(back)).toMatchObject({ src: VIP, dst: A.ip, checksumOk: true });
    expect(ports(back)).toEqual([53, 45000]);
    expect(l4ChecksumOk(back)).toBe(true);
  });

  it('externalTrafficPolicy Local: keeps the client address to a local endpoint, drops when none is local; Cluster masquerades', () => {
    const fromClient = (sport: number): Buffer =>
      F.ethernet(UP.mac, UPSTREAM2.mac, 0x0800, F.ipv4({ src: CLIENT, dst: UP.ip, proto: 17 }, F.udp(CLIENT, UP.ip, sport, 30053, F.bytes(20, 1))));
    const h = withServices([dns([{ ip: B.ip }], { externalTrafficPolicy: 'Local' })]);
    h.rx('up', fromClient(46000));
    const [kept] = h.take('pb');
    expect(ip4Of(kept)).toMatchObject({ src: CLIENT, dst: B.ip, checksumOk: true });
    expect(l4ChecksumOk(kept)).toBe(true);

    h.dp.applyServices([dns([{ ip: REMOTE, nodeName: 'node2' }], { externalTrafficPolicy: 'Local' })]);
    h.rx('up', fromClient(46001));
    expect(h.take('up')).toHaveLength(0);
    expect(h.drops('prerouting')).toMatchObject({ 'service.no-local-endpoint': 1 });
    // ClusterIP traffic of a pod still reaches the remote endpoint (internal policy Cluster).
    h.rx('pa', query(46002));
    expect(ip4Of(h.take('up')[0])).toMatchObject({ src: A.ip, dst: REMOTE });

    h.dp.applyServices([dns([{ ip: B.ip }])]);
    h.rx('up', fromClient(46003));
    const [masq] = h.take('pb');
    expect(ip4Of(masq)).toMatchObject({ src: GW.ip, dst: B.ip, checksumOk: true });
    expect(ports(masq)[0]).not.toBe(46003);
    expect(l4ChecksumOk(masq)).toBe(true);
  });

  it('internalTrafficPolicy Local: a pod reaches only local endpoints, and is dropped when there is none', () => {
    const h = withServices([dns([{ ip: C.ip }, { ip: REMOTE, nodeName: 'node2' }], { internalTrafficPolicy: 'Local' })]);
    for (let k = 0; k < 10; k++) h.rx('pa', query(47000 + k));
    expect(h.take('pc')).toHaveLength(10);
    expect(h.take('up')).toHaveLength(0);
    h.dp.applyServices([dns([{ ip: REMOTE, nodeName: 'node2' }], { internalTrafficPolicy: 'Local' })]);
    h.rx('pa', query(47100));
    expect(h.take('up')).toHaveLength(0);
    expect(h.drops('prerouting')).toMatchObject({ 'service.no-local-endpoint': 1 });
  });

  it('masquerades ClusterIP traffic from outside nat.clusterCIDR, not from pods', () => {
    const h = withServices([dns([{ ip: B.ip }])]);
    h.rx('up', F.ethernet(UP.mac, UPSTREAM2.mac, 0x0800, F.ipv4({ src: CLIENT, dst: VIP, proto: 17 }, F.udp(CLIENT, VIP, 48000, 53, F.bytes(20, 1)))));
    const [masq] = h.take('pb');
    expect(ip4Of(masq)).toMatchObject({ src: GW.ip, dst: B.ip });
    expect(ports(masq)[0]).not.toBe(48000);
    h.rx('pa', query(48001));
    const [pod] = h.take('pb');
    expect(ip4Of(pod)).toMatchObject({ src: A.ip, dst: B.ip });
    expect(ports(pod)[0]).toBe(48001);
  });

  it('gives a Service flow whose translated tuple a direct flow holds another source port, and translates its replies back', () => {
    const h = withServices([dns([{ ip: B.ip }])]);
    h.rx('pa', udpFrame({ from: A, toMac: B.mac, dst: B.ip, sport: 40000, dport: 5353 }));
    expect(ports(h.take('pb')[0])).toEqual([40000, 5353]);
    h.rx('pa', query(40000));
    const [viaService] = h.take('pb');
    expect(ip4Of(viaService)).toMatchObject({ src: A.ip, dst: B.ip, checksumOk: true });
    const [p, dport] = ports(viaService);
    expect([p === 40000, dport, l4ChecksumOk(viaService)]).toEqual([false, 5353, true]);
    expect(h.dp.conntrackHooks!.services.prerouting.clashes).toBe(1);
    h.rx('pb', udpFrame({ from: B, toMac: A.mac, dst: A.ip, sport: 5353, dport: p }));
    const [back] = h.take('pa');
    expect(ip4Of(back)).toMatchObject({ src: VIP, dst: A.ip, checksumOk: true });
    expect([...ports(back), l4ChecksumOk(back)]).toEqual([53, 40000, true]);
    h.rx('pb', udpFrame({ from: B, toMac: A.mac, dst: A.ip, sport: 5353, dport: 40000 }));
    expect(ip4Of(h.take('pa')[0]).src).toBe(B.ip);
  });

  it('traces the Service translation', () => {
    const h = withServices([dns([{ ip: B.ip }])]);
    const lines: string[] = [];
    h.dp.graph.setTracer(new TextTracer(h.dp.pool, h.dp.ctx.ports.names, () => '', (l) => lines.push(l.trim())));
    h.rx('pa', query(49000));
    h.dp.applyServices([dns([])]);
    h.rx('pa', query(49001), h.now + SEC);
    const notes = lines.filter((l) => /: (service|dnat|snat)/.test(l)).map((l) => l.replace(/^s\d+\s+/, ''));
    expect(notes).toEqual([
      'prerouting: service kube-system/dns:dns -> 10.244.1.3:5353 (the only endpoint)',
      'prerouting: dnat 10.96.0.53:53 -> 10.244.1.3:5353',
      'prerouting: service kube-system/dns:dns: no endpoints, rejected (icmp port unreachable)',
    ]);
  });
});
