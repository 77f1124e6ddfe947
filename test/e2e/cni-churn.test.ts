/**
 * End to end: pods come and go while others talk. Two long-lived pods, wired by
 * nodeplane-cni, keep one TCP connection streaming (a Python sender in one, a receiver in the
 * other, each hashing every byte) while fifty pods are added and removed through the plugin,
 * four at a time, each in a namespace of its own: ADD, a ping to the gateway (every fifth
 * pod), DEL. The connection never breaks and loses no data (the bytes and their SHA-256
 * agree at both ends); afterwards no TAP, namespace or address lease of a churned pod is left, and none at
 * all once the long-lived pods are deleted too.
 *
 * The plugin runs as an installed one would, compiled to JavaScript (bundled here with
 * esbuild, which tsx brings): a hundred starts through tsx's loader would take minutes of
 * CPU on a loaded two-core machine. Same source, same executable protocol.
 *
 * Everything lives in namespaces this file creates (src/lab/netns.ts), removed on exit.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchState } from '../../src/admin/client.ts';
import type { PortsState } from '../../src/admin/state.ts';
import type { Lab } from '../../src/lab/lab.ts';
import { createNetns, liveNetns, type Netns } from '../../src/lab/netns.ts';
import { GATEWAY, PLUGIN, hostLocalProblem, leases, netconf, runPlugin, startNode } from './cni-fixture.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';

const problem = missingPrerequisite(['ping', 'nsenter', 'python3', 'ss']) ?? hostLocalProblem();
const skip = skipUnlessReady('CNI pod churn end-to-end test', problem);

const PODS = 50;
const LANES = 4;
/** The stream stops by itself after this long, whatever happens. */
const STREAM_MAX_SECONDS = 150;

const SERVER = `
import socket, sys, json, hashlib
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], 5201)); l.listen(1); l.settimeout(60)
c, _ = l.accept(); c.settimeout(30)
h = hashlib.sha256(); n = 0
while True:
    d = c.recv(262144)
    if not d: break
    h.update(d); n += len(d)
c.close()
print(json.dumps({'bytes': n, 'sha256': h.hexdigest()}))
`;

// 16 KiB chunks of a counter pattern, about 5 ms apart (some 3 MB/s): a steady stream that
// leaves the machine's CPU to the churn.
const CLIENT = `
import socket, sys, time, os, json, hashlib
addr, stop, most = sys.argv[1], sys.argv[2], float(sys.argv[3])
for attempt in range(50):
    try:
        s = socket.create_connection((addr, 5201), timeout=5); break
    except OSError:
        time.sleep(0.2)
s.settimeout(30)
h = hashlib.sha256(); n = 0; i = 0; worst = 0.0; t0 = time.time()
while not os.path.exists(stop) and time.time() - t0 < most:
    chunk = i.to_bytes(8, 'big') * 2048
    t = time.time(); s.sendall(chunk); worst = max(worst, time.time() - t)
    h.update(chunk); n += len(chunk); i += 1
    time.sleep(0.005)
s.shutdown(socket.SHUT_WR)
while s.recv(65536): pass
print(json.dumps({'bytes': n, 'sha256': h.hexdigest(), 'worstSendSeconds': round(worst, 3), 'seconds': round(time.time() - t0, 1)}))
`;

/** The plugin as one JavaScript file, or the checkout's bin when esbuild is not at hand. */
async function compiledPlugin(dir: string): Promise<string> {
  try {
    const { build } = await import('esbuild');
    const out = join(dir, 'nodeplane-cni');
    await build({
      entryPoints: [fileURLToPath(new URL('../../src/cni/main.ts', import.meta.url))],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile: out,
      banner: { js: '#!/usr/bin/env node' },
      logLevel: 'silent',
    });
    chmodSync(out, 0o755);
    return out;
  } catch (err) {
    process.stdout.write(`cni churn: esbuild unavailable (${(err as Error).message}); running the plugin through tsx\n`);
    return PLUGIN;
  }
}

