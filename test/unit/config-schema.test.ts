// Schema: the SPEC §2 example and its defaults, value formats, unknown keys.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { schemaCheck, validateConfigObject } from '../../src/config/load.ts';

const errorsOf = (obj: unknown): string[] => {
  const r = validateConfigObject(obj);
  if (r.ok) throw new Error('expected errors, config was valid');
  return r.errors;
};

const minimal = () => ({ node: { name: 'node1' } });

describe('config schema', () => {
  it('parses the SPEC example and fills defaults', () => {
    const r = schemaCheck(parse(readFileSync('examples/full.yaml', 'utf8')));
    if (!r.ok) throw new Error(r.errors.join('\n'));
    const c = r.config;
    expect(c.node.name).toBe('node1');
    expect(c.bridges[0]).toEqual({ name: 'cni0', address: '10.244.1.1/24', mac: '0a:58:0a:f4:01:01', ageingSeconds: 300, mtu: 1500 });
    expect(c.ports[0]).toEqual({ name: 'pa', type: 'tap', bridge: 'cni0', mtu: 1500 });
    expect(c.routes[1]).toEqual({ dst: '10.244.2.0/24', via: '10.244.2.0', dev: 'flannel.1', onlink: true });
    expect(c.routes[0]!.onlink).toBe(false);
    expect(c.services[0]!.ports[0]).toEqual({ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 30080 });
    expect(c.services[0]!.endpoints[0]).toEqual({ ip: '10.244.1.2', ready: true, serving: true, terminating: false, nodeName: 'node1' });
    expect(c.nat).toEqual({ clusterCIDR: '10.244.0.0/16' });
    expect(c.conntrack.max).toBe(262144);
    expect(c.vxlan[0]).toMatchObject({ name: 'flannel.1', vni: 1, port: 8472, mtu: 1450, local: '192.168.50.11' });
    expect(c.capture).toEqual({ dir: 'captures/out', snaplen: 262144, bufferKiB: 32768, filter: '', drops: false, ports: ['pa', 'up'] });
  });

  it('fills every default of a minimal config', () => {
    const ok = schemaCheck({
      node: { name: 'n2' },
      bridges: [{ name: 'br0' }],
      ports: [{ name: 'p0', bridge: 'br0' }, { name: 'up', address: '192.168.1.1/24' }],
      vxlan: [{ name: 'vx', vni: 7, local: '192.168.1.1' }],
      services: [{ name: 's', clusterIP: '10.96.0.1', ports: [{ port: 53, protocol: 'UDP' }], endpoints: [{ ip: '10.1.1.1' }] }],
    });
    if (!ok.ok) throw new Error(ok.errors.join('\n'));
    const d = ok.config;
    expect(d.bridges[0]).toEqual({ name: 'br0', ageingSeconds: 300, mtu: 1500 });
    expect(d.ports[1]).toEqual({ name: 'up', type: 'tap', address: '192.168.1.1/24', mtu: 1500 });
    expect(d.vxlan[0]).toEqual({ name: 'vx', vni: 7, port: 8472, local: '192.168.1.1', mtu: 1450, peers: [], underlay: 'port' });
    expect(d.services[0]).toEqual({
      name: 's',
      namespace: 'default',
      type: 'ClusterIP',
      clusterIP: '10.96.0.1',
      externalIPs: [],
      sessionAffinity: 'None',
      sessionAffinityTimeoutSeconds: 10800,
      externalTrafficPolicy: 'Cluster',
      internalTrafficPolicy: 'Cluster',
      ports: [{ protocol: 'UDP', port: 53, targetPort: 53 }],
      endpoints: [{ ip: '10.1.1.1', ready: true, serving: true, terminating: false, nodeName: 'n2' }],
    });
    expect(d.routes).toEqual([]);
    expect(d.neighbors).toEqual([]);
    expect(d.manifests).toEqual([]);
    expect(d.nat).toBeUndefined();
    expect(d.conntrack.max).toBe(262144);
    expect(d.conntrack.timeouts.tcpEstablished).toBe(86400); // kube-proxy's, not Linux's 5 days
    expect(d.conntrack.timeouts.tcpCloseWait).toBe(3600);
    expect(d.conntrackEnabled).toBe(true); // it has a service
    expect(d.capture).toEqual({ snaplen: 262144, bufferKiB: 32768, filter: '', drops: false });
    expect(d.arp).toEqual({ retries: 3, retryIntervalMs: 1000, queueLen: 3, reachableMs: 30000, staleMs: 60000, failedMs: 1000, maxEntries: 1024 });
    expect(d.fdb).toEqual({ maxEntries: 4096 });
    expect(d.icmp).toEqual({ ratePerSec: 1000, burst: 50, perHostIntervalMs: 1000, perHostBurst: 6 });
    expect(d.pool).toEqual({ slots: 8192, offloadSlots: 2048 });
    expect(d.seed).toBe(1);
  });

  it('bounds capture.bufferKiB (1 MiB to 4 GiB), naming the field', () => {
    expect(errorsOf({ ...minimal(), capture: { bufferKiB: 512 } }).join('\n')).toMatch(/capture\.bufferKiB/);
    expect(errorsOf({ ...minimal(), capture: { bufferKiB: 4_194_305 } }).join('\n')).toMatch(/capture\.bufferKiB/);
    const r = validateConfigObject({ ...minimal(), capture: { bufferKiB: 131072 } });
    expect(r.ok && r.config.capture.bufferKiB).toBe(131072);
  });

  it('turns connection tracking on for nat, a conntrack section, services or manifests, and only then', () => {
    const enabled = (extra: object): boolean => {
      const r = schemaCheck({ ...minimal(), ...extra });
      if (!r.ok) throw new Error(r.errors.join('\n'));
      return r.config.conntrackEnabled;
    };
    expect(enabled({})).toBe(false);
    expect(enabled({ services: [] })).toBe(false);
    expect(enabled({ nat: { clusterCIDR: '10.244.0.0/16' } })).toBe(true);
    expect(enabled({ conntrack: {} })).toBe(true);
    expect(enabled({ services: [{ name: 's', clusterIP: '10.96.0.1', ports: [{ port: 53 }] }] })).toBe(true);
    expect(enabled({ manifests: ['kube/'] })).toBe(true);
  });

  it('lower-cases MACs and reads "default" as 0.0.0.0/0', () => {
    const r = validateConfigObject({
      node: { name: 'n' },
      ports: [{ name: 'up', address: '10.0.0.2/24', mac: '02:AB:00:00:00:01' }],
      routes: [{ dst: 'default', via: '10.0.0.1' }],
    });
    if (!r.ok) throw new Error(r.errors.join('\n'));
    expect(r.config.ports[0]!.mac).toBe('02:ab:00:00:00:01');
    expect(r.config.routes[0]!.dst).toBe('0.0.0.0/0');
  });

  it('reports unknown keys at the top level and nested', () => {
    expect(errorsOf({ ...minimal(), bridgez: [] })).toEqual(['bridgez: unknown key']);
    expect(errorsOf({ ...minimal(), bridges: [{ name: 'cni0', ageing: 30 }] })).toEqual(['bridges[0].ageing: unknown key']);
    expect(errorsOf({ ...minimal(), arp: { retry: 1 } })).toEqual(['arp.retry: unknown key']);
  });

  it('reports missing and mistyped values', () => {
    expect(errorsOf({})).toEqual(['node: required']);
    expect(errorsOf({ node: {} })).toEqual(['node.name: required']);
    expect(errorsOf({ ...minimal(), ports: { name: 'pa' } })).toEqual(['ports: expected a list, got a mapping']);
    expect(errorsOf({ ...minimal(), bridges: [{ name: 'b', ageingSeconds: 'long' }] })).toEqual([
      "bridges[0].ageingSeconds: expected a number, got 'long'",
    ]);
    expect(errorsOf(null)).toEqual(['(top level): the file is empty']);
    expect(errorsOf([1])).toEqual(['(top level): expected a mapping, got a list']);
  });

  it('validates names', () => {
    expect(errorsOf({ ...minimal(), bridges: [{ name: 'averyveryverylongname' }] })).toEqual([
      "bridges[0].name: 'averyveryverylongname' is longer than 15 characters (the kernel's IFNAMSIZ limit)",
    ]);
    expect(errorsOf({ ...minimal(), bridges: [{ name: 'br 0' }] })).toEqual(["bridges[0].name: 'br 0' may contain only A-Z a-z 0-9 . _ -"]);
  });

  it('validates addresses, subnets and MACs', () => {
    const port = (extra: object) => ({ ...minimal(), ports: [{ name: 'up', ...extra }] });
    expect(errorsOf(port({ address: '192.168.50.256/24' }))).toEqual([
      "ports[0].address: '192.168.50.256' is not an IPv4 address (dotted quad, e.g. 10.0.0.1)",
    ]);
    expect(errorsOf(port({ address: '192.168.50.1' }))).toEqual(["ports[0].address: '192.168.50.1' has no prefix length (e.g. 192.168.50.1/24)"]);
    expect(errorsOf(port({ address: '192.168.50.1/33' }))).toEqual(["ports[0].address: '192.168.50.1/33': the prefix length must be an integer 0..32"]);
    expect(errorsOf(port({ address: '192.168.50.255/24' }))).toEqual(['ports[0].address: 192.168.50.255/24 is the broadcast address of its subnet']);
    expect(errorsOf(port({ address: '10.0.0.2/24', mac: '01:00:5e:00:00:01' }))).toEqual([
      "ports[0].mac: '01:00:5e:00:00:01' is a multicast MAC; an interface MAC must be unicast",
    ]);
    expect(errorsOf(port({ address: '10.0.0.2/24', mac: '02-00-00-00-00-01' }))).toEqual([
      "ports[0].mac: '02-00-00-00-00-01' is not a MAC address (six colon-separated hex bytes, e.g. 02:00:00:00:00:01)",
    ]);
    expect(errorsOf({ ...minimal(), routes: [{ dst: '10.0.0.1/8', dev: 'x' }] })).toEqual([
      'routes[0].dst: 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)',
    ]);
    expect(errorsOf({ ...minimal(), nat: { clusterCIDR: '10.244.1.0/16' } })).toEqual([
      'nat.clusterCIDR: 10.244.1.0/16 has host bits set (did you mean 10.244.0.0/16?)',
    ]);
  });

  it('validates numeric ranges and enums', () => {
    const vx = (extra: object) => ({ ...minimal(), vxlan: [{ name: 'vx', vni: 1, local: '10.0.0.1', ...extra }] });
    expect(errorsOf(vx({ vni: 16777216 }))).toEqual(['vxlan[0].vni: must be at most 16777215 (got 16777216)']);
    expect(errorsOf(vx({ port: 0 }))).toEqual(['vxlan[0].port: must be at least 1 (got 0)']);
    expect(errorsOf(vx({ mtu: 1450.5 }))).toEqual(['vxlan[0].mtu: expected an integer, got 1450.5']);
    expect(errorsOf({ ...minimal(), ports: [{ name: 'p', type: 'veth', bridge: 'b' }] })).toEqual([
      "ports[0].type: must be one of tap (got 'veth')",
    ]);
    expect(errorsOf({ ...minimal(), ports: [{ name: 'p', mtu: 9001, bridge: 'b' }] })).toEqual(['ports[0].mtu: must be at most 9000 (got 9001)']);
    const svc = (extra: object, port: object = {}) => ({
      ...minimal(),
      services: [{ name: 'web', clusterIP: '10.96.0.10', ports: [{ port: 80, ...port }], ...extra }],
    });
    expect(errorsOf(svc({ type: 'ExternalName' }))).toEqual([
      "services[0].type: must be one of ClusterIP, NodePort, LoadBalancer (got 'ExternalName')",
    ]);
    expect(errorsOf(svc({}, { nodePort: 70000 }))).toEqual(['services[0].ports[0].nodePort: must be at most 65535 (got 70000)']);
    expect(errorsOf(svc({ ports: [] }))).toEqual(['services[0].ports: needs at least 1 entry']);
    expect(errorsOf(svc({}, { protocol: 'SCTP' }))).toEqual(['services[0].ports[0].protocol: SCTP Services are not supported: nodeplane translates TCP and UDP only']);
    expect(errorsOf(svc({}, { protocol: 'ICMP' }))).toEqual(["services[0].ports[0].protocol: 'ICMP' must be TCP or UDP"]);
    // The pool stays under 2 GiB: slot offsets are int32.
    expect(errorsOf({ ...minimal(), pool: { offloadSlots: 30_001 } })).toEqual(['pool.offloadSlots: must be at most 30000 (got 30001)']);
    expect(errorsOf({ ...minimal(), pool: { slots: 100 } })).toEqual(['pool.slots: must be at least 256 (got 100)']);
    expect(errorsOf({ ...minimal(), pool: { slot: 1000 } })).toHaveLength(1);
  });

  it('reports every schema error at once', () => {
    expect(
      errorsOf({
        node: { name: 'n' },
        bridges: [{ name: 'cni0', ageing: 1 }],
        ports: [{ name: 'pa', bridge: 'cni0', mtu: 20 }],
        routes: [{ dst: '10.0.0.1/8', via: '10.0.0.300' }],
        extra: true,
      }),
    ).toEqual([
      'bridges[0].ageing: unknown key',
      'ports[0].mtu: must be at least 68 (got 20)',
      'routes[0].dst: 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)',
      "routes[0].via: '10.0.0.300' is not an IPv4 address (dotted quad, e.g. 10.0.0.1)",
      'extra: unknown key',
    ]);
  });
});
