// Cluster mode's small rules: when a lease is renewed, how endpoints become gRPC targets and
// when TLS is on, which subnet a previous run leaves in subnet.env.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { previousSubnet } from '../../src/cluster/cluster-node.ts';
import { endpointsUseTls, etcdOptions, grpcTarget } from '../../src/cluster/etcd-client.ts';
import { leasedConfig } from '../../src/cluster/lease-config.ts';
import { renewMarginS, renewRetryS } from '../../src/cluster/subnet-lease.ts';
import { validateConfigObject } from '../../src/config/load.ts';
import { crossCheck } from '../../src/config/validate.ts';
import { formatCidr, parseCidr } from '../../src/wire/ipv4-address.ts';


const etcd = { endpoints: ['http://127.0.0.1:2379'], prefix: '/coreos.com/network', caFile: '', certFile: '', keyFile: '', username: '', password: '' };

describe('lease renewal schedule', () => {
  it("is flanneld's with its 24 h TTL: renew an hour before expiry, retry every minute", () => {
    expect(renewMarginS(86400)).toBe(3600);
    expect(renewRetryS(86400)).toBe(60);
  });

  it('halves short TTLs: renew at TTL/2, retry at TTL/4', () => {
    expect(renewMarginS(4)).toBe(2);
    expect(renewRetryS(4)).toBe(1);
    expect(renewMarginS(3600)).toBe(1800);
  });
});

describe('etcd endpoints', () => {
  it('become gRPC targets', () => {
    expect(grpcTarget('http://10.0.0.1:2379')).toBe('10.0.0.1:2379');
    expect(grpcTarget('https://etcd-1:2379/')).toBe('etcd-1:2379');
    expect(grpcTarget('unix:///run/etcd.sock')).toBe('unix:///run/etcd.sock');
    expect(grpcTarget('unixs:///run/etcd.sock')).toBe('unix:///run/etcd.sock');
  });

  it('use TLS when one says so or a certificate file is given, and never mix', () => {
    expect(endpointsUseTls(['http://a:2379', 'unix:///s'])).toBe(false);
    expect(endpointsUseTls(['https://a:2379', 'unixs:///s'])).toBe(true);
    expect(() => endpointsUseTls(['https://a:2379', 'http://b:2379'])).toThrow('mixes TLS (https, unixs) and plain endpoints');
    expect(etcdOptions(etcd).credentials).toBeUndefined();
    expect(etcdOptions({ ...etcd, username: 'flannel', password: 'pw' }).auth).toEqual({ username: 'flannel', password: 'pw' });
    expect(() => etcdOptions({ ...etcd, caFile: '/nonexistent/ca.pem' })).toThrow('cluster.etcd.caFile /nonexistent/ca.pem: no such file');
  });
});

describe('the previous subnet', () => {
  it("is FLANNEL_SUBNET's network in an existing subnet.env, if any", () => {
    const dir = mkdtempSync(join(tmpdir(), 'nodeplane-subnet-env-'));
    try {
      const f = join(dir, 'subnet.env');
      expect(previousSubnet(f)).toBeUndefined();
      writeFileSync(f, 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n');
      expect(formatCidr(previousSubnet(f)!)).toBe('10.244.7.0/24');
      writeFileSync(f, 'FLANNEL_SUBNET=nonsense\n');
      expect(previousSubnet(f)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the config completed by the lease', () => {
  const node = (extra: Record<string, unknown> = {}) => {
    const r = validateConfigObject({
      node: { name: 'node1' },
      bridges: [{ name: 'cni0', address: 'lease' }],
      ports: [{ name: 'pa', bridge: 'cni0' }, { name: 'up', address: '192.168.50.11/24' }],
      vxlan: [{ name: 'flannel.1', vni: 1 }],
      cluster: { network: '10.244.0.0/16', vxlan: 'flannel.1', publicIP: '192.168.50.11' },
      ...extra,
    });
    if (!r.ok) throw new Error(r.errors.join('\n'));
    return r.config;
  };

  it("gives cni0 the subnet's first address and flannel.1 its .0/32 and the derived VTEP MAC", () => {
    const c = leasedConfig(node(), parseCidr('10.244.5.0/24'));
    expect(c.bridges[0]!.address).toBe('10.244.5.1/24');
    expect(c.vxlan[0]).toMatchObject({ address: '10.244.5.0/32', mac: '0e:58:0a:f4:05:00', local: '192.168.50.11' });
    // The plain cross checks see only the rule that the device's address is the lease's to give.
    expect(crossCheck(c)).toEqual(['vxlan[0].address: not allowed on flannel.1 in cluster mode; it takes the leased subnet\'s network address (a.b.c.0/32)']);
  });

  it('keeps a MAC the config names, and refuses a config that collides with the leased subnet', () => {
    const withMac = node({ vxlan: [{ name: 'flannel.1', vni: 1, mac: '0e:00:00:00:00:11' }] });
    expect(leasedConfig(withMac, parseCidr('10.244.5.0/24')).vxlan[0]!.mac).toBe('0e:00:00:00:00:11');
    const clash = node({ routes: [{ dst: '10.244.5.0/24', via: '192.168.50.1' }] });
    expect(() => leasedConfig(clash, parseCidr('10.244.5.0/24'))).toThrow(
      'the config does not fit the leased subnet 10.244.5.0/24:\nroutes[0].dst: 10.244.5.0/24 is already the connected subnet of cni0',
    );
  });
});
