/**
 * End to end: Kubernetes Services through `nodeplane run`, with real Linux stacks in
 * namespaces (issue 9's "end to end with real kernels").
 *
 * Topology: pa 10.244.1.2 and pb 10.244.1.3 on cni0, pc 10.244.2.2 on cni1; the L3 port
 * 192.168.50.11/24 with a host outside the cluster, 192.168.50.1, which routes the Service
 * network and the LoadBalancer IP to the node. pb and pc serve HTTP (`python3 -m http.server`)
 * with a page naming the pod.
 *
 * - a ClusterIP with pb and pc behind it: pa sees both answer within 50 requests;
 * - the external host reaches a NodePort and a LoadBalancer IP;
 * - 32 MiB of random bytes over TCP from pa to a ClusterIP backed by pc, offload on, arrive
 *   intact at pc from pa's own address (what a ClusterIP costs against pod to pod is
 *   measured by `npm run bench -- e2e-paths`);
 * - live manifests (a separate lab, `manifests:` watching a directory): a Service and its
 *   EndpointSlice; an endpoint added and then removed while traffic runs takes effect
 *   within a second, and a connection held open to the endpoint that stays keeps going.
 */
import { type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../../src/lab/lab.ts';
import { EXT, LB_IP, NODE_UP, PA, PB, PC, SERVICES_CONFIG, SERVICES_PODS as PODS, SVC_PERF as PERF, SVC_WEB as WEB, servicesTopology as topology } from '../../src/lab/path-topologies.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';
import { expectIntact, listening, tcpTransfer } from './tcp-transfer.ts';
import { lineReader } from './twin-probes.ts';

const problem = missingPrerequisite(['curl', 'python3', 'ss']);
const skip = skipUnlessReady('end-to-end Services tests', problem);

const LIVE = '10.96.0.20';
/** What the TCP transfer through the ClusterIP sends. */
const TRANSFER_BYTES = 32 * 1024 * 1024;

/** GETs `url` from `host` with curl; the body, or null when the request failed. */
async function get(lab: Lab, host: string, url: string): Promise<string | null> {
  const r = await lab.pod(host).run('curl', ['-sS', '--max-time', '2', url], { timeoutMs: 5000 });
  return r.code === 0 ? r.stdout.trim() : null;
}

/** Requests `url` up to `max` times until every one of `want` answered; who answered, in order. */
async function answers(lab: Lab, host: string, url: string, want: string[], max: number): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < max && !want.every((w) => seen.includes(w)); i++) seen.push((await get(lab, host, url)) ?? 'failed');
  return seen;
}

describe.skipIf(skip)('Services: ClusterIP, NodePort and LoadBalancer through nodeplane', () => {
  let lab: Lab | undefined;
  let dir = '';
  const servers: ChildProcess[] = [];

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-svc-'));
    lab = await Lab.start({ config: SERVICES_CONFIG, pods: PODS, dir });
    for (const pod of ['pb', 'pc']) {
      const www = join(dir, `www-${pod}`);
      mkdirSync(www);
      writeFileSync(join(www, 'index.html'), `${pod}\n`);
      servers.push(lab.pod(pod).spawn('python3', ['-m', 'http.server', '8080', '--directory', www], { stdio: 'ignore' }));
      await listening(lab.pod(pod), 8080);
    }
  });

  afterAll(() => {
    for (const s of servers) s.kill('SIGKILL');
    lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('pa fetches the ClusterIP and sees both pods answer within 50 requests', async () => {
    const seen = await answers(lab!, 'pa', `http://${WEB}/`, ['pb', 'pc'], 50);
    process.stdout.write(`ClusterIP ${WEB}: ${seen.length} requests until both answered: ${seen.join(' ')}\n`);
    expect(seen).toContain('pb');
    expect(seen).toContain('pc');
    expect(seen).not.toContain('failed');
  });

  it('the external host reaches the NodePort on the L3 port and the LoadBalancer IP', async () => {
    for (const url of [`http://${NODE_UP}:30080/`, `http://${LB_IP}/`]) {
      const seen = await answers(lab!, 'up', url, ['pb', 'pc'], 50);
      process.stdout.write(`${url} from ${EXT}: ${seen.join(' ')}\n`);
      expect(seen, url).toContain('pb');
      expect(seen, url).toContain('pc');
      expect(seen, url).not.toContain('failed');
    }
  });

  it("32 MiB over TCP to a ClusterIP, offload on, arrive intact at the endpoint, from the pod's own address", async () => {
    expect(lab!.nodeplaneStderr).toMatch(/"offload":true|offload: true/);
    const t = await tcpTransfer(lab!.pod('pa'), lab!.pod('pc'), PC, PERF, TRANSFER_BYTES);
    process.stdout.write(`TCP pa → ClusterIP ${PERF} (pc): ${t.sent} bytes sent, ${t.received} received from ${t.peer}\n`);
    // The answers come back from the ClusterIP (the sender reads the receiver's report), and
    // from the pod's own address: DNAT only, a pod reaching a Service is not masqueraded.
    expectIntact(t, TRANSFER_BYTES, PA);
  }, 60_000);
});

