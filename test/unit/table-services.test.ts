/**
 * The service table (src/tables/service-table.ts) and ClientIP affinity (service-affinity.ts):
 * frontends of each Service type, candidates as kube-proxy's CategorizeEndpoints makes them,
 * applying by diff (ids kept for what stays, UDP changes reported for conntrack), frontend
 * collisions, growth to thousands of Services, and affinity expiry on a clock.
 */
import { describe, expect, it } from 'vitest';
import { IPPROTO_TCP, IPPROTO_UDP } from '../../src/tables/conntrack.ts';
import { ServiceAffinity } from '../../src/tables/service-affinity.ts';
import type { EndpointSpec, ServiceSpec } from '../../src/tables/service-spec.ts';
import { EP_LOCAL, FrontendKind, SP_REJECT, ServiceTable } from '../../src/tables/service-table.ts';
import { parseIpv4 } from '../../src/wire/ipv4-address.ts';

const NODE_ADDRS = ['192.168.50.11', '10.244.1.1'].map((a) => parseIpv4(a) | 0);
const ip = (s: string): number => parseIpv4(s) | 0;

function svc(o: Partial<ServiceSpec> & { name: string; clusterIP: string }): ServiceSpec {
  return {
    namespace: 'default',
    type: 'ClusterIP',
    externalIPs: [],
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800,
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
    ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }],
    endpoints: [],
    ...o,
  };
}
const ep = (ipText: string, o: Partial<EndpointSpec> = {}): EndpointSpec => ({ ip: ipText, ready: true, nodeName: 'node1', ...o });

/** The endpoint addresses of a candidate list: 'cluster' or 'local'. */
function candidates(t: ServiceTable, sp: number, which: 'cluster' | 'local'): string[] {
  const c = t.spChoice[sp];
  const from = which === 'cluster' ? 2 : 2 + c[0];
  const n = which === 'cluster' ? c[0] : c[1];
  return [...c.subarray(from, from + n)].map((e) => [t.epAddr[e] >>> 24, (t.epAddr[e] >>> 16) & 255, (t.epAddr[e] >>> 8) & 255, t.epAddr[e] & 255].join('.'));
}

describe('service table: frontends', () => {
  it('installs ClusterIP, NodePort on every node address, external IPs and the LoadBalancer IP, each naming its service port', () => {
    const t = new ServiceTable('node1', NODE_ADDRS);
    t.apply([
      svc({ name: 'web', clusterIP: '10.96.0.10', type: 'LoadBalancer', loadBalancerIP: '192.168.50.200', externalIPs: ['198.51.100.7'], ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 }] }),
      svc({ name: 'dns', clusterIP: '10.96.0.53', ports: [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: 53, nodePort: 30053 }] }),
    ]);
    const [web] = t.servicePortsOf('default', 'web');
    const [dns] = t.servicePortsOf('default', 'dns');
    const at = (proto: number, a: string, port: number): [number, number] | null => {
      const fe = t.lookup(proto, ip(a), port);
      return fe < 0 ? null : [t.feSp[fe], t.feKind[fe]];
    };
    expect(at(IPPROTO_TCP, '10.96.0.10', 80)).toEqual([web, FrontendKind.CLUSTER_IP]);
    expect(at(IPPROTO_TCP, '192.168.50.11', 30080)).toEqual([web, FrontendKind.NODE_PORT]);
    expect(at(IPPROTO_TCP, '10.244.1.1', 30080)).toEqual([web, FrontendKind.NODE_PORT]);
    expect(at(IPPROTO_TCP, '198.51.100.7', 80)).toEqual([web, FrontendKind.EXTERNAL_IP]);
    expect(at(IPPROTO_TCP, '192.168.50.200', 80)).toEqual([web, FrontendKind.LOAD_BALANCER]);
    expect(at(IPPROTO_UDP, '10.96.0.10', 80)).toBeNull();
    expect(at(IPPROTO_TCP, '10.96.0.10', 81)).toBeNull();
    expect(at(IPPROTO_UDP, '10.96.0.53', 53)).toEqual([dns, FrontendKind.CLUSTER_IP]);
    // A ClusterIP Service's nodePort is accepted by the schema but takes no effect.
    expect(at(IPPROTO_UDP, '192.168.50.11', 30053)).toBeNull();
    expect(t.frontendCount).toBe(6);
    expect(t.servicePortName(web)).toBe('default/web:http');
  });

  it('lets a second Service claiming a frontend take it over when the first lets go', () => {
    const t = new ServiceTable('node1', NODE_ADDRS);
    const a = svc({ name: 'a', clusterIP: '10.96.0.1', externalIPs: ['198.51.100.7'] });
    const b = svc({ name: 'b', clusterIP: '10.96.0.2', externalIPs: ['198.51.100.7'] });
    t.apply([a, b]);
    const spOf = (name: string): number => t.servicePortsOf('default', name)[0];
    expect(t.feSp[t.lookup(IPPROTO_TCP, ip('198.51.100.7'), 80)]).toBe(spOf('a'));
    t.apply([b]);
    expect(t.feSp[t.lookup(IPPROTO_TCP, ip('198.51.100.7'), 80)]).toBe(spOf('b'));
    t.apply([]);
    expect(t.lookup(IPPROTO_TCP, ip('198.51.100.7'), 80)).toBe(-1);
    expect(t.frontendCount).toBe(0);
  });
});

