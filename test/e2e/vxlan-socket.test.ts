/**
 * End to end: the socket underlay (`vxlan[].underlay: socket`), two machines joined through
 * their own network stacks. Each nodeplane node runs in a namespace of its own — a machine —
 * whose kernel owns the underlay: a veth between the two namespaces with 192.168.50.11 and
 * 192.168.50.12 on its ends, nothing of nodeplane's on it. flannel.1 sends and receives
 * VXLAN through a UDP socket bound to the machine's address, port 8472.
 *
 * Pods ping each other both ways, 1 MB crosses over HTTP byte for byte (the sending pod's
 * super-frames cut into segments, each a datagram), and tshark on the veth decodes VXLAN
 * (VNI 1) from port 8472 with the inner ICMP. Every command is bounded in time and count;
 * namespaces go away in afterAll, and with the process in any case (src/lab/netns.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchState } from '../../src/admin/client.ts';
import { flannelNodeId, peerOf, startFlannelNode } from '../../src/lab/flannel-nodes.ts';
import type { Lab } from '../../src/lab/lab.ts';
import { createNetns, type Netns } from '../../src/lab/netns.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';
import { httpFetch, ping, sleep } from './overlay-probes.ts';

const problem = missingPrerequisite(['curl', 'python3', 'ss', 'tshark']);
const skip = skipUnlessReady('end-to-end vxlan socket underlay', problem);

const N1 = flannelNodeId(1);
const N2 = flannelNodeId(2);
const POD1 = '10.244.1.2';
const POD2 = '10.244.2.2';

describe.skipIf(skip)('vxlan: two nodeplane machines joined by a kernel UDP socket each (underlay: socket)', () => {
  let m1: Netns | undefined;
  let m2: Netns | undefined;
  let n1: Lab | undefined;
  let n2: Lab | undefined;
  let dir = '';
  let www = '';
  let digest = '';

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-vxlan-sock-'));
    www = join(dir, 'www');
    mkdirSync(www);
    const body = randomBytes(1 << 20);
    writeFileSync(join(www, 'file.bin'), body);
    digest = createHash('sha256').update(body).digest('hex');
    // Two machines and the wire between them, owned by their kernels: addresses before
    // nodeplane starts, since it binds its socket to them.
    m1 = createNetns('m1');
    m2 = createNetns('m2');
    m1.ip(['link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'eth1', 'netns', m2.name]);
    for (const [m, id] of [[m1, N1], [m2, N2]] as const) {
      m.runSync('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      m.ip(['addr', 'add', `${id.local}/24`, 'dev', 'eth1']);
      m.ip(['link', 'set', 'eth1', 'up']);
      m.ip(['link', 'set', 'lo', 'up']);
    }
    [n1, n2] = await Promise.all([
      startFlannelNode({ dir: join(dir, 'n1'), id: N1, peers: [peerOf(N2)], underlay: 'socket', node: m1 }),
      startFlannelNode({ dir: join(dir, 'n2'), id: N2, peers: [peerOf(N1)], underlay: 'socket', node: m2 }),
    ]);
  }, 90_000);

  afterAll(() => {
    n1?.destroy();
    n2?.destroy();
    m1?.remove();
    m2?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('binds flannel.1 to the machine\'s address and port 8472, and pods ping each other both ways', async () => {
    const sockets = await m1!.run('ss', ['-Hlun', 'sport = :8472']);
    expect(sockets.stdout).toContain(`${N1.local}:8472`);
    expect(await ping(n1!.pod('pa'), POD2)).toBe(3);
    expect(await ping(n2!.pod('pa'), POD1)).toBe(3);
  }, 60_000);

  it('moves 1 MB over HTTP byte for byte, the sender\'s super-frames cut into datagrams', async () => {
    expect(await httpFetch(n2!.pod('pa'), POD2, 8080, www, n1!.pod('pa'), 'file.bin')).toBe(digest);
    for (const lab of [n1!, n2!]) {
      const stats = (await fetchState(lab.adminSocket, 'stats')) as { stages: Array<{ name: string; packets: number; drops: Record<string, number> }> };
      const stage = (name: string) => stats.stages.find((x) => x.name === name)!;
      process.stdout.write(`${lab.node.name}: vxlan-socket-tx ${stage('vxlan-socket-tx').packets}, vxlan-decap ${stage('vxlan-decap').packets}, tcp-segment ${stage('tcp-segment').packets}\n`);
      const none = (d: Record<string, number>): number => Object.values(d).reduce((x, y) => x + y, 0);
      expect(none(stage('vxlan-socket-tx').drops)).toBe(0);
      expect(none(stage('vxlan-decap').drops)).toBe(0);
    }
    const sender = (await fetchState(n2!.adminSocket, 'stats')) as { stages: Array<{ name: string; packets: number }> };
    // 1 MB is at least 740 segments of 1398 bytes, each one datagram through the socket.
    expect(sender.stages.find((x) => x.name === 'vxlan-socket-tx')!.packets).toBeGreaterThan(740);
  }, 60_000);

  it('on the machines\' wire, tshark decodes VXLAN (VNI 1) from port 8472 with the inner ICMP', async () => {
    const pcap = join(dir, 'wire.pcap');
    const cap = m1!.spawn('tshark', ['-i', 'eth1', '-f', 'udp port 8472', '-c', '12', '-a', 'duration:20', '-w', pcap], { stdio: ['ignore', 'ignore', 'pipe'] });
    let capErr = '';
    cap.stderr!.setEncoding('utf8').on('data', (d: string) => (capErr += d));
    const done = new Promise<void>((r) => cap.on('close', () => r()));
    try {
      for (let i = 0; i < 100 && !capErr.includes('Capturing on'); i++) await sleep(100);
      expect(capErr).toContain('Capturing on');
      // More pings than the 12 packets tshark waits for: on a loaded machine its first moments
      // of capture may miss a pair, and the decode, not the count, is the point here.
      await n1!.pod('pa').run('ping', ['-c', '10', '-i', '0.2', '-W', '2', POD2], { timeoutMs: 10_000 });
      await done;
    } finally {
      cap.kill('SIGKILL');
    }
    const r = await m1!.run('tshark', ['-r', pcap, '-d', 'udp.port==8472,vxlan', '-T', 'fields', '-E', 'separator=|', '-e', 'vxlan.vni', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'udp.srcport', '-e', 'icmp.type'], { timeoutMs: 20_000 });
    expect(r.code).toBe(0);
    const rows = r.stdout.trim().split('\n').map((l) => l.split('|'));
    expect(rows.length).toBe(12);
    for (const [vni, , , sport] of rows) expect([vni, sport]).toEqual(['1', '8472']);
    expect(rows.some((x) => x[1] === `${N1.local},${POD1}` && x[2] === `${N2.local},${POD2}` && x[4] === '8')).toBe(true);
    expect(rows.some((x) => x[1] === `${N2.local},${POD2}` && x[2] === `${N1.local},${POD1}` && x[4] === '0')).toBe(true);
  }, 60_000);
});
