// A capture written by the ring's worker thread (capture-ring.ts), its process killed with
// SIGKILL mid-stream: the file must read cleanly, every record whole, written with O_DIRECT
// (the default, where the file system takes it) and through the page cache
// (NODEPLANE_CAPTURE_DIRECT=0).
import { spawn } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { readCaptureSync } from '../../src/pcap/reader.ts';
import { findTool, runTool } from '../helpers/tshark.ts';

const dir = mkdtempSync(join(tmpdir(), 'nodeplane-ring-kill-'));
const TMPFS_MAGIC = 0x01021994;
const REPO = fileURLToPath(new URL('../../', import.meta.url));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Whether the ring should write files in `dir` with O_DIRECT: the file system takes it and is not tmpfs. */
function takesDirect(): boolean {
  if (statfsSync(dir).type === TMPFS_MAGIC) return false;
  try {
    closeSync(openSync(join(dir, 'probe'), constants.O_WRONLY | constants.O_CREAT | constants.O_DIRECT));
    return true;
  } catch {
    return false;
  }
}

/** Runs the capturing child until its file holds 1 MiB, kills it `delayMs` later; its file and mode. */
async function killedCapture(i: number, delayMs: number, env: NodeJS.ProcessEnv): Promise<{ file: string; direct: boolean }> {
  const sub = mkdtempSync(join(dir, `k${i}-`));
  const child = spawn(process.execPath, ['bin/run-ts.js', 'test/unit/fixtures/capture-ring-child.ts', sub, String(i + 1)], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const closed = new Promise((r) => child.on('close', r));
  const go = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    child.once('exit', (code) => reject(new Error(`capturing child exited with ${code} before its file held 1 MiB`)));
  });
  await new Promise((r) => setTimeout(r, delayMs));
  child.kill('SIGKILL');
  await closed;
  const m = /^go (\S+) direct=([01])$/.exec(go);
  if (!m) throw new Error(`unexpected line from the child: ${go}`);
  return { file: m[1]!, direct: m[2] === '1' };
}

/** Every record whole and as the child made it: byte i is (byte 0 + i) & 0xff. */
function checkFile(file: string): number {
  const cap = readCaptureSync(file); // strict: a cut block throws
  let n = 0;
  for (const r of cap.records()) {
    const d = r.data;
    expect(d.length).toBeGreaterThanOrEqual(60);
    let ok = true;
    for (let i = 1; i < d.length; i++) if (d[i] !== ((d[0]! + i) & 0xff)) ok = false;
    expect(ok, `record ${n} of ${file}`).toBe(true);
    n++;
  }
  if (findTool('tshark') !== null) {
    // runTool throws on a non-zero exit ("cut short in the middle of a packet" exits 2).
    expect(runTool('tshark', ['-r', file, '-T', 'fields', '-e', 'frame.number']).trim().split('\n').length).toBe(n);
  } else if (process.env.CI === 'true') throw new Error('tshark is required under CI=true');
  return n;
}

describe('a capture ring killed with SIGKILL', () => {
  for (const [mode, env] of [
    ['O_DIRECT', {}],
    ['the page cache', { NODEPLANE_CAPTURE_DIRECT: '0' }],
  ] as const) {
    it(`leaves whole records only, written through ${mode} (8 kills)`, async () => {
      let directSeen = false;
      for (let i = 0; i < 8; i += 2) {
        const runs = await Promise.all([0, 1].map((k) => killedCapture(i + k, ((i + k) * 7) % 40, env)));
        for (const { file, direct } of runs) {
          if (mode !== 'O_DIRECT') expect(direct).toBe(false);
          directSeen ||= direct;
          expect(checkFile(file)).toBeGreaterThan(500);
        }
      }
      // O_DIRECT wherever the file system takes it (ext4, xfs, btrfs do), except tmpfs.
      if (mode === 'O_DIRECT') {
        if (takesDirect()) expect(directSeen).toBe(true);
        else console.warn(`capture ring kill test: ${tmpdir()} is tmpfs or does not take O_DIRECT; only the page-cache path was exercised`);
      }
    }, 120_000);
  }
});
