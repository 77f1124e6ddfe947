/**
 * The same question asked of the kernel and tcpdump: what does recording every frame cost a
 * Linux bridge? Two pods on a kernel bridge through veth pairs with every offload off (so
 * every frame is a 1500-byte frame, as nodeplane's `--no-offload`), iperf3 TCP pa → pb, three
 * ways interleaved over rounds: uncaptured; `tcpdump -w` on both bridge ports, whole frames
 * (`-s 0`); and `-s 128`. Each port's tcpdump writes its own file with a 32 MiB buffer
 * (`-B 32768`, as nodeplane's default ring), to the same directory nodeplane's captures go.
 * tcpdump's own count of what the kernel dropped for it ("dropped by kernel") is the
 * counterpart of nodeplane's ring drops.
 *
 * Rows: e2e.capture.tcpdump.{uncaptured,whole,snaplen128} (median round, every round,
 * packets captured and dropped per round) and e2e.capture.tcpdump.ratio. Skipped with the
 * reason when tcpdump or ethtool is missing.
 *
 * Safety: a switch namespace and two pod namespaces of this process's prefix
 * (src/lab/netns.ts), removed in a finally block and on exit; iperf3 is bounded in time and
 * tcpdump stopped after each run.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Netns } from '../src/lab/netns.ts';
import { type Tcp, iperfTcp, median, medianRound, skippedGroup, tcpRow } from './e2e.bench.ts';
import type { BenchResult } from './harness.ts';
import { createSwitchAndPods } from './switch-and-pods.ts';

const PA = '10.244.1.2';
const PB = '10.244.1.3';

const MODES = [
  { name: 'uncaptured', snaplen: null },
  { name: 'whole', snaplen: '0' },
  { name: 'snaplen128', snaplen: '128' },
] as const;

/** Every offload of a device off: MTU-sized frames only. */
function offloadsOff(ns: Netns, dev: string): void {
  ns.runSync('ethtool', ['-K', dev, 'tso', 'off', 'gso', 'off', 'gro', 'off', 'tx', 'off', 'rx', 'off']);
}

/** A veth from the switch's `port` to the pod's eth0, with its address. */
function plugVeth(sw: Netns, port: string, pod: Netns, address: string): void {
  sw.ip(['link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.name]);
  sw.ip(['link', 'set', port, 'master', 'br0', 'up']);
  pod.ip(['addr', 'add', `${address}/24`, 'dev', 'eth0']);
  pod.ip(['link', 'set', 'eth0', 'up']);
  offloadsOff(sw, port);
  offloadsOff(pod, 'eth0');
}

/** Stops a tcpdump and returns its "N packets captured" and "N packets dropped by kernel". */
async function stop(t: ChildProcess, err: () => string): Promise<{ captured: number; dropped: number }> {
  const exited = new Promise((r) => t.on('exit', r));
  t.kill('SIGINT');
  const limit = setTimeout(() => t.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(limit);
  const n = (re: RegExp): number => Number(re.exec(err())?.[1] ?? NaN);
  return { captured: n(/(\d+) packets captured/), dropped: n(/(\d+) packets dropped by kernel/) };
}

export async function benchKernelTcpdump(rounds: number, secs: number, dir: string): Promise<BenchResult[]> {
  for (const tool of ['tcpdump', 'ethtool']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return skippedGroup('e2e.capture.tcpdump', `\`${tool}\` is not installed`);
  }
  const net = createSwitchAndPods('td');
  try {
    const { sw, pa, pb } = net;
    sw.ip(['link', 'add', 'br0', 'type', 'bridge']);
    sw.ip(['link', 'set', 'br0', 'up']);
    plugVeth(sw, 'vpa', pa, PA);
    plugVeth(sw, 'vpb', pb, PB);
    const warm = await pa.run('ping', ['-c', '3', '-i', '0.2', '-W', '2', '-q', PB], { timeoutMs: 15_000 });
    if (warm.code !== 0) throw new Error(`kernel bridge: pa cannot ping ${PB}: ${warm.stdout}${warm.stderr}`);
    const runs = new Map<string, { tcp: Tcp[]; captured: number[]; dropped: number[] }>(MODES.map((m) => [m.name, { tcp: [], captured: [], dropped: [] }]));
    for (let round = 0; round < rounds; round++) {
      for (const m of MODES) {
        const r = runs.get(m.name)!;
        const dumps: Array<{ t: ChildProcess; err: string }> = [];
        const files = mkdtempSync(join(dir, `tcpdump-${round}-${m.name}-`));
        try {
          if (m.snaplen !== null) {
            for (const port of ['vpa', 'vpb']) {
              const d = { t: sw.spawn('tcpdump', ['-i', port, '-s', m.snaplen, '-B', '32768', '-w', join(files, `${port}.pcap`)], { stdio: ['ignore', 'ignore', 'pipe'] }), err: '' };
              d.t.stderr!.setEncoding('utf8').on('data', (s: string) => (d.err += s));
              dumps.push(d);
            }
            // tcpdump says "listening on" once its socket is bound.
            for (let i = 0; i < 100 && dumps.some((d) => !d.err.includes('listening on')); i++) await new Promise((res) => setTimeout(res, 50));
          }
          r.tcp.push(await iperfTcp(pa, pb, PB, secs));
          let captured = 0;
          let dropped = 0;
          for (const d of dumps) {
            const s = await stop(d.t, () => d.err);
            captured += s.captured;
            dropped += s.dropped;
          }
          if (m.snaplen !== null) {
            r.captured.push(captured);
            r.dropped.push(dropped);
          }
        } finally {
          for (const d of dumps) d.t.kill('SIGKILL');
          rmSync(files, { recursive: true, force: true });
        }
      }
    }
    const rows: BenchResult[] = MODES.map((m) => {
      const r = runs.get(m.name)!;
      const row: BenchResult = { ...tcpRow(`e2e.capture.tcpdump.${m.name}`, medianRound(r.tcp), false), rounds: r.tcp.map((t) => t.gbps) };
      if (m.snaplen !== null) {
        row.captured = r.captured;
        row.droppedByKernel = r.dropped;
      }
      return row;
    });
    const base = median(runs.get('uncaptured')!.tcp.map((t) => t.gbps));
    const ratio = (name: string): number => Math.round((median(runs.get(name)!.tcp.map((t) => t.gbps)) / base) * 1000) / 1000;
    rows.push({ bench: 'e2e.capture.tcpdump.ratio', whole: ratio('whole'), snaplen128: ratio('snaplen128') });
    return rows;
  } finally {
    net.remove();
  }
}
