/**
 * End to end: real Linux network stacks in namespaces, talking through `nodeplane run`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchState } from '../../src/admin/client.ts';
import { DEMO_CONFIG, DEMO_PODS, GATEWAY_MAC } from '../../src/lab/demo-topology.ts';
import { Lab } from '../../src/lab/lab.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';

const problem = missingPrerequisite(['ping', 'curl', 'python3', 'iperf3', 'tshark']);
const skip = skipUnlessReady('end-to-end lab tests', problem);

function tshark(file: string, filter: string, fields: string[]): string[][] {
  const r = spawnSync('tshark', ['-r', file, '-Y', filter, '-T', 'fields', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`tshark -r ${file} failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => l.split('\t'))
    .map((cols) => cols.map((c, i) => (fields[i] === 'frame.packet_flags_direction' ? String(Number(c)) : c)));
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((res) => setTimeout(res, 50));
  }
}

async function ping(lab: Lab, from: string, to: string, count = 3): Promise<string> {
  const r = await lab.pod(from).run('ping', ['-c', String(count), '-i', '0.2', '-W', '2', to], { timeoutMs: 20_000 });
  expect(r.code, `ping ${from} → ${to}: ${r.stdout}${r.stderr}`).toBe(0);
  expect(r.stdout).toContain(`${count} packets transmitted, ${count} received`);
  return r.stdout;
}

/**
 * Starts the demo lab (DEMO_CONFIG, DEMO_PODS) in a fresh temporary directory before the
 * enclosing describe block's tests and destroys it after them. Returns a getter for the
 * running lab and its directory, valid inside the tests.
 */