describe('service table: candidates (kube-proxy CategorizeEndpoints)', () => {
  it('takes ready endpoints; none ready: the serving and terminating ones; local ones apart; REJECT when nothing could serve', () => {
    const t = new ServiceTable('node1', NODE_ADDRS);
    t.apply([
      svc({
        name: 'web',
        clusterIP: '10.96.0.10',
        endpoints: [ep('10.244.1.2'), ep('10.244.2.2', { nodeName: 'node2' }), ep('10.244.1.3', { ready: false, serving: true, terminating: true }), ep('10.244.1.4', { ready: false })],
      }),
    ]);
    const [sp] = t.servicePortsOf('default', 'web');
    expect(candidates(t, sp, 'cluster')).toEqual(['10.244.1.2', '10.244.2.2']);
    expect(candidates(t, sp, 'local')).toEqual(['10.244.1.2']);
    expect(t.spFlags[sp] & SP_REJECT).toBe(0);
    expect(t.epFlags[t.spEndpoints[sp][0]] & EP_LOCAL).toBe(EP_LOCAL);

    // No ready endpoint left: the terminating one that still serves is used (local too).
    t.apply([svc({ name: 'web', clusterIP: '10.96.0.10', endpoints: [ep('10.244.1.3', { ready: false, serving: true, terminating: true }), ep('10.244.1.4', { ready: false }), ep('10.244.2.2', { nodeName: 'node2', ready: false, serving: true, terminating: true })] })]);
    expect(candidates(t, sp, 'cluster')).toEqual(['10.244.1.3', '10.244.2.2']);
    expect(candidates(t, sp, 'local')).toEqual(['10.244.1.3']);

    // Not ready and not serving-terminating: nothing could serve: REJECT.
    t.apply([svc({ name: 'web', clusterIP: '10.96.0.10', endpoints: [ep('10.244.1.4', { ready: false })] })]);
    expect(candidates(t, sp, 'cluster')).toEqual([]);
    expect(t.spFlags[sp] & SP_REJECT).toBe(SP_REJECT);

    // Both policies Local with only remote endpoints: nothing reachable either (REJECT, as kube-proxy).
    t.apply([svc({ name: 'web', clusterIP: '10.96.0.10', externalTrafficPolicy: 'Local', internalTrafficPolicy: 'Local', endpoints: [ep('10.244.2.2', { nodeName: 'node2' })] })]);
    expect(t.spFlags[sp] & SP_REJECT).toBe(SP_REJECT);
    // Only the external one Local: the cluster list serves ClusterIP traffic, external is dropped by the stage.
    t.apply([svc({ name: 'web', clusterIP: '10.96.0.10', externalTrafficPolicy: 'Local', endpoints: [ep('10.244.2.2', { nodeName: 'node2' })] })]);
    expect(t.spFlags[sp] & SP_REJECT).toBe(0);
    expect(candidates(t, sp, 'local')).toEqual([]);
  });
});

