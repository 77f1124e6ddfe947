/**
 * Differential end to end: the same node built twice — by nodeplane and by the Linux kernel
 * (bridges, ip_forward, veth pairs; see kernel-twin.ts) — and the same probes run from the
 * pods against both. What a pod observes (ping's output, the frames its eth0 receives as
 * tshark dissects them, socket errors, its neighbour table) is normalised only where the
 * twins legitimately differ (timings, IP identifiers, checksums that cover them) and then
 * compared: expect(nodeplane).toEqual(kernel). Each probe also asserts the absolute
 * behaviour expected of Linux, so both twins being wrong the same way still fails.
 *
 * Topology: cni0 10.244.1.1/24 with pods pa 10.244.1.2 and pb 10.244.1.3; cni1
 * 10.244.2.1/24, MTU 1400, with pod pc 10.244.2.2 (eth0 MTU 1400); an L3 uplink
 * 192.168.50.11/24 with an external host 192.168.50.1 behind it, which has no route to the
 * pods. The node has no default route, and masquerades what the pods send outside
 * 10.244.0.0/16 (the kernel with iptables' MASQUERADE and kube-proxy's INVALID drop; nodeplane
 * with `nat:`).
 * Probes run on both twins at once, so the file takes about as long as one twin would.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';
import { BRIDGES, PODS, dissect, expectedNodeSysctls, readSysctls, startCapture, startKernelTwin, startNodeplaneTwin, type Twin } from './kernel-twin.ts';

const problem = missingPrerequisite(['ping', 'python3', 'tshark', 'tcpdump', 'iptables', 'conntrack']);
const skip = skipUnlessReady('differential end-to-end tests', problem);

const GW0 = '10.244.1.1';
const PA = '10.244.1.2';
const PB = '10.244.1.3';
const PC = '10.244.2.2';
const MAC = Object.fromEntries([...BRIDGES.map((b) => [b.name, b.mac]), ...PODS.map((p) => [p.name, p.mac])]) as Record<string, string>;

/** What a pod sees of each frame: fields tshark names, with every occurrence (outer/quoted). */
const FIELDS = [
  'eth.src',
  'eth.dst',
  'frame.len',
  'arp.opcode',
  'arp.src.hw_mac',
  'arp.src.proto_ipv4',
  'arp.dst.hw_mac',
  'arp.dst.proto_ipv4',
  'ip.src',
  'ip.dst',
  'ip.ttl',
  'ip.dsfield',
  'ip.flags.df',
  'ip.flags.mf',
  'ip.frag_offset',
  'ip.len',
  'ip.proto',
  'icmp.type',
  'icmp.code',
  'icmp.mtu',
  'udp.dstport',
];

type Frame = Record<string, string>;

interface Observed<R> {
  result: R;
  /** Frames captured on each pod's eth0, both directions, in order. */
  frames: Record<string, Frame[]>;
  /** Capture timestamps (seconds) of the same frames. */
  times: Record<string, number[]>;
}

/** Runs `action` while tcpdump captures on the pods' eth0, with a filter for each pod. */
async function observe<R>(twin: Twin, filters: Record<string, string>, action: () => Promise<R>, settleMs = 300): Promise<Observed<R>> {
  const pods = Object.keys(filters);
  const caps = await Promise.all(pods.map((p) => startCapture(twin.pod(p), filters[p])));
  let result: R;
  try {
    result = await action();
    await new Promise((r) => setTimeout(r, settleMs));
  } catch (err) {
    await Promise.all(caps.map((c) => c.stop()));
    throw err;
  }
  const pcaps = await Promise.all(caps.map((c) => c.stop()));
  const frames: Record<string, Frame[]> = {};
  const times: Record<string, number[]> = {};
  await Promise.all(
    pods.map(async (p, i) => {
      const rows = await dissect(pcaps[i], ['frame.time_epoch', ...FIELDS]);
      times[p] = rows.map((r) => Number(r[0]));
      frames[p] = rows.map((r) => Object.fromEntries(FIELDS.map((f, j) => [f, r[j + 1] ?? '']).filter(([, v]) => v !== '')));
    }),
  );
  return { result, frames, times };
}

interface PingResult {
  code: number | null;
  lines: string[];
}

