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
 * with `nat:`). Probes 15-18 compare masquerade: what the external host sees, the ICMP errors
 * the pods get back, and the two connection tracking tables.
 * Probes run on both twins at once, so the file takes about as long as one twin would.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';
import type { ConntrackRow } from './conntrack-listing.ts';
import { BRIDGES, PODS, UPLINK, dissect, expectedNodeSysctls, readSysctls, startCapture, startKernelTwin, startNodeplaneTwin, type Twin } from './kernel-twin.ts';
import { checkedFrames, type Frame, lineReader, txChecksum, withoutCounters } from './twin-probes.ts';

const problem = missingPrerequisite(['ping', 'python3', 'tshark', 'tcpdump', 'iptables', 'conntrack']);
const skip = skipUnlessReady('differential end-to-end tests', problem);

const GW0 = '10.244.1.1';
const PA = '10.244.1.2';
const PB = '10.244.1.3';
const PC = '10.244.2.2';
/** The node's address on the uplink, and the external host behind it. */
const NODE_UP = UPLINK.address.split('/')[0];
const EXT = '192.168.50.1';
/** The external host's servers: TCP echo and UDP echo, each logging its peers. */
const EXT_TCP = 9000;
const EXT_UDP = 9001;
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

/** ping's output without what legitimately differs: round-trip times, elapsed time, `pipe N`. */
function normalisePing(stdout: string, stderr: string): string[] {
  return (stdout + stderr)
    .split('\n')
    .map((l) => l.replace(/ time=[\d.]+ ms/, '').replace(/, time \d+ms/, ''))
    // "pipe N" says N replies were outstanding at once: timing, like the round-trip times.
    .filter((l) => l.trim() !== '' && !l.startsWith('rtt ') && !l.startsWith('---') && !/^pipe \d+$/.test(l.trim()));
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

  /**
   * As both(), but a probe that throws on nodeplane's twin (a command it answers with an
   * error) gives `{ failed: message }` there, so the kernel's side is still checked first and
   * the comparison shows what nodeplane said.
   */
  async function bothSettled<T>(probe: (t: Twin) => Promise<T>): Promise<{ np: T | { failed: string }; k: T }> {
    const [np, k] = await Promise.allSettled([probe(nodeplane!), probe(kernel!)]);
    if (k.status === 'rejected') throw k.reason;
    return { np: np.status === 'fulfilled' ? np.value : { failed: String((np.reason as Error)?.message ?? np.reason) }, k: k.value };
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

    // Timing: ARP gives up after mcast_solicit=3 probes retrans_time=1 s apart. The lower
    // bounds are the behaviour (no probe early); the upper ones only catch a probe that is not
    // timed at all, since a loaded machine can run any process's timer late.
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
        expect(gap).toBeLessThan(2.5);
      }
      expect(firstError).toBeGreaterThan(2.7);
      expect(firstError).toBeLessThan(6);
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
  describe('masquerade: pods and a host outside the cluster, behind the uplink', () => {
    const servers = new Map<Twin, ExternalServer>();

    beforeAll(async () => {
      for (const t of [nodeplane!, kernel!]) servers.set(t, await startExternalServer(t));
    });

    /**
     * The twin's conntrack entries towards the external host with these original source
     * ports, sorted. Each timeout must be `timeout` seconds counted from `since` (Date.now()
     * just before the flow's last packet), less the time since then; one that is becomes that
     * rule, so the twins compare alike however long their listings took.
     */
    async function flows(t: Twin, proto: string, sports: number[], timeout: number, since: number): Promise<Array<Omit<ConntrackRow, 'timeout'> & { timeout: number | string }>> {
      const rows = (await t.conntrack())
        .filter((r) => r.proto === proto && r.orig.dst === EXT && sports.includes(r.orig.sport))
        .sort((a, b) => a.orig.src.localeCompare(b.orig.src) || a.orig.sport - b.orig.sport);
      const elapsed = (Date.now() - since) / 1000;
      return rows.map((r) => ({ ...r, timeout: r.timeout <= timeout && r.timeout >= timeout - elapsed - 2 ? `${timeout} s from its last packet` : r.timeout }));
    }

    it("15. TCP and UDP from a pod leave with the node's address and the pod's own source port", async () => {
      const { np, k } = await both(async (t) => {
        const log = servers.get(t)!;
        const mark = log.lines.length;
        const udp = await py(t, 'pa', UDP_FROM, [EXT, String(EXT_UDP), '40001', 'pa']);
        const tcp = await py(t, 'pa', TCP_SESSION, [EXT, String(EXT_TCP), '40002', 'pa']);
        return { udp, tcp, seen: await log.after(mark, 2) };
      });
      expect(k).toEqual({ udp: 'echo pa', tcp: 'echo pa\nclosed', seen: [`udp ${NODE_UP}:40001`, `tcp ${NODE_UP}:40002`] });
      expect(np).toEqual(k);
    });

    it('16. two pods, one source port, one server: the first keeps its port, the second gets another; each gets its own replies (UDP and TCP)', async () => {
      // The translated port of the second flow is the kernel's pick (a hash), so what is
      // compared is the rule: kept, or another port of 1024-65535 (MASQUERADE's range for
      // ports from 1024).
      const rule = (port: number) => (line: string): string => {
        const m = /^(\w+) ([\d.]+):(\d+)$/.exec(line);
        if (!m) return line;
        const p = Number(m[3]);
        return `${m[1]} ${m[2]}:${p === port ? 'same port' : p >= 1024 && p <= 65535 ? 'another port from 1024-65535' : p}`;
      };
      const { np, k } = await both(async (t) => {
        const log = servers.get(t)!;
        let mark = log.lines.length;
        const udp = [await py(t, 'pa', UDP_FROM, [EXT, String(EXT_UDP), '40010', 'pa']), await py(t, 'pb', UDP_FROM, [EXT, String(EXT_UDP), '40010', 'pb'])];
        const udpSeen = (await log.after(mark, 2)).map(rule(40010));
        // Both TCP connections stay open, so the first one's tuple is taken when the second starts.
        mark = log.lines.length;
        const a = await tcpSession(t, 'pa', EXT_TCP, 40011);
        const c = await tcpSession(t, 'pc', EXT_TCP, 40011);
        const tcpSeen = (await log.after(mark, 2)).map(rule(40011));
        const tcp = [a.greeting, c.greeting, await a.close(), await c.close()];
        return { udp, udpSeen, tcp, tcpSeen };
      });
      expect(k).toEqual({
        udp: ['echo pa', 'echo pb'],
        udpSeen: [`udp ${NODE_UP}:same port`, `udp ${NODE_UP}:another port from 1024-65535`],
        tcp: ['echo pa', 'echo pc', 'closed', 'closed'],
        tcpSeen: [`tcp ${NODE_UP}:same port`, `tcp ${NODE_UP}:another port from 1024-65535`],
      });
      expect(np).toEqual(k);
    });

    it('17. UDP to a closed port outside: port unreachable reaches the pod with both headers translated back and every checksum right', async () => {
      const { np, k } = await bothSettled(async (t) => {
        // pa computes its UDP checksums itself for this probe (its eth0 would otherwise leave
        // them to an offload that never happens on a veth or a TAP), so every checksum the
        // captures show is one the translations had to keep right.
        await txChecksum(t.pod('pa'), false);
        const podCap = await startCapture(t.pod('pa'), 'icmp or udp');
        const extCap = await startCapture(t.external, 'icmp or udp port 9');
        let result = '';
        let pcaps: Buffer[];
        const since = Date.now();
        try {
          result = await py(t, 'pa', UDP_FROM, [EXT, '9', '40020', 'pa']);
          await new Promise((r) => setTimeout(r, 300));
        } finally {
          pcaps = await Promise.all([podCap.stop(), extCap.stop()]);
          await txChecksum(t.pod('pa'), true);
        }
        const conntrack = await flows(t, 'udp', [40020], 30, since);
        const [pod, ext] = await Promise.all(pcaps.map(checkedFrames));
        return { result, pod, ext, conntrack };
      });
      expect(k.result).toBe('ECONNREFUSED');
      // The external host saw the node's address and the pod's port, and quoted them back.
      expect(k.ext).toEqual([
        { 'ip.src': NODE_UP, 'ip.dst': EXT, 'ip.ttl': '63', 'ip.checksum.status': '1', 'udp.srcport': '40020', 'udp.dstport': '9', 'udp.checksum.status': '1' },
        {
          'ip.src': `${EXT},${NODE_UP}`,
          'ip.dst': `${NODE_UP},${EXT}`,
          'ip.ttl': '64,63',
          'ip.checksum.status': '1,1',
          'icmp.type': '3',
          'icmp.code': '3',
          'icmp.checksum.status': '1',
          'udp.srcport': '40020',
          'udp.dstport': '9',
          'udp.checksum.status': '1',
        },
      ]);
      // The pod sees the error about what it sent: the outer destination and the quoted
      // source are its own again, and every checksum (outer and quoted IP, ICMP, quoted UDP)
      // holds. Only addresses and ports are translated back: the quote keeps the TTL the
      // packet had when the external host got it.
      expect(k.pod).toEqual([
        { 'ip.src': PA, 'ip.dst': EXT, 'ip.ttl': '64', 'ip.checksum.status': '1', 'udp.srcport': '40020', 'udp.dstport': '9', 'udp.checksum.status': '1' },
        {
          'ip.src': `${EXT},${PA}`,
          'ip.dst': `${PA},${EXT}`,
          'ip.ttl': '63,63',
          'ip.checksum.status': '1,1',
          'icmp.type': '3',
          'icmp.code': '3',
          'icmp.checksum.status': '1',
          'udp.srcport': '40020',
          'udp.dstport': '9',
          'udp.checksum.status': '1',
        },
      ]);
      // The error is RELATED to the flow, not a reply: the entry stays UNREPLIED.
      expect(k.conntrack).toEqual([
        {
          proto: 'udp',
          state: '',
          timeout: '30 s from its last packet',
          orig: { src: PA, dst: EXT, sport: 40020, dport: 9 },
          reply: { src: EXT, dst: NODE_UP, sport: 9, dport: 40020 },
          assured: false,
          unreplied: true,
          packets: [1, 0],
          bytes: [30, 0],
          mark: 0,
        },
      ]);
      expect(np).toEqual(k);
    });

    it('18. conntrack of a masqueraded TCP connection: ESTABLISHED and ASSURED after the handshake, TIME_WAIT after close; a UDP exchange replied', async () => {
      const { np, k } = await bothSettled(async (t) => {
        let since = Date.now();
        const udp = await py(t, 'pa', UDP_FROM, [EXT, String(EXT_UDP), '40031', 'pa']);
        const udpFlow = await flows(t, 'udp', [40031], 30, since);
        since = Date.now();
        const s = await tcpSession(t, 'pa', EXT_TCP, 40030);
        const open = await flows(t, 'tcp', [40030], 86400, since);
        since = Date.now();
        const closed = [s.greeting, await s.close()];
        // The last ACK leaves the pod as its FIN's answer arrives; give it time to cross.
        await new Promise((r) => setTimeout(r, 300));
        const after = await flows(t, 'tcp', [40030], 120, since);
        return {
          udp,
          closed,
          udpFlow,
          open: open.map(withoutCounters),
          after: after.map(withoutCounters),
          counted: open.length > 0 && after.length > 0 && [...open, ...after].every((r) => r.packets !== null && r.packets[0] >= 3 && r.packets[1] >= 2 && r.bytes !== null && r.bytes[0] >= 40 * r.packets[0]),
        };
      });
      const orig = { src: PA, dst: EXT, sport: 40030, dport: EXT_TCP };
      const reply = { src: EXT, dst: NODE_UP, sport: EXT_TCP, dport: 40030 };
      expect(k).toEqual({
        udp: 'echo pa',
        closed: ['echo pa', 'closed'],
        udpFlow: [
          {
            proto: 'udp',
            state: '',
            timeout: '30 s from its last packet',
            orig: { src: PA, dst: EXT, sport: 40031, dport: EXT_UDP },
            reply: { src: EXT, dst: NODE_UP, sport: EXT_UDP, dport: 40031 },
            // Replied, but not (yet) a stream: ASSURED comes with a packet 2 s after the first.
            assured: false,
            unreplied: false,
            packets: [1, 1],
            bytes: [30, 30],
            mark: 0,
          },
        ],
        open: [{ proto: 'tcp', state: 'ESTABLISHED', timeout: '86400 s from its last packet', orig, reply, assured: true, unreplied: false, mark: 0 }],
        after: [{ proto: 'tcp', state: 'TIME_WAIT', timeout: '120 s from its last packet', orig, reply, assured: true, unreplied: false, mark: 0 }],
        counted: true,
      });
      expect(np).toEqual(k);
    });
  });
});

