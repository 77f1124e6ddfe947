/**
 * End to end, cluster mode: `nodeplane run` nodes in network namespaces coordinating through
 * a real etcd (Debian's etcd-server on a unix socket, in a namespace of its own).
 *
 * 1. One node, etcd with TLS: the node leases its subnet (the one its subnet.env names, as
 *    flanneld reuses FLANNEL_SUBNET), its pod reaches the leased gateway address, another
 *    node's lease shows up as flannel's route and neighbour within 5 s and goes when that
 *    lease expires, and a restart reuses the lease.
 * 2. Traffic across three nodes joined by an underlay bridge: pods reach each other through
 *    the VXLAN overlay; a fourth node joins at run time and is reachable within 5 s; a node
 *    that stops is removed when its lease expires; an etcd restart does not interrupt
 *    traffic between known nodes.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchState } from '../../src/admin/client.ts';
import type { NeighTableState, RoutesState } from '../../src/admin/state.ts';
import { ClusterNode } from '../../src/cluster/cluster-node.ts';
import { validateConfigObject } from '../../src/config/load.ts';
import { Lab } from '../../src/lab/lab.ts';
import { createNetns, type Netns } from '../../src/lab/netns.ts';
import { EtcdServer, type EtcdTls, etcdMissing, makeCertificates } from '../../src/lab/etcd-server.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';

const problem = missingPrerequisite(['ping']) ?? etcdMissing();
const skip = skipUnlessReady('cluster mode end-to-end tests', problem);

const PREFIX = '/coreos.com/network';

function nodeYaml(i: number, endpoint: string, dir: string, o: { ttl: number; tls?: EtcdTls }): string {
  const tls = o.tls ? `\n    caFile: ${o.tls.caFile}\n    certFile: ${o.tls.certFile}\n    keyFile: ${o.tls.keyFile}` : '';
  return `node:
  name: node${i}
bridges:
  - { name: cni0, address: lease }
ports:
  - { name: pa, type: tap, bridge: cni0 }
  - { name: up, type: tap, address: 192.168.50.${10 + i}/24 }
vxlan:
  - { name: flannel.1, vni: 1 }
cluster:
  network: 10.244.0.0/16
  vxlan: flannel.1
  publicIP: 192.168.50.${10 + i}
  leaseTTLSeconds: ${o.ttl}
  subnetFile: ${join(dir, 'subnet.env')}
  etcd:
    endpoints: [${endpoint}]${tls}
`;
}

/** Node i's directory, with a subnet.env naming 10.244.i.0/24 so that it leases that one. */
function nodeDir(root: string, i: number): string {
  const dir = join(root, `node${i}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'subnet.env'), `FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.${i}.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n`);
  return dir;
}

async function startNode(root: string, i: number, endpoint: string, o: { ttl: number; tls?: EtcdTls }): Promise<Lab> {
  const dir = nodeDir(root, i);
  return Lab.start({
    config: nodeYaml(i, endpoint, dir, o),
    pods: [{ port: 'pa', address: `10.244.${i}.2/24`, gateway: `10.244.${i}.1` }],
    dir,
    runArgs: ['--log-level', 'debug'],
    // Generous: starting nodeplane (compiling TypeScript) is slow on a busy machine.
    startTimeoutMs: 60_000,
  });
}

async function routes(lab: Lab): Promise<RoutesState['routes']> {
  return ((await fetchState(lab.adminSocket, 'routes')) as RoutesState).routes;
}

async function waitFor(what: string, cond: () => Promise<boolean> | boolean, ms: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await cond()) return Date.now() - start;
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function ping(from: Netns, to: string, count = 3): Promise<string> {
  const r = await from.run('ping', ['-c', String(count), '-i', '0.2', '-W', '2', to], { timeoutMs: 30_000 });
  expect(r.code, `ping ${to}: ${r.stdout}${r.stderr}`).toBe(0);
  expect(r.stdout).toContain(`${count} packets transmitted, ${count} received`);
  return r.stdout;
}

describe.skipIf(skip)('cluster mode: a nodeplane node on etcd with TLS', () => {
  let etcd: EtcdServer;
  let root: string;
  let certs: { server: EtcdTls; client: EtcdTls };
  let lab: Lab | undefined;

  beforeAll(async () => {
    if (problem) throw new Error(`cluster end-to-end prerequisites missing: ${problem}`);
    root = mkdtempSync(join(tmpdir(), 'nodeplane-e2e-cluster-'));
    certs = makeCertificates(root);
    etcd = await EtcdServer.start({ tls: certs.server });
  });

  afterAll(async () => {
    lab?.destroy();
    await etcd?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('leases, serves the leased gateway, follows another node joining and expiring, and reuses its lease on restart', async () => {
    lab = await startNode(root, 5, etcd.endpoint, { ttl: 30, tls: certs.client });
    await ping(lab.pod('pa'), '10.244.5.1');
    const mine = await routes(lab);
    expect(mine).toContainEqual(expect.objectContaining({ dst: '10.244.5.0/24', dev: 'cni0', protocol: 'kernel' }));
    expect(mine).toContainEqual(expect.objectContaining({ dst: '10.244.5.0', type: 'local', dev: 'flannel.1' }));

    // Another node (in this process) joins with a 2 s lease.
    const other = validateConfigObject({
      node: { name: 'other' },
      ports: [{ name: 'up', address: '192.168.50.40/24' }],
      vxlan: [{ name: 'flannel.1', vni: 1 }],
      cluster: {
        network: '10.244.0.0/16',
        vxlan: 'flannel.1',
        publicIP: '192.168.50.40',
        leaseTTLSeconds: 2,
        subnetFile: join(root, 'other.env'),
        etcd: { endpoints: [etcd.endpoint], ...certs.client },
      },
    });
    if (!other.ok) throw new Error(other.errors.join('\n'));
    const node = await ClusterNode.join(other.config, pino({ level: 'silent' }));
    const sn = node.dataplaneConfig().vxlan[0]!.address!.replace('/32', '');
    const peerRoute = expect.objectContaining({ dst: `${sn}/24`, gateway: sn, dev: 'flannel.1', onlink: true });
    const took = await waitFor('the new node as a route', async () => (await routes(lab!)).some((r) => r.dst === `${sn}/24`), 5000);
    expect(took).toBeLessThan(5000);
    expect(await routes(lab)).toContainEqual(peerRoute);
    const neigh = (await fetchState(lab.adminSocket, 'neigh')) as NeighTableState;
    expect(JSON.stringify(neigh)).toContain(sn);

    // It stops; its lease runs out after 2 s and the route goes.
    await node.close();
    await waitFor('the stopped node to be removed', async () => !(await routes(lab!)).some((r) => r.dst === `${sn}/24`), 10_000);

    // nodeplane stops cleanly and leaves its lease; started again, it reuses it.
    const raw = new Etcd3({ hosts: etcd.endpoint.replace('unixs://', 'unix://'), credentials: { rootCertificate: readFileSync(certs.client.caFile), certChain: readFileSync(certs.client.certFile), privateKey: readFileSync(certs.client.keyFile) } });
    try {
      await lab.restart();
      expect(lab.nodeplaneStderr).toContain('reusing the lease held for this PublicIP');
      expect(await raw.get(`${PREFIX}/subnets/10.244.5.0-24`).json()).toMatchObject({ PublicIP: '192.168.50.15', BackendType: 'vxlan' });
      await ping(lab.pod('pa'), '10.244.5.1');
    } finally {
      raw.close();
    }
  });
});

describe.skipIf(skip)('cluster mode: traffic across nodes through the overlay', () => {
  let etcd: EtcdServer;
  let root: string;
  let underlay: Netns;
  const labs = new Map<number, Lab>();
  const TTL = 8;

  /** Moves node i's uplink TAP onto the underlay bridge. */
  const wire = (i: number): void => {
    const lab = labs.get(i)!;
    lab.node.ip(['link', 'set', 'dev', 'up', 'name', `ul${i}`]);
    lab.node.ip(['link', 'set', 'dev', `ul${i}`, 'netns', underlay.name]);
    underlay.ip(['link', 'set', 'dev', `ul${i}`, 'master', 'br0', 'up']);
  };
  const start = async (i: number): Promise<Lab> => {
    const lab = await startNode(root, i, etcd.endpoint, { ttl: TTL });
    labs.set(i, lab);
    wire(i);
    return lab;
  };

  beforeAll(async () => {
    if (problem) throw new Error(`cluster end-to-end prerequisites missing: ${problem}`);
    root = mkdtempSync(join(tmpdir(), 'nodeplane-e2e-overlay-'));
    etcd = await EtcdServer.start();
    underlay = createNetns('underlay');
    underlay.ip(['link', 'add', 'br0', 'type', 'bridge']);
    underlay.ip(['link', 'set', 'br0', 'up']);
    for (const i of [1, 2, 3]) await start(i);
  });

  afterAll(async () => {
    for (const lab of labs.values()) lab.destroy();
    underlay?.remove();
    await etcd?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('pods on three nodes reach each other', async () => {
    for (const [from, to] of [[1, 2], [1, 3], [2, 3], [3, 1]] as const) {
      await waitFor(`node ${from} to know node ${to}`, async () => (await routes(labs.get(from)!)).some((r) => r.dst === `10.244.${to}.0/24`), 10_000);
      await ping(labs.get(from)!.pod('pa'), `10.244.${to}.2`);
    }
  });

  it('a fourth node joining at run time is reachable within 5 s', async () => {
    const lab4 = await start(4);
    const up = Date.now();
    const pod1 = labs.get(1)!.pod('pa');
    for (;;) {
      const r = await pod1.run('ping', ['-c', '1', '-W', '1', '10.244.4.2'], { timeoutMs: 5000 });
      if (r.code === 0) break;
      if (Date.now() - up > 5000) throw new Error(`node 4 not reachable within 5 s of starting: ${r.stdout}`);
    }
    const took = Date.now() - up;
    process.stdout.write(`cluster: node 4 reachable from node 1 ${took} ms after it came up\n`);
    expect(took).toBeLessThan(5000);
    await ping(labs.get(2)!.pod('pa'), '10.244.4.2');
    await ping(lab4.pod('pa'), '10.244.1.2');
  });

  it('an etcd restart does not interrupt traffic between known nodes', async () => {
    const pod1 = labs.get(1)!.pod('pa');
    const pinging = pod1.run('ping', ['-c', '30', '-i', '0.2', '-W', '1', '10.244.2.2'], { timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 1000));
    await etcd.stop();
    await new Promise((r) => setTimeout(r, 2000));
    await etcd.start();
    const r = await pinging;
    expect(r.stdout).toContain('30 packets transmitted, 30 received');
  });

  it('a node that stops is removed when its lease expires', async () => {
    const lab3 = labs.get(3)!;
    expect((await routes(labs.get(1)!)).some((r) => r.dst === '10.244.3.0/24')).toBe(true);
    const stoppedAt = Date.now();
    expect(await lab3.stopNodeplane('SIGTERM')).toBe(0);
    await waitFor('node 3 to be removed from node 1', async () => !(await routes(labs.get(1)!)).some((r) => r.dst === '10.244.3.0/24'), (TTL + 5) * 1000);
    // Renewed every TTL/2, its lease had at least TTL/2 left when node 3 stopped: the others
    // drop it when that runs out, not when the node stops.
    const took = Date.now() - stoppedAt;
    expect(took).toBeGreaterThanOrEqual((TTL / 2) * 1000 - 500);
    expect(took).toBeLessThanOrEqual((TTL + 3) * 1000);
    await ping(labs.get(1)!.pod('pa'), '10.244.2.2');
  });
});