/** The live Service's manifest: a Service and its EndpointSlice with these endpoints. */
function manifest(endpoints: string[]): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: live
  namespace: default
spec:
  type: ClusterIP
  clusterIP: ${LIVE}
  ports:
    - { name: echo, protocol: TCP, port: 80, targetPort: 8080 }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: live-x7k2p
  namespace: default
  labels:
    kubernetes.io/service-name: live
addressType: IPv4
ports:
  - { name: echo, protocol: TCP, port: 8080 }
endpoints:
${endpoints.map((ip) => `  - addresses: ["${ip}"]\n    conditions: { ready: true }\n    nodeName: svc-node`).join('\n')}
`;
}

describe.skipIf(skip)('Services from live manifests (waits for the manifests loader)', () => {
  let lab: Lab | undefined;
  let dir = '';
  let manifests = '';

  /** Replaces the manifest file in one step (write aside, rename over), as editors and sync tools do. */
  function writeManifest(endpoints: string[]): number {
    const aside = join(dir, 'live.yaml.new');
    writeFileSync(aside, manifest(endpoints));
    const at = Date.now();
    renameSync(aside, join(manifests, 'live.yaml'));
    return at;
  }

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-svc-live-'));
    manifests = join(dir, 'manifests');
    mkdirSync(manifests);
    writeManifest([PB]);
    lab = await Lab.start({ config: topology(`manifests: ["${manifests}"]\n`), pods: PODS, dir });
    for (const pod of ['pb', 'pc']) {
      lab.pod(pod).spawn('python3', ['-u', '-c', ECHO_SERVER, pod], { stdio: 'ignore' });
      await listening(lab.pod(pod), 8080);
    }
  });

  afterAll(() => {
    lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('an endpoint added and then removed takes effect within a second; a connection held to the other endpoint is unbroken', async () => {
    // The held connection: one line every 100 ms, each answered by the endpoint, for at most 50 s.
    const held = lab!.pod('pa').spawn('python3', ['-u', '-c', HELD_CLIENT, LIVE, '80', '50'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const heldOut = lineReader(held, 'the held connection');
    // One asker process for every request, so each costs a connection, not a Python start.
    const asker = lab!.pod('pa').spawn('python3', ['-u', '-c', ASKER, LIVE, '80'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const askerOut = lineReader(asker, 'the asker in pa');
    try {
      expect(await heldOut.next(15_000)).toBe('connected to pb');
      const who = async (): Promise<string> => {
        asker.stdin!.write('ask\n');
        return askerOut.next(5000);
      };
      /** Asks who answers, `n` requests started at least a second after `since` (waiting for that second first). */
      const requestsAfter = async (since: number, n: number): Promise<string[]> => {
        await new Promise((r) => setTimeout(r, Math.max(0, since + 1000 - Date.now())));
        const out: string[] = [];
        for (let i = 0; i < n; i++) out.push(await who());
        return out;
      };

      // Added: applied within a second of the write (nodeplane logs "manifests applied"), and
      // among the first 10 requests started a second after it, pc answers (all pb: 1 in 1024).
      const added = writeManifest([PB, PC]);
      const afterAdd = await requestsAfter(added, 10);
      const addedIn = await appliedWithin(lab!, added);
      process.stdout.write(`endpoint added: applied ${addedIn} ms after the manifest changed; answers from 1 s on: ${afterAdd.join(' ')}\n`);
      expect(addedIn).toBeLessThan(1000);
      expect(afterAdd).toContain('pc');
      expect(afterAdd.every((a) => a === 'pb' || a === 'pc')).toBe(true);

      // Removed: applied within a second, and from a second after the write on only pb answers.
      const removed = writeManifest([PB]);
      const afterRemove = await requestsAfter(removed, 20);
      const removedIn = await appliedWithin(lab!, removed);
      process.stdout.write(`endpoint removed: applied ${removedIn} ms after the manifest changed; answers from 1 s on: ${afterRemove.join(' ')}\n`);
      expect(removedIn).toBeLessThan(1000);
      expect(new Set(afterRemove)).toEqual(new Set(['pb']));
    } finally {
      held.stdin!.end('stop\n');
      asker.stdin!.end();
    }
    // Every line sent over the held connection came back from pb, in order.
    const verdict = await heldOut.next(20_000);
    expect(verdict).toMatch(/^unbroken: \d+ lines echoed by pb$/);
    expect(Number(/(\d+) lines/.exec(verdict)?.[1])).toBeGreaterThan(10);
  }, 90_000);
});

/**
 * Milliseconds from `since` (a Date.now() just before a manifest write) to nodeplane's first
 * "manifests applied" log line after it (pino's JSON `time`, the same clock).
 */
async function appliedWithin(lab: Lab, since: number): Promise<number> {
  const end = Date.now() + 5000;
  for (;;) {
    for (const line of lab.nodeplaneStderr.split('\n')) {
      if (!line.startsWith('{')) continue;
      const entry = JSON.parse(line) as { msg?: string; time?: number };
      if (entry.msg === 'manifests applied' && entry.time !== undefined && entry.time >= since) return entry.time - since;
    }
    if (Date.now() > end) throw new Error(`no "manifests applied" in nodeplane's log within 5 s of the change; its log:\n${lab.nodeplaneStderr.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A pod's echo server on TCP 8080: each line comes back prefixed with the pod's name. Exits after 300 s. */