describe('service table: applying by diff', () => {
  it('keeps the ids of ports and endpoints that stay, reuses nothing early, and reports UDP endpoints to flush', () => {
    const t = new ServiceTable('node1', NODE_ADDRS);
    const dns = (eps: EndpointSpec[]): ServiceSpec => svc({ name: 'dns', clusterIP: '10.96.0.53', ports: [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: 5353 }, { name: 'tcp', protocol: 'TCP', port: 53, targetPort: 5353 }], endpoints: eps });
    t.apply([dns([ep('10.244.1.2'), ep('10.244.1.3')])]);
    const sps = [...t.servicePortsOf('default', 'dns')];
    const [udp] = sps;
    const before = [...t.spEndpoints[udp]];
    // A new UDP service port with endpoints: its frontend is "revived" (entries made while it had none go).
    expect(t.takeChanges()).toEqual({ staleUdpEndpoints: [], revivedUdpFrontends: [{ addr: ip('10.96.0.53'), port: 53 }] });

    t.apply([dns([ep('10.244.1.3'), ep('10.244.1.4')])]);
    expect(t.servicePortsOf('default', 'dns')).toEqual(sps);
    expect(t.spEndpoints[udp][0]).toBe(before[1]);
    const ch = t.takeChanges();
    // 10.244.1.2 left: its UDP flows are stale (the TCP port's are not reported).
    expect(ch.staleUdpEndpoints).toEqual([{ ep: before[0], addr: ip('10.244.1.2'), port: 5353 }]);
    expect(ch.revivedUdpFrontends).toEqual([]);

    // Not ready any more is stale too; no endpoint at all, then one again: revived.
    t.apply([dns([ep('10.244.1.3', { ready: false }), ep('10.244.1.4', { ready: false })])]);
    expect(t.takeChanges().staleUdpEndpoints.map((e) => e.addr)).toEqual([ip('10.244.1.3'), ip('10.244.1.4')]);
    t.apply([dns([ep('10.244.1.3')])]);
    expect(t.takeChanges().revivedUdpFrontends).toEqual([{ addr: ip('10.96.0.53'), port: 53 }]);
  });

  it('skips an unchanged Service (same object or equal copy) and removes what the new set leaves out', () => {
    const t = new ServiceTable('node1', NODE_ADDRS);
    const a = svc({ name: 'a', clusterIP: '10.96.0.1', endpoints: [ep('10.244.1.2')] });
    const b = svc({ name: 'b', clusterIP: '10.96.0.2', endpoints: [ep('10.244.1.3')] });
    t.apply([a, b]);
    const choiceA = t.spChoice[t.servicePortsOf('default', 'a')[0]];
    t.apply([JSON.parse(JSON.stringify(a)) as ServiceSpec]);
    // Equal: not reprogrammed (the same candidate array).
    expect(t.spChoice[t.servicePortsOf('default', 'a')[0]]).toBe(choiceA);
    expect(t.servicePortsOf('default', 'b')).toEqual([]);
    expect(t.lookup(IPPROTO_TCP, ip('10.96.0.2'), 80)).toBe(-1);
    expect([t.serviceCount, t.servicePortCount, t.endpointCount]).toEqual([1, 1, 1]);
  });

  it('holds 2,000 Services of 10 endpoints, adds and removes one, and is empty again after removing all', () => {
    const t = new ServiceTable('node1', NODE_ADDRS);
    const make = (i: number): ServiceSpec =>
      svc({ name: `s${i}`, clusterIP: `10.96.${i >> 8}.${i & 255}`, endpoints: Array.from({ length: 10 }, (_, k) => ep(`10.${100 + (i >> 8)}.${i & 255}.${k + 1}`)) });
    const all = Array.from({ length: 2000 }, (_, i) => make(i + 1));
    t.apply(all);
    expect([t.serviceCount, t.endpointCount, t.frontendCount]).toEqual([2000, 20000, 2000]);
    const extra = make(3000);
    t.apply([...all, extra]);
    expect(t.feSp[t.lookup(IPPROTO_TCP, ip(extra.clusterIP), 80)]).toBe(t.servicePortsOf('default', 's3000')[0]);
    t.apply(all);
    expect(t.lookup(IPPROTO_TCP, ip(extra.clusterIP), 80)).toBe(-1);
    for (const s of all.slice(0, 50)) expect(t.lookup(IPPROTO_TCP, ip(s.clusterIP), 80)).toBeGreaterThanOrEqual(0);
    t.apply([]);
    expect([t.serviceCount, t.servicePortCount, t.endpointCount, t.frontendCount]).toEqual([0, 0, 0, 0]);
  });
});

