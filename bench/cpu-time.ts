/**
 * CPU-time measures for benchmarks on a shared machine: wall-clock rates move with whatever
 * else runs, the process's own CPU time (process.cpuUsage) much less. `perCpuSecond` is the
 * rate per CPU-second over ~0.5 s of CPU, `cpuNs` the CPU time per operation of one call,
 * `cpuRatio` the median of alternating pairs (robust to load that comes and goes), and `row`
 * a harness row of packets with `perCpuSecond` beside its wall-clock rate.
 */
import { type BenchResult, measure, toResult } from './harness.ts';

/** Ops per second of this process's CPU time, over calls of fn(chunk) worth ~0.5 s of CPU. */
export function perCpuSecond(fn: (n: number) => void, chunk: number): number {
  let ops = 0;
  const c0 = process.cpuUsage();
  let us = 0;
  while (us < 500_000) {
    fn(chunk);
    ops += chunk;
    const c = process.cpuUsage(c0);
    us = c.user + c.system;
  }
  return Math.round((ops / us) * 1e6);
}

/** CPU ns per operation of fn(ops) (process.cpuUsage). */
export function cpuNs(fn: (n: number) => void, ops: number): number {
  const c0 = process.cpuUsage();
  fn(ops);
  const c = process.cpuUsage(c0);
  return ((c.user + c.system) * 1000) / ops;
}

/**
 * The median of `pairs` alternating CPU-time ratios: b's CPU time per op over a's, each over
 * `ops` (a is measured first in each pair). With b the baseline, that is a's speed relative
 * to it; with a the baseline, b's cost relative to it.
 */
export function cpuRatio(a: (n: number) => void, b: (n: number) => void, pairs: number, ops: number): number {
  const ratios: number[] = [];
  for (let i = 0; i < pairs; i++) {
    const na = cpuNs(a, ops);
    const nb = cpuNs(b, ops);
    ratios.push(nb / na);
  }
  ratios.sort((x, y) => x - y);
  return ratios[pairs >> 1];
}

/** A harness row of packets (fn(n) moves n packets), with its rate per CPU-second. */
export function row(name: string, fn: (n: number) => void, extra: Record<string, unknown>, chunk = 25_600): BenchResult {
  const r = toResult(measure(name, fn), { packet: true, ...extra });
  r.perCpuSecond = perCpuSecond(fn, chunk);
  return r;
}

export const r2 = (v: number): number => Math.round(v * 100) / 100;