function useLab(opts: { capture?: boolean } = {}): () => { lab: Lab; dir: string } {
  let lab: Lab | undefined;
  let dir: string | undefined;

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-e2e-'));
    lab = await Lab.start({ config: DEMO_CONFIG, pods: DEMO_PODS, dir, ...opts });
  });

  afterAll(() => {
    lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  return () => ({ lab: lab!, dir: dir! });
}

describe.skipIf(skip)('lab: pods on a bridge and across the router', () => {
  const env = useLab({ capture: true });

  it('pods on cni0 ping each other and the gateway', async () => {
    const { lab } = env();
    await ping(lab, 'pa', '10.244.1.3');
    await ping(lab, 'pb', '10.244.1.2');
    await ping(lab, 'pa', '10.244.1.1');
    await ping(lab, 'pb', '10.244.1.1');
  });

  it('a pod on another subnet is reached through the router (TTL decremented)', async () => {
    const { lab } = env();
    const out = await ping(lab, 'pa', '10.244.2.2');
    expect(out).toMatch(/ttl=63/);
    await ping(lab, 'pc', '10.244.1.3');
  });

  it("a pod's neighbour table holds the gateway MAC nodeplane answered with", () => {
    const { lab } = env();
    const neigh = lab.pod('pa').ip(['neigh', 'show', '10.244.1.1']);
    expect(neigh).toContain(`lladdr ${GATEWAY_MAC}`);
  });

  it('an HTTP client in one pod fetches a page from python3 -m http.server in another', async () => {
    const { lab, dir } = env();
    const www = join(dir, 'www');
    mkdirSync(www);
    const marker = `hello from pod pb ${process.pid}`;
    writeFileSync(join(www, 'index.html'), `<p>${marker}</p>\n${'x'.repeat(200_000)}\n`);
    lab.pod('pb').spawn('python3', ['-m', 'http.server', '8080', '--bind', '10.244.1.3', '--directory', www], { stdio: 'ignore' });
    let body = '';
    for (let i = 0; i < 50; i++) {
      const r = await lab.pod('pa').run('curl', ['-sS', '--max-time', '5', 'http://10.244.1.3:8080/index.html'], { timeoutMs: 10_000 });
      if (r.code === 0) {
        body = r.stdout;
        break;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(body).toContain(marker);
    expect(body.length).toBeGreaterThan(200_000);
  });

  it('nodeplane trace follows live frames hop by hop', async () => {
    const { lab } = env();
    const nodeplane = new URL('../../bin/nodeplane.js', import.meta.url).pathname;
    const traced = new Promise<{ code: number | null; out: string }>((resolve) => {
      // --match: the pods' own IPv6 router solicitations must not take the two places.
      const child = spawn(process.execPath, [nodeplane, 'trace', '--admin', lab.adminSocket, '--count', '2', '--seconds', '15', '--match', 'ICMP echo request']);
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.on('exit', (code) => resolve({ code, out }));
    });
    // Ping until the trace has its two frames, rather than guessing when it is connected.
    let done = false;
    void traced.then(() => (done = true));
    for (let i = 0; i < 50 && !done; i++) {
      await ping(lab, 'pa', '10.244.1.3', 1);
      await new Promise((res) => setTimeout(res, 250));
    }
    const { code, out } = await traced;
    expect(code).toBe(0);
    expect(out).toMatch(/rx pa: .*10\.244\.1\.2 > 10\.244\.1\.3: ICMP echo request/);
    expect(out).toMatch(/bridge-forward → port-output/);
    expect(out).toMatch(/tx pb: .*ICMP echo request/);
  });

  it('the capture shows echo and the TCP handshake on the right ports and directions', async () => {
    const { lab } = env();
    expect(await lab.stopNodeplane('SIGTERM')).toBe(0);
    const files = readdirSync(lab.captureDir).filter((f) => f.endsWith('.pcapng'));
    expect(files.length).toBeGreaterThan(0);
    const file = join(lab.captureDir, files.sort()[0]);
    const echo = tshark(file, 'icmp.type==8 && ip.src==10.244.1.2 && ip.dst==10.244.1.3', ['frame.interface_name', 'frame.packet_flags_direction']);
    expect(new Set(echo.map((r) => r.join(' ')))).toEqual(new Set(['pa 1', 'pb 2']));
    const reply = tshark(file, 'icmp.type==0 && ip.src==10.244.1.3 && ip.dst==10.244.1.2', ['frame.interface_name', 'frame.packet_flags_direction']);
    expect(new Set(reply.map((r) => r.join(' ')))).toEqual(new Set(['pb 1', 'pa 2']));
    const syn = tshark(file, 'tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.dstport==8080', ['frame.interface_name', 'frame.packet_flags_direction']);
    expect(new Set(syn.map((r) => r.join(' ')))).toEqual(new Set(['pa 1', 'pb 2']));
    const synAck = tshark(file, 'tcp.flags.syn==1 && tcp.flags.ack==1 && tcp.srcport==8080', ['frame.interface_name', 'frame.packet_flags_direction']);
    expect(new Set(synAck.map((r) => r.join(' ')))).toEqual(new Set(['pb 1', 'pa 2']));
    // Routed echo: in on pa (cni0), out on pc (cni1).
    const routed = tshark(file, 'icmp.type==8 && ip.dst==10.244.2.2', ['frame.interface_name', 'frame.packet_flags_direction', 'ip.ttl']);
    expect(new Set(routed.map((r) => r.join(' ')))).toEqual(new Set(['pa 1 64', 'pc 2 63']));
  });
});

describe.skipIf(skip)('lab: failures while traffic flows', () => {
  const env = useLab({ capture: true });

  it('SIGHUP with an invalid config: refused with the field named, and forwarding goes on', async () => {
    const { lab, dir } = env();
    const file = join(dir, 'nodeplane.yaml');
    const good = readFileSync(file, 'utf8');
    writeFileSync(file, good.replace('bridge: cni1', 'bridge: cni7'));
    lab.nodeplane!.kill('SIGHUP');
    await waitFor(() => lab.nodeplaneStderr.includes('reload refused'));
    expect(lab.nodeplaneStderr).toContain('ports[2].bridge: no bridge named cni7');
    await ping(lab, 'pa', '10.244.2.2', 2);
    // A valid change is applied live.
    writeFileSync(file, good + 'routes:\n  - { dst: 198.51.100.0/24, via: 10.244.2.2 }\n');
    lab.nodeplane!.kill('SIGHUP');
    await waitFor(() => lab.nodeplaneStderr.includes('config reloaded'));
    const routes = (await fetchState(lab.adminSocket, 'routes')) as { routes: Array<{ dst: string; gateway: string | null }> };
    expect(routes.routes.find((r) => r.dst === '198.51.100.0/24')?.gateway).toBe('10.244.2.2');
  });

  it("deleting one pod's namespace marks its port down while the others keep talking", async () => {
    const { lab } = env();
    await ping(lab, 'pa', '10.244.2.2', 2);
    const flowing = lab.pod('pa').run('ping', ['-c', '20', '-i', '0.1', '-W', '2', '10.244.1.3'], { timeoutMs: 20_000 });
    await new Promise((res) => setTimeout(res, 500));
    lab.pod('pc').remove();
    const r = await flowing;
    expect(r.stdout).toContain('20 packets transmitted, 20 received');
    let ports: { ports: Array<{ name: string; up: boolean; linkDowns: number }> } | undefined;
    for (let i = 0; i < 50; i++) {
      ports = (await fetchState(lab.adminSocket, 'ports')) as typeof ports;
      if (ports?.ports.find((p) => p.name === 'pc')?.up === false) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(ports?.ports.find((p) => p.name === 'pc')?.up).toBe(false);
    expect(ports?.ports.find((p) => p.name === 'pc')?.linkDowns).toBe(1);
    expect(ports?.ports.find((p) => p.name === 'pa')?.up).toBe(true);
    await ping(lab, 'pb', '10.244.1.2', 2);
  });

  it('SIGKILL during capture leaves pcapng files that tshark reads', async () => {
    const { lab } = env();
    const flowing = lab.pod('pa').run('ping', ['-c', '30', '-i', '0.05', '-W', '1', '10.244.1.3'], { timeoutMs: 20_000 });
    // Kill while the ping runs, once the capture has records (not after a guessed time): a
    // ping is four records (pa in, pb out, pb in, pa out), handed to the writer within 20 ms.
    const start = ((await fetchState(lab.adminSocket, 'ports')) as { capture: { packets: number } }).capture.packets;
    for (let i = 0; i < 200; i++) {
      const s = (await fetchState(lab.adminSocket, 'ports')) as { capture: { packets: number } };
      if (s.capture.packets >= start + 40) break;
      await new Promise((res) => setTimeout(res, 20));
    }
    await new Promise((res) => setTimeout(res, 50));
    await lab.stopNodeplane('SIGKILL');
    await flowing;
    const files = readdirSync(lab.captureDir).filter((f) => f.endsWith('.pcapng'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const r = spawnSync('tshark', ['-r', join(lab.captureDir, f), '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(/cut short|appears to be damaged|corrupt/i);
      expect(r.stdout.trim().split('\n').length).toBeGreaterThan(10);
    }
  });
});

describe.skipIf(skip)('run: clear errors', () => {
  const nodeplane = new URL('../../bin/nodeplane.js', import.meta.url).pathname;

  it('a config naming a missing bridge: one message naming the field, exit 1', () => {
    const d = mkdtempSync(join(tmpdir(), 'nodeplane-e2e-'));
    const cfg = join(d, 'bad.yaml');
    writeFileSync(cfg, 'node: { name: n }\nports:\n  - { name: pa, bridge: cni9 }\n');
    const r = spawnSync(process.execPath, [nodeplane, 'run', '--config', cfg, '--admin', join(d, 'a.sock')], { encoding: 'utf8', timeout: 20_000 });
    rmSync(d, { recursive: true, force: true });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('ports[0].bridge: no bridge named cni9');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('without privilege: one message saying CAP_NET_ADMIN is needed, non-zero exit', () => {
    const d = mkdtempSync(join(tmpdir(), 'nodeplane-e2e-'));
    const cfg = join(d, 'ok.yaml');
    writeFileSync(cfg, DEMO_CONFIG);
    // Root without CAP_NET_ADMIN (dropped from the bounding and inheritable sets), rather than
    // another user: it can still read a checkout that only root may enter. In a throwaway
    // network namespace, so nothing could reach the host's even if the drop failed.
    const r = spawnSync(
      'unshare',
      ['--net', 'setpriv', '--bounding-set=-net_admin', '--inh-caps=-net_admin', process.execPath, nodeplane, 'run', '--config', cfg, '--admin', join(d, 'a.sock')],
      { encoding: 'utf8', timeout: 20_000 },
    );
    rmSync(d, { recursive: true, force: true });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/CAP_NET_ADMIN/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe.skipIf(skip)('lab: TCP with segmentation offload (no capture)', () => {
  // No capture here, so the TAPs carry 64 KiB TCP super-frames behind virtio-net headers.
  const env = useLab();

  async function iperf(lab: Lab, from: string, to: string, server: string): Promise<number> {
    lab.pod(server).spawn('iperf3', ['-s', '-1', '-B', to], { stdio: 'ignore' });
    await new Promise((res) => setTimeout(res, 500));
    const r = await lab.pod(from).run('iperf3', ['-c', to, '-t', '5', '-J'], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number }; sum_sent: { retransmits: number } } };
    const gbps = result.end.sum_received.bits_per_second / 1e9;
    process.stdout.write(`iperf3 ${from} → ${to} through nodeplane: ${gbps.toFixed(2)} Gbit/s received, ${result.end.sum_sent.retransmits} retransmits\n`);
    return gbps;
  }

  it('the log says offload is on', () => {
    const { lab } = env();
    expect(lab.nodeplaneStderr).toMatch(/"offload":true|offload: true/);
  });

  it('iperf3 runs 5 s of TCP between two pods on the bridge', async () => {
    const { lab } = env();
    expect(await iperf(lab, 'pa', '10.244.1.3', 'pb')).toBeGreaterThan(0.05);
  });

  it('iperf3 runs 5 s of TCP between pods on two subnets, through the router', async () => {
    const { lab } = env();
    expect(await iperf(lab, 'pa', '10.244.2.2', 'pc')).toBeGreaterThan(0.05);
  });

  it('a 20 MB download through the router arrives intact', async () => {
    const { lab, dir } = env();
    const www = join(dir, 'big');
    mkdirSync(www);
    const file = join(www, 'blob.bin');
    writeFileSync(file, randomBytes(20 * 1024 * 1024));
    const want = createHash('sha256').update(readFileSync(file)).digest('hex');
    lab.pod('pc').spawn('python3', ['-m', 'http.server', '8081', '--bind', '10.244.2.2', '--directory', www], { stdio: 'ignore' });
    let got = '';
    for (let i = 0; i < 50 && got === ''; i++) {
      const r = await lab.pod('pa').run('sh', ['-c', 'curl -sS --max-time 20 http://10.244.2.2:8081/blob.bin | sha256sum'], { timeoutMs: 30_000 });
      if (r.code === 0 && !r.stdout.startsWith('e3b0c442')) got = r.stdout.split(' ')[0];
      else await new Promise((res) => setTimeout(res, 100));
    }
    expect(got).toBe(want);
  });
});
