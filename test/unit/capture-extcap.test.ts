/**
 * Live captures over the admin socket and the Wireshark extcap on top of them, without root:
 * a dataplane of the replay lab fed frames in process, its admin server with capture taps.
 * `GET /v1/capture` streams one port's frames (both directions) or the dropped ones (with
 * stage and reason id as comment) as pcapng; bad ports and filters are refused; a reader too
 * slow loses whole batches, counted, without holding forwarding up; `show ports` lists the
 * open streams. `nodeplane extcap` (run as Wireshark runs it) lists the ports, says its link
 * type and options, checks filters, and streams into a FIFO until SIGTERM; `extcap install`
 * writes an executable launcher.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { constants, mkdtempSync, openSync, readFileSync, readSync, closeSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchState } from '../../src/admin/client.ts';
import { formatPorts } from '../../src/admin/format.ts';
import { type AdminServer, startAdminServer } from '../../src/admin/server.ts';
import type { PortsState } from '../../src/admin/state.ts';
import { filtersAvailable } from '../../src/capture/bpf-filter.ts';
import { CaptureStream } from '../../src/capture/capture-stream.ts';
import { CaptureTaps } from '../../src/capture/capture-taps.ts';
import { loadConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { FramePool } from '../../src/core/frame-pool.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import { parseCapture } from '../../src/pcap/reader.ts';
import { readCaptureSync } from '../../src/pcap/reader.ts';

const FIXTURES = fileURLToPath(new URL('../../captures/replay/', import.meta.url));
const NODEPLANE = fileURLToPath(new URL('../../bin/nodeplane.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'nodeplane-extcap-'));
const sock = join(dir, 'admin.sock');
const clock = new VirtualClock();
const dp = new Dataplane(loadConfig(join(FIXTURES, 'lab.yaml')), { clock });
for (let p = 0; p < dp.ctx.ports.count; p++) dp.setDriver(p, { transmit: (_pool, _slots, n) => n });
const taps = new CaptureTaps(dp);
let server: AdminServer;
const ping = [...readCaptureSync(join(FIXTURES, 'ping-gateway', 'pa.pcap')).records()].map((r) => Buffer.from(r.data));

beforeAll(async () => {
  server = await startAdminServer(dp, sock, { taps });
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Feeds the ping-gateway fixture (ARP, then an echo request) to pa, a millisecond apart. */
function feedPing(): void {
  for (const f of ping) {
    clock.set(clock.nowUs() + 1000);
    dp.receive(dp.portIndex('pa'), f);
    dp.run();
  }
}

/** Opens GET `path` and collects the body until `until` says it is enough; then hangs up. */
function collect(path: string, feed: () => void, until: (bytes: Buffer) => boolean): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: sock, path }, (res) => {
      const chunks: Buffer[] = [];
      let fed = false;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        if (!fed && res.statusCode === 200) {
          fed = true;
          setImmediate(feed);
        }
        if (res.statusCode === 200 && until(Buffer.concat(chunks))) {
          req.destroy();
          resolve({ status: 200, body: Buffer.concat(chunks) });
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('error', (e) => (e.message === 'socket hang up' ? undefined : reject(e)));
    req.end();
  });
}

/** The records of a stream read so far (none before its header is whole). */
function records(b: Buffer) {
  if (b.length < 32) return [];
  return [...parseCapture(b, 'stream', { allowTruncatedTail: true }).records()];
}

