/**
 * End to end: what three paths cost against the plain one beside them, each measured in the
 * same run with iperf3 (one TCP stream, offload on unless said, BENCH_E2E_SECONDS a run,
 * default 5), on the nodes of src/lab/path-topologies.ts that the end-to-end tests check for
 * behaviour:
 *
 * - masquerade: pa 10.244.1.2 → the host outside the cluster 192.168.50.1 behind the L3
 *   port, ROUNDS rounds, each restarting nodeplane routed (no `nat`), then masqueraded
 *   (`nat: { clusterCIDR }`); the median of the rounds' masqueraded/routed ratios (target
 *   0.9);
 * - ClusterIP: pa → pc 10.244.2.2 directly, then pa → ClusterIP 10.96.0.13 backed by pc,
 *   ROUNDS rounds in one lab; the median of the rounds' ClusterIP/direct ratios (target 0.9);
 * - 110 ports: for each TAP mode (offload, `--no-offload`, a capture at snaplen 128), a node
 *   with 110 ports (pods on p108 and p109) and a node with 3 (pods on p1 and p2) side by side,
 *   iperf3 on both at the same time, ROUNDS times; Gbit moved per second of each nodeplane's
 *   CPU (utime+stime over the rounds), and the 110-port node's over the 3-port node's (target
 *   0.8). On a shared machine the raw figures follow the share of a core each node gets; the
 *   number of ports can only change the Gbit per CPU second. The raw ratio is given too.
 *
 * The targets are printed beside the figures (`target`, `met`); a bench reports, it does not
 * fail on them. Rows: e2e.paths.routed, e2e.paths.masquerade, e2e.paths.masquerade.ratio,
 * e2e.paths.direct, e2e.paths.clusterip, e2e.paths.clusterip.ratio (the median round's iperf3
 * figures and every round's Gbit/s; the ratio rows give every round's ratio), and
 * e2e.paths.pods110.<offload|no-offload|capture>. Without root, namespaces, TAP support or
 * iperf3: one row `{ bench: 'e2e.paths', skipped: REASON }`.
 *
 * Safety: every host is a namespace of a lab (src/lab/netns.ts, the unique prefix), removed
 * in a finally block and on exit; traffic goes only between the labs' own addresses; iperf3
 * is bounded in time.
 *
 * Standalone: `node bin/run-ts.js bench/e2e-paths.bench.ts`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, type PodSpec } from '../src/lab/lab.ts';
import {
  EXT,
  MASQUERADE_PODS,
  PC,
  PODS110_MODES,
  type Pods110Lab,
  type Pods110Mode,
  SERVICES_CONFIG,
  SERVICES_PODS,
  SVC_PERF,
  masqueradeConfig,
  pods110Address,
  startPods110Lab,
  stopPods110Lab,
} from '../src/lab/path-topologies.ts';
import { CLK_TCK, iperfTcp, median, medianRound, missing, procTicks, seconds, skippedGroup, type Tcp, tcpRow } from './e2e.bench.ts';
import type { BenchResult } from './harness.ts';

const ROUNDS = 3;
const MASQUERADE_TARGET = 0.9;
const CLUSTERIP_TARGET = 0.9;
const PODS110_TARGET = 0.8;

const r3 = (v: number): number => Math.round(v * 1000) / 1000;
const show = (v: number[]): string => v.map((x) => x.toFixed(2)).join(', ');
const note = (line: string): void => {
  process.stderr.write(`e2e.paths: ${line}\n`);
};

/**
 * Rows for a path against the plain path beside it, round by round: each side's median round
 * with every round's Gbit/s, then every round's path/plain ratio, their median and the target.
 */
function comparison(prefix: string, plain: [string, Tcp[]], path: [string, Tcp[]], target: number, what: string): BenchResult[] {
  const ratios = path[1].map((p, i) => p.gbps / plain[1][i].gbps);
  const m = median(ratios);
  note(`iperf3 ${what} per round: ${show(ratios)}; median ${m.toFixed(2)} (target ${target}: ${m >= target ? 'met' : 'not met'})`);
  return [
    ...[plain, path].map(([name, runs]) => ({ ...tcpRow(`${prefix}.${name}`, medianRound(runs), true), rounds: runs.map((r) => r.gbps) })),
    { bench: `${prefix}.${path[0]}.ratio`, ratio: r3(m), rounds: ratios.map(r3), target, met: m >= target },
  ];
}