const ECHO_SERVER = `
import os, socket, sys, threading
threading.Timer(300, os._exit, [0]).start()
name = sys.argv[1]
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('0.0.0.0', 8080))
l.listen(64)
def serve(c):
    f = c.makefile('rwb', buffering=0)
    try:
        for line in f:
            f.write(name.encode() + b' ' + line)
    except OSError:
        pass
    c.close()
while True:
    c, _ = l.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

/**
 * For each line on stdin: connects to argv[1]:argv[2], sends one line, prints the name of the
 * pod that answered (or the error). Exits at the end of stdin, or after 120 s.
 */
const ASKER = `
import os, socket, sys, threading
threading.Timer(120, os._exit, [0]).start()
for _ in sys.stdin:
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
        s.sendall(b'who\\n')
        print(s.makefile('rb').readline().decode().split(' ')[0], flush=True)
        s.close()
    except Exception as e:
        print('error: %s' % e, flush=True)
os._exit(0)
`;

/**
 * Holds one connection to argv[1]:argv[2]: prints "connected to <pod>", then sends a line
 * every 100 ms until stdin says stop (or argv[3] seconds pass) and checks each answer; prints
 * "unbroken: N lines echoed by <pod>" or what went wrong.
 */
const HELD_CLIENT = `
import select, socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
f = s.makefile('rwb', buffering=0)
f.write(b'hello\\n')
pod = f.readline().decode().split(' ')[0]
print('connected to ' + pod, flush=True)
end = time.time() + float(sys.argv[3])
n = 0
try:
    while time.time() < end:
        if select.select([sys.stdin], [], [], 0.1)[0]:
            break
        n += 1
        f.write(b'line %d\\n' % n)
        got = f.readline().decode().strip()
        if got != '%s line %d' % (pod, n):
            print('broken at line %d: got %r' % (n, got), flush=True)
            sys.exit(0)
    print('unbroken: %d lines echoed by %s' % (n, pod), flush=True)
except Exception as e:
    print('broken at line %d: %s' % (n, e), flush=True)
`;