describe('GET /v1/capture', () => {
  it("streams one port's frames as pcapng, received inbound and sent outbound, then detaches", async () => {
    const { status, body } = await collect('/v1/capture?port=pa', feedPing, (b) => records(b).length >= 4);
    expect(status).toBe(200);
    const cap = parseCapture(body, 'stream', { allowTruncatedTail: true });
    expect(cap.interfaces.map((i) => i.name)).toEqual(['pa']);
    const recs = [...cap.records()];
    // ARP request in, ARP reply out, echo request in, echo reply out.
    expect(recs.map((r) => r.flags)).toEqual([1, 2, 1, 2]);
    expect(recs[0]!.data.equals(ping[0]!)).toBe(true);
    expect(recs[2]!.data.equals(ping[1]!)).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(((await fetchState(sock, 'ports')) as PortsState).streams).toBeUndefined();
  });

  it('streams the dropped frames with stage and reason id as comment', async () => {
    const runt = Buffer.alloc(10, 0xee);
    const { body } = await collect('/v1/capture?drops=1', () => {
      dp.receive(dp.portIndex('pb'), runt);
      dp.run();
    }, (b) => records(b).length >= 1);
    const cap = parseCapture(body, 'stream', { allowTruncatedTail: true });
    expect(cap.interfaces.map((i) => i.name)).toEqual(['drop']);
    const [r] = [...cap.records()];
    expect(r!.comment).toMatch(/^ethernet-input: eth\.runt /);
    expect(r!.data.equals(runt)).toBe(true);
  });

  it('refuses an unknown port and a bad snaplen with 400 and the reason', async () => {
    const a = await collect('/v1/capture?port=nope', () => {}, () => false);
    expect(a.status).toBe(400);
    expect(JSON.parse(a.body.toString()).error).toMatch(/unknown port "nope" \(ports: pa, pb/);
    const b = await collect('/v1/capture?port=pa&snaplen=0', () => {}, () => false);
    expect(b.status).toBe(400);
  });

  it.skipIf(!filtersAvailable())('applies a tcpdump filter (only the echo, no ARP) and refuses one libpcap cannot compile', async () => {
    const { body } = await collect('/v1/capture?port=pa&filter=icmp&snaplen=60', feedPing, (b) => records(b).length >= 2);
    const recs = records(body);
    expect(recs).toHaveLength(2);
    expect(recs.every((r) => r.data.length === 60 && r.origLen === 98)).toBe(true);
    const bad = await collect(`/v1/capture?port=pa&filter=${encodeURIComponent('tcp port')}`, () => {}, () => false);
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body.toString()).error).toMatch(/syntax error/);
  });
});

describe('a port added at run time', () => {
  it('can be streamed, and its stream ends when the port is removed (idle: within half a second)', async () => {
    const port = dp.addPort({ name: 'pod9', bridge: 'cni0' });
    dp.setDriver(port, { transmit: (_pool, _slots, n) => n });
    const frame = Buffer.from(ping[0]!);
    const { status, body } = await collect('/v1/capture?port=pod9', () => {
      dp.receive(port, frame);
      dp.run();
      dp.removePort('pod9');
    }, () => false);
    expect(status).toBe(200); // ended by the server, not by us
    const recs = records(body);
    expect(recs.length).toBeGreaterThanOrEqual(1);
    expect(recs[0]!.data.equals(frame)).toBe(true);
  });
});

describe('CaptureStream', () => {
  it('drops whole batches, counted, while its reader is behind, and carries on when it catches up', () => {
    const pool = new FramePool(16);
    const slot = pool.fill(Buffer.alloc(100, 7), 0);
    const written: Buffer[] = [];
    let queued = 0;
    const s = new CaptureStream({ port: 0, name: 'pa', snaplen: 262144, filter: null, clock, capacity: 16, write: (b) => written.push(b), queued: () => queued, maxQueued: 1000 });
    s.onRx(0, pool, slot);
    s.onTx(0, pool, slot);
    s.flush(pool);
    queued = 5000;
    s.onRx(0, pool, slot);
    s.flush(pool);
    queued = 0;
    s.onRx(0, pool, slot);
    s.onRx(1, pool, slot); // another port: not this stream's
    s.flush(pool);
    expect([s.packets, s.dropped]).toEqual([3, 1]);
    expect(written).toHaveLength(3); // the header, then one buffer per batch written
  });
});

describe('show ports', () => {
  it('lists an open stream with its counts', async () => {
    const req = request({ socketPath: sock, path: '/v1/capture?port=pb' });
    const opened = new Promise<void>((r) => req.on('response', (res) => res.once('data', () => r())));
    req.end();
    await opened;
    const s = (await fetchState(sock, 'ports')) as PortsState;
    expect(s.streams).toEqual([{ port: 'pb', filter: null, snaplen: 262144, packets: 0, dropped: 0 }]);
    expect(formatPorts(s)).toMatch(/capture stream of pb: 0 records, 0 dropped \(slow reader\)/);
    req.destroy();
  });
});

