/**
 * End to end: nodeplane as a Wireshark extcap. On the demo lab, `nodeplane extcap install`
 * puts its launcher into a temporary folder, which Wireshark is made to read as its extcap
 * folder: as root Wireshark ignores WIRESHARK_EXTCAP_DIR, so tshark runs in a mount namespace
 * of its own (unshare -m) in which that folder is bind-mounted over the extcap path
 * `tshark -G folders` names; nothing outside that namespace sees it. Then `tshark -D` lists
 * the running nodeplane's ports and `drop`, `tshark -i nodeplane-pa -c 5` captures a ping
 * going through pa, and `tshark -i nodeplane-drop -f icmp` records TTL-expired pings with
 * their reasons.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_CONFIG, DEMO_PODS } from '../../src/lab/demo-topology.ts';
import { Lab } from '../../src/lab/lab.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';

const problem = missingPrerequisite(['tshark', 'ping', 'unshare', 'mount']);
const skip = skipUnlessReady('end-to-end Wireshark extcap', problem);
const NODEPLANE = fileURLToPath(new URL('../../bin/nodeplane.js', import.meta.url));
const PB = '10.244.1.3';
const PC = '10.244.2.2';

/** The folder this tshark reads extcaps from (its personal one when it has one). */
function extcapPath(): string {
  const r = spawnSync('tshark', ['-G', 'folders'], { encoding: 'utf8', timeout: 30_000 });
  const folders = new Map(
    r.stdout
      .split('\n')
      .filter((l) => l.includes(':'))
      .map((l) => [l.slice(0, l.indexOf(':')).trim(), l.slice(l.indexOf(':') + 1).trim()]),
  );
  const path = folders.get('Personal Extcap path') ?? folders.get('Extcap path');
  if (path === undefined) throw new Error(`tshark -G folders names no extcap path: ${r.stdout}`);
  return path;
}

/** tshark ARGS in a mount namespace where `folder` is the extcap path; resolves with its output. */
function tshark(folder: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const script = 'mkdir -p "$2" && mount --bind "$1" "$2" && shift 2 && exec "$@"';
    const child = spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', folder, extcapPath(), 'tshark', ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe.skipIf(skip)('nodeplane as a Wireshark extcap', () => {
  let lab: Lab | undefined;
  let dir = '';
  let folder = '';

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-extcap-'));
    lab = await Lab.start({ config: DEMO_CONFIG, pods: DEMO_PODS, dir, startTimeoutMs: 60_000 });
    folder = join(dir, 'extcap');
    const r = spawnSync(process.execPath, [NODEPLANE, 'extcap', 'install', '--dir', folder, '--admin', lab.adminSocket], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`extcap install failed: ${r.stderr}`);
  }, 90_000);

  afterAll(() => {
    lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("tshark -D lists the running nodeplane's ports and its dropped frames", async () => {
    const r = await tshark(folder, ['-D'], 60_000);
    expect(r.code, r.stderr).toBe(0);
    const names = r.stdout.split('\n').map((l) => /^\d+\. (\S+)/.exec(l)?.[1]);
    for (const n of ['nodeplane-pa', 'nodeplane-pb', 'nodeplane-pc', 'nodeplane-drop']) expect(names, r.stdout).toContain(n);
  }, 90_000);

  it('tshark -i nodeplane-pa -c 5 captures a ping going through pa', async () => {
    const file = join(dir, 'pa.pcapng');
    const capture = tshark(folder, ['-i', 'nodeplane-pa', '-c', '5', '-a', 'duration:60', '-w', file], 120_000);
    // The extcap starts a while after tshark on a busy machine: ping until the capture is over.
    const ping = lab!.pod('pa').spawn('ping', ['-c', '1000', '-i', '0.2', PB], { stdio: 'ignore' });
    const r = await capture;
    ping.kill('SIGINT');
    expect(r.code, r.stderr).toBe(0);
    const read = spawnSync('tshark', ['-r', file, '-T', 'fields', '-e', 'frame.interface_name', '-e', 'icmp.type', '-e', 'ip.dst'], { encoding: 'utf8', timeout: 30_000 });
    const rows = read.stdout.trim().split('\n').map((l) => l.split('\t'));
    expect(rows, read.stdout).toHaveLength(5);
    expect(rows.some(([, type, dst]) => type === '8' && dst === PB), read.stdout).toBe(true);
  }, 150_000);

  it('tshark -i nodeplane-drop records TTL-expired pings with their stage and reason', async () => {
    const file = join(dir, 'drop.pcapng');
    // Ten: Linux's ICMP rate limit, which nodeplane keeps, answers about one a second per
    // destination; the others are dropped as rate limited, with their own reason.
    const capture = tshark(folder, ['-i', 'nodeplane-drop', '-f', 'icmp', '-c', '10', '-a', 'duration:60', '-w', file], 120_000);
    // Not -w: with a deadline, ping stops at its first error.
    const ping = lab!.pod('pa').spawn('ping', ['-c', '1000', '-i', '0.2', '-t', '1', PC], { stdio: 'ignore' });
    const r = await capture;
    ping.kill('SIGINT');
    expect(r.code, r.stderr).toBe(0);
    const read = spawnSync('tshark', ['-r', file, '-Y', 'frame.comment', '-T', 'fields', '-e', 'frame.comment', '-e', 'ip.ttl', '-e', 'ip.dst'], { encoding: 'utf8', timeout: 30_000 });
    const rows = read.stdout.trim().split('\n');
    expect(rows, read.stdout).toHaveLength(10);
    for (const row of rows) expect(row).toMatch(/^icmp-error: (ip4\.ttl-expired|icmp-error\.rate-limited) \([^\t]*\)\t1\t10\.244\.2\.2$/);
    expect(read.stdout).toMatch(/^icmp-error: ip4\.ttl-expired \(ttl expired in transit/m);
  }, 150_000);
});