describe('service table: per-endpoint ports (a named targetPort resolved per pod)', () => {
  const two = [
    { name: 'dns', protocol: 'UDP', port: 53, targetPort: 5353 },
    { name: 'metrics', protocol: 'TCP', port: 9153, targetPort: 9153 },
  ] as const;
  /** "last address byte:port" of each endpoint of service port `sp`, in spec order. */
  const served = (t: ServiceTable, sp: number): string[] => [...t.spEndpoints[sp]].map((e) => `${t.epAddr[e] & 255}:${t.epPort[e]}`);

  it('sends each endpoint of a port at its own number, and leaves an endpoint out of the ports it does not list', () => {
    const t = new ServiceTable('node1', NODE_ADDRS);
    t.apply([
      svc({
        name: 'dns',
        clusterIP: '10.96.0.53',
        ports: [...two],
        endpoints: [
          ep('10.244.1.2'),
          ep('10.244.1.3', { ports: [{ name: 'dns', protocol: 'UDP', port: 1053 }, { name: 'metrics', protocol: 'TCP', port: 9253 }] }),
          // Only the UDP port; a TCP "dns" entry names another Service port (name and protocol).
          ep('10.244.1.4', { ports: [{ name: 'dns', protocol: 'UDP', port: 2053 }, { name: 'dns', protocol: 'TCP', port: 7 }] }),
          ep('10.244.1.5', { ports: [] }),
        ],
      }),
    ]);
    const [udp, tcp] = t.servicePortsOf('default', 'dns');
    expect(served(t, udp)).toEqual(['2:5353', '3:1053', '4:2053']);
    expect(served(t, tcp)).toEqual(['2:9153', '3:9253']);
    expect(candidates(t, udp, 'cluster')).toEqual(['10.244.1.2', '10.244.1.3', '10.244.1.4']);
    expect(t.endpointCount).toBe(5);
  });

  it('matches an unnamed Service port by an entry without a name', () => {
    const t = new ServiceTable('node1', NODE_ADDRS);
    t.apply([
      svc({
        name: 'one',
        clusterIP: '10.96.0.9',
        ports: [{ protocol: 'TCP', port: 80, targetPort: 8080 }],
        endpoints: [ep('10.244.1.2', { ports: [{ protocol: 'TCP', port: 8081 }] }), ep('10.244.1.3', { ports: [{ name: 'http', protocol: 'TCP', port: 8082 }] })],
      }),
    ]);
    expect(served(t, t.servicePortsOf('default', 'one')[0])).toEqual(['2:8081']);
  });

  it('compares endpoint ports: a changed number reprograms, an equal copy does not, and a UDP endpoint at another number is stale', () => {
    const t = new ServiceTable('node1', NODE_ADDRS);
    const dns = (n: number): ServiceSpec =>
      svc({
        name: 'dns',
        clusterIP: '10.96.0.53',
        ports: [...two],
        endpoints: [ep('10.244.1.2'), ep('10.244.1.3', { ports: [{ name: 'dns', protocol: 'UDP', port: n }, { name: 'metrics', protocol: 'TCP', port: n }] })],
      });
    t.apply([dns(1053)]);
    t.takeChanges();
    const [udp, tcp] = t.servicePortsOf('default', 'dns');
    const ids = [...t.spEndpoints[udp]];
    const choice = t.spChoice[udp];
    t.apply([JSON.parse(JSON.stringify(dns(1053))) as ServiceSpec]);
    expect(t.spChoice[udp]).toBe(choice);

    t.apply([dns(2053)]);
    // Ids stay (the same addresses); the moved UDP endpoint is stale at its old number, the
    // one that kept its number is not, and TCP ports are never reported.
    expect([...t.spEndpoints[udp]]).toEqual(ids);
    expect(served(t, udp)).toEqual(['2:5353', '3:2053']);
    expect(served(t, tcp)).toEqual(['2:9153', '3:2053']);
    expect(t.takeChanges()).toEqual({ staleUdpEndpoints: [{ ep: ids[1], addr: ip('10.244.1.3'), port: 1053 }], revivedUdpFrontends: [] });
  });

  it('drops an endpoint from a port whose entry it loses, as a removed endpoint (stale when UDP)', () => {
    const t = new ServiceTable('node1', NODE_ADDRS);
    const dns = (ports: EndpointSpec['ports']): ServiceSpec => svc({ name: 'dns', clusterIP: '10.96.0.53', ports: [...two], endpoints: [ep('10.244.1.2'), ep('10.244.1.3', { ports })] });
    t.apply([dns(undefined)]);
    t.takeChanges();
    const [udp, tcp] = t.servicePortsOf('default', 'dns');
    const gone = t.spEndpoints[udp][1];
    t.apply([dns([{ name: 'metrics', protocol: 'TCP', port: 9153 }])]);
    expect(served(t, udp)).toEqual(['2:5353']);
    expect(served(t, tcp)).toEqual(['2:9153', '3:9153']);
    expect(t.takeChanges().staleUdpEndpoints).toEqual([{ ep: gone, addr: ip('10.244.1.3'), port: 5353 }]);
    expect(t.endpointCount).toBe(3);
  });
});