/** Starts a lab of `config` and `pods` in a directory of its own, runs `fn`, tears both down. */
async function withLab<T>(config: string, pods: PodSpec[], fn: (lab: Lab) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'nodeplane-bench-paths-'));
  let lab: Lab | undefined;
  try {
    lab = await Lab.start({ config, pods, dir });
    return await fn(lab);
  } finally {
    await lab?.shutdown();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Masqueraded against routed, each round restarting nodeplane in both configs in turn. */
function masquerade(secs: number): Promise<BenchResult[]> {
  return withLab(masqueradeConfig(false), MASQUERADE_PODS, async (lab) => {
    const routed: Tcp[] = [];
    const masq: Tcp[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      if (round !== 0) await lab.restart(masqueradeConfig(false));
      routed.push(await iperfTcp(lab.pod('pa'), lab.pod('up'), EXT, secs, lab.nodeplane?.pid));
      await lab.restart(masqueradeConfig(true));
      masq.push(await iperfTcp(lab.pod('pa'), lab.pod('up'), EXT, secs, lab.nodeplane?.pid));
    }
    note(`iperf3 pa → ${EXT} routed, without nat: ${show(routed.map((r) => r.gbps))} Gbit/s; masqueraded: ${show(masq.map((r) => r.gbps))} Gbit/s`);
    return comparison('e2e.paths', ['routed', routed], ['masquerade', masq], MASQUERADE_TARGET, 'masqueraded/routed');
  });
}

/** Through a ClusterIP against pod to pod directly, interleaved in one lab. */
function clusterIp(secs: number): Promise<BenchResult[]> {
  return withLab(SERVICES_CONFIG, SERVICES_PODS, async (lab) => {
    const pid = lab.nodeplane?.pid;
    const direct: Tcp[] = [];
    const service: Tcp[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      direct.push(await iperfTcp(lab.pod('pa'), lab.pod('pc'), PC, secs, pid));
      service.push(await iperfTcp(lab.pod('pa'), lab.pod('pc'), PC, secs, pid, SVC_PERF));
    }
    note(`iperf3 pa → pc ${PC} directly: ${show(direct.map((r) => r.gbps))} Gbit/s; pa → ClusterIP ${SVC_PERF} (pc): ${show(service.map((r) => r.gbps))} Gbit/s`);
    return comparison('e2e.paths', ['direct', direct], ['clusterip', service], CLUSTERIP_TARGET, 'ClusterIP/pod-to-pod');
  });
}

const MODE_KEY: Record<Pods110Mode['name'], string> = { offload: 'offload', 'no offload': 'no-offload', 'capture on': 'capture' };

/** A 110-port node and a 3-port node in `mode`, iperf3 on both at once; Gbit per CPU second. */
async function pods110(mode: Pods110Mode, secs: number): Promise<BenchResult> {
  let big: Pods110Lab | undefined;
  let small: Pods110Lab | undefined;
  try {
    big = await startPods110Lab(110, [108, 109], mode);
    small = await startPods110Lab(3, [1, 2], mode);
    const pids = [big.lab.nodeplane?.pid, small.lab.nodeplane?.pid];
    const t0 = pids.map(procTicks);
    const runs: Array<[Tcp, Tcp]> = [];
    for (let round = 0; round < ROUNDS; round++) {
      runs.push(
        await Promise.all([
          iperfTcp(big.lab.pod('p108'), big.lab.pod('p109'), pods110Address(109), secs, pids[0]),
          iperfTcp(small.lab.pod('p1'), small.lab.pod('p2'), pods110Address(2), secs, pids[1]),
        ]),
      );
    }
    const t1 = pids.map(procTicks);
    const cpuSeconds = t0.map((t, i) => (t === null || t1[i] === null ? NaN : (t1[i]! - t) / CLK_TCK));
    const gbit = [0, 1].map((side) => runs.reduce((s, r) => s + r[side].gbps * r[side].seconds, 0));
    const perCpu = gbit.map((g, i) => g / cpuSeconds[i]);
    const gbps110 = runs.map((r) => r[0].gbps);
    const gbps3 = runs.map((r) => r[1].gbps);
    const raw = gbps110.reduce((s, g) => s + g, 0) / gbps3.reduce((s, g) => s + g, 0);
    const ratio = perCpu[0] / perCpu[1];
    note(
      `110 pods, ${mode.name}: iperf3 p108 → p109 ${show(gbps110)} Gbit/s; 3 ports at the same time ${show(gbps3)}; ` +
        `ratio ${raw.toFixed(2)}, per nodeplane CPU second ${ratio.toFixed(2)} (target ${PODS110_TARGET}: ${ratio >= PODS110_TARGET ? 'met' : 'not met'}; CPU ${cpuSeconds[0]} s and ${cpuSeconds[1]} s)`,
    );
    return {
      bench: `e2e.paths.pods110.${MODE_KEY[mode.name]}`,
      gbps: r3(median(gbps110)),
      rounds110: gbps110,
      rounds3: gbps3,
      cpuSeconds,
      gbitPerCpuSecond110: r3(perCpu[0]),
      gbitPerCpuSecond3: r3(perCpu[1]),
      rawRatio: r3(raw),
      ratio: r3(ratio),
      target: PODS110_TARGET,
      met: ratio >= PODS110_TARGET,
    };
  } finally {
    await stopPods110Lab(small);
    await stopPods110Lab(big);
  }
}

export async function benchE2ePaths(): Promise<BenchResult[]> {
  const reason = missing();
  if (reason) return skippedGroup('e2e.paths', reason);
  const secs = seconds();
  const rows = [...(await masquerade(secs)), ...(await clusterIp(secs))];
  for (const mode of PODS110_MODES) rows.push(await pods110(mode, secs));
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchE2ePaths()) process.stdout.write(`${JSON.stringify(r)}\n`);
}
