/**
 * End to end: what capturing costs. One iperf3 TCP stream pa → pb across cni0 in the demo lab,
 * `--no-offload` (every frame a 1500-byte frame: the most records per byte), four ways in
 * one lab: uncaptured, capturing every frame of every port whole, with `--snaplen 128`, and
 * whole on pa's port only (`capture.ports: [pa]`: every frame of the stream once, as tcpdump
 * on one pod's veth sees it, where the others record it twice).
 * ROUNDS rounds (BENCH_CAPTURE_ROUNDS, default 3) interleave the four (nodeplane restarted
 * for each run), BENCH_E2E_SECONDS each (default 5), so a busy moment on the machine falls on one round, not on one mode.
 * BENCH_CAPTURE_BUFFER_KIB passes `--capture-buffer` to the captured runs (default: the
 * default ring, 32 MiB); NODEPLANE_CAPTURE_DIRECT=0 (passed on to nodeplane) writes the
 * captures through the page cache instead of with O_DIRECT; BENCH_IPERF_CPU=N puts both
 * iperf3 ends on CPU N and BENCH_NODEPLANE_CPU=M nodeplane's packet thread on CPU M
 * (e2e.bench.ts): with both, rounds no longer depend on where the scheduler puts them.
 *
 * Rows: e2e.capture.uncaptured, e2e.capture.whole, e2e.capture.snaplen128,
 * e2e.capture.wholeOnePort (the median round's
 * iperf3 figures, every round's Gbit/s, and for the captured ones the records written and
 * the ring's drops per round, from `show ports`), and e2e.capture.ratio: whole / uncaptured
 * snaplen128 / uncaptured and wholeOnePort / uncaptured from the medians (targets 0.75 and
 * 0.9 for the first two). Then the same
 * question asked of a kernel bridge with tcpdump on its two ports (e2e-capture-tcpdump.ts,
 * rows e2e.capture.tcpdump.*; BENCH_CAPTURE_TCPDUMP=0 leaves it out). Without root,
 * namespaces, TAP support or iperf3: one row `{ bench: 'e2e.capture', skipped: REASON }`.
 *
 * Safety: every host is a namespace of the lab (src/lab/netns.ts), removed in a finally block
 * and on exit; iperf3 is bounded in time.
 *
 * Standalone: `npx tsx bench/e2e-capture.bench.ts`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchState } from '../src/admin/client.ts';
import type { PortsState } from '../src/admin/state.ts';
import { DEMO_CONFIG, DEMO_PODS } from '../src/lab/demo-topology.ts';
import { Lab } from '../src/lab/lab.ts';
import { iperfTcp, median, medianRound, missing, seconds, skippedGroup, type Tcp, tcpRow } from './e2e.bench.ts';
import { benchKernelTcpdump } from './e2e-capture-tcpdump.ts';
import type { BenchResult } from './harness.ts';

const ROUNDS = Number(process.env.BENCH_CAPTURE_ROUNDS ?? 3);
const PB = '10.244.1.3';


interface Mode {
  name: 'uncaptured' | 'whole' | 'snaplen128' | 'wholeOnePort';
  args: string[];
  /** The lab's config for this mode (capture.ports for one port). */
  config?: string;
  runs: Tcp[];
  records: number[];
  ringDrops: number[];
}

export async function benchE2eCapture(): Promise<BenchResult[]> {
  const reason = missing();
  if (reason) return skippedGroup('e2e.capture', reason);
  const secs = seconds();
  const kib = process.env.BENCH_CAPTURE_BUFFER_KIB;
  const buffer = kib ? ['--capture-buffer', kib] : [];
  const dir = mkdtempSync(join(tmpdir(), 'nodeplane-bench-capture-'));
  let lab: Lab | undefined;
  try {
    lab = await Lab.start({ config: DEMO_CONFIG, pods: DEMO_PODS, dir, runArgs: ['--no-offload'], startTimeoutMs: 60_000 });
    const modes: Mode[] = [
      { name: 'uncaptured', args: [], runs: [], records: [], ringDrops: [] },
      { name: 'whole', args: [], runs: [], records: [], ringDrops: [] },
      { name: 'snaplen128', args: ['--snaplen', '128'], runs: [], records: [], ringDrops: [] },
      { name: 'wholeOnePort', args: [], config: `${DEMO_CONFIG}capture:\n  ports: [pa]\n`, runs: [], records: [], ringDrops: [] },
    ];
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of modes) {
        const caps = join(dir, `caps-${round}-${mode.name}`);
        const capture = mode.name === 'uncaptured' ? [] : ['--capture', caps, ...buffer, ...mode.args];
        await lab.restart(mode.config ?? DEMO_CONFIG, ['--no-offload', ...capture]);
        mode.runs.push(await iperfTcp(lab.pod('pa'), lab.pod('pb'), PB, secs, lab.nodeplane?.pid));
        if (capture.length !== 0) {
          const ports = (await fetchState(lab.adminSocket, 'ports')) as PortsState;
          mode.records.push(ports.capture?.packets ?? 0);
          mode.ringDrops.push(ports.capture?.ringDrops ?? 0);
        }
        rmSync(caps, { recursive: true, force: true });
      }
    }
    const rows: BenchResult[] = modes.map((m) => {
      const row: BenchResult = { ...tcpRow(`e2e.capture.${m.name}`, medianRound(m.runs), true), rounds: m.runs.map((r) => r.gbps) };
      if (m.name !== 'uncaptured') {
        row.records = m.records;
        row.ringDrops = m.ringDrops;
      }
      return row;
    });
    const base = median(modes[0].runs.map((r) => r.gbps));
    const ratio = (m: Mode): number => Math.round((median(m.runs.map((r) => r.gbps)) / base) * 1000) / 1000;
    rows.push({ bench: 'e2e.capture.ratio', whole: ratio(modes[1]), snaplen128: ratio(modes[2]), wholeOnePort: ratio(modes[3]), bufferKiB: kib ? Number(kib) : 32768 });
    await lab.shutdown();
    lab = undefined;
    // The kernel's bridge with tcpdump on both ports, the same rounds: the reference.
    if (process.env.BENCH_CAPTURE_TCPDUMP !== '0') rows.push(...(await benchKernelTcpdump(ROUNDS, secs, dir)));
    return rows;
  } finally {
    await lab?.shutdown();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchE2eCapture()) process.stdout.write(`${JSON.stringify(r)}\n`);
}