describe('service affinity', () => {
  it('pins a client per service port until its timeout passes without a new connection', () => {
    const a = new ServiceAffinity(8);
    a.nowUs = 1e6;
    a.set(ip('10.0.0.1'), 3, 7, 1, 10);
    const id = a.find(ip('10.0.0.1'), 3);
    expect(a.endpointOf(id)).toBe(7);
    expect(a.find(ip('10.0.0.1'), 4)).toBe(-1);
    a.nowUs = 9e6;
    a.set(ip('10.0.0.1'), 3, 7, 1, 10); // a new connection refreshes the pin
    a.nowUs = 18e6;
    expect(a.find(ip('10.0.0.1'), 3)).toBeGreaterThanOrEqual(0);
    a.nowUs = 19e6;
    expect(a.find(ip('10.0.0.1'), 3)).toBe(-1);
  });

  it('reclaims expired entries as new ones come and evicts the oldest when full, never growing', () => {
    const a = new ServiceAffinity(16);
    for (let i = 0; i < 1000; i++) {
      a.nowUs = i * 1e6;
      a.set(i + 1, 0, i, 0, 5);
      expect(a.size).toBeLessThanOrEqual(16);
    }
    // Entries live 5 s and one comes a second: the sweep keeps the table near 6, not full.
    expect(a.size).toBeLessThanOrEqual(8);
    expect(a.evicted).toBe(0);
    const b = new ServiceAffinity(4);
    for (let i = 0; i < 10; i++) b.set(i + 1, 0, i, 0, 100);
    expect(b.size).toBe(4);
    expect(b.evicted).toBe(6);
    expect(b.find(10, 0)).toBeGreaterThanOrEqual(0);
    expect(b.find(1, 0)).toBe(-1);
  });
});
