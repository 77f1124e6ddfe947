/**
 * Cluster mode against a real etcd (Debian's etcd-server, on a unix socket, in a network
 * namespace of its own): leases in flannel's layout, races, reuse, renewal, peers from the
 * watch, etcd going away and coming back, TLS. Needs `etcd` and root (for `unshare -n`):
 * skipped with the reason printed without them, required under CI=true.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fdbState, neighState, routesState } from '../../src/admin/state.ts';
import { ClusterNode } from '../../src/cluster/cluster-node.ts';
import { type Config, validateConfigObject } from '../../src/config/load.ts';
import { SystemClock } from '../../src/core/clock.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import type { Logger } from '../../src/log.ts';
import { EtcdServer, type EtcdTls, etcdMissing, makeCertificates } from '../../src/lab/etcd-server.ts';

const problem = etcdMissing();
const REQUIRED = process.env.CI === 'true';
if (problem && !REQUIRED) process.stdout.write(`skipping cluster mode on etcd: ${problem}\n`);
const suite = problem && !REQUIRED ? describe.skip : describe;

const PREFIX = '/coreos.com/network';

interface Opts {
  ttl?: number;
  etcd?: object;
  nat?: boolean;
}

/** Node i: uplink 192.168.50.1i, cni0 on the lease, flannel.1; its subnet.env in `dir`. */
function nodeConfig(i: number, endpoint: string, dir: string, o: Opts = {}): Config {
  const r = validateConfigObject({
    node: { name: `node${i}` },
    bridges: [{ name: 'cni0', address: 'lease' }],
    ports: [
      { name: 'pa', bridge: 'cni0' },
      { name: 'up', address: `192.168.50.${10 + i}/24` },
    ],
    vxlan: [{ name: 'flannel.1', vni: 1 }],
    ...(o.nat ? { nat: { clusterCIDR: '10.244.0.0/16' } } : {}),
    cluster: {
      network: '10.244.0.0/16',
      vxlan: 'flannel.1',
      publicIP: `192.168.50.${10 + i}`,
      leaseTTLSeconds: o.ttl ?? 60,
      subnetFile: join(dir, `node${i}`, 'subnet.env'),
      etcd: { endpoints: [endpoint], ...o.etcd },
    },
  });
  if (!r.ok) throw new Error(r.errors.join('\n'));
  return r.config;
}

/** A logger whose records the test can read. */
function memoryLog(): { log: Logger; records: { level: number; msg: string }[] } {
  const records: { level: number; msg: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void records.push(JSON.parse(s)) });
  return { log, records };
}

