/**
 * End to end: the VXLAN overlay against the kernel's, and between two nodeplane nodes.
 *
 * Interop: node 1 is nodeplane (pod 10.244.1.2 on cni0, underlay port `up` 192.168.50.11,
 * flannel.1 with node 2 as its static peer); node 2 is a kernel flannel node (flannel.1 as
 * `ip link add ... type vxlan id 1 dstport 8472 nolearning`, cni0, pod 10.244.2.5, and the
 * route, neighbour and FDB entries flanneld adds) in the namespace that holds the other end
 * of nodeplane's `up` TAP. Pods ping both ways, a 1 MB file crosses over HTTP in each
 * direction (nodeplane encapsulating one way, decapsulating the other), and tshark on the
 * underlay decodes VXLAN with the inner ICMP and TCP.
 *
 * Two nodeplane nodes: the same with nodeplane on both sides (their `up` TAPs on one
 * underlay bridge), iperf3 pod to pod across the overlay, printed beside a pair of kernel
 * flannel nodes measured in the same run (one 3-second run each: the figures are printed, the
 * test asserts that TCP moves at all; the comparison is `npm run bench -- e2e-vxlan`).
 *
 * Every command is bounded in time and count; namespaces go away in afterAll, and with the
 * process in any case (src/lab/netns.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchState } from '../../src/admin/client.ts';
import { type KernelFlannelNode, Underlay, flannelNodeId, kernelFlannelNode, kernelFlannelPair, peerOf, startFlannelNode } from '../../src/lab/flannel-nodes.ts';
import { Lab } from '../../src/lab/lab.ts';
import type { Netns } from '../../src/lab/netns.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';
import { httpFetch, iperf, ping, sleep } from './overlay-probes.ts';

const problem = missingPrerequisite(['curl', 'python3', 'iperf3', 'ss', 'tshark', 'bridge', 'sysctl']);
const skip = skipUnlessReady('end-to-end vxlan tests', problem);

const N1 = flannelNodeId(1);
const N2 = flannelNodeId(2);
const POD1 = '10.244.1.2';

describe.skipIf(skip)('vxlan interop: a nodeplane node and a kernel flannel node', () => {
  let lab: Lab | undefined;
  let k2: KernelFlannelNode | undefined;
  let dir = '';
  let www = '';
  let digest = '';

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-vxlan-'));
    www = join(dir, 'www');
    mkdirSync(www);
    const body = randomBytes(1 << 20);
    writeFileSync(join(www, 'file.bin'), body);
    digest = createHash('sha256').update(body).digest('hex');
    // Node 2's underlay is the far end of nodeplane's `up` TAP.
    lab = await startFlannelNode({
      dir: join(dir, 'n1'),
      id: N1,
      peers: [peerOf(N2)],
      pods: [
        { port: 'pa', address: `${POD1}/24`, gateway: '10.244.1.1' },
        { port: 'up', address: `${N2.local}/24` },
      ],
    });
    k2 = kernelFlannelNode(lab.pod('up'), { n: 2, local: N2.local, underlayDev: 'eth0', mac: N2.mac, peers: [peerOf(N1)] });
  }, 60_000);

  afterAll(() => {
    k2?.pod.remove();
    lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('pods ping each other both ways across the overlay', async () => {
    expect(await ping(lab!.pod('pa'), k2!.podIp)).toBe(3);
    expect(await ping(k2!.pod, POD1)).toBe(3);
  }, 60_000);

  it('a 1 MB file crosses over HTTP both ways, byte for byte', async () => {
    // Kernel → nodeplane: the kernel encapsulates, nodeplane decapsulates.
    expect(await httpFetch(k2!.pod, k2!.podIp, 8080, www, lab!.pod('pa'), 'file.bin')).toBe(digest);
    // nodeplane → kernel: the pod's TCP (super-frames, offload on) encapsulated by nodeplane,
    // whole where the TAPs take UDP-tunnel super-frames, else segmented first.
    expect(await httpFetch(lab!.pod('pa'), POD1, 8081, www, k2!.pod, 'file.bin')).toBe(digest);
    const stats = (await fetchState(lab!.adminSocket, 'stats')) as { stages: Array<{ name: string; packets: number; drops: Record<string, number> }> };
    const stage = (name: string) => stats.stages.find((x) => x.name === name)!;
    const ports = (await fetchState(lab!.adminSocket, 'ports')) as { ports: Array<{ name: string; driver: { offload: string } }> };
    const offload = ports.ports.find((p) => p.name === 'up')!.driver.offload;
    process.stdout.write(`underlay offload: ${offload}; vxlan-encap ${stage('vxlan-encap').packets}, vxlan-decap ${stage('vxlan-decap').packets}, tcp-segment ${stage('tcp-segment').packets}\n`);
    if (offload === 'tcp+udp-tunnel') {
      // Super-frames crossed whole both ways: nothing was cut here, and far fewer packets than
      // the 750 segments 1 MB makes (the kernel hands its own encapsulated super-frames over whole).
      expect(stage('tcp-segment').packets).toBe(0);
      expect(stage('vxlan-encap').packets).toBeLessThan(700);
      expect(stage('vxlan-decap').packets).toBeLessThan(700);
    } else {
      expect(offload).toBe('tcp');
      // 1 MB each way: at least 1 MB / 1398 bytes of segments encapsulated and decapsulated.
      expect(stage('vxlan-encap').packets).toBeGreaterThan(700);
      expect(stage('vxlan-decap').packets).toBeGreaterThan(700);
    }
    const none = (d: Record<string, number>): number => Object.values(d).reduce((x, y) => x + y, 0);
    expect(none(stage('vxlan-decap').drops)).toBe(0);
    expect(none(stage('vxlan-encap').drops)).toBe(0);
  }, 90_000);

  it('tshark on the underlay decodes VXLAN (VNI 1) with the inner ICMP and TCP', async () => {
    const pcap = join(dir, 'underlay.pcap');
    const cap = lab!.pod('up').spawn('tshark', ['-i', 'eth0', '-f', 'udp port 8472', '-c', '60', '-a', 'duration:20', '-w', pcap], { stdio: ['ignore', 'ignore', 'pipe'] });
    let capErr = '';
    cap.stderr!.setEncoding('utf8').on('data', (d: string) => (capErr += d));
    const done = new Promise<void>((r) => cap.on('close', () => r()));
    try {
      for (let i = 0; i < 100 && !capErr.includes('Capturing on'); i++) await sleep(100);
      expect(capErr).toContain('Capturing on');
      expect(await ping(lab!.pod('pa'), k2!.podIp)).toBe(3);
      await lab!.pod('pa').run('curl', ['-sS', '--max-time', '5', '-o', '/dev/null', `http://${k2!.podIp}:9/`], { timeoutMs: 10_000 });
      await httpFetch(k2!.pod, k2!.podIp, 8082, www, lab!.pod('pa'), 'file.bin');
      await done;
    } finally {
      cap.kill('SIGKILL');
    }
    const r = await lab!.pod('up').run('tshark', ['-r', pcap, '-d', 'udp.port==8472,vxlan', '-o', 'tcp.check_checksum:TRUE', '-T', 'fields', '-E', 'separator=|', '-e', 'vxlan.vni', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'udp.srcport', '-e', '_ws.col.Protocol', '-e', 'icmp.type', '-e', 'tcp.checksum.status'], { timeoutMs: 20_000 });
    expect(r.code).toBe(0);
    const rows = r.stdout.trim().split('\n').map((l) => l.split('|'));
    process.stdout.write(`underlay capture, decoded:\n${r.stdout.split('\n').slice(0, 12).join('\n')}\n`);
    expect(rows.length).toBeGreaterThan(10);
    for (const [vni] of rows) expect(vni).toBe('1');
    const pings = rows.filter((x) => x[5] !== '');
    expect(pings.some((x) => x[1] === `${N1.local},${POD1}` && x[2] === `${N2.local},${k2!.podIp}` && x[5].startsWith('8'))).toBe(true);
    expect(pings.some((x) => x[1] === `${N2.local},${k2!.podIp}` && x[2] === `${N1.local},${POD1}` && x[5].startsWith('0'))).toBe(true);
    const tcp = rows.filter((x) => x[4] === 'TCP' || x[4] === 'HTTP');
    const ours = tcp.filter((x) => x[1] === `${N1.local},${POD1}`);
    expect(ours.length).toBeGreaterThan(0);
    // Every inner TCP checksum nodeplane sent is right (1: good), after segmentation and encapsulation.
    for (const x of ours) expect(x[6]).toBe('1');
    // nodeplane's outer source ports are in Linux's ephemeral range.
    for (const x of rows.filter((y) => y[1].startsWith(N1.local))) expect(Number(x[3])).toBeGreaterThanOrEqual(32768);
  }, 90_000);

  it('show routes, neigh and fdb list the flannel entries', async () => {
    const routes = (await fetchState(lab!.adminSocket, 'routes')) as { routes: Array<{ dst: string; gateway: string; dev: string; onlink: boolean }> };
    expect(routes.routes).toContainEqual(expect.objectContaining({ dst: N2.subnet, gateway: '10.244.2.0', dev: 'flannel.1', onlink: true }));
    const neigh = (await fetchState(lab!.adminSocket, 'neigh')) as { entries: Array<{ ip: string; dev: string; lladdr: string; state: string }> };
    expect(neigh.entries).toContainEqual(expect.objectContaining({ ip: '10.244.2.0', dev: 'flannel.1', lladdr: N2.mac, state: 'PERMANENT' }));
    const fdb = (await fetchState(lab!.adminSocket, 'fdb')) as { entries: Array<{ mac: string; port: string; dst?: string }> };
    expect(fdb.entries).toContainEqual(expect.objectContaining({ mac: N2.mac, port: 'flannel.1', dst: N2.local }));
  });
});

describe.skipIf(skip)('vxlan: two nodeplane nodes, iperf3 pod to pod beside the kernel pair', () => {
  let a: Lab | undefined;
  let b: Lab | undefined;
  let underlay: Underlay | undefined;
  let kernel: ReturnType<typeof kernelFlannelPair> | undefined;
  let k1: KernelFlannelNode | undefined;
  let k2: KernelFlannelNode | undefined;
  let dir = '';

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-vxlan2-'));
    a = await startFlannelNode({ dir: join(dir, 'a'), id: N1, peers: [peerOf(N2)] });
    b = await startFlannelNode({ dir: join(dir, 'b'), id: N2, peers: [peerOf(N1)] });
    // The underlay: both `up` TAPs on one bridge.
    underlay = Underlay.create();
    underlay.attach(a, 1);
    underlay.attach(b, 2);
    // The kernel pair: two flannel nodes on a veth underlay.
    kernel = kernelFlannelPair();
    [k1, k2] = kernel.nodes;
  }, 60_000);

  afterAll(() => {
    kernel?.remove();
    a?.destroy();
    b?.destroy();
    underlay?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('pods reach each other across two nodeplane nodes', async () => {
    expect(await ping(a!.pod('pa'), '10.244.2.2')).toBe(3);
    expect(await ping(b!.pod('pa'), POD1)).toBe(3);
    expect(await ping(k1!.pod, k2!.podIp)).toBe(3);
  }, 60_000);

  it('iperf3 pod to pod across the overlay, printed beside the kernel pair', async () => {
    const np = await iperf(b!.pod('pa'), '10.244.2.2', a!.pod('pa'));
    const kern = await iperf(k2!.pod, k2!.podIp, k1!.pod);
    process.stdout.write(`iperf3 across the overlay, nodeplane pair: ${np.toFixed(2)} Gbit/s\n`);
    process.stdout.write(`iperf3 across the overlay, kernel pair:    ${kern.toFixed(2)} Gbit/s\n`);
    for (const [n, name, lab] of [[1, 'a', a!], [2, 'b', b!]] as const) {
      const stats = (await fetchState(lab.adminSocket, 'stats')) as { stages: Array<{ name: string; packets: number; drops: Record<string, number> }> };
      const drops = stats.stages.flatMap((x) => Object.entries(x.drops).filter(([, v]) => v > 0).map(([k, v]) => `${x.name}: ${k} ${v}`));
      const counts = stats.stages.filter((x) => ['tcp-segment', 'vxlan-encap', 'vxlan-decap'].includes(x.name)).map((x) => `${x.name} ${x.packets}`);
      // What the kernel could not hand to nodeplane (a full TAP queue) on each port.
      const txDropped = (ns: Netns, dev: string): number => (JSON.parse(ns.ip(['-s', '-j', 'link', 'show', dev])) as Array<{ stats64: { tx: { dropped: number } } }>)[0].stats64.tx.dropped;
      const tapDrops = [`up ${txDropped(underlay!.ns, `tap${n}`)}`, `pa ${txDropped(lab.pod('pa'), 'eth0')}`];
      const ports = (await fetchState(lab.adminSocket, 'ports')) as { ports: Array<{ name: string; rx: { noBuffer: number }; tx: { dropped: number } }> };
      const portDrops = ports.ports.map((p) => `${p.name} rx nobuf ${p.rx.noBuffer} tx dropped ${p.tx.dropped}`);
      process.stdout.write(`node ${name}: ${counts.join(', ')}; drops: ${drops.join('; ') || 'none'}; ${portDrops.join(', ')}; TAP queue drops toward nodeplane: ${tapDrops.join(', ')}\n`);
    }
    expect(np).toBeGreaterThan(0.05);
    expect(kern).toBeGreaterThan(0.05);
  }, 180_000);
});
