/**
 * `nodeplane run --capture-stdout all` into a reader that goes away after the first bytes
 * (`| head -c 100`), on a real node: the stream ends quietly with one log line, no stack
 * trace; the dataplane keeps forwarding (a node's network does not stop because a capture's
 * reader left); SIGTERM then stops it with status 0.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_CONFIG, DEMO_PODS } from '../../src/lab/demo-topology.ts';
import { Lab } from '../../src/lab/lab.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';

const problem = missingPrerequisite(['ping']);
const skip = skipUnlessReady('run --capture-stdout into a closing reader', problem);

async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((res) => setTimeout(res, 50));
  }
}

describe.skipIf(skip)('run --capture-stdout | head -c 100', () => {
  let lab: Lab | undefined;
  let dir: string | undefined;

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-e2e-'));
    lab = await Lab.start({ config: DEMO_CONFIG, pods: DEMO_PODS, dir, runArgs: ['--capture-stdout', 'all'], stdout: 'pipe' });
  }, 60_000);

  afterAll(() => {
    lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ends the stream quietly, keeps forwarding, and exits 0 on SIGTERM', async () => {
    const l = lab!;
    const stdout = l.nodeplane!.stdout!;
    let got = Buffer.alloc(0);
    stdout.on('data', (b: Buffer) => {
      got = Buffer.concat([got, b]);
      if (got.length >= 100) stdout.destroy(); // the reader goes away
    });
    // Traffic for the capture: the first 100 bytes arrive, the writes after them meet EPIPE.
    const first = await l.pod('pa').run('ping', ['-c', '5', '-i', '0.2', '-W', '2', '10.244.1.3'], { timeoutMs: 20_000 });
    expect(first.stdout).toContain('5 packets transmitted, 5 received');
    expect(got.length).toBeGreaterThanOrEqual(100);
    expect(got.readUInt32LE(0)).toBe(0xa1b2c3d4); // a classic pcap stream
    await waitFor(() => l.nodeplaneStderr.includes('reader went away'));
    // The dataplane carries on without its capture.
    const after = await l.pod('pa').run('ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.244.2.2'], { timeoutMs: 20_000 });
    expect(after.stdout).toContain('3 packets transmitted, 3 received');
    expect(await l.stopNodeplane('SIGTERM')).toBe(0);
    expect(l.nodeplane!.signalCode).toBeNull();
    expect(l.nodeplaneStderr.match(/reader went away/g)).toHaveLength(1);
    expect(l.nodeplaneStderr).not.toMatch(/Error:|^\s+at |node:events/m);
  }, 60_000);
});
