/**
 * End to end: TCP throughput, 64-byte UDP rate and ping latency between pods in network
 * namespaces, through `nodeplane run` in both of its TAP modes and, in the same run and on
 * the same machine, through a Linux bridge over veth pairs doing the same job, and through
 * the reference dataplanes of `../shared/bench/peers.sh` (the C relay and Open vSwitch's
 * userspace datapath, see e2e-peers.ts).
 *
 * nodeplane: the demo node (src/lab/demo-topology.ts, no capture). Pods pa 10.244.1.2 and
 * pb 10.244.1.3 on cni0, pc 10.244.2.2 on cni1; each pod's eth0 is the kernel end of one
 * of nodeplane's TAPs. Measured twice, each time with a fresh lab:
 * - offload (the default): TAPs opened with IFF_VNET_HDR and TCP segmentation offload, so
 *   64 KiB TCP super-frames cross the dataplane behind virtio-net headers;
 * - no offload (`nodeplane run --no-offload`): every frame a plain frame of at most 1514
 *   bytes, one read() and one write() each.
 * kernel bridge: a "node" namespace with br0 (10.244.1.1/24) and br1 (10.244.2.1/24) and
 * IPv4 forwarding on, three pod namespaces with the same addresses and routes, each eth0 one
 * end of a veth pair whose other end is a bridge port.
 *
 * Tests, each side: iperf3 TCP pa -> pb, one stream, BENCH_E2E_SECONDS (default 5) at MTU
 * 1500; iperf3 UDP pa -> pb, 64-byte payloads, unlimited sender (`-u -l 64 -b 0 -w 4M`, as
 * peers.sh runs it), the same time; 100 pings pa -> pb at 10 ms (`ping -c 100 -i 0.01 -q`);
 * iperf3 TCP pa -> pc (routed).
 *
 * Peers (same run, after the sides above; BENCH_E2E_PEERS=0 leaves them out): peers.sh builds
 * each of its topologies — two pods joined by the relay (`relay`, plain frames; `relay-vnet`,
 * virtio-net header and TSO) or by OVS userspace on TAPs (`ovs-tap`; `ovs-tap-tso`) — and runs
 * the same iperf3 TCP (one stream), UDP and ping tests, BENCH_E2E_SECONDS each. What cannot run
 * (the script absent, a tool missing) is left out with a note on stderr and a row
 * `{ bench: 'e2e.peer.<topology>', skipped: REASON }`.
 * BENCH_IPERF_CPU=N runs both ends of every iperf3 TCP test on CPU N (`-A N`; see iperfTcp);
 * BENCH_NODEPLANE_CPU=M keeps nodeplane's packet thread on CPU M during them (pinPacketThread).
 * During each iperf3 run: the CPU time of the nodeplane process (utime+stime from
 * /proc/PID/stat: nodeplaneCpuPct) and of the whole machine (/proc/stat: hostCpuPct), in % of
 * one core, and the share of the time nodeplane's event-loop thread sat runnable on a run
 * queue waiting for a CPU (/proc/PID/schedstat: nodeplaneRunqWaitPct). Before it, the
 * machine's idle share over one second (idleBeforePct) and its 1-minute load average
 * (load1): other load on a small machine skews every figure. For nodeplane, `tso` is what
 * `ethtool -k eth0` in pod pa says of tcp-segmentation-offload (absent without ethtool), to
 * show that each mode is the one intended.
 *
 * Rows: e2e.tcp.nodeplane (offload), e2e.tcp.nodeplane.no-offload, e2e.tcp.kernel-bridge
 * (gbps, retransmits, seconds, mtu, ...); e2e.tcp.ratio and e2e.tcp.no-offload.ratio
 * (nodeplane / kernel bridge, same run); e2e.rtt.nodeplane, e2e.rtt.nodeplane.no-offload and
 * e2e.rtt.kernel-bridge (minMs, avgMs, maxMs, mdevMs, lossPct); the same TCP rows and ratios
 * for pa -> pc with `.routed` (e2e.tcp.nodeplane.routed, e2e.tcp.nodeplane.no-offload.routed,
 * e2e.tcp.kernel-bridge.routed, e2e.tcp.routed.ratio, e2e.tcp.no-offload.routed.ratio);
 * e2e.udp64.nodeplane, e2e.udp64.nodeplane.no-offload, e2e.udp64.kernel-bridge (kpps received,
 * txKpps, lossPct); e2e.peer.<topology> (gbps, udp64Kpps, minMs/avgMs/maxMs, ...). Then one
 * row per comparison, like with like, `e2e.vs.<peer>`: nodeplane / peer for rttMin, rttAvg,
 * rttMax (below 1: nodeplane is faster), udp64 (above 1: nodeplane receives more) and tcp
 * (above 1: nodeplane is faster):
 *   e2e.vs.relay                    nodeplane --no-offload against relay
 *   e2e.vs.relay-vnet               nodeplane (offload) against relay-vnet
 *   e2e.vs.ovs                      nodeplane --no-offload against ovs-tap
 *   e2e.vs.ovs-tso                  nodeplane (offload) against ovs-tap-tso
 *   e2e.vs.kernel-bridge            nodeplane (offload) against the kernel bridge
 *   e2e.vs.kernel-bridge.no-offload nodeplane --no-offload against the kernel bridge
 * Last, e2e.latency.*: 1,000 pings through nodeplane with its latency probe on, and where
 * each wake-up's time went (e2e-latency.ts; BENCH_E2E_LATENCY=0 leaves it out).
 * Without root, namespaces, TAP support, iperf3 or ping: one row
 * `{ bench: 'e2e', skipped: REASON }`.
 *
 * Safety: every host is a namespace created here (`npt-<pid>-...`, src/lab/netns.ts) and
 * removed in a finally block, and on exit; nothing touches the root namespace; traffic goes
 * only between these namespaces' addresses; iperf3 and ping are bounded in time and count.
 *
 * Standalone: `npx tsx bench/e2e.bench.ts` prints the JSON lines.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_CONFIG, DEMO_PODS } from '../src/lab/demo-topology.ts';
import { Lab } from '../src/lab/lab.ts';
import { createNetns, netnsSupport, type Netns } from '../src/lab/netns.ts';
import { tapAvailable } from '../src/ports/tap-native.ts';
import type { BenchResult } from './harness.ts';
import { PEER_TOPOLOGIES, peersMissing, runPeers, type PeerResult } from './e2e-peers.ts';
import { benchLatency } from './e2e-latency.ts';

const MTU = 1500;
const PA = '10.244.1.2';
const PB = '10.244.1.3';
const PC = '10.244.2.2';
const IPERF_PORT = 5201;

export function seconds(): number {
  const v = Number(process.env.BENCH_E2E_SECONDS);
  return Number.isInteger(v) && v >= 1 && v <= 60 ? v : 5;
}

const round = (v: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------
// Prerequisites

/** A group that cannot run here: the reason on stderr, and its one row. */
export function skippedGroup(group: string, reason: string): BenchResult[] {
  process.stderr.write(`${group}: skipped: ${reason}\n`);
  return [{ bench: group, skipped: reason }];
}

