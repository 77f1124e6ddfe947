/**
 * `npm run bench [-- FILTER]`: runs the benchmark groups and reports every result twice
 * (SPEC §6): one JSON object per line on stdout, `{"bench": NAME, "pps": N, ...}`, and a
 * human table on stderr, after a header naming the machine. So
 * `npm run bench | grep '^{'` yields the JSON lines alone.
 *
 * Groups, in order: checksum, decode, lpm4, conntrack, admin (reading a conntrack table of
 * 1,000,000 entries through the admin socket while forwarding), dataplane, nat, services
 * (ClusterIP DNAT, applying Services at 10,000), vxlan, flood, learning, capture (CPU per
 * record of the file capture, on the packet thread and the others), e2e, e2e-vxlan (iperf3
 * across the overlay between two nodes, nodeplane's and the kernel's), e2e-capture (iperf3
 * pod to pod uncaptured, captured whole and at snaplen 128), e2e-paths (iperf3 masqueraded
 * against routed, through a ClusterIP against pod to pod, and a 110-port node against a
 * 3-port one per second of CPU) and e2e-multiqueue (a C relay of our own between two TAPs,
 * single-queue against two queues with one and with two threads). Those from dataplane on
 * are loaded only when their files exist; the e2e groups report `skipped` rows when they
 * cannot run (no root, no namespaces).
 *
 * FILTER (optional): a group's exact name (that group alone), a group whose name contains
 * it, or a bench name or prefix
 * ("decode.views.udp"); only matching results are run where the group allows it, and only
 * matching results are printed. With no group named, every group runs and its results
 * are filtered.
 *
 * Environment: BENCH_SECONDS sets the timed duration of each harness measurement (1 s).
 * Exit status 1 when a group throws (the others still run).
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { benchAdminConntrack } from './admin-conntrack.bench.ts';
import { benchChecksum } from './checksum.bench.ts';
import { benchConntrack } from './conntrack.bench.ts';
import { benchDecode } from './decode.bench.ts';
import type { BenchResult } from './harness.ts';
import { targetSeconds } from './harness.ts';
import { benchLpm4 } from './lpm4.bench.ts';

type Filter = (name: string) => boolean;

interface Group {
  name: string;
  run: (filter: Filter) => Promise<BenchResult[]>;
}

/** A group from a bench file that may not exist yet; null when it does not. */
function optional(name: string, file: string, exportName: string): Group | null {
  const url = new URL(file, import.meta.url);
  if (!existsSync(url)) return null;
  return {
    name,
    run: async () => {
      const mod = (await import(url.href)) as Record<string, unknown>;
      const fn = mod[exportName];
      if (typeof fn !== 'function') throw new Error(`${file} does not export ${exportName}()`);
      return (await (fn as () => Promise<BenchResult[]>)()) ?? [];
    },
  };
}

const GROUPS: Group[] = [
  { name: 'checksum', run: (f: Filter) => benchChecksum(f) },
  { name: 'decode', run: (f: Filter) => benchDecode(f) },
  { name: 'lpm4', run: async () => (await benchLpm4()).map((r): BenchResult => ({ ...r })) },
  { name: 'conntrack', run: (f: Filter) => benchConntrack(f) },
  { name: 'admin', run: (f: Filter) => benchAdminConntrack(f) },
  optional('dataplane', './dataplane.bench.ts', 'benchDataplane'),
  optional('nat', './nat.bench.ts', 'benchNat'),
  optional('services', './services.bench.ts', 'benchServices'),
  optional('vxlan', './vxlan.bench.ts', 'benchVxlan'),
  optional('flood', './flood.bench.ts', 'benchFlood'),
  optional('learning', './learning.bench.ts', 'benchLearning'),
  optional('capture', './capture.bench.ts', 'benchCapture'),
  optional('e2e', './e2e.bench.ts', 'benchE2e'),
  optional('e2e-vxlan', './e2e-vxlan.bench.ts', 'benchE2eVxlan'),
  optional('e2e-capture', './e2e-capture.bench.ts', 'benchE2eCapture'),
  optional('e2e-paths', './e2e-paths.bench.ts', 'benchE2ePaths'),
  optional('e2e-multiqueue', './e2e-multiqueue.bench.ts', 'benchE2eMultiqueue'),
].filter((g): g is Group => g !== null);

