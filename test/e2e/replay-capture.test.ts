/**
 * End to end: a live lab session captured with `run --capture` (ARP, pings across the bridge
 * and through the router, an HTTP fetch), then replayed offline from that capture with
 * `replay --from-capture --expect-capture`: every frame the offline run transmits matches
 * what the live run transmitted, apart from the inherent differences README lists.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectLiveMatch, replay } from '../../src/api/index.ts';
import { DEMO_CONFIG, DEMO_PODS } from '../../src/lab/demo-topology.ts';
import { Lab } from '../../src/lab/lab.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';

const problem = missingPrerequisite(['ping', 'curl', 'python3']);
const skip = skipUnlessReady('live capture replayed offline', problem);
const NODEPLANE = fileURLToPath(new URL('../../bin/nodeplane.js', import.meta.url));

describe.skipIf(skip)('a live capture replayed offline', () => {
  let lab: Lab | undefined;
  let dir = '';
  let capture = '';

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-e2e-replay-'));
    // Without offload: a capture of super-frames cannot be replayed (README).
    lab = await Lab.start({ config: DEMO_CONFIG, pods: DEMO_PODS, dir, capture: true, runArgs: ['--no-offload'] });
    const run = async (port: string, cmd: string, args: string[]): Promise<void> => {
      const r = await lab!.pod(port).run(cmd, args, { timeoutMs: 20_000 });
      if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} in ${port}: ${r.stdout}${r.stderr}`);
    };
    await run('pa', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.244.1.3']);
    await run('pa', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.244.1.1']);
    await run('pa', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.244.2.2']);
    const www = join(dir, 'www');
    mkdirSync(www);
    writeFileSync(join(www, 'index.html'), `<p>replayed</p>\n${'x'.repeat(20_000)}\n`);
    const server = lab.pod('pb').spawn('python3', ['-m', 'http.server', '8080', '--bind', '10.244.1.3', '--directory', www], { stdio: 'ignore' });
    try {
      let ok = false;
      for (let i = 0; i < 50 && !ok; i++) {
        const r = await lab.pod('pa').run('curl', ['-sS', '-o', '/dev/null', '--max-time', '3', 'http://10.244.1.3:8080/index.html'], { timeoutMs: 10_000 });
        ok = r.code === 0;
        if (!ok) await new Promise((res) => setTimeout(res, 100));
      }
      if (!ok) throw new Error('curl pa → pb never succeeded');
    } finally {
      server.kill();
    }
    if ((await lab.stopNodeplane('SIGTERM')) !== 0) throw new Error(`nodeplane did not stop cleanly: ${lab.nodeplaneStderr}`);
    const files = readdirSync(lab.captureDir).filter((f) => f.endsWith('.pcapng'));
    if (files.length !== 1) throw new Error(`expected one capture file, found ${files.join(', ')}`);
    capture = join(lab.captureDir, files[0]);
  });

  afterAll(() => {
    lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('transmits offline every frame the live run transmitted', () => {
    const r = spawnSync(process.execPath, [NODEPLANE, 'replay', '--config', join(dir, 'nodeplane.yaml'), '--from-capture', capture, '--expect-capture', '--out', join(dir, 'offline')], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const m = /every transmitted frame matches the live run \((.*)\)/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    const counts = Object.fromEntries(m![1].split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
    // The session's traffic is in it: pings both ways on every port, the HTTP transfer on pa.
    expect(counts.pa).toBeGreaterThan(20);
    expect(counts.pb).toBeGreaterThan(10);
    expect(counts.pc).toBeGreaterThanOrEqual(4);
  });

  it('does the same through the library, and traces the routed pings hop by hop', async () => {
    const r = await replay({ config: join(dir, 'nodeplane.yaml'), fromCapture: capture, trace: true });
    expectLiveMatch(r);
    expect(r.live!.pc.length).toBe(r.ports.pc.length);
    // A routed echo request: received on pa, out on pc with its TTL decremented.
    const routed = r.ports.pc.find((f) => f.decoded.icmp?.type === 8 && f.decoded.ip?.dst === '10.244.2.2');
    expect(routed?.decoded.ip?.ttl).toBe(63);
    expect(r.trace!.some((l) => /tx pc: .*10\.244\.1\.2 > 10\.244\.2\.2: ICMP echo request/.test(l))).toBe(true);
  });
});