/** ping's output without what legitimately differs: round-trip times and elapsed time. */
function normalisePing(stdout: string, stderr: string): string[] {
  return (stdout + stderr)
    .split('\n')
    .map((l) => l.replace(/ time=[\d.]+ ms/, '').replace(/, time \d+ms/, ''))
    .filter((l) => l.trim() !== '' && !l.startsWith('rtt ') && !l.startsWith('---'));
}

async function ping(twin: Twin, from: string, args: string[], timeoutMs = 15_000): Promise<PingResult> {
  const r = await twin.pod(from).run('ping', args, { timeoutMs });
  if (r.timedOut) throw new Error(`ping ${args.join(' ')} in ${twin.kind} timed out`);
  return { code: r.code, lines: normalisePing(r.stdout, r.stderr) };
}

/** Runs a python3 probe in a pod of a twin; its trimmed output. */
async function py(t: Twin, pod: string, script: string, args: string[]): Promise<string> {
  return (await t.pod(pod).run('python3', ['-c', script, ...args], { timeoutMs: 10_000 })).stdout.trim();
}

/** Frames `pod` received (not the ones it sent). */
function received(frames: Frame[], pod: string): Frame[] {
  return frames.filter((f) => f['eth.src'] !== MAC[pod]);
}

describe.skipIf(skip)('differential: one node by nodeplane and by the Linux kernel', () => {
  let nodeplane: Twin | undefined;
  let kernel: Twin | undefined;
  let dir: string | undefined;

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-diff-'));
    kernel = startKernelTwin();
    nodeplane = await startNodeplaneTwin(dir);
  });

  afterAll(() => {
    nodeplane?.destroy();
    kernel?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the same probe against both twins at once. */
  async function both<T>(probe: (t: Twin) => Promise<T>): Promise<{ np: T; k: T }> {
    const [np, k] = await Promise.all([probe(nodeplane!), probe(kernel!)]);
    return { np, k };
  }

  it('the kernel twin runs with Linux defaults and ip_forward=1; both twins have the same links', () => {
    const want = expectedNodeSysctls();
    expect(readSysctls(kernel!.node, Object.keys(want))).toEqual(want);
    const link = (t: Twin, pod: string): string => {
      const j = JSON.parse(t.pod(pod).ip(['-j', 'link', 'show', 'eth0'])) as Array<{ address: string; mtu: number; operstate: string }>;
      return `${j[0].address} mtu ${j[0].mtu}`;
    };
    for (const p of PODS) {
      expect(link(nodeplane!, p.name)).toBe(`${p.mac} mtu ${p.mtu}`);
      expect(link(kernel!, p.name)).toBe(`${p.mac} mtu ${p.mtu}`);
    }
  });

  it('1. echo to a pod on the bridge, the gateway and a pod across the router: same replies, TTL 64/64/63', async () => {
    for (const [dst, ttl] of [
      [PB, 64],
      [GW0, 64],
      // The router's address on the other bridge is as local as the one facing pa.
      ['10.244.2.1', 64],
      [PC, 63],
    ] as const) {
      const { np, k } = await both((t) => observe(t, { pa: 'icmp' }, () => ping(t, 'pa', ['-c', '2', '-i', '0.2', '-W', '2', dst])));
      expect(k.result.code).toBe(0);
      expect(k.result.lines).toContain(`64 bytes from ${dst}: icmp_seq=2 ttl=${ttl}`);
      const replies = received(k.frames.pa, 'pa');
      expect(replies).toHaveLength(2);
      expect(replies[0]).toMatchObject({ 'eth.src': dst === PB ? MAC.pb : MAC.cni0, 'ip.src': dst, 'ip.ttl': String(ttl), 'ip.flags.df': '0', 'icmp.type': '0' });
      expect(np.result).toEqual(k.result);
      expect(np.frames).toEqual(k.frames);
    }
  });

  it('2. TTL 1 across the router: "Time to live exceeded" from 10.244.1.1; TTL 1 to the router itself is answered', async () => {
    const { np, k } = await both((t) =>
      observe(t, { pa: 'icmp' }, async () => [await ping(t, 'pa', ['-c', '1', '-t', '1', '-W', '2', PC]), await ping(t, 'pa', ['-c', '1', '-t', '1', '-W', '2', '10.244.2.1'])]),
    );
    expect(k.result[0].lines).toContain(`From ${GW0} icmp_seq=1 Time to live exceeded`);
    expect(k.result[1].lines).toContain('64 bytes from 10.244.2.1: icmp_seq=1 ttl=64');
    const errs = received(k.frames.pa, 'pa').filter((f) => f['icmp.type'] !== '0');
    expect(errs).toHaveLength(1);
    // The quote is the packet as it arrived (TTL 1), as ip_forward sends it before decrementing.
    expect(errs[0]).toMatchObject({ 'ip.src': `${GW0},${PA}`, 'ip.ttl': '64,1', 'icmp.type': '11,8', 'icmp.code': '0,0' });
    expect(np.result).toEqual(k.result);
    expect(np.frames).toEqual(k.frames);
  });

  it('3. no such host on cni1: three ARP requests a second apart, then "Destination Host Unreachable" from 10.244.1.1', async () => {
    const { np, k } = await both((t) =>
      observe(t, { pa: 'icmp', pc: 'arp' }, () => ping(t, 'pa', ['-c', '3', '-i', '0.2', '-W', '6', '10.244.2.99'], 20_000)),
    );
    expect(k.result.code).toBe(1);
    expect(k.result.lines).toContain(`From ${GW0} icmp_seq=1 Destination Host Unreachable`);
    expect(k.result.lines.filter((l) => l.includes('Destination Host Unreachable'))).toHaveLength(3);
    const errs = received(k.frames.pa, 'pa');
    expect(errs).toHaveLength(3);
    // Unlike TTL and MTU errors, the quote shows TTL 63: the packet had been forwarded and
    // was waiting for its next hop's address.
    expect(errs[0]).toMatchObject({ 'ip.src': `${GW0},${PA}`, 'ip.ttl': '64,63', 'icmp.type': '3,8', 'icmp.code': '1,0' });
    const arps = k.frames.pc.filter((f) => f['arp.dst.proto_ipv4'] === '10.244.2.99');
    expect(arps).toHaveLength(3);
    expect(arps[0]).toMatchObject({ 'eth.src': MAC.cni1, 'eth.dst': 'ff:ff:ff:ff:ff:ff', 'arp.opcode': '1', 'arp.src.proto_ipv4': '10.244.2.1', 'arp.dst.hw_mac': '00:00:00:00:00:00' });
    expect(np.result).toEqual(k.result);
    expect(np.frames).toEqual(k.frames);

    // Timing: ARP gives up after mcast_solicit=3 probes retrans_time=1 s apart.
    const timing = (o: typeof k): { arpGaps: number[]; firstError: number } => {
      const arpTimes = o.times.pc.filter((_, i) => o.frames.pc[i]['arp.dst.proto_ipv4'] === '10.244.2.99');
      const firstRequest = o.times.pa[o.frames.pa.findIndex((f) => f['icmp.type'] === '8')];
      const firstError = o.times.pa[o.frames.pa.findIndex((f) => f['icmp.type'] === '3,8')];
      return { arpGaps: arpTimes.slice(1).map((t, i) => t - arpTimes[i]), firstError: firstError - firstRequest };
    };
    for (const o of [k, np]) {
      const { arpGaps, firstError } = timing(o);
      for (const gap of arpGaps) {
        expect(gap).toBeGreaterThan(0.7);
        expect(gap).toBeLessThan(1.4);
      }
      expect(firstError).toBeGreaterThan(2.7);
      expect(firstError).toBeLessThan(3.8);
    }
  });

  it('4. no route: "Destination Net Unreachable" from 10.244.1.1', async () => {
    const { np, k } = await both((t) => observe(t, { pa: 'icmp' }, () => ping(t, 'pa', ['-c', '1', '-W', '2', '198.51.100.1'])));
    expect(k.result.lines).toContain(`From ${GW0} icmp_seq=1 Destination Net Unreachable`);
    const errs = received(k.frames.pa, 'pa');
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatchObject({ 'ip.src': `${GW0},${PA}`, 'ip.ttl': '64,64', 'icmp.type': '3,8', 'icmp.code': '0,0' });
    expect(np.result).toEqual(k.result);
    expect(np.frames).toEqual(k.frames);
  });

  it("5a. 1500 bytes without DF into the 1400-byte cni1: the router fragments, pc sees the same fragments; pc's fragmented reply reaches pa whole", async () => {
    const { np, k } = await both((t) => observe(t, { pa: 'icmp', pc: 'icmp' }, () => ping(t, 'pa', ['-c', '1', '-M', 'dont', '-s', '1472', '-W', '2', PC])));
    expect(k.result.code).toBe(0);
    expect(k.result.lines).toContain(`1480 bytes from ${PC}: icmp_seq=1 ttl=63`);
    const frags = received(k.frames.pc, 'pc');
    expect(frags.map((f) => `${f['ip.len']} ${f['ip.frag_offset']} ${f['ip.flags.mf']} ${f['ip.ttl']}`)).toEqual(['1396 0 1 63', '124 172 0 63']);
    // pc answers in two fragments (its MTU is 1400). With connection tracking on, the router
    // reassembles forwarded fragments before conntrack sees them (nf_defrag_ipv4) and sends
    // the whole packet on, as it fits cni0's 1500 bytes: pa gets one reply, not two fragments.
    const replies = received(k.frames.pa, 'pa');
    expect(replies.map((f) => `${f['ip.len']} ${f['ip.frag_offset']} ${f['ip.flags.mf']} ${f['ip.ttl']}`)).toEqual(['1500 0 0 63']);
    expect(np.result).toEqual(k.result);
    expect(np.frames).toEqual(k.frames);
  });

  it('5b. 1500 bytes with DF into the 1400-byte cni1: "Frag needed and DF set (mtu = 1400)" from 10.244.1.1; 1400 bytes pass', async () => {
    const { np, k } = await both((t) =>
      observe(t, { pa: 'icmp' }, async () => [
        await ping(t, 'pa', ['-c', '1', '-M', 'do', '-s', '1472', '-W', '2', PC]),
        // pa's kernel learnt the path MTU from the error: the next attempt fails locally.
        await ping(t, 'pa', ['-c', '1', '-M', 'do', '-s', '1472', '-W', '2', PC]),
        await ping(t, 'pa', ['-c', '1', '-M', 'do', '-s', '1372', '-W', '2', PC]),
      ]),
    );
    expect(k.result[0].lines).toContain(`From ${GW0} icmp_seq=1 Frag needed and DF set (mtu = 1400)`);
    expect(k.result[1].lines.join('\n')).toMatch(/message too long, mtu=1400/);
    expect(k.result[2].code).toBe(0);
    expect(k.result[2].lines).toContain(`1380 bytes from ${PC}: icmp_seq=1 ttl=63`);
    const errs = received(k.frames.pa, 'pa').filter((f) => f['icmp.type'].startsWith('3,'));
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatchObject({ 'ip.src': `${GW0},${PA}`, 'ip.len': '576,1500', 'ip.ttl': '64,64', 'icmp.code': '4,0', 'icmp.mtu': '1400' });
    expect(np.result).toEqual(k.result);
    expect(np.frames).toEqual(k.frames);
  });

  it('6. echo and UDP to the subnet broadcast: no answer from the gateway (nor the pods), flooded to pb', async () => {
    const { np, k } = await both((t) =>
      observe(t, { pa: 'icmp or udp', pb: 'icmp or udp' }, async () => [
        await ping(t, 'pa', ['-b', '-c', '2', '-i', '0.2', '-W', '1', '10.244.1.255']),
        (await t.pod('pa').run('python3', ['-c', UDP_PROBE, '10.244.1.255', '9', 'broadcast'], { timeoutMs: 10_000 })).stdout.trim(),
      ]),
    );
    const [pingB, udpB] = k.result as [PingResult, string];
    expect(pingB.code).toBe(1);
    expect(pingB.lines).toContain('2 packets transmitted, 0 received, 100% packet loss');
    expect(udpB).toBe('timeout');
    expect(received(k.frames.pa, 'pa')).toEqual([]);
    expect(received(k.frames.pb, 'pb').map((f) => `${f['eth.dst']} ${f['ip.dst']} ${f['ip.proto']}`)).toEqual([
      'ff:ff:ff:ff:ff:ff 10.244.1.255 1',
      'ff:ff:ff:ff:ff:ff 10.244.1.255 1',
      'ff:ff:ff:ff:ff:ff 10.244.1.255 17',
    ]);
    expect(np.result).toEqual(k.result);
    expect(np.frames).toEqual(k.frames);
  });

  it("7. UDP to a closed port on the gateway: port unreachable, the socket's ECONNREFUSED", async () => {
    const { np, k } = await both((t) =>
      observe(t, { pa: 'icmp or udp' }, async () => (await t.pod('pa').run('python3', ['-c', UDP_PROBE, GW0, '9'], { timeoutMs: 10_000 })).stdout.trim()),
    );
    expect(k.result).toBe('ECONNREFUSED');
    const errs = received(k.frames.pa, 'pa');
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatchObject({ 'eth.src': MAC.cni0, 'ip.src': `${GW0},${PA}`, 'ip.dsfield': '0xc0,0x00', 'icmp.type': '3', 'icmp.code': '3', 'udp.dstport': '9' });
    expect(np.result).toEqual(k.result);
    expect(np.frames).toEqual(k.frames);
  });

  it("8. pa's neighbour table holds the gateway's MAC, usable (REACHABLE/STALE)", async () => {
    const { np, k } = await both(async (t) => {
      await ping(t, 'pa', ['-c', '1', '-W', '2', GW0]);
      const j = JSON.parse(t.pod('pa').ip(['-j', 'neigh', 'show', 'dev', 'eth0'])) as Array<{ dst: string; lladdr?: string; state: string[] }>;
      // REACHABLE turns STALE after a randomised 15–45 s: which one is timing, not behaviour.
      const usable = new Set(['REACHABLE', 'STALE', 'DELAY', 'PROBE']);
      return j
        .map((n) => `${n.dst} ${n.lladdr ?? '-'} ${n.state.map((s) => (usable.has(s) ? 'usable' : s)).join(',')}`)
        .sort();
    });
    expect(k).toContain(`${GW0} ${MAC.cni0} usable`);
    expect(np).toEqual(k);
  });

  it('9. ARP from pa: who answers for which address, with which MAC', async () => {
    const targets = [GW0, '10.244.2.1', PB, '10.244.1.77', '10.244.1.255'];
    const { np, k } = await both(async (t) => {
      const o = await observe(t, { pa: 'arp' }, async () => (await t.pod('pa').run('python3', ['-c', ARP_PROBE, 'eth0', PA, ...targets], { timeoutMs: 10_000, check: true })).code);
      // Only the answers to pa's address, each once: the router's own neighbour probes of pa
      // (and pa's of the gateway, answered alike) come when their timers say, not ours.
      return [...new Set(received(o.frames.pa, 'pa').filter((f) => f['arp.opcode'] === '2' && f['arp.dst.proto_ipv4'] === PA).map((f) => JSON.stringify(f)))].map((j) => JSON.parse(j) as Frame);
    });
    const replies = k.map((f) => `${f['arp.src.proto_ipv4']} is-at ${f['arp.src.hw_mac']} (eth ${f['eth.src']} > ${f['eth.dst']}, ${f['frame.len']} bytes)`);
    // The gateway answers for both of its addresses on cni0 (arp_ignore=0); pb for itself;
    // nobody for an unknown or the broadcast address.
    expect(replies).toEqual([
      `${GW0} is-at ${MAC.cni0} (eth ${MAC.cni0} > ${MAC.pa}, 42 bytes)`,
      `10.244.2.1 is-at ${MAC.cni0} (eth ${MAC.cni0} > ${MAC.pa}, 42 bytes)`,
      `${PB} is-at ${MAC.pb} (eth ${MAC.pb} > ${MAC.pa}, 42 bytes)`,
    ]);
    expect(np).toEqual(k);
  });

  it('10. TCP to a closed port on the gateway: reset, connect() fails with ECONNREFUSED', async () => {
    const { np, k } = await both((t) => py(t, 'pa', TCP_PROBE, [GW0, '80']));
    expect(k).toBe('ECONNREFUSED');
    expect(np).toEqual(k);
  });

  it('11. ICMP timestamp request to the gateway: timestamp reply', async () => {
    const { np, k } = await both((t) => py(t, 'pa', TIMESTAMP_PROBE, [GW0]));
    expect(k).toBe(`reply from ${GW0}: type 14 code 0, originate echoed`);
    expect(np).toEqual(k);
  });

  it('12. ICMP errors to one host are rate limited: 6 at once, then 1 a second (icmp_ratelimit)', async () => {
    const { np, k } = await both((t) => ping(t, 'pb', ['-c', '10', '-i', '0.01', '-t', '1', '-W', '1', PC]));
    expect(k.lines.filter((l) => l.includes('Time to live exceeded'))).toHaveLength(6);
    expect(np).toEqual(k);
  });

  it('13. IP record route (ping -R): the router records its addresses, forwarding and answering', async () => {
    const { np, k } = await both(async (t) => [await ping(t, 'pa', ['-c', '1', '-R', '-W', '2', PC]), await ping(t, 'pa', ['-c', '1', '-R', '-W', '2', GW0])]);
    expect(k[0].lines.map((l) => l.trim())).toEqual(expect.arrayContaining(['RR: \t10.244.1.2', '10.244.2.1', '10.244.2.2', '10.244.1.1']));
    expect(k[1].lines.map((l) => l.trim())).toEqual(expect.arrayContaining(['RR: \t10.244.1.2', '10.244.1.1']));
    expect(np).toEqual(k);
  });

  it('14. a fragmented echo request to the gateway (ping -s 2000) is reassembled and answered in fragments', async () => {
    const { np, k } = await both((t) => ping(t, 'pa', ['-c', '1', '-s', '2000', '-W', '2', GW0]));
    expect(k.lines).toContain(`2008 bytes from ${GW0}: icmp_seq=1 ttl=64`);
    expect(np).toEqual(k);
  });
});

