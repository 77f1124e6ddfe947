/**
 * End to end: masquerade. A pod on cni0 and a host outside the cluster behind the node's L3
 * port (192.168.50.1 behind 192.168.50.11), with real Linux stacks in namespaces and
 * `nodeplane run` between them; TCP offload on (no capture), as a node runs.
 *
 * The lab first runs without `nat` (plain routing: the external host has a route to the
 * pods and sees their addresses), then restarts nodeplane in the same namespaces with
 * `nat: { clusterCIDR }`: the external host's HTTP server logs the node's address, and 32 MiB
 * of random bytes over one TCP connection through masquerade (64 KiB super-frames, each
 * translated whole) arrive intact, the receiver seeing the node's address. What masquerade costs against routing
 * is measured by `npm run bench -- e2e-paths`, not here.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../src/lab/lab.ts';
import { EXT, MASQUERADE_PODS, NODE_UP, PA as POD, masqueradeConfig as config } from '../../src/lab/path-topologies.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';
import { expectIntact, tcpTransfer } from './tcp-transfer.ts';

const problem = missingPrerequisite(['curl', 'python3', 'ss']);
const skip = skipUnlessReady('end-to-end masquerade tests', problem);

/** What the TCP transfer through masquerade sends. */
const TRANSFER_BYTES = 32 * 1024 * 1024;

/** Serves `www` on EXT:port from the external host; curl from the pod; returns the body and the server's log. */
async function fetchFromOutside(lab: Lab, www: string, port: number): Promise<{ body: string; log: string }> {
  const server = lab.pod('up').spawn('python3', ['-m', 'http.server', String(port), '--bind', EXT, '--directory', www], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  server.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
  try {
    for (let i = 0; i < 50; i++) {
      const r = await lab.pod('pa').run('curl', ['-sS', '--max-time', '5', `http://${EXT}:${port}/index.html`], { timeoutMs: 10_000 });
      if (r.code === 0) {
        // The log line is written after the response.
        for (let j = 0; j < 50 && !log.includes('GET /index.html'); j++) await new Promise((res) => setTimeout(res, 20));
        return { body: r.stdout, log };
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`curl from pa never fetched http://${EXT}:${port}/index.html; server log: ${log}`);
  } finally {
    server.kill('SIGKILL');
  }
}

describe.skipIf(skip)('masquerade: a pod and a host outside the cluster, behind the L3 port', () => {
  let lab: Lab | undefined;
  let dir = '';
  let www = '';
  const marker = `hello from outside ${process.pid}`;

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-masq-'));
    www = join(dir, 'www');
    mkdirSync(www);
    writeFileSync(join(www, 'index.html'), `<p>${marker}</p>\n`);
    lab = await Lab.start({
      config: config(false),
      pods: MASQUERADE_PODS,
      dir,
    });
  });

  afterAll(() => {
    lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("without nat, the external host's HTTP server logs the pod's own address", async () => {
    expect(lab!.nodeplaneStderr).toMatch(/"offload":true|offload: true/);
    const { body, log } = await fetchFromOutside(lab!, www, 8080);
    expect(body).toContain(marker);
    expect(log).toMatch(new RegExp(`^${POD.replaceAll('.', '\\.')} - - .*"GET /index.html HTTP/1.1" 200`, 'm'));
  });

  it("with nat, the external host's HTTP server logs the node's address, not the pod's", async () => {
    await lab!.restart(config(true));
    expect(lab!.nodeplaneStderr).toMatch(/"offload":true|offload: true/);
    const { body, log } = await fetchFromOutside(lab!, www, 8081);
    expect(body).toContain(marker);
    expect(log).toMatch(new RegExp(`^${NODE_UP.replaceAll('.', '\\.')} - - .*"GET /index.html HTTP/1.1" 200`, 'm'));
    expect(log).not.toContain(POD);
  });

  it("32 MiB over TCP through masquerade, offload on, arrive intact and the receiver sees the node's address", async () => {
    await lab!.restart(config(true));
    const t = await tcpTransfer(lab!.pod('pa'), lab!.pod('up'), EXT, EXT, TRANSFER_BYTES);
    process.stdout.write(`TCP pa → ${EXT} masqueraded: ${t.sent} bytes sent, ${t.received} received from ${t.peer}\n`);
    expectIntact(t, TRANSFER_BYTES, NODE_UP);
  }, 60_000);
});