export function missing(): string | null {
  const ns = netnsSupport({ tun: true });
  if (!ns.ok) return ns.reason;
  const tap = tapAvailable();
  if (!tap.ok) return tap.reason;
  for (const t of ['iperf3', 'ping']) {
    if (spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0) return `\`${t}\` is not installed`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------
// CPU accounting

export const CLK_TCK = ((): number => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const v = Number(r.stdout?.trim());
  return Number.isInteger(v) && v > 0 ? v : 100;
})();

/** utime+stime of `pid` in clock ticks, or null when it cannot be read. */
export function procTicks(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}

/**
 * Nanoseconds the main thread of `pid` (nodeplane's event loop) has spent waiting on a run
 * queue, runnable but not running (second field of /proc/PID/schedstat); null if unknown.
 */
function runqWaitNs(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const v = Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(/\s+/)[1]);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/** [busy, total] clock ticks of the whole machine. */
function hostTicks(): [number, number] {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = v.reduce((s, x) => s + x, 0);
  return [total - v[3] - v[4], total];
}

interface CpuSample {
  /** The dataplane process, % of one core; undefined when there is none. */
  dataplanePct?: number;
  /** Share of the time the dataplane's main thread was runnable but waiting for a CPU, %. */
  dataplaneRunqWaitPct?: number;
  /** The whole machine, % of one core (at most 100 x cores). */
  hostPct: number;
}

/** Share of the machine left idle over `ms`, in %: other load skews every figure. */
async function idlePct(ms = 1000): Promise<number> {
  const [b0, t0] = hostTicks();
  await sleep(ms);
  const [b1, t1] = hostTicks();
  return t1 > t0 ? Math.round(100 - (100 * (b1 - b0)) / (t1 - t0)) : 100;
}

function cpuBegin(pid?: number): () => CpuSample {
  const t0 = performance.now();
  const p0 = procTicks(pid);
  const w0 = runqWaitNs(pid);
  const [b0] = hostTicks();
  return () => {
    const secs = (performance.now() - t0) / 1000;
    const p1 = procTicks(pid);
    const w1 = runqWaitNs(pid);
    const [b1] = hostTicks();
    const s: CpuSample = { hostPct: Math.round((100 * (b1 - b0)) / CLK_TCK / secs) };
    if (p0 !== null && p1 !== null) s.dataplanePct = Math.round((100 * (p1 - p0)) / CLK_TCK / secs);
    if (w0 !== null && w1 !== null) s.dataplaneRunqWaitPct = Math.round((100 * (w1 - w0)) / 1e9 / secs);
    return s;
  };
}

// ---------------------------------------------------------------------------------------
// Traffic: iperf3 and ping, bounded in time and count

export interface Tcp {
  /** The machine's idle share in the second before the test. */
  idleBeforePct: number;
  /** The 1-minute load average just before the test. */
  load1: number;
  gbps: number;
  retransmits: number;
  seconds: number;
  cpu: CpuSample;
}

interface IperfJson {
  error?: string;
  end?: {
    sum_received?: { bits_per_second: number; seconds: number };
    sum_sent?: { retransmits?: number };
  };
}

/**
 * BENCH_IPERF_CPU=N: iperf3's client and server both on CPU N (`-A N`), the dataplane's
 * threads left to the scheduler. On a two-core machine the scheduler otherwise puts the two
 * iperf3 processes on one CPU in some runs and apart in others, and the throughput of one
 * TCP stream differs by almost 2x between the two (4.7-4.9 against 2.5-2.7 Gbit/s here).
 */
function iperfAffinity(): string[] {
  const cpu = cpuFromEnv('BENCH_IPERF_CPU');
  return cpu !== undefined ? ['-A', cpu] : [];
}

/** The CPU number in environment variable `name`, or undefined when it is unset or not one. */
function cpuFromEnv(name: string): string | undefined {
  const cpu = process.env[name];
  return cpu !== undefined && /^\d+$/.test(cpu) ? cpu : undefined;
}

/**
 * BENCH_NODEPLANE_CPU=N: nodeplane's packet thread (its main thread, whose id is the pid;
 * not its helper threads, such as a capture's writer) on CPU N only, so that where the
 * scheduler puts it does not decide a round's figure. With BENCH_IPERF_CPU on another CPU.
 */
function pinPacketThread(pid: number | undefined): void {
  const cpu = cpuFromEnv('BENCH_NODEPLANE_CPU');
  if (pid === undefined || cpu === undefined) return;
  const r = spawnSync('taskset', ['-p', '-c', cpu, String(pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`BENCH_NODEPLANE_CPU=${cpu}: taskset failed: ${r.stderr || r.error?.message}`);
}

/**
 * iperf3 TCP from `client` to `serverAddr` in `server` for `secs` seconds, `streams` streams
 * (-P); the client connects to `connectAddr` (a ClusterIP in front of the server) where it is
 * given.
 */
export async function iperfTcp(client: Netns, server: Netns, serverAddr: string, secs: number, cpuPid?: number, connectAddr = serverAddr, streams = 1): Promise<Tcp> {
  pinPacketThread(cpuPid);
  // -1: the server serves one test and exits; it is also killed with its namespace.
  server.spawn('iperf3', ['-s', '-1', '-B', serverAddr, '-p', String(IPERF_PORT), ...iperfAffinity()], { stdio: 'ignore' });
  const idleBeforePct = await idlePct();
  const load1 = round(loadavg()[0], 2);
  let last = '';
  for (let attempt = 0; attempt < 20; attempt++) {
    await sleep(attempt === 0 ? 300 : 200);
    const end = cpuBegin(cpuPid);
    const r = await client.run('iperf3', ['-c', connectAddr, '-p', String(IPERF_PORT), '-t', String(secs), '-P', String(streams), '--connect-timeout', '3000', '-J', ...iperfAffinity()], {
      timeoutMs: (secs + 30) * 1000,
    });
    const cpu = end();
    let j: IperfJson | undefined;
    try {
      j = JSON.parse(r.stdout) as IperfJson;
    } catch {
      j = undefined;
    }
    const recv = j?.end?.sum_received;
    if (r.code === 0 && recv && recv.bits_per_second > 0) {
      return { idleBeforePct, load1, gbps: round(recv.bits_per_second / 1e9, 3), retransmits: j?.end?.sum_sent?.retransmits ?? 0, seconds: round(recv.seconds, 2), cpu };
    }
    last = j?.error ?? (r.timedOut ? 'timed out' : `${r.stderr.trim()} ${r.stdout.slice(0, 200)}`);
    // Only a server that is not listening yet is worth another try.
    if (!/connect|refused/i.test(last)) break;
  }
  throw new Error(`iperf3 ${client.name} -> ${connectAddr} failed: ${last}`);
}

export interface Udp {
  /** Datagrams received per second, thousands. */
  kpps: number;
  /** Datagrams sent per second, thousands. */
  txKpps: number;
  lossPct: number;
  cpu: CpuSample;
}

interface IperfUdpJson {
  error?: string;
  end?: {
    sum_received?: { packets: number; lost_packets: number; seconds: number; lost_percent: number };
    sum_sent?: { packets: number; seconds: number };
  };
}

/** iperf3 UDP from `client` to `serverAddr`: 64-byte payloads, unlimited sender, `secs` seconds. */
export async function iperfUdp64(client: Netns, server: Netns, serverAddr: string, secs: number, cpuPid?: number): Promise<Udp> {
  server.spawn('iperf3', ['-s', '-1', '-B', serverAddr, '-p', String(IPERF_PORT)], { stdio: 'ignore' });
  let last = '';
  for (let attempt = 0; attempt < 20; attempt++) {
    await sleep(attempt === 0 ? 300 : 200);
    const end = cpuBegin(cpuPid);
    const r = await client.run('iperf3', ['-c', serverAddr, '-p', String(IPERF_PORT), '-t', String(secs), '-u', '-l', '64', '-b', '0', '-w', '4M', '--connect-timeout', '3000', '-J'], {
      timeoutMs: (secs + 30) * 1000,
    });
    const cpu = end();
    let j: IperfUdpJson | undefined;
    try {
      j = JSON.parse(r.stdout) as IperfUdpJson;
    } catch {
      j = undefined;
    }
    const recv = j?.end?.sum_received;
    const sent = j?.end?.sum_sent;
    if (r.code === 0 && recv && sent && recv.seconds > 0 && sent.seconds > 0) {
      return {
        kpps: round((recv.packets - recv.lost_packets) / recv.seconds / 1000, 1),
        txKpps: round(sent.packets / sent.seconds / 1000, 1),
        lossPct: round(recv.lost_percent, 1),
        cpu,
      };
    }
    last = j?.error ?? (r.timedOut ? 'timed out' : `${r.stderr.trim()} ${r.stdout.slice(0, 200)}`);
    if (!/connect|refused/i.test(last)) break;
  }
  throw new Error(`iperf3 UDP ${client.name} -> ${serverAddr} failed: ${last}`);
}

interface Rtt {
  minMs: number;
  avgMs: number;
  maxMs: number;
  mdevMs: number;
  lossPct: number;
}

/** 100 pings at 10 ms from `client` to `addr` (at most 20 s). */
async function pingRtt(client: Netns, addr: string): Promise<Rtt> {
  const r = await client.run('ping', ['-c', '100', '-i', '0.01', '-q', '-w', '20', addr], { timeoutMs: 30_000 });
  const rtt = /= ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(r.stdout);
  const loss = /([\d.]+)% packet loss/.exec(r.stdout);
  if (!rtt || !loss) throw new Error(`ping ${client.name} -> ${addr} failed: ${r.stdout}${r.stderr}`);
  return { minMs: Number(rtt[1]), avgMs: Number(rtt[2]), maxMs: Number(rtt[3]), mdevMs: Number(rtt[4]), lossPct: Number(loss[1]) };
}

/** A few pings so ARP is resolved (and any learning done) before measuring. */
export async function warmUp(client: Netns, addr: string): Promise<void> {
  const r = await client.run('ping', ['-c', '3', '-i', '0.2', '-W', '2', '-q', addr], { timeoutMs: 15_000 });
  if (r.code !== 0) throw new Error(`${client.name} cannot ping ${addr}: ${r.stdout}${r.stderr}`);
}

/** The MTU of eth0 in `pod`; the bench insists on MTU 1500 on every side. */
function checkMtu(pod: Netns): number {
  const out = pod.ip(['-o', 'link', 'show', 'eth0']);
  const m = /\bmtu (\d+)/.exec(out);
  const mtu = m ? Number(m[1]) : NaN;
  if (mtu !== MTU) throw new Error(`eth0 in ${pod.name} has MTU ${mtu}, expected ${MTU}`);
  return mtu;
}

/** tcp-segmentation-offload of eth0 in `pod` per `ethtool -k` ('on'/'off'), or undefined. */
function tsoState(pod: Netns): string | undefined {
  try {
    const r = pod.runSync('ethtool', ['-k', 'eth0']);
    return /^tcp-segmentation-offload:\s*(\w+)/m.exec(r.stdout)?.[1];
  } catch {
    return undefined;
  }
}

interface SideResult {
  tcp: Tcp;
  udp64: Udp;
  rtt: Rtt;
  routed: Tcp;
  tso?: string;
}

async function measureSide(pods: { pa: Netns; pb: Netns; pc: Netns }, secs: number, cpuPid?: number): Promise<SideResult> {
  for (const p of [pods.pa, pods.pb, pods.pc]) checkMtu(p);
  await warmUp(pods.pa, PB);
  await warmUp(pods.pa, PC);
  const tcp = await iperfTcp(pods.pa, pods.pb, PB, secs, cpuPid);
  const udp64 = await iperfUdp64(pods.pa, pods.pb, PB, secs, cpuPid);
  const rtt = await pingRtt(pods.pa, PB);
  const routed = await iperfTcp(pods.pa, pods.pc, PC, secs, cpuPid);
  return { tcp, udp64, rtt, routed };
}

// ---------------------------------------------------------------------------------------
// The two dataplanes

/** The demo node under `nodeplane run [runArgs]`, in a lab of its own. */
async function runNodeplane(secs: number, runArgs: string[] = []): Promise<SideResult> {
  const dir = mkdtempSync(join(tmpdir(), 'nodeplane-bench-e2e-'));
  let lab: Lab | undefined;
  try {
    lab = await Lab.start({ config: DEMO_CONFIG, pods: DEMO_PODS, dir, runArgs });
    const pid = lab.nodeplane?.pid;
    const side = await measureSide({ pa: lab.pod('pa'), pb: lab.pod('pb'), pc: lab.pod('pc') }, secs, pid);
    return { ...side, tso: tsoState(lab.pod('pa')) };
  } finally {
    await lab?.shutdown();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The same three pods on two Linux bridges in a node namespace, over veth pairs, with the
 * node routing between the bridges (like a host with cni0 and cni1).
 */
async function runKernelBridge(secs: number): Promise<SideResult> {
  const made: Netns[] = [];
  try {
    const node = createNetns('kbnode');
    made.push(node);
    const bridges = [
      { name: 'br0', address: '10.244.1.1/24' },
      { name: 'br1', address: '10.244.2.1/24' },
    ];
    for (const b of bridges) {
      node.ip(['link', 'add', b.name, 'mtu', String(MTU), 'type', 'bridge']);
      node.ip(['addr', 'add', b.address, 'dev', b.name]);
      node.ip(['link', 'set', b.name, 'up']);
    }
    // Forwarding between br0 and br1, in this namespace only.
    node.runSync('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1'], { check: true });
    const pods: Record<'pa' | 'pb' | 'pc', Netns> = {} as Record<'pa' | 'pb' | 'pc', Netns>;
    const specs = [
      { port: 'pa', bridge: 'br0', address: `${PA}/24`, gateway: '10.244.1.1' },
      { port: 'pb', bridge: 'br0', address: `${PB}/24`, gateway: '10.244.1.1' },
      { port: 'pc', bridge: 'br1', address: `${PC}/24`, gateway: '10.244.2.1' },
    ] as const;
    for (const s of specs) {
      const pod = createNetns(`kb${s.port}`);
      made.push(pod);
      pods[s.port] = pod;
      const host = `v${s.port}`;
      node.ip(['link', 'add', host, 'mtu', String(MTU), 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', String(MTU), 'netns', pod.name]);
      node.ip(['link', 'set', host, 'master', s.bridge, 'up']);
      pod.ip(['addr', 'add', s.address, 'dev', 'eth0']);
      pod.ip(['link', 'set', 'eth0', 'up']);
      pod.ip(['route', 'add', 'default', 'via', s.gateway]);
    }
    return await measureSide(pods, secs);
  } finally {
    for (const ns of made.reverse()) ns.remove();
  }
}

// ---------------------------------------------------------------------------------------

/** The middle value (the upper one of an even count). */
export const median = (x: number[]): number => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)];

/** The run of the median throughput, for its other figures. */
export function medianRound(runs: Tcp[]): Tcp {
  const m = median(runs.map((r) => r.gbps));
  return runs.find((r) => r.gbps === m)!;
}

export function tcpRow(bench: string, t: Tcp, dataplane: boolean, tso?: string): BenchResult {
  const r: BenchResult = { bench, gbps: t.gbps, retransmits: t.retransmits, seconds: t.seconds, mtu: MTU };
  if (tso !== undefined) r.tso = tso;
  if (dataplane && t.cpu.dataplanePct !== undefined) r.nodeplaneCpuPct = t.cpu.dataplanePct;
  if (dataplane && t.cpu.dataplaneRunqWaitPct !== undefined) r.nodeplaneRunqWaitPct = t.cpu.dataplaneRunqWaitPct;
  r.hostCpuPct = t.cpu.hostPct;
  r.idleBeforePct = t.idleBeforePct;
  r.load1 = t.load1;
  return r;
}

function rttRow(bench: string, r: Rtt): BenchResult {
  return { bench, minMs: r.minMs, avgMs: r.avgMs, maxMs: r.maxMs, mdevMs: r.mdevMs, lossPct: r.lossPct };
}

function udpRow(bench: string, u: Udp, dataplane: boolean): BenchResult {
  const r: BenchResult = { bench, kpps: u.kpps, txKpps: u.txKpps, lossPct: u.lossPct, payloadBytes: 64 };
  if (dataplane && u.cpu.dataplanePct !== undefined) r.nodeplaneCpuPct = u.cpu.dataplanePct;
  r.hostCpuPct = u.cpu.hostPct;
  return r;
}

function peerRow(p: PeerResult): BenchResult {
  const r: BenchResult = { bench: `e2e.peer.${p.topology}` };
  if (p.failed !== undefined) r.failed = p.failed;
  if (p.tcpGbps !== undefined) Object.assign(r, { gbps: p.tcpGbps, retransmits: p.tcpRetransmits, mtu: MTU });
  if (p.udp64Kpps !== undefined) Object.assign(r, { udp64Kpps: p.udp64Kpps, udp64: p.udp64Detail });
  if (p.rtt) Object.assign(r, { minMs: p.rtt.minMs, avgMs: p.rtt.avgMs, maxMs: p.rtt.maxMs, lossPct: p.rtt.lossPct });
  if (p.dataplaneCpuPct !== undefined) r.dataplaneCpuPct = p.dataplaneCpuPct;
  if (p.idleBeforePct !== undefined) r.idleBeforePct = p.idleBeforePct;
  return r;
}

/** What a comparison row compares: the figures of one side, nodeplane's or a peer's. */
interface Figures {
  rtt?: { minMs: number; avgMs: number; maxMs: number };
  udp64Kpps?: number;
  tcpGbps?: number;
}

const ofSide = (s: SideResult): Figures => ({ rtt: s.rtt, udp64Kpps: s.udp64.kpps, tcpGbps: s.tcp.gbps });

/** nodeplane / peer for each figure both have (4 decimals); a missing one is left out. */
function vsRow(bench: string, np: Figures, peer: Figures, what: string): BenchResult {
  const q = (a: number | undefined, b: number | undefined): number | undefined => (a !== undefined && b !== undefined && b > 0 ? round(a / b, 4) : undefined);
  const r: BenchResult = { bench, against: what };
  const fields: [string, number | undefined][] = [
    ['rttMin', q(np.rtt?.minMs, peer.rtt?.minMs)],
    ['rttAvg', q(np.rtt?.avgMs, peer.rtt?.avgMs)],
    ['rttMax', q(np.rtt?.maxMs, peer.rtt?.maxMs)],
    ['udp64', q(np.udp64Kpps, peer.udp64Kpps)],
    ['tcp', q(np.tcpGbps, peer.tcpGbps)],
  ];
  for (const [k, v] of fields) if (v !== undefined) r[k] = v;
  return r;
}

/** The peers' rows and the comparisons with them; notes on stderr for what could not run. */
function peerRows(secs: number, np: SideResult, plain: SideResult): BenchResult[] {
  if (process.env.BENCH_E2E_PEERS === '0') {
    process.stderr.write('e2e: peers left out (BENCH_E2E_PEERS=0)\n');
    return [];
  }
  const missingWhy = peersMissing();
  if (missingWhy) {
    process.stderr.write(`e2e: peers skipped: ${missingWhy}\n`);
    return PEER_TOPOLOGIES.map((p) => ({ bench: `e2e.peer.${p.topology}`, skipped: missingWhy }));
  }
  // Each topology: three iperf3 tests of secs (bounded by peers.sh at secs + 30 each), a
  // second ping (100 at 10 ms), building and tearing down; and a margin.
  const { results, skipped, rawDir } = runPeers(secs, PEER_TOPOLOGIES.length * (4 * secs + 150) * 1000);
  if (rawDir) process.stderr.write(`e2e: peers' raw figures in ${rawDir}\n`);
  const rows: BenchResult[] = [];
  for (const s of skipped) {
    process.stderr.write(`e2e: peer ${s.topology} skipped: ${s.reason}\n`);
    rows.push({ bench: `e2e.peer.${s.topology}`, skipped: s.reason });
  }
  const byTopology = new Map(results.map((p) => [p.topology, p]));
  for (const p of results) {
    if (p.failed) process.stderr.write(`e2e: peer ${p.topology}: ${p.failed}\n`);
    rows.push(peerRow(p));
  }
  const figures = (t: string): Figures | undefined => {
    const p = byTopology.get(t as PeerResult['topology']);
    return p && !p.failed ? { rtt: p.rtt, udp64Kpps: p.udp64Kpps, tcpGbps: p.tcpGbps } : undefined;
  };
  const pairs: [string, SideResult, string, string][] = [
    ['e2e.vs.relay', plain, 'relay', 'nodeplane --no-offload / C relay'],
    ['e2e.vs.relay-vnet', np, 'relay-vnet', 'nodeplane / C relay with vnet header and TSO'],
    ['e2e.vs.ovs', plain, 'ovs-tap', 'nodeplane --no-offload / OVS userspace'],
    ['e2e.vs.ovs-tso', np, 'ovs-tap-tso', 'nodeplane / OVS userspace with TSO'],
  ];
  for (const [bench, side, topology, what] of pairs) {
    const f = figures(topology);
    if (f) rows.push(vsRow(bench, ofSide(side), f, what));
  }
  return rows;
}

export async function benchE2e(): Promise<BenchResult[]> {
  const reason = missing();
  if (reason) return skippedGroup('e2e', reason);
  const secs = seconds();
  const np = await runNodeplane(secs);
  const plain = await runNodeplane(secs, ['--no-offload']);
  const kb = await runKernelBridge(secs);
  const peers = peerRows(secs, np, plain);
  // Where a ping's time goes inside nodeplane (e2e-latency.ts); BENCH_E2E_LATENCY=0 leaves it out.
  const latency = process.env.BENCH_E2E_LATENCY === '0' ? [] : await benchLatency();
  const ratio = (bench: string, a: Tcp, b: Tcp): BenchResult => ({ bench, ratio: round(a.gbps / b.gbps, 4) });
  return [
    tcpRow('e2e.tcp.nodeplane', np.tcp, true, np.tso),
    tcpRow('e2e.tcp.nodeplane.no-offload', plain.tcp, true, plain.tso),
    tcpRow('e2e.tcp.kernel-bridge', kb.tcp, false),
    ratio('e2e.tcp.ratio', np.tcp, kb.tcp),
    ratio('e2e.tcp.no-offload.ratio', plain.tcp, kb.tcp),
    rttRow('e2e.rtt.nodeplane', np.rtt),
    rttRow('e2e.rtt.nodeplane.no-offload', plain.rtt),
    rttRow('e2e.rtt.kernel-bridge', kb.rtt),
    tcpRow('e2e.tcp.nodeplane.routed', np.routed, true, np.tso),
    tcpRow('e2e.tcp.nodeplane.no-offload.routed', plain.routed, true, plain.tso),
    tcpRow('e2e.tcp.kernel-bridge.routed', kb.routed, false),
    ratio('e2e.tcp.routed.ratio', np.routed, kb.routed),
    ratio('e2e.tcp.no-offload.routed.ratio', plain.routed, kb.routed),
    udpRow('e2e.udp64.nodeplane', np.udp64, true),
    udpRow('e2e.udp64.nodeplane.no-offload', plain.udp64, true),
    udpRow('e2e.udp64.kernel-bridge', kb.udp64, false),
    ...peers,
    vsRow('e2e.vs.kernel-bridge', ofSide(np), ofSide(kb), 'nodeplane / kernel bridge'),
    vsRow('e2e.vs.kernel-bridge.no-offload', ofSide(plain), ofSide(kb), 'nodeplane --no-offload / kernel bridge'),
    ...latency,
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchE2e()) console.log(JSON.stringify(r));
}
