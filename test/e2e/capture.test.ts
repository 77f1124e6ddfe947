/**
 * End to end: captures on the demo lab (src/capture). A libpcap filter records exactly what
 * tcpdump with the same filter sees on the pod's side of the port; `--capture-drops` puts the
 * pods' IPv6 router solicitations (never routed) and a TTL-expired ping on the `drop`
 * interface with their reasons, as tshark reads them in frame.comment. (What capturing costs:
 * capture-throughput.test.ts.)
 */
import { type ChildProcess, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchState } from '../../src/admin/client.ts';
import type { PortsState, StatsState } from '../../src/admin/state.ts';
import { DEMO_CONFIG, DEMO_PODS } from '../../src/lab/demo-topology.ts';
import { Lab } from '../../src/lab/lab.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';

const problem = missingPrerequisite(['ping', 'curl', 'python3', 'iperf3', 'tshark', 'tcpdump', 'ss']);
const skip = skipUnlessReady('end-to-end capture tests', problem);

const PB = '10.244.1.3';
const PC = '10.244.2.2';

function tshark(file: string, args: string[]): string[][] {
  const r = spawnSync('tshark', ['-r', file, ...args], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`tshark -r ${file} failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => l.split('\t'));
}

/** The frames of interface `port` in nodeplane's capture directory (see frameKeys). */
function capturedOn(dir: string, port: string): string[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.pcapng'));
  expect(files).toHaveLength(1);
  return frameKeys(join(dir, files[0]!), `frame.interface_name == "${port}"`);
}

/**
 * Each frame as a line of the fields that tell frames apart (length, MACs, IP id and
 * addresses, TCP raw sequence number and flags, ICMP sequence, ARP opcode and target), sorted.
 */
function frameKeys(file: string, display: string): string[] {
  const r = spawnSync('tshark', ['-r', file, '-Y', display, '-T', 'fields', '-e', 'frame.len', '-e', 'eth.src', '-e', 'eth.dst', '-e', 'ip.id', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'tcp.seq_raw', '-e', 'tcp.flags', '-e', 'icmp.seq', '-e', 'arp.opcode', '-e', 'arp.dst.proto_ipv4'], {
    encoding: 'utf8',
    timeout: 60_000,
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`tshark -r ${file} failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .sort();
}

/**
 * Starts tcpdump on the pod's eth0 with `filter`; resolves once it listens. Immediate mode:
 * otherwise libpcap hands packets over a ring block at a time (on a 1 s timeout), and the
 * frames of a block not yet handed over when SIGINT stops tcpdump are never written.
 */
async function tcpdump(lab: Lab, pod: string, filter: string, file: string): Promise<ChildProcess> {
  const child = lab.pod(pod).spawn('timeout', ['60', 'tcpdump', '-i', 'eth0', '--immediate-mode', '-U', '-w', file, filter], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  for (let i = 0; i < 200 && !err.includes('listening on'); i++) await new Promise((r) => setTimeout(r, 50));
  if (!err.includes('listening on')) throw new Error(`tcpdump did not start: ${err}`);
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  const done = new Promise<void>((r) => child.on('close', () => r()));
  child.kill('SIGINT');
  await done;
}

/** Waits until `cond` holds for the admin socket's state; polls every 100 ms for up to `ms`. */
async function waitState<T>(lab: Lab, what: string, cond: (s: T) => boolean, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const s = (await fetchState(lab.adminSocket, what)) as T;
    if (cond(s)) return s;
    if (Date.now() > end) throw new Error(`state ${what} never satisfied the condition: ${JSON.stringify(s).slice(0, 800)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function drops(s: StatsState, stage: string, id: string): number {
  return s.stages.find((st) => st.name === stage)?.drops[id] ?? 0;
}

describe.skipIf(skip)('captures on the lab', () => {
  let lab: Lab | undefined;
  let dir = '';

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-cap-'));
    lab = await Lab.start({ config: DEMO_CONFIG, pods: DEMO_PODS, dir, runArgs: ['--no-offload'], startTimeoutMs: 60_000 });
  }, 60_000);

  afterAll(() => {
    lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function filtered(filter: string, pod: string, traffic: () => Promise<void>): Promise<{ ours: string[]; theirs: string[] }> {
    const caps = join(dir, `caps-${Math.random().toString(36).slice(2)}`);
    await lab!.restart(undefined, ['--no-offload', '--capture', caps, '--capture-filter', filter]);
    const file = join(dir, `tcpdump-${pod}.pcap`);
    const td = await tcpdump(lab!, pod, filter, file);
    await traffic();
    await new Promise((r) => setTimeout(r, 500));
    await stop(td);
    await lab!.stopNodeplane('SIGTERM');
    const ours = capturedOn(caps, pod);
    const theirs = frameKeys(file, 'frame');
    return { ours, theirs };
  }

  it("'icmp or arp' records on a port exactly what tcpdump with the same filter sees on the pod's side", async () => {
    const { ours, theirs } = await filtered('icmp or arp', 'pa', async () => {
      lab!.pod('pa').ip(['neigh', 'flush', 'dev', 'eth0']);
      for (const to of [PB, '10.244.1.1', PC]) {
        const r = await lab!.pod('pa').run('ping', ['-c', '2', '-i', '0.2', '-W', '2', to], { timeoutMs: 20_000 });
        expect(r.code, r.stdout + r.stderr).toBe(0);
      }
    });
    expect(theirs.length).toBeGreaterThanOrEqual(12);
    expect(ours).toEqual(theirs);
  }, 90_000);

  it("'tcp port 8080 and host 10.244.1.3' records an HTTP fetch exactly as tcpdump in the server's pod sees it", async () => {
    await lab!.restart(undefined, ['--no-offload']);
    const server = lab!.pod('pb').spawn('timeout', ['60', 'python3', '-m', 'http.server', '8080', '--bind', PB], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 100; i++) {
        const r = await lab!.pod('pb').run('ss', ['-Hltn', 'sport = :8080']);
        if (r.stdout.trim() !== '') break;
        await new Promise((res) => setTimeout(res, 100));
      }
      const { ours, theirs } = await filtered('tcp port 8080 and host 10.244.1.3', 'pb', async () => {
        const r = await lab!.pod('pa').run('curl', ['-sS', '--max-time', '5', `http://${PB}:8080/`], { timeoutMs: 15_000 });
        expect(r.code, r.stderr).toBe(0);
        // Traffic the filter leaves out: ICMP on the same port.
        await lab!.pod('pa').run('ping', ['-c', '1', '-W', '2', PB], { timeoutMs: 10_000 });
      });
      expect(theirs.length).toBeGreaterThanOrEqual(8);
      expect(ours).toEqual(theirs);
    } finally {
      server.kill('SIGKILL');
    }
  }, 90_000);

  it('--capture-drops: the pods\' router solicitations and a TTL-expired ping appear on `drop` with their reasons', async () => {
    const caps = join(dir, 'caps-drops');
    await lab!.restart(undefined, ['--no-offload', '--capture', caps, '--capture-drops']);
    const r = await lab!.pod('pa').run('ping', ['-c', '1', '-t', '1', '-W', '2', PC], { timeoutMs: 10_000 });
    expect(r.stdout).toMatch(/Time to live exceeded/);
    // The pods' IPv6 stacks solicit routers once their eth0 is up (after DAD): wait for one.
    await waitState<StatsState>(lab!, 'stats', (s) => drops(s, 'l3-input', 'ip6.not-routed') > 0 && drops(s, 'icmp-error', 'ip4.ttl-expired') > 0, 20_000);
    const file = join(caps, readdirSync(caps).find((f) => f.endsWith('.pcapng'))!);
    // Other IPv6 (MLD reports) may come first: wait until a router solicitation is on file
    // (the ring's worker writes within 20 ms).
    for (let i = 0; i < 100 && tshark(file, ['-Y', 'icmpv6.type == 133', '-T', 'fields', '-e', 'frame.number']).length === 0; i++) {
      await new Promise((res) => setTimeout(res, 200));
    }
    const ports = (await fetchState(lab!.adminSocket, 'ports')) as PortsState;
    expect(ports.capture?.drops).toBeGreaterThan(0);
    await lab!.stopNodeplane('SIGTERM');
    const rows = tshark(file, ['-Y', 'frame.comment', '-T', 'fields', '-e', 'frame.interface_name', '-e', 'frame.comment', '-e', 'icmpv6.type', '-e', 'ip.ttl']);
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every(([ifName]) => ifName === 'drop')).toBe(true);
    expect(rows.some(([, c, t]) => c!.startsWith('l3-input: ip6.not-routed') && t === '133')).toBe(true);
    expect(rows.some(([, c, , ttl]) => c!.startsWith('icmp-error: ip4.ttl-expired') && ttl === '1')).toBe(true);
  }, 90_000);
});