// ---------------------------------------------------------------------------------------
// Machine header

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch {
    // not Linux: fall through
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

function machineHeader(): string {
  const gib = (os.totalmem() / 2 ** 30).toFixed(1);
  return [
    `cpu     ${cpuModel()}, ${os.availableParallelism()} cores, ${gib} GiB`,
    `system  ${os.type()} ${os.release()} ${os.arch()}, node ${process.version}`,
    `date    ${new Date().toISOString()}`,
    `timing  ${targetSeconds()} s per measurement (BENCH_SECONDS)`,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------
// Human table

function rate(r: BenchResult): number | undefined {
  for (const k of ['pps', 'opsPerSec', 'lookupsPerSec']) {
    const v = r[k];
    if (typeof v === 'number') return v;
  }
  return undefined;
}

function nsPer(r: BenchResult): number | undefined {
  for (const k of ['nsPerOp', 'nsPerPacket', 'nsPerLookup']) {
    const v = r[k];
    if (typeof v === 'number') return v;
  }
  const v = rate(r);
  return v ? 1e9 / v : undefined;
}

const SHOWN = new Set(['bench', 'pps', 'opsPerSec', 'lookupsPerSec', 'nsPerOp', 'nsPerPacket', 'nsPerLookup', 'bytesAllocPerOp', 'gbps', 'skipped', 'rsd']);

function fmtRate(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)} M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)} k`;
  return v.toFixed(0);
}

function extras(r: BenchResult): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(r)) {
    if (SHOWN.has(k) || v === undefined) continue;
    parts.push(`${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  }
  return parts.join(' ');
}

function tableRow(r: BenchResult): string[] {
  if (r.skipped !== undefined) return [r.bench, '-', '-', '-', '-', '-', `skipped: ${r.skipped}`];
  const v = rate(r);
  const ns = nsPer(r);
  return [
    r.bench,
    v === undefined ? '-' : fmtRate(v) + (r.pps !== undefined ? 'pps' : 'op/s'),
    ns === undefined ? '-' : ns.toFixed(ns < 100 ? 2 : 1),
    typeof r.bytesAllocPerOp === 'number' ? r.bytesAllocPerOp.toFixed(1) : '-',
    typeof r.gbps === 'number' ? r.gbps.toFixed(2) : '-',
    typeof r.rsd === 'number' ? `${r.rsd.toFixed(0)}%` : '-',
    extras(r),
  ];
}

function printTable(rows: BenchResult[]): void {
  const head = ['bench', 'rate', 'ns/op', 'B/op', 'Gbit/s', 'rsd', 'notes'];
  const cells = [head, ...rows.map(tableRow)];
  const width = head.map((_, c) => Math.max(...cells.map((row) => row[c].length)));
  const right = [false, true, true, true, true, true, false];
  for (const row of cells) {
    const line = row.map((cell, c) => (c === row.length - 1 ? cell : right[c] ? cell.padStart(width[c]) : cell.padEnd(width[c])));
    process.stderr.write(line.join('  ').trimEnd() + '\n');
  }
}

// ---------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const arg = process.argv[2];
  const filter: Filter = arg ? (name) => name.includes(arg) : () => true;
  let groups = GROUPS;
  let groupNamed = true;
  if (arg) {
    // A group's exact name runs that group alone (`e2e`, not also e2e-vxlan, e2e-capture and e2e-paths).
    const exact = GROUPS.filter((g) => g.name === arg);
    groups = exact.length !== 0 ? exact : GROUPS.filter((g) => g.name.includes(arg) || arg.startsWith(`${g.name}.`));
    if (groups.length === 0) {
      groups = GROUPS;
      groupNamed = false;
    }
  }
  // A group named in full keeps all its rows; otherwise rows are filtered by bench name.
  const keep: Filter = (name) => !arg || (groupNamed && groups.some((g) => g.name.includes(arg))) || filter(name);

  process.stderr.write(machineHeader() + '\n\n');
  const all: BenchResult[] = [];
  let status = 0;
  for (const g of groups) {
    process.stderr.write(`running ${g.name} ...\n`);
    let rows: BenchResult[];
    try {
      rows = await g.run(keep);
    } catch (err) {
      status = 1;
      process.stderr.write(`${g.name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      continue;
    }
    for (const r of rows) {
      if (!keep(r.bench)) continue;
      process.stdout.write(JSON.stringify(r) + '\n');
      all.push(r);
    }
  }
  process.stderr.write('\n');
  printTable(all);
  return status;
}

process.exitCode = await main();
