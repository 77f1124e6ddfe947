/**
 * The reference dataplanes of the e2e bench, measured by the shared `peers.sh`
 * (`../shared/bench/peers.sh` from the repository root): the minimal C relay (two TAPs, one
 * read() and one write() per frame, plain and with a virtio-net header and TSO) and Open
 * vSwitch's userspace datapath on TAPs (without and with userspace TSO). The script builds
 * each topology in namespaces of its own (prefix below), runs iperf3 TCP (1 and 4 streams),
 * iperf3 UDP with 64-byte payloads and an unlimited sender, and 100 pings at 10 ms, all
 * bounded in time, tears everything down, and writes `results.tsv` (topology, mtu, test,
 * value, unit, extra, dataplane CPU %, host CPU %, run). This file runs it with a time
 * limit and reads that file.
 *
 * Which topologies run depends on what is installed: the relays need a C compiler, OVS needs
 * `ovs-vswitchd`; the script itself needs bash, ip, iperf3, ping, ethtool, jq and awk. What
 * cannot run is left out with the reason, for the caller to print.
 *
 * Namespaces and devices get the prefix `n<3 chars of this pid>-` (PK_PREFIX), so a run of
 * peers.sh by someone else (default prefix `pk-`) and this one do not see each other's.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The script, beside the repository. */
export const PEERS_SCRIPT = fileURLToPath(new URL('../../shared/bench/peers.sh', import.meta.url));

/** What the e2e bench compares nodeplane with, and what each needs besides the script's tools. */
export const PEER_TOPOLOGIES = [
  { topology: 'relay', needs: 'cc', what: 'C relay, one read()+write() per frame' },
  { topology: 'relay-vnet', needs: 'cc', what: 'C relay with virtio-net header and TSO' },
  { topology: 'ovs-tap', needs: 'ovs-vswitchd', what: 'OVS userspace datapath on TAPs' },
  { topology: 'ovs-tap-tso', needs: 'ovs-vswitchd', what: 'OVS userspace datapath on TAPs, userspace TSO' },
] as const;

export type PeerTopology = (typeof PEER_TOPOLOGIES)[number]['topology'];

export interface PeerResult {
  topology: PeerTopology;
  /** Why nothing was measured (setup failed), when so. */
  failed?: string;
  /** iperf3 TCP, one stream, Gbit/s. */
  tcpGbps?: number;
  tcpRetransmits?: number;
  /** iperf3 UDP, 64-byte payload, unlimited sender: datagrams received per second, thousands. */
  udp64Kpps?: number;
  /** The same test's sending rate and loss, as peers.sh reports them ("tx=..kpps loss=..%"). */
  udp64Detail?: string;
  rtt?: { minMs: number; avgMs: number; maxMs: number; lossPct: number };
  /** The dataplane process(es) during the TCP test, % of one core. */
  dataplaneCpuPct?: number;
  /** The machine's idle share before the topology's tests, %. */
  idleBeforePct?: number;
}

export interface PeersRun {
  results: PeerResult[];
  /** Where peers.sh left its raw figures (results.tsv, one iperf3 JSON per test), if it ran. */
  rawDir?: string;
  /** Topologies not run, and why. */
  skipped: { topology: PeerTopology; reason: string }[];
}

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** Why peers.sh cannot run at all here, or null. */
export function peersMissing(): string | null {
  if (!existsSync(PEERS_SCRIPT)) return `${PEERS_SCRIPT} is absent`;
  for (const t of ['bash', 'ip', 'iperf3', 'ping', 'ethtool', 'jq', 'awk']) if (!has(t)) return `peers.sh needs \`${t}\`, which is not installed`;
  return null;
}

/** This process's prefix for peers.sh: `n` and three base-36 digits of the pid, then `-`. */
export function peersPrefix(pid = process.pid): string {
  return `n${(pid % 36 ** 3).toString(36).padStart(3, '0')}-`;
}

/** Parses peers.sh's results.tsv into one result per topology (MTU 1500, first run). */
export function parseResults(tsv: string, topologies: readonly PeerTopology[]): PeerResult[] {
  const out = new Map<string, PeerResult>();
  for (const t of topologies) out.set(t, { topology: t });
  for (const line of tsv.split('\n').slice(1)) {
    const f = line.split('\t');
    if (f.length < 9) continue;
    const [topology, , test, value, , extra, dpCpu, , run] = f;
    const r = out.get(topology);
    if (!r || run !== '1') continue;
    const num = Number(value);
    if (test === 'setup') r.failed = extra || 'could not build';
    else if (test === 'idle') r.idleBeforePct = num;
    else if (value === 'FAIL') r.failed = `${test}: ${extra}`;
    else if (test === 'tcp1') {
      r.tcpGbps = num;
      const m = /retr=(\d+)/.exec(extra);
      if (m) r.tcpRetransmits = Number(m[1]);
      if (dpCpu !== '-' && dpCpu !== '') r.dataplaneCpuPct = Number(dpCpu);
    } else if (test === 'udp64-max') {
      r.udp64Kpps = num;
      r.udp64Detail = extra;
    } else if (test === 'ping') {
      const [min, avg, max] = value.split('/').map(Number);
      const loss = /loss=([\d.]+)%/.exec(extra);
      r.rtt = { minMs: min, avgMs: avg, maxMs: max, lossPct: loss ? Number(loss[1]) : NaN };
    }
  }
  return [...out.values()];
}

/**
 * Runs peers.sh for every topology this machine can build, at MTU 1500, `secs` per iperf3
 * test, one run each, no fixed-rate UDP test; at most `limitMs` in all (then it is sent
 * SIGTERM, on which it tears its namespaces down). Its progress goes to stderr.
 */
export function runPeers(secs: number, limitMs: number): PeersRun {
  const skipped: PeersRun['skipped'] = [];
  const topologies: PeerTopology[] = [];
  for (const p of PEER_TOPOLOGIES) {
    if (has(p.needs)) topologies.push(p.topology);
    else skipped.push({ topology: p.topology, reason: `\`${p.needs}\` is not installed` });
  }
  if (topologies.length === 0) return { results: [], skipped };
  const dir = mkdtempSync(join(tmpdir(), 'nodeplane-bench-peers-'));
  const r = spawnSync('bash', [PEERS_SCRIPT, '-T', topologies.join(' '), '-m', '1500', '-t', String(secs), '-n', '1', '-r', '0', '-o', dir], {
    env: { ...process.env, PK_PREFIX: peersPrefix() },
    stdio: ['ignore', 2, 2],
    timeout: limitMs,
    killSignal: 'SIGTERM',
  });
  const file = join(dir, 'results.tsv');
  const why = r.error ? r.error.message : `exited with ${r.status ?? r.signal}`;
  if (!existsSync(file)) {
    rmSync(dir, { recursive: true, force: true });
    return { results: [], skipped: [...skipped, ...topologies.map((topology) => ({ topology, reason: `peers.sh wrote no results (${why})` }))] };
  }
  const results = parseResults(readFileSync(file, 'utf8'), topologies);
  // Cut short (time limit) or failed part way: keep what it measured, say why for the rest.
  if (r.error || r.status !== 0) for (const x of results) if (x.tcpGbps === undefined && x.rtt === undefined && !x.failed) x.failed = `not measured: peers.sh ${why}`;
  return { results, skipped, rawDir: dir };
}
