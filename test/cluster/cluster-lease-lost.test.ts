/**
 * Losing the lease against a real etcd: a key that expired is taken again at the next
 * renewal; a key another node has taken meanwhile is lost for good, which the node is told
 * (`run` then stops, as flanneld exits when its lease is revoked). Needs `etcd` and root:
 * skipped with the reason printed without them, required under CI=true.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterNode } from '../../src/cluster/cluster-node.ts';
import { validateConfigObject } from '../../src/config/load.ts';
import { formatCidr } from '../../src/wire/ipv4-address.ts';
import { EtcdServer, etcdMissing } from '../../src/lab/etcd-server.ts';

const problem = etcdMissing();
const REQUIRED = process.env.CI === 'true';
if (problem && !REQUIRED) process.stdout.write(`skipping cluster lease loss: ${problem}\n`);
const suite = problem && !REQUIRED ? describe.skip : describe;

suite('cluster mode: losing the lease', () => {
  let etcd: EtcdServer;
  let dir: string;
  let raw: Etcd3;

  beforeAll(async () => {
    if (problem) throw new Error(`cluster tests need: ${problem}`);
    etcd = await EtcdServer.start();
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-cluster-lost-'));
    raw = new Etcd3({ hosts: etcd.endpoint });
  });

  afterAll(async () => {
    raw?.close();
    await etcd?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const joinNode = async (): Promise<ClusterNode> => {
    const r = validateConfigObject({
      node: { name: 'node1' },
      bridges: [{ name: 'cni0', address: 'lease' }],
      ports: [{ name: 'up', address: '192.168.50.11/24' }],
      vxlan: [{ name: 'flannel.1', vni: 1 }],
      cluster: { network: '10.244.0.0/16', vxlan: 'flannel.1', publicIP: '192.168.50.11', leaseTTLSeconds: 4, subnetFile: join(dir, 'subnet.env'), etcd: { endpoints: [etcd.endpoint] } },
    });
    if (!r.ok) throw new Error(r.errors.join('\n'));
    return ClusterNode.join(r.config, pino({ level: 'silent' }));
  };

  it('puts back a key deleted under it, and reports the lease lost when another node took the subnet', async () => {
    const n = await joinNode();
    const key = `/coreos.com/network/subnets/${formatCidr(n.lease.subnet).replace('/', '-')}`;
    const ours = await raw.get(key).string();
    expect(ours).toContain('"PublicIP":"192.168.50.11"');

    // Deleted (as an expiry deletes it): the watch sees it and the same value is put back at once.
    await raw.delete().key(key);
    const back = Date.now();
    while ((await raw.get(key).string()) === null) {
      if (Date.now() - back > 3000) throw new Error('the key was not put back');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await raw.get(key).string()).toBe(ours);

    // Taken by another node: the next renewal finds it is not ours and the node is told.
    let lost: string | null = null;
    n.onLost((why) => (lost = why));
    await raw.put(key).value('{"PublicIP":"192.168.50.99","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0e:00:00:00:00:99"}}');
    const took = Date.now();
    while (lost === null) {
      if (Date.now() - took > 5000) throw new Error('the loss was not reported');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(lost).toBe(`subnet ${formatCidr(n.lease.subnet)} expired and another node leased it`);
    // The other node's value stays: a lost node never overwrites it.
    expect(await raw.get(key).json()).toMatchObject({ PublicIP: '192.168.50.99' });
    await n.close();
  });
});
