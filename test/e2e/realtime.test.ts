/**
 * End to end: `run --realtime PRIO` puts the packet thread, and only it, under SCHED_FIFO.
 * nodeplane's main thread (its pid) reads the TAPs and runs the graph: /proc says its policy
 * is SCHED_FIFO at the given priority, every other thread of the process (V8's, libuv's)
 * stays SCHED_OTHER, and a ping crosses the bridge. A priority out of 1-99 is refused before
 * anything is opened, naming the flag. What it does to latency is a benchmark
 * (e2e.latency.realtime.* of `npm run bench -- e2e`, docs/benchmarks.md).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_CONFIG, DEMO_PODS } from '../../src/lab/demo-topology.ts';
import { Lab } from '../../src/lab/lab.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';

const problem = missingPrerequisite(['ping']);
const skip = skipUnlessReady('end-to-end --realtime', problem);
const BIN = fileURLToPath(new URL('../../bin/nodeplane.js', import.meta.url));
const PRIORITY = 10;
const SCHED_OTHER = 0;
const SCHED_FIFO = 1;

/** policy and rt_priority of a thread, from /proc/PID/task/TID/stat (fields 41 and 40). */
function scheduling(pid: number, tid: string): { policy: number; priority: number } {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the command, fields count from 3 (state): rt_priority is field 40, policy 41.
  return { priority: Number(f[40 - 3]), policy: Number(f[41 - 3]) };
}

describe.skipIf(skip)('run --realtime', () => {
  let lab: Lab | undefined;
  let dir = '';

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-realtime-'));
    lab = await Lab.start({ config: DEMO_CONFIG, pods: DEMO_PODS, dir, runArgs: ['--realtime', String(PRIORITY)], startTimeoutMs: 60_000 });
  }, 60_000);

  afterAll(() => {
    lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the main thread is SCHED_FIFO at the priority given, the other threads are not, and pods reach each other', async () => {
    const pid = lab!.nodeplane!.pid!;
    expect(scheduling(pid, String(pid))).toEqual({ policy: SCHED_FIFO, priority: PRIORITY });
    const others = readdirSync(`/proc/${pid}/task`).filter((t) => t !== String(pid));
    expect(others.length).toBeGreaterThan(0);
    for (const t of others) expect(scheduling(pid, t)).toEqual({ policy: SCHED_OTHER, priority: 0 });
    const r = await lab!.pod('pa').run('ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.244.1.3'], { timeoutMs: 15_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it('a priority out of 1-99 is refused, naming the flag', () => {
    const config = join(dir, 'refused.yaml');
    writeFileSync(config, DEMO_CONFIG);
    const r = spawnSync(process.execPath, [BIN, 'run', '--config', config, '--admin', join(dir, 'refused.sock'), '--realtime', '100'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--realtime 100: expected a priority from 1 to 99/);
  });
});
