/**
 * End to end: Services across two nodeplane nodes (issue 10's "two nodeplane nodes").
 *
 * Node 1 (pod pa 10.244.1.2) runs kube-proxy's part with Services whose only endpoint is the
 * pod on node 2 (10.244.2.2): a ClusterIP and a NodePort for HTTP, and the same for iperf3.
 * Node 2 only routes its overlay. The nodes' underlay TAPs hang off the underlay bridge
 * through veths that segment and checksum as a wire does (src/lab/flannel-nodes.ts,
 * `Underlay` with `wire`), and the bridge has an address of its own: a host outside the
 * cluster, 192.168.50.1, the NodePort's client.
 *
 * - pa reaches the ClusterIP (a page naming node 2's pod, then 1 MB byte for byte), and sends
 *   4 MB with iperf3 to the other ClusterIP: its super-frames are DNAT'd on node 1 and,
 *   where the TAPs take UDP-tunnel GSO, encapsulated whole for the wire to segment;
 * - the outside host fetches 1 MB through node 1's NodePort (DNAT and masquerade to node 1's
 *   flannel.1 address on node 1, the reply translated back after decapsulation) and sends 4 MB
 *   through the other NodePort;
 * - tshark on node 1's wire, VXLAN decoded on 8472, with IPv4, UDP and TCP checksum checks
 *   on: every checksum of every layer, inner ones included, is right (none bad), and the
 *   translated flows are there (kubernetes#88986: flannel's 63-second delays came from inner
 *   checksums broken between NAT and encapsulation).
 *
 * Every command is bounded in time and count; namespaces go away in afterAll, and with the
 * process in any case (src/lab/netns.ts).
 */
import { randomBytes, createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchState } from '../../src/admin/client.ts';
import { Underlay, flannelNodeId, peerOf, startFlannelNode } from '../../src/lab/flannel-nodes.ts';
import type { Lab } from '../../src/lab/lab.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';
import { fetchDigest, iperf, serveHttp, sleep } from './overlay-probes.ts';

const problem = missingPrerequisite(['curl', 'python3', 'iperf3', 'ss', 'tshark', 'ethtool']);
const skip = skipUnlessReady('end-to-end Services across nodes', problem);

const N1 = flannelNodeId(1);
const N2 = flannelNodeId(2);
const POD1 = '10.244.1.2';
const POD2 = '10.244.2.2';
const OUTSIDE = '192.168.50.1';
const WEB = '10.96.0.10';
const PERF = '10.96.0.13';

const endpoint = `
    endpoints:
      - { ip: ${POD2}, nodeName: node2 }`;
const SERVICES = `nat:
  clusterCIDR: 10.244.0.0/16
services:
  - name: web
    clusterIP: ${WEB}
    ports: [{ name: http, port: 80, targetPort: 8080 }]${endpoint}
  - name: web-np
    type: NodePort
    clusterIP: 10.96.0.11
    ports: [{ name: http, port: 80, targetPort: 8080, nodePort: 30080 }]${endpoint}
  - name: perf
    clusterIP: ${PERF}
    ports: [{ name: iperf, port: 5201, targetPort: 5201 }]${endpoint}
  - name: perf-np
    type: NodePort
    clusterIP: 10.96.0.14
    ports: [{ name: iperf, port: 5201, targetPort: 5201, nodePort: 30201 }]${endpoint}
`;