/** Runs `nodeplane extcap ARGS` (as Wireshark does) without blocking this process's event loop. */
function extcap(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [NODEPLANE, 'extcap', '--admin', sock, ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('nodeplane extcap', () => {
  it('lists nodeplane-<port> for each port and nodeplane-drop; Ethernet; its options', async () => {
    const list = await extcap(['--extcap-interfaces', '--extcap-version=4.0']);
    expect(list.code).toBe(0);
    const lines = list.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^extcap \{version=[^}]+\}/);
    expect(lines.slice(1).map((l) => /^interface \{value=([^}]+)\}\{display=[^}]+\}$/.exec(l)?.[1])).toEqual([
      ...dp.ctx.ports.names.map((n) => `nodeplane-${n}`),
      'nodeplane-drop',
    ]);
    const dlts = await extcap(['--extcap-interface', 'nodeplane-pa', '--extcap-dlts']);
    expect(dlts.stdout.trim()).toBe('dlt {number=1}{name=EN10MB}{display=Ethernet}');
    const config = await extcap(['--extcap-interface', 'nodeplane-pa', '--extcap-config']);
    expect(config.stdout).toContain(`{call=--admin}{display=Admin socket}{type=string}{default=${sock}}`);
    expect(config.stdout).toMatch(/\{call=--snaplen\}.*\{type=unsigned\}\{range=1,262144\}/);
    expect(config.stdout).toMatch(/\{call=--filter\}/);
  }, 60_000);

  it('lists no interface, and says why on stderr, when no nodeplane answers', async () => {
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [NODEPLANE, 'extcap', '--admin', join(dir, 'nobody.sock'), '--extcap-interfaces']);
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/cannot reach a running nodeplane/);
  }, 30_000);

  it.skipIf(!filtersAvailable())('checks a capture filter as Wireshark asks: silence when valid, the message when not', async () => {
    const ok = await extcap(['--extcap-interface', 'nodeplane-pa', '--extcap-capture-filter', 'icmp and host 10.0.0.1']);
    expect([ok.code, ok.stdout]).toEqual([0, '']);
    const bad = await extcap(['--extcap-interface', 'nodeplane-pa', '--extcap-capture-filter', 'tcp port']);
    expect(bad.stdout).toMatch(/syntax error/);
  }, 60_000);

  it('streams a port into a FIFO as pcapng until SIGTERM, then exits 0', async () => {
    const fifo = join(dir, 'wireshark.fifo');
    execFileSync('mkfifo', [fifo]);
    // Wireshark opens the FIFO for reading before it starts the extcap.
    const fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const child: ChildProcess = spawn(process.execPath, [NODEPLANE, 'extcap', '--admin', sock, '--extcap-interface', 'nodeplane-pa', '--capture', '--fifo', fifo]);
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    // Once the stream is open, feed frames; read until four records are in.
    const deadline = Date.now() + 30_000;
    while (((await fetchState(sock, 'ports')) as PortsState).streams === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    feedPing();
    const got: Buffer[] = [];
    const buf = Buffer.alloc(65536);
    while (Date.now() < deadline && records(Buffer.concat(got)).length < 4) {
      let n = 0;
      try {
        n = readSync(fd, buf);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      }
      if (n > 0) got.push(Buffer.from(buf.subarray(0, n)));
      else await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGTERM');
    expect(await exited, stderr).toBe(0);
    closeSync(fd);
    const recs = records(Buffer.concat(got));
    expect(recs.map((r) => r.flags)).toEqual([1, 2, 1, 2]);
    expect(recs[2]!.data.equals(ping[1]!)).toBe(true);
  }, 60_000);

  it('install writes an executable launcher that runs this command with the admin socket', async () => {
    const to = join(dir, 'extcap-folder');
    execFileSync(process.execPath, [NODEPLANE, 'extcap', 'install', '--dir', to, '--admin', sock]);
    const launcher = join(to, 'nodeplane');
    expect(statSync(launcher).mode & 0o111).toBe(0o111);
    expect(readFileSync(launcher, 'utf8')).toMatch(/^#!\/bin\/sh\n/);
    const r = await new Promise<string>((resolve) => {
      const child = spawn(launcher, ['--extcap-interfaces']);
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.on('close', () => resolve(out));
    });
    expect(r).toContain('interface {value=nodeplane-pa}');
  }, 60_000);
});
