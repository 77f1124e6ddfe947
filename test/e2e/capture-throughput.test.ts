/**
 * End to end: capturing at full rate. iperf3 TCP from pa to pb across cni0 with offload off
 * (every frame a 1500-byte frame, the most records per byte), uncaptured, then capturing every
 * frame of every port whole (with a 128 MiB ring, `--capture-buffer`), then with `--snaplen
 * 128` (nodeplane restarted for each): the transfer completes in every mode, every captured run
 * writes its records (`show ports`), the ring's size and drop count are reported, and a snaplen capture holds no record longer than 128 bytes.
 * What capturing costs in throughput is a benchmark, not a test (`npm run bench --
 * e2e-capture`, docs/benchmarks.md): a ratio of wall-clock rates depends on the machine.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchState } from '../../src/admin/client.ts';
import type { PortsState } from '../../src/admin/state.ts';
import { DEMO_CONFIG, DEMO_PODS } from '../../src/lab/demo-topology.ts';
import { Lab } from '../../src/lab/lab.ts';
import { readCaptureSync } from '../../src/pcap/reader.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';

const problem = missingPrerequisite(['iperf3', 'ss']);
const skip = skipUnlessReady('end-to-end capture throughput', problem);
const PB = '10.244.1.3';

/** The longest record of a pcapng capture, in captured bytes. */
function longestRecord(path: string): number {
  let longest = 0;
  for (const r of readCaptureSync(path).records()) longest = Math.max(longest, r.caplen);
  return longest;
}

async function iperf(lab: Lab): Promise<number> {
  const server = lab.pod('pb').spawn('iperf3', ['-s', '-1', '-B', PB], { stdio: 'ignore' });
  const limit = setTimeout(() => server.kill('SIGKILL'), 40_000);
  try {
    for (let i = 0; i < 100; i++) {
      const r = await lab.pod('pb').run('ss', ['-Hltn', 'sport = :5201']);
      if (r.stdout.trim() !== '') break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const r = await lab.pod('pa').run('iperf3', ['-c', PB, '-t', '3', '-J'], { timeoutMs: 20_000 });
    if (r.code !== 0) throw new Error(`iperf3 -c ${PB} from pa failed (${r.code ?? 'killed at 20 s'}): ${r.stdout.slice(0, 500)}${r.stderr}`);
    return (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e9;
  } finally {
    clearTimeout(limit);
    server.kill('SIGKILL');
  }
}

describe.skipIf(skip)('capture throughput', () => {
  let lab: Lab | undefined;
  let dir = '';

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-capbw-'));
    lab = await Lab.start({ config: DEMO_CONFIG, pods: DEMO_PODS, dir, runArgs: ['--no-offload'], startTimeoutMs: 60_000 });
  }, 60_000);

  afterAll(() => {
    lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('iperf3 completes uncaptured, captured whole and at --snaplen 128; every captured run writes its records', async () => {
    const plain = await iperf(lab!);
    expect(plain).toBeGreaterThan(0.01);
    const figures: string[] = [`uncaptured ${plain.toFixed(2)} Gbit/s`];
    for (const [mode, args, ringMiB] of [['whole', ['--capture-buffer', '131072'], 128], ['snaplen 128', ['--snaplen', '128'], 32]] as const) {
      const caps = join(dir, `caps-${mode.replace(' ', '-')}`);
      await lab!.restart(undefined, ['--no-offload', '--capture', caps, ...args]);
      const gbps = await iperf(lab!);
      const ports = (await fetchState(lab!.adminSocket, 'ports')) as PortsState;
      await lab!.stopNodeplane('SIGTERM');
      const files = readdirSync(caps).filter((f) => f.endsWith('.pcapng'));
      expect(files.length).toBeGreaterThan(0);
      // The snaplen capture is small enough to read back; the whole one is hundreds of MB.
      const longest = mode === 'whole' ? -1 : Math.max(...files.map((f) => longestRecord(join(caps, f))));
      rmSync(caps, { recursive: true, force: true });
      figures.push(`${mode} ${gbps.toFixed(2)} Gbit/s, ${ports.capture!.packets} records, ${ports.capture!.ringDrops} ring drops`);
      expect(gbps).toBeGreaterThan(0.01);
      expect(ports.capture!.packets).toBeGreaterThan(1000);
      expect(ports.capture!.ringDrops).toBeGreaterThanOrEqual(0);
      expect(ports.capture!.ringBytes).toBe(ringMiB * 1048576);
      if (mode === 'snaplen 128') {
        expect(longest).toBeGreaterThan(0);
        expect(longest).toBeLessThanOrEqual(128);
      }
    }
    process.stdout.write(`capture at full rate, no offload: ${figures.join('; ')}\n`);
  }, 300_000);
});