describe.skipIf(skip)('vxlan: Services on node 1 whose only endpoint is on node 2', () => {
  let n1: Lab | undefined;
  let n2: Lab | undefined;
  let underlay: Underlay | undefined;
  let web: ChildProcess | undefined;
  let capture: ChildProcess | undefined;
  let captured: Promise<void> = Promise.resolve();
  let dir = '';
  let digest = '';
  const pcap = (): string => join(dir, 'wire.pcap');

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-vxlan-svc-'));
    const www = join(dir, 'www');
    mkdirSync(www);
    const body = randomBytes(1 << 20);
    writeFileSync(join(www, 'file.bin'), body);
    writeFileSync(join(www, 'name'), 'node2/pa\n');
    digest = createHash('sha256').update(body).digest('hex');
    [n1, n2] = await Promise.all([
      startFlannelNode({ dir: join(dir, 'n1'), id: N1, peers: [peerOf(N2)], extra: SERVICES }),
      startFlannelNode({ dir: join(dir, 'n2'), id: N2, peers: [peerOf(N1)] }),
    ]);
    underlay = Underlay.create({ wire: true, address: `${OUTSIDE}/24` });
    underlay.attach(n1, 1);
    underlay.attach(n2, 2);
    web = await serveHttp(n2.pod('pa'), POD2, 8080, www);
    // Everything node 1 sends or receives on the wire, from here on (bounded in count and time).
    const cap = underlay.ns.spawn('tshark', ['-i', 'w1', '-c', '60000', '-a', 'duration:60', '-w', pcap()], { stdio: ['ignore', 'ignore', 'pipe'] });
    capture = cap;
    let capErr = '';
    cap.stderr!.setEncoding('utf8').on('data', (d: string) => (capErr += d));
    captured = new Promise((r) => cap.on('close', () => r()));
    for (let i = 0; i < 100 && !capErr.includes('Capturing on'); i++) await sleep(100);
    if (!capErr.includes('Capturing on')) throw new Error(`tshark did not start: ${capErr}`);
  }, 90_000);

  afterAll(() => {
    web?.kill('SIGKILL');
    capture?.kill('SIGKILL');
    n1?.destroy();
    n2?.destroy();
    underlay?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a pod on node 1 reaches a ClusterIP whose endpoint is on node 2: a page, 1 MB, and 4 MB of super-frames', async () => {
    const page = await n1!.pod('pa').run('curl', ['-sS', '--max-time', '5', `http://${WEB}/name`], { timeoutMs: 10_000 });
    expect(page.stdout.trim()).toBe('node2/pa');
    expect(await fetchDigest(n1!.pod('pa'), `http://${WEB}/file.bin`)).toBe(digest);
    expect(await iperf(n2!.pod('pa'), POD2, n1!.pod('pa'), { target: PERF, bytes: '4M' })).toBeGreaterThan(0);
  }, 60_000);

  it('a host outside the cluster reaches node 1\'s NodePort whose endpoint is on node 2: 1 MB each way', async () => {
    expect(await fetchDigest(underlay!.ns, `http://${N1.local}:30080/file.bin`)).toBe(digest);
    expect(await iperf(n2!.pod('pa'), POD2, underlay!.ns, { target: N1.local, port: 30201, bytes: '1M' })).toBeGreaterThan(0);
  }, 60_000);

  it('on the wire, every checksum is right, inner ones included, after NAT and encapsulation', async () => {
    capture!.kill('SIGINT');
    await captured;
    const fields = ['frame.number', 'vxlan.vni', 'ip.src', 'ip.dst', 'tcp.srcport', 'tcp.dstport', 'ip.checksum.status', 'udp.checksum.status', 'tcp.checksum.status'];
    const r = await underlay!.ns.run(
      'tshark',
      ['-r', pcap(), '-d', 'udp.port==8472,vxlan', '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-Y', 'ip', '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])],
      { timeoutMs: 60_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout.trim().split('\n').map((l) => l.split('|'));
    const at = (name: string): number => fields.indexOf(name);
    const vxlan = rows.filter((x) => x[at('vxlan.vni')] !== '');
    process.stdout.write(`wire: ${rows.length} IPv4 frames, ${vxlan.length} VXLAN; first rows:\n${r.stdout.split('\n').slice(0, 6).join('\n')}\n`);
    expect(vxlan.length).toBeGreaterThan(2000);
    // Wireshark's checksum status: 0 bad, 1 good, 2 unverified, 3 not present (a zero UDP checksum).
    const bad = rows.filter((x) => [at('ip.checksum.status'), at('udp.checksum.status'), at('tcp.checksum.status')].some((i) => x[i].split(',').some((v) => v === '0' || v === '4')));
    expect(bad.map((x) => x.join('|')).slice(0, 5)).toEqual([]);
    // Every TCP checksum was checked and is good, inner ones too; every inner IPv4 header's.
    for (const x of rows) if (x[at('tcp.checksum.status')] !== '') expect(x[at('tcp.checksum.status')]).toBe('1');
    for (const x of vxlan) expect(x[at('ip.checksum.status')]).toBe('1,1');
    // The translated flows crossed: pa's to the endpoint (DNAT), and the NodePort's client
    // masqueraded to node 1's flannel.1 address, each way.
    const inner = (x: string[]): string => `${x[at('ip.src')].split(',')[1]}:${x[at('tcp.srcport')]} > ${x[at('ip.dst')].split(',')[1]}:${x[at('tcp.dstport')]}`;
    const flows = new Set(vxlan.map(inner));
    const has = (re: RegExp): boolean => [...flows].some((f) => re.test(f));
    expect(has(new RegExp(`^${POD1}:\\d+ > ${POD2}:8080$`))).toBe(true);
    expect(has(new RegExp(`^${POD1}:\\d+ > ${POD2}:5201$`))).toBe(true);
    expect(has(new RegExp(`^10\\.244\\.1\\.0:\\d+ > ${POD2}:8080$`))).toBe(true);
    expect(has(new RegExp(`^${POD2}:8080 > 10\\.244\\.1\\.0:\\d+$`))).toBe(true);
    expect(has(new RegExp(`^10\\.244\\.1\\.0:\\d+ > ${POD2}:5201$`))).toBe(true);
    // The NodePort's own packets on the underlay, translated back: from node 1's address.
    expect(rows.some((x) => x[at('vxlan.vni')] === '' && x[at('ip.src')] === N1.local && x[at('tcp.srcport')] === '30080')).toBe(true);
    // With UDP-tunnel GSO, node 1 encapsulated super-frames whole and the wire cut them: more
    // VXLAN frames from node 1 on the wire than node 1 encapsulated, none cut by node 1.
    const ports = (await fetchState(n1!.adminSocket, 'ports')) as { ports: Array<{ name: string; driver: { offload: string } }> };
    const stats = (await fetchState(n1!.adminSocket, 'stats')) as { stages: Array<{ name: string; packets: number }> };
    const packets = (name: string): number => stats.stages.find((x) => x.name === name)!.packets;
    const fromNode1 = vxlan.filter((x) => x[at('ip.src')].startsWith(`${N1.local},`)).length;
    process.stdout.write(`node 1: underlay offload ${ports.ports.find((p) => p.name === 'up')!.driver.offload}, vxlan-encap ${packets('vxlan-encap')}, tcp-segment ${packets('tcp-segment')}; VXLAN frames from node 1 on the wire ${fromNode1}\n`);
    if (ports.ports.find((p) => p.name === 'up')!.driver.offload === 'tcp+udp-tunnel') {
      expect(packets('tcp-segment')).toBe(0);
      expect(fromNode1).toBeGreaterThan(packets('vxlan-encap'));
    }
  }, 90_000);
});
