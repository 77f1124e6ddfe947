// The `cluster:` section (SPEC §2): its schema, its defaults, and the cross checks of cluster mode.
import { describe, expect, it } from 'vitest';
import { summary } from '../../src/cli/check.ts';
import { loadConfig, validateConfigObject } from '../../src/config/load.ts';

/** A cluster-mode node as SPEC §2 describes one: cni0 takes the lease, flannel.1's peers come from etcd. */
function node(): Record<string, any> {
  return {
    node: { name: 'node1' },
    bridges: [{ name: 'cni0', address: 'lease' }],
    ports: [
      { name: 'pa', bridge: 'cni0' },
      { name: 'up', address: '192.168.50.11/24' },
    ],
    vxlan: [{ name: 'flannel.1', vni: 1 }],
    cluster: {
      network: '10.244.0.0/16',
      vxlan: 'flannel.1',
      publicIP: '192.168.50.11',
      etcd: { endpoints: ['http://127.0.0.1:2379'] },
    },
  };
}

function errorsOf(change: (c: Record<string, any>) => void): string[] {
  const c = node();
  change(c);
  const r = validateConfigObject(c);
  return r.ok ? [] : r.errors;
}

describe('cluster configuration', () => {
  it("accepts SPEC's cluster node and fills flannel's defaults", () => {
    const r = validateConfigObject(node());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.cluster).toEqual({
      network: '10.244.0.0/16',
      subnetLen: 24,
      vxlan: 'flannel.1',
      publicIP: '192.168.50.11',
      leaseTTLSeconds: 86400,
      subnetFile: '/run/flannel/subnet.env',
      etcd: { endpoints: ['http://127.0.0.1:2379'], prefix: '/coreos.com/network', caFile: '', certFile: '', keyFile: '', username: '', password: '' },
    });
    // local defaults to publicIP; the bridge keeps 'lease' until the lease resolves it.
    expect(r.config.vxlan[0]!.local).toBe('192.168.50.11');
    expect(r.config.bridges[0]!.address).toBe('lease');
  });

  it("subnetLen defaults as flannel's: /24, or the network's prefix + 2 below a /22", () => {
    const len = (network: string) => {
      const r = validateConfigObject({ ...node(), cluster: { ...node().cluster, network } });
      return r.ok ? r.config.cluster!.subnetLen : r.errors;
    };
    expect(len('10.244.0.0/22')).toBe(24);
    expect(len('10.244.0.0/24')).toBe(26);
  });

  it('refuses what cluster mode cannot use', () => {
    expect(errorsOf((c) => (c.cluster.vxlan = 'flannel.2'))).toEqual(['cluster.vxlan: no vxlan device named flannel.2']);
    expect(
      errorsOf((c) => {
        c.vxlan[0].peers = [{ vtep: '192.168.50.12', mac: '0e:00:00:00:00:02', subnet: '10.244.2.0/24' }];
        c.vxlan[0].address = '10.244.1.0/32';
      }),
    ).toEqual([
      'vxlan[0].peers: not allowed on flannel.1 in cluster mode; its peers come from the other nodes\' leases in etcd',
      'vxlan[0].address: not allowed on flannel.1 in cluster mode; it takes the leased subnet\'s network address (a.b.c.0/32)',
    ]);
    expect(errorsOf((c) => (c.cluster.subnetLen = 17))).toEqual([
      'cluster.subnetLen: /17 must be at least /18 so that 10.244.0.0/16 holds four subnets (flannel\'s rule)',
    ]);
    expect(errorsOf((c) => (c.cluster.etcd.certFile = '/etc/etcd/client.pem'))).toEqual([
      'cluster.etcd: certFile and keyFile go together (a client certificate and its key)',
    ]);
    expect(errorsOf((c) => (c.cluster.etcd.password = 'x'))).toEqual(['cluster.etcd.password: needs username']);
  });

  it('publicIP must be an L3 port address, and an explicit local must be it', () => {
    expect(errorsOf((c) => (c.cluster.publicIP = '192.168.50.99'))).toEqual([
      'vxlan[0].local: 192.168.50.99 is not the address of an L3 port',
      'cluster.publicIP: 192.168.50.99 is not the address of an L3 port',
    ]);
    expect(
      errorsOf((c) => {
        c.ports.push({ name: 'up2', address: '192.168.60.11/24' });
        c.vxlan[0].local = '192.168.60.11';
      }),
    ).toEqual(['vxlan[0].local: 192.168.60.11 is not cluster.publicIP (192.168.50.11), the address the other nodes send to']);
  });

  it("'lease' only in cluster mode, on one bridge", () => {
    expect(errorsOf((c) => delete c.cluster)).toEqual([
      'vxlan[0].local: required (the underlay source address; in cluster mode it defaults to cluster.publicIP)',
    ]);
    expect(
      errorsOf((c) => {
        delete c.cluster;
        c.vxlan[0].local = '192.168.50.11';
      }),
    ).toEqual(["bridges[0].address: 'lease' needs a cluster section (the address comes from the node's leased subnet)"]);
    expect(errorsOf((c) => c.bridges.push({ name: 'cni1', address: 'lease' }))).toEqual([
      "bridges[1].address: 'lease' is already the address of bridges[0]; one bridge takes the leased subnet",
    ]);
    expect(errorsOf((c) => (c.bridges[0].address = 'leased'))).toEqual(["bridges[0].address: 'leased' has no prefix length (e.g. leased/24)"]);
  });

  it('checks endpoints, the prefix and unknown keys', () => {
    expect(errorsOf((c) => (c.cluster.etcd.endpoints = ['127.0.0.1:2379', 'unix:///run/etcd.sock', 'https://etcd-1:2379']))).toEqual([
      "cluster.etcd.endpoints[0]: '127.0.0.1:2379' is not an etcd endpoint (http://host:port, https://host:port or unix:///path/to/socket)",
    ]);
    expect(errorsOf((c) => (c.cluster.etcd.prefix = '/coreos.com/network/'))).toEqual([
      "cluster.etcd.prefix: '/coreos.com/network/' must be an absolute key prefix such as /coreos.com/network (no trailing /)",
    ]);
    expect(errorsOf((c) => (c.cluster.ttl = 5))).toEqual(['cluster.ttl: unknown key']);
  });

  it('the example cluster node is valid, and check says it is in cluster mode', () => {
    const c = loadConfig('examples/cluster-node.yaml');
    expect(summary(c)).toBe('1 bridge, 3 ports, 1 route, 0 neighbors, 0 services, 1 vxlan device, cluster mode: a /24 of 10.244.0.0/16 leased from etcd');
  });
});