async function waitFor<T>(what: string, f: () => T | undefined | false, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const subnetOf = (n: ClusterNode) => `${n.lease.subnet.addr >>> 24}.${(n.lease.subnet.addr >>> 16) & 255}.${(n.lease.subnet.addr >>> 8) & 255}.0/${n.lease.subnet.prefixLen}`;

suite('cluster mode on etcd', () => {
  let etcd: EtcdServer;
  let dir: string;
  let raw: Etcd3;
  const nodes: ClusterNode[] = [];

  const joinNode = async (i: number, o: Opts = {}, random?: () => number): Promise<ClusterNode> => {
    const n = await ClusterNode.join(nodeConfig(i, etcd.endpoint, dir, o), memoryLog().log, { random });
    nodes.push(n);
    return n;
  };
  const close = async (n: ClusterNode): Promise<void> => {
    nodes.splice(nodes.indexOf(n), 1);
    await n.close();
  };

  beforeAll(async () => {
    if (problem) throw new Error(`cluster tests need: ${problem}`);
    etcd = await EtcdServer.start();
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-cluster-'));
    raw = new Etcd3({ hosts: etcd.endpoint });
  });

  afterAll(async () => {
    for (const n of nodes.splice(0)) await n.close();
    raw?.close();
    await etcd?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("writes the network config when absent, leases a subnet in flannel's layout and writes subnet.env", async () => {
    const a = await joinNode(1, { nat: true });
    expect(await raw.get(`${PREFIX}/config`).string()).toBe('{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1,"Port":8472}}');
    const sn = subnetOf(a);
    expect(sn).toMatch(/^10\.244\.\d+\.0\/24$/);
    const third = sn.split('.')[2]!;
    expect(Number(third)).toBeGreaterThanOrEqual(1);
    const key = `${PREFIX}/subnets/10.244.${third}.0-24`;
    const mac = `0e:58:0a:f4:${Number(third).toString(16).padStart(2, '0')}:00`;
    expect(await raw.get(key).string()).toBe(`{"PublicIP":"192.168.50.11","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`);
    // The key hangs on an etcd lease of the configured TTL.
    const kv = (await raw.getAll().prefix(key).exec()).kvs[0]!;
    const ttl = await raw.leaseClient.leaseTimeToLive({ ID: kv.lease, keys: false });
    expect(Number(ttl.grantedTTL)).toBe(60);
    expect(readFileSync(join(dir, 'node1', 'subnet.env'), 'utf8')).toBe(
      `FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.${third}.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`,
    );
    // SPEC §2's addresses: cni0 the subnet's first address, flannel.1 its .0/32 with the published MAC.
    const c = a.dataplaneConfig();
    expect(c.bridges[0]!.address).toBe(`10.244.${third}.1/24`);
    expect(c.vxlan[0]).toMatchObject({ address: `10.244.${third}.0/32`, mac, local: '192.168.50.11', peers: [] });
    await close(a);
  });

  it('never gives two racing nodes one subnet', async () => {
    // Every node first tries the same subnet (random() = 0): all but one lose the transaction.
    const racers = await Promise.all([2, 3, 4, 5, 6].map((i) => joinNode(i, {}, () => 0)));
    const subnets = racers.map(subnetOf);
    expect(new Set(subnets).size).toBe(5);
    const { kvs } = await raw.getAll().prefix(`${PREFIX}/subnets/`).exec();
    const owners = new Map(kvs.map((kv) => [kv.key.toString().split('/').pop(), JSON.parse(kv.value.toString()).PublicIP]));
    for (const k of racers.keys()) expect(owners.get(subnets[k]!.replace('/', '-'))).toBe(`192.168.50.${12 + k}`);
    for (const n of racers) await close(n);
  });

  it('reuses the lease of its PublicIP after a restart', async () => {
    const first = await joinNode(7);
    const before = subnetOf(first);
    const key = `${PREFIX}/subnets/${before.replace('/', '-')}`;
    const leaseBefore = (await raw.getAll().prefix(key).exec()).kvs[0]!.lease;
    await close(first);
    const again = await joinNode(7);
    expect(again.lease.reused).toBe(true);
    expect(subnetOf(again)).toBe(before);
    expect((await raw.getAll().prefix(key).exec()).kvs[0]!.lease).not.toBe(leaseBefore);
    await close(again);
  });

  it('renews its lease before it runs out, revoking the old one', async () => {
    const n = await joinNode(8, { ttl: 2 });
    const key = `${PREFIX}/subnets/${subnetOf(n).replace('/', '-')}`;
    const first = (await raw.getAll().prefix(key).exec()).kvs[0]!.lease;
    // Renewal every TTL/2 = 1 s: after 3.5 s the key still exists, under a newer lease.
    await new Promise((r) => setTimeout(r, 3500));
    const now = (await raw.getAll().prefix(key).exec()).kvs[0];
    expect(now, 'the key outlived three TTLs').toBeDefined();
    expect(now!.lease).not.toBe(first);
    expect(Number((await raw.leaseClient.leaseTimeToLive({ ID: first, keys: false })).TTL)).toBe(-1);
    await close(n);
    // Once the node is gone nothing renews it: the key expires with its lease.
    await new Promise((r) => setTimeout(r, 2500));
    expect(await raw.get(key).string()).toBeNull();
  });

  it('adds and removes peers as nodes join and their leases expire, and drives the dataplane', async () => {
    const a = await joinNode(9, { ttl: 30 });
    const dp = new Dataplane(a.dataplaneConfig(), { clock: new SystemClock() });
    a.attach(dp);
    const b = await joinNode(10, { ttl: 2 });
    const peer = { vtep: '192.168.50.20', mac: b.dataplaneConfig().vxlan[0]!.mac, subnet: subnetOf(b) };
    await waitFor('node 10 as a peer of node 9', () => a.peers().some((p) => p.vtep === peer.vtep));
    expect(a.peers().find((p) => p.vtep === peer.vtep)).toEqual(peer);
    // The dataplane got flanneld's entries for it: the route, the permanent neighbour, the FDB entry.
    const via = peer.subnet.split('/')[0]!;
    expect(routesState(dp).routes).toContainEqual(expect.objectContaining({ dst: peer.subnet, gateway: via, dev: 'flannel.1', onlink: true }));
    expect(neighState(dp).entries).toContainEqual(expect.objectContaining({ ip: via, dev: 'flannel.1', lladdr: peer.mac, state: 'PERMANENT' }));
    expect(fdbState(dp).entries).toContainEqual(expect.objectContaining({ mac: peer.mac, port: 'flannel.1', dst: peer.vtep }));
    // Node 10 stops: its lease runs out after 2 s and node 9 drops it.
    await close(b);
    await waitFor('node 10 to be dropped', () => !a.peers().some((p) => p.vtep === peer.vtep), 10_000);
    expect(routesState(dp).routes.some((r) => r.dst === peer.subnet)).toBe(false);
    expect(neighState(dp).entries.some((e) => e.ip === via)).toBe(false);
    expect(fdbState(dp).entries.some((e) => e.mac === peer.mac)).toBe(false);
    await close(a);
  });

  it('leaves out leases that cannot be peers: another backend, bad JSON, our PublicIP, an overlapping subnet', async () => {
    const a = await joinNode(14, { ttl: 30 });
    const put = (key: string, value: string) => raw.put(`${PREFIX}/subnets/${key}`).value(value);
    const lease = (ip: string, mac: string) => `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`;
    await put('10.244.200.0-24', '{"PublicIP":"192.168.50.90","BackendType":"host-gw"}');
    await put('10.244.201.0-24', 'not json');
    await put('10.244.202.0-24', lease('192.168.50.24', '0e:00:00:00:02:02'));
    await put('10.244.210.0-23', lease('192.168.50.91', '0e:00:00:00:02:10'));
    await put('10.244.211.0-24', lease('192.168.50.92', '0e:00:00:00:02:11'));
    await put('10.244.220.0-24', lease('192.168.50.93', '0e:00:00:00:02:20'));
    await waitFor('the valid peers', () => a.peers().some((p) => p.subnet === '10.244.220.0/24'));
    const planted = (p: { subnet: string }) => /^10\.244\.2\d\d\./.test(p.subnet);
    expect(a.peers().filter(planted)).toEqual([
      { vtep: '192.168.50.91', mac: '0e:00:00:00:02:10', subnet: '10.244.210.0/23' },
      { vtep: '192.168.50.93', mac: '0e:00:00:00:02:20', subnet: '10.244.220.0/24' },
    ]);
    for (const k of ['200.0-24', '201.0-24', '202.0-24', '210.0-23', '211.0-24', '220.0-24']) await raw.delete().key(`${PREFIX}/subnets/10.244.${k}`);
    await waitFor('the planted peers to go', () => !a.peers().some(planted));
    await close(a);
  });

  it('keeps its peers while etcd is down, logs the outage once, and follows changes once etcd is back', async () => {
    const logA = memoryLog();
    const a = await ClusterNode.join(nodeConfig(11, etcd.endpoint, dir, { ttl: 30 }), logA.log);
    nodes.push(a);
    const b = await joinNode(12, { ttl: 30 });
    await waitFor('node 12 as a peer', () => a.peers().some((p) => p.vtep === '192.168.50.22'));
    const known = a.peers();
    await etcd.stop();
    await new Promise((r) => setTimeout(r, 3000));
    expect(a.peers()).toEqual(known);
    const warnings = logA.records.filter((r) => r.msg.startsWith('etcd unreachable'));
    expect(warnings).toHaveLength(1);
    await etcd.start();
    await waitFor('the watch to reconnect', () => logA.records.some((r) => r.msg.startsWith('etcd reachable again')), 15_000);
    const c = await joinNode(13, { ttl: 30 });
    await waitFor('node 13 as a peer after the restart', () => a.peers().some((p) => p.vtep === '192.168.50.23'), 10_000);
    expect(a.peers().some((p) => p.vtep === '192.168.50.22')).toBe(true);
    for (const n of [a, b, c]) await close(n);
  });
});

suite('cluster mode on etcd with TLS', () => {
  let etcd: EtcdServer;
  let dir: string;
  let client: EtcdTls;

  beforeAll(async () => {
    if (problem) throw new Error(`cluster tests need: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-cluster-tls-'));
    const certs = makeCertificates(dir);
    client = certs.client;
    etcd = await EtcdServer.start({ tls: certs.server });
  });

  afterAll(async () => {
    await etcd?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('leases through etcd with a CA and a client certificate, and is refused without one', async () => {
    expect(etcd.endpoint.startsWith('unixs://')).toBe(true);
    const a = await ClusterNode.join(nodeConfig(1, etcd.endpoint, dir, { etcd: client }), memoryLog().log);
    expect(subnetOf(a)).toMatch(/^10\.244\.\d+\.0\/24$/);
    await a.close();
    // Without the client certificate etcd refuses the handshake: join keeps waiting until aborted.
    const { log, records } = memoryLog();
    const abort = new AbortController();
    const joining = ClusterNode.join(nodeConfig(2, etcd.endpoint, dir, { etcd: { caFile: client.caFile } }), log, { signal: abort.signal });
    await waitFor('the refusal to be logged', () => records.some((r) => r.msg.startsWith('cannot join the cluster through etcd yet')), 20_000);
    abort.abort();
    await expect(joining).rejects.toThrow('stopped while waiting for etcd');
  });
});

suite('cluster mode on etcd with a username and password', () => {
  let etcd: EtcdServer;
  let dir: string;

  beforeAll(async () => {
    if (problem) throw new Error(`cluster tests need: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-cluster-auth-'));
    etcd = await EtcdServer.start();
    // etcd's auth: a root user with the root role, then a user for flannel with read and
    // write on the prefix, then auth on.
    const admin = new Etcd3({ hosts: etcd.endpoint });
    try {
      await admin.role('root').create();
      await admin.user('root').create('rootpw');
      await admin.user('root').addRole('root');
      await admin.role('flannel').create();
      await admin.role('flannel').grant({ permission: 'Readwrite', range: admin.range({ prefix: `${PREFIX}/` }) });
      await admin.user('flannel').create('flannelpw');
      await admin.user('flannel').addRole('flannel');
      await admin.auth.authEnable();
    } finally {
      admin.close();
    }
  });

  afterAll(async () => {
    await etcd?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('leases with the right password and is refused with a wrong one', async () => {
    const a = await ClusterNode.join(nodeConfig(1, etcd.endpoint, dir, { etcd: { username: 'flannel', password: 'flannelpw' } }), memoryLog().log);
    expect(subnetOf(a)).toMatch(/^10\.244\.\d+\.0\/24$/);
    await a.close();
    const { log, records } = memoryLog();
    const abort = new AbortController();
    const joining = ClusterNode.join(nodeConfig(2, etcd.endpoint, dir, { etcd: { username: 'flannel', password: 'wrong' } }), log, { signal: abort.signal });
    const refused = await waitFor('the refusal to be logged', () => records.find((r) => r.msg.startsWith('cannot join the cluster through etcd yet')), 20_000);
    expect(JSON.stringify(refused)).toMatch(/authentication failed|invalid/i);
    abort.abort();
    await expect(joining).rejects.toThrow('stopped while waiting for etcd');
  });
});