/** Connects to a TCP port; prints connected, ECONNREFUSED or timeout. */
const TCP_PROBE = `
import socket, sys
s = socket.socket()
s.settimeout(2)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print('connected')
except ConnectionRefusedError:
    print('ECONNREFUSED')
except socket.timeout:
    print('timeout')
`;

/** Sends an ICMP timestamp request (type 13) on a raw socket; prints the answer's type and code. */
const TIMESTAMP_PROBE = `
import socket, struct, sys
def csum(b):
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    t += t >> 16
    return ~t & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(1.5)
m = struct.pack('!BBHHHIII', 13, 0, 0, 0x4e50, 1, 12345678, 0, 0)
s.sendto(m[:2] + struct.pack('!H', csum(m)) + m[4:], (sys.argv[1], 0))
try:
    while True:
        d, a = s.recvfrom(2048)
        icmp = d[(d[0] & 15) * 4:]
        if icmp[0] == 8 or icmp[0] == 13:
            continue
        orig = struct.unpack('!I', icmp[8:12])[0]
        print('reply from %s: type %d code %d, originate %s' % (a[0], icmp[0], icmp[1], 'echoed' if orig == 12345678 else 'changed'))
        break
except socket.timeout:
    print('timeout')
`;

/** Sends one UDP datagram on a connected socket; prints ECONNREFUSED, data or timeout. */
const UDP_PROBE = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if len(sys.argv) > 3: s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.settimeout(1.5)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b'nodeplane differential probe')
try:
    s.recv(2048)
    print('data')
except ConnectionRefusedError:
    print('ECONNREFUSED')
except socket.timeout:
    print('timeout')
`;

/** Broadcasts one ARP request per target address from eth0, 0.3 s apart (the capture shows the answers). */
const ARP_PROBE = `
import socket, struct, sys, time
ifname, me, targets = sys.argv[1], sys.argv[2], sys.argv[3:]
mac = bytes.fromhex(open('/sys/class/net/%s/address' % ifname).read().strip().replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((ifname, 0))
for t in targets:
    arp = struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) + mac + socket.inet_aton(me) + bytes(6) + socket.inet_aton(t)
    s.send(b'\\xff' * 6 + mac + b'\\x08\\x06' + arp)
    time.sleep(0.3)
`;