describe.skipIf(skip)('pods added and removed while two pods stream', () => {
  let dir = '';
  let dataDir = '';
  let lab: Lab | null = null;
  const pods: Netns[] = [];

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-cni-churn-'));
    dataDir = join(dir, 'ipam');
    lab = await startNode(dir);
  }, 60_000);

  afterAll(async () => {
    for (const p of pods) p.remove();
    if (lab) {
      await lab.stopNodeplane().catch(() => undefined);
      lab.destroy();
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`${PODS} pods come and go; the stream between the other two never breaks or loses a byte`, async () => {
    const plugin = await compiledPlugin(dir);
    const conf = netconf(lab!.adminSocket, dataDir);
    const sock = lab!.adminSocket;
    const add = async (ns: Netns, id: string): Promise<string> => {
      const r = await runPlugin(plugin, 'ADD', { containerId: id, netns: `/run/netns/${ns.name}` }, conf);
      expect(r.code, `ADD ${id}: ${r.stdout}${r.stderr}`).toBe(0);
      return String((r.json as { ips: Array<{ address: string }> }).ips[0].address).split('/')[0];
    };
    const del = async (ns: Netns | null, id: string): Promise<void> => {
      const r = await runPlugin(plugin, 'DEL', { containerId: id, netns: ns === null ? '' : `/run/netns/${ns.name}` }, conf);
      expect(r.code, `DEL ${id}: ${r.stdout}${r.stderr}`).toBe(0);
    };

    const a = createNetns('churn-a');
    const b = createNetns('churn-b');
    pods.push(a, b);
    const addrA = await add(a, 'stream-a');
    const addrB = await add(b, 'stream-b');
    const stop = join(dir, 'stop');
    const server = a.run('python3', ['-c', SERVER, addrA], { timeoutMs: (STREAM_MAX_SECONDS + 60) * 1000 });
    const client = b.run('python3', ['-c', CLIENT, addrA, stop, String(STREAM_MAX_SECONDS)], { timeoutMs: (STREAM_MAX_SECONDS + 60) * 1000 });
    // The churn starts once the connection is up.
    for (let i = 0; ; i++) {
      if (a.runSync('ss', ['-Htn', 'state', 'established', '( sport = :5201 )']).stdout.trim() !== '') break;
      if (i === 150) throw new Error('the stream did not connect within 30 s');
      await new Promise((r) => setTimeout(r, 200));
    }

    const started = Date.now();
    let next = 0;
    const churned: string[] = [];
    const lane = async (): Promise<void> => {
      for (let i = next++; i < PODS; i = next++) {
        const ns = createNetns(`churn${i}`);
        churned.push(ns.name);
        try {
          const addr = await add(ns, `churn-${i}`);
          // Every fifth pod shows it is wired (the others save the machine a process or two).
          if (i % 5 === 0) {
            const r = await ns.run('ping', ['-c', '1', '-W', '3', GATEWAY], { timeoutMs: 10_000 });
            expect(r.stdout, `pod ${i} (${addr}) pings the gateway`).toMatch(/1 packets transmitted, 1 received/);
          }
          await del(ns, `churn-${i}`);
        } finally {
          ns.remove();
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: LANES }, lane));
    } finally {
      writeFileSync(stop, '');
    }
    const churnSeconds = (Date.now() - started) / 1000;
    const [sent, received] = await Promise.all([client, server]);
    expect(sent.code, `sender: ${sent.stderr}`).toBe(0);
    expect(received.code, `receiver: ${received.stderr}`).toBe(0);
    const s = JSON.parse(sent.stdout) as { bytes: number; sha256: string; worstSendSeconds: number; seconds: number };
    const r = JSON.parse(received.stdout) as { bytes: number; sha256: string };
    process.stdout.write(
      `cni churn: ${PODS} pods added and removed in ${churnSeconds.toFixed(1)} s (${LANES} at a time); ` +
        `stream ${addrB} → ${addrA}: ${(s.bytes / 1e6).toFixed(1)} MB in ${s.seconds} s, longest send ${s.worstSendSeconds} s\n`,
    );
    expect(s.seconds).toBeGreaterThanOrEqual(churnSeconds - 1);
    expect(r).toEqual({ bytes: s.bytes, sha256: s.sha256 });
    expect(s.bytes).toBeGreaterThan(0);

    // Nothing of the churned pods is left: ports, TAPs, namespaces, leases.
    const ports = (await fetchState(sock, 'ports')) as PortsState;
    expect(ports.ports.map((p) => p.owner)).toEqual(['podnet/stream-a/eth0', 'podnet/stream-b/eth0']);
    expect(lab!.node.ip(['-o', 'link', 'show', 'type', 'tun']).trim()).toBe('');
    expect(liveNetns().filter((n) => churned.includes(n))).toEqual([]);
    expect(leases(dataDir).sort()).toEqual([addrA, addrB].sort());
    expect(ports.pool.free).toBe(ports.pool.slots - 1);

    await del(a, 'stream-a');
    await del(b, 'stream-b');
    expect(((await fetchState(sock, 'ports')) as PortsState).ports).toEqual([]);
    expect(leases(dataDir)).toEqual([]);
    for (const ns of [a, b]) expect(ns.ip(['link', 'show', 'dev', 'eth0'], { check: false })).toBe('');
  }, 240_000);
});