/** A server on the external host; `lines` is what it printed so far ("ready", then one line a peer). */
interface ExternalServer {
  lines: string[];
  /** The lines after the first `mark`, once there are `n` of them (or after 5 s, what there is). */
  after(mark: number, n: number): Promise<string[]>;
}

/** Starts EXT_SERVER on the twin's external host; resolves once it listens. */
async function startExternalServer(t: Twin): Promise<ExternalServer> {
  const child = t.external.spawn('python3', ['-u', '-c', EXT_SERVER, String(EXT_TCP), String(EXT_UDP)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const read = lineReader(child, `the external server of the ${t.kind} twin`);
  const first = await read.next(5000);
  if (first !== 'ready') throw new Error(`the external server of the ${t.kind} twin said "${first}"`);
  const lines = read.lines;
  return {
    lines,
    async after(mark: number, n: number): Promise<string[]> {
      const end = Date.now() + 5000;
      while (lines.length < mark + n && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      return lines.slice(mark);
    },
  };
}

/** A TCP connection held open from a pod to the external host; `close` ends it (FIN first) and waits for the server's FIN. */
async function tcpSession(t: Twin, pod: string, dport: number, sport: number): Promise<{ greeting: string; close(): Promise<string> }> {
  const child = t.pod(pod).spawn('python3', ['-u', '-c', TCP_SESSION, EXT, String(dport), String(sport), pod], { stdio: ['pipe', 'pipe', 'pipe'] });
  const read = lineReader(child, `the TCP client in ${pod} of the ${t.kind} twin`);
  const greeting = await read.next(10_000).catch((err: Error) => `error: ${err.message}`);
  return {
    greeting,
    async close(): Promise<string> {
      child.stdin!.end('close\n');
      return read.next(10_000).catch((err: Error) => `error: ${err.message}`);
    },
  };
}

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

/**
 * The external host's servers: TCP (argv[1]) and UDP (argv[2]) echo on every address,
 * printing "tcp|udp ADDRESS:PORT" for each connection and datagram, as the peer appears.
 * It exits by itself after 300 s.
 */
const EXT_SERVER = `
import os, socket, sys, threading
t = threading.Timer(300, os._exit, [0]); t.daemon = True; t.start()
def log(kind, peer): print('%s %s:%d' % (kind, peer[0], peer[1]), flush=True)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(('0.0.0.0', int(sys.argv[2])))
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('0.0.0.0', int(sys.argv[1])))
l.listen(16)
def udp():
    while True:
        d, peer = u.recvfrom(2048)
        log('udp', peer)
        try: u.sendto(d, peer)
        except OSError as e: print('udp reply failed: %s' % e, flush=True)
def serve(c):
    try:
        while True:
            d = c.recv(2048)
            if not d: break
            c.sendall(d)
    except OSError: pass
    c.close()
threading.Thread(target=udp, daemon=True).start()
print('ready', flush=True)
while True:
    c, peer = l.accept()
    log('tcp', peer)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

/**
 * From source port argv[3], sends argv[4] in one datagram to argv[1]:argv[2]; prints
 * "echo <answer>", ECONNREFUSED or timeout.
 */
const UDP_FROM = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[3])))
s.settimeout(1.5)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(sys.argv[4].encode())
try:
    print('echo ' + s.recv(2048).decode())
except ConnectionRefusedError:
    print('ECONNREFUSED')
except socket.timeout:
    print('timeout')
`;

/**
 * From source port argv[3], connects to argv[1]:argv[2], sends argv[4] and prints
 * "echo <answer>"; then, at a line (or the end) of stdin, sends its FIN, waits for the
 * server's and prints "closed". Errors are printed, not raised; it gives up after 30 s.
 */
const TCP_SESSION = `
import os, socket, sys, threading
t = threading.Timer(30, os._exit, [3]); t.daemon = True; t.start()
try:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(5)
    s.bind(('0.0.0.0', int(sys.argv[3])))
    s.connect((sys.argv[1], int(sys.argv[2])))
    s.sendall(sys.argv[4].encode())
    print('echo ' + s.recv(2048).decode(), flush=True)
    sys.stdin.readline()
    s.shutdown(socket.SHUT_WR)
    print('closed' if s.recv(2048) == b'' else 'data after close', flush=True)
    s.close()
except Exception as e:
    print('error: %s' % e, flush=True)
`;
