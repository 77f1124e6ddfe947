/**
 * End to end: `nodeplane demo --nodes 3` as a user runs it — etcd, three nodes in cluster
 * mode, pings and page fetches across nodes — bounded in time, then its captures read with
 * tshark: on each node's underlay port, VXLAN (VNI 1, UDP 8472) carrying the pods' ICMP and
 * TCP, every inner TCP checksum good.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { etcdMissing } from '../../src/lab/etcd-server.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';

const problem = missingPrerequisite(['ping', 'curl', 'python3', 'tshark']) ?? etcdMissing();
const skip = skipUnlessReady('nodeplane demo --nodes 3', problem);
const NODEPLANE = fileURLToPath(new URL('../../bin/nodeplane.js', import.meta.url));

/** Runs the command; its exit code and stdout (killed after `ms`). */
function run(args: string[], ms: number): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [NODEPLANE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGINT'), ms);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

describe.skipIf(skip)('nodeplane demo --nodes 3', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nodeplane-demo3-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs a three-node cluster on etcd, pods reach each other, and the captures show VXLAN with the inner ICMP and TCP', async () => {
    if (problem) throw new Error(`prerequisites missing: ${problem}`);
    const r = await run(['demo', '--nodes', '3', '--out', dir], 150_000);
    process.stdout.write(r.out.split('\n').filter((l) => /^ {2}(ok|FAIL)/.test(l)).join('\n') + '\n');
    expect(r.code, `${r.out}\n${r.err}`).toBe(0);
    expect(r.out).not.toContain('FAIL');
    // Each node routes the two others, pings and fetches across nodes.
    expect(r.out.match(/^ {2}ok {3}node\d routes/gm)).toHaveLength(3);
    expect(r.out.match(/^ {2}ok {3}node\d pod → node\d pod .* \(ping\): 3 packets transmitted, 3 received/gm)).toHaveLength(3);
    expect(r.out.match(/^ {2}ok {3}node\d pod → node\d pod HTTP GET .*: the pod on node\d$/gm)).toHaveLength(3);
    expect(r.out).toContain('lab removed.');

    for (const n of [1, 2, 3]) {
      const caps = join(dir, `node${n}`, 'captures');
      const [file] = readdirSync(caps).filter((f) => f.endsWith('.pcapng'));
      expect(file).toBeDefined();
      const t = await new Promise<string>((resolve, reject) => {
        const child = spawn('tshark', ['-r', join(caps, file!), '-d', 'udp.port==8472,vxlan', '-o', 'tcp.check_checksum:TRUE', '-Y', 'vxlan', '-T', 'fields', '-E', 'separator=|', '-e', 'frame.interface_name', '-e', 'vxlan.vni', '-e', 'ip.src', '-e', 'ip.dst', '-e', 'icmp.type', '-e', 'tcp.checksum.status'], { stdio: ['ignore', 'pipe', 'ignore'] });
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        child.on('close', (code) => {
          clearTimeout(timer);
          if (code === 0) resolve(out);
          else reject(new Error(`tshark exited with ${code}`));
        });
      });
      const rows = t.trim().split('\n').map((l) => l.split('|'));
      const pod = `10.244.${n}.2`;
      // On the underlay port, VNI 1; ICMP both ways and TCP from this node's pod.
      for (const [iface, vni] of rows) expect([iface, vni]).toEqual(['up', '1']);
      expect(rows.some((x) => x[2].endsWith(`,${pod}`) && x[4] === '8')).toBe(true);
      expect(rows.some((x) => x[3].endsWith(`,${pod}`) && x[4] === '0')).toBe(true);
      const tcp = rows.filter((x) => x[5] !== '');
      expect(tcp.some((x) => x[2].endsWith(`,${pod}`))).toBe(true);
      for (const x of tcp) expect(x[5]).toBe('1');
    }
  }, 180_000);
});
