/**
 * A closed pipe is not a crash: every command that prints, run as a user runs it (the real
 * launcher in a child process), into a reader that goes away ends quietly — nothing on stderr
 * but its usual lines (no stack trace, no EPIPE), exit status 0, no signal — as
 * `tcpdump | head -1` does.
 *
 * Two readers: one that reads the first line and closes (`| head -1`) in front of an output
 * far larger than a pipe holds, so the command is certainly still writing when the reader
 * goes; and one that closes before the command writes anything (`| true`), for outputs small
 * enough to fit in the pipe in one write. Either way the command's next write meets EPIPE.
 * (`run --capture-stdout` needs root and TAPs: test/e2e/capture-stdout.test.ts.)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchState } from '../../src/admin/client.ts';
import { ConntrackEventHub } from '../../src/admin/conntrack-events.ts';
import { startAdminServer, type AdminServer } from '../../src/admin/server.ts';
import { SHOW_WHATS } from '../../src/admin/format.ts';
import { parseConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import { replay } from '../../src/replay/replay.ts';
import * as F from '../helpers/frames.ts';

const BIN = fileURLToPath(new URL('../../bin/nodeplane.js', import.meta.url));
const fixtures = fileURLToPath(new URL('../../captures/replay/', import.meta.url));
const LAB = join(fixtures, 'lab.yaml');
const TMP = mkdtempSync(join(tmpdir(), 'nodeplane-pipe-'));
/** Frames in the big input: its trace is megabytes, its decode hundreds of kilobytes. */
const FRAMES = 3000;
const BIG = join(TMP, 'big.pcap');

interface Ended {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** What the reader got before it closed (up to its first newline). */
  first: string;
}

/** Runs `nodeplane ARGS | head -1` (after: 'line') or `nodeplane ARGS | true` (after: 'nothing'). */
function intoClosingReader(args: string[], after: 'line' | 'nothing', whileRunning?: () => void): Promise<Ended> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let got = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  if (after === 'nothing') {
    child.stdout.destroy();
  } else {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      got += d;
      if (got.includes('\n')) child.stdout.destroy();
    });
  }
  const timer = whileRunning ? setInterval(whileRunning, 20) : undefined;
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearInterval(timer);
      resolve({ code, signal, stderr, first: got.split('\n')[0] });
    });
  });
}

/** Ended quietly: status 0, no signal, and nothing on stderr that looks like a crash. */
function expectQuiet(r: Ended, what: string): void {
  expect(r.stderr, what).not.toMatch(/EPIPE|Error|^\s+at /m);
  expect({ code: r.code, signal: r.signal }, `${what}: ${r.stderr}`).toEqual({ code: 0, signal: null });
}

/** Runs jobs at most `n` at a time (the machine is shared; each is a Node process). */
async function limited<T>(n: number, jobs: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < jobs.length) {
        const i = next++;
        out[i] = await jobs[i]();
      }
    }),
  );
  return out;
}

const A = { mac: '0a:58:0a:f4:01:02', ip: '10.244.1.2' };

beforeAll(() => {
  // Pod pa sends to addresses nobody has announced: each frame is flooded, a long trace.
  const records = [];
  for (let i = 0; i < FRAMES; i++) {
    const dst = `0a:58:0a:f4:02:${(i % 250).toString(16).padStart(2, '0')}`;
    const frame = F.ethernet(dst, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: '10.244.1.77', proto: 17 }, F.udp(A.ip, '10.244.1.77', 40000, 9, F.bytes(64, i))));
    records.push({ tsUs: 1_700_000_000_000_000 + i * 1000, frame });
  }
  writeFileSync(BIG, F.pcapFile(records));
});

afterAll(() => {
  rmSync(TMP, { recursive: true, force: true });
});

describe('commands that print end quietly when the reader goes away', () => {
  it('replay --trace | head -1', async () => {
    const r = await intoClosingReader(['replay', '--config', LAB, '--in', `pa=${BIG}`, '--out', join(TMP, 'out1'), '--trace'], 'line');
    expect(r.first).toMatch(/^#1 at 1700000000\.000000 on pa/);
    expectQuiet(r, 'replay --trace');
    // The replay itself ran to its end: its summary and every output pcap.
    expect(r.stderr).toContain(`replay: ${FRAMES} frames in`);
    expect(readdirSync(join(TMP, 'out1')).sort()).toEqual(['pa.pcap', 'pb.pcap', 'pc.pcap', 'slow.pcap', 'up.pcap']);
  }, 60_000);

  it('replay --stats and replay --trace --stats', async () => {
    const [stats, both] = await limited(2, [
      () => intoClosingReader(['replay', '--config', LAB, '--in', `pa=${join(fixtures, 'flood-learn', 'pa.pcap')}`, '--out', join(TMP, 'out2'), '--stats'], 'nothing'),
      () => intoClosingReader(['replay', '--config', LAB, '--in', `pa=${BIG}`, '--out', join(TMP, 'out3'), '--trace', '--stats'], 'line'),
    ]);
    expectQuiet(stats, 'replay --stats');
    expectQuiet(both, 'replay --trace --stats');
    expect(both.stderr).toContain(`replay: ${FRAMES} frames in`);
  }, 60_000);

  it('decode and decode --json | head -1', async () => {
    const [text, json] = await limited(2, [() => intoClosingReader(['decode', BIG], 'line'), () => intoClosingReader(['decode', BIG, '--json'], 'line')]);
    expect(text.first).toMatch(/^2023-11-14 22:13:20\.000000 0a:58:0a:f4:01:02 > 0a:58:0a:f4:02:00/);
    expectQuiet(text, 'decode');
    expect(JSON.parse(json.first)).toMatchObject({ n: 1 });
    expectQuiet(json, 'decode --json');
  }, 60_000);

  it('check', async () => {
    expectQuiet(await intoClosingReader(['check', '--config', LAB], 'nothing'), 'check');
  }, 30_000);

  describe('against a running dataplane', () => {
    let server: AdminServer;
    let sock: string;
    let dp: Dataplane;
    let replayed: Dataplane;
    /** Conntrack entries in the replayed node: their listing is megabytes, far more than a pipe holds. */
    const FLOWS = 20_000;
    /** Entries the replayed traffic itself made. */
    let before = 0;

    beforeAll(async () => {
      const dir = join(fixtures, 'routed-arp');
      const inputs = readdirSync(dir)
        .filter((f) => f.endsWith('.pcap'))
        .map((f) => ({ port: f.replace(/\.pcap$/, ''), file: join(dir, f) }));
      // The lab node with masquerade on, so it has a conntrack table to show.
      const config = parseConfig(`${readFileSync(LAB, 'utf8')}\nnat: { clusterCIDR: 10.244.0.0/16 }\n`, LAB);
      replayed = replay(config, inputs, join(TMP, 'out4'), 1).dataplane;
      const ct = replayed.ctx.conntrack!;
      before = ct.count;
      for (let i = 0; i < FLOWS; i++) ct.track(17, 0x0af40102 + (i >> 14), 0xcb007107 | 0, 1024 + (i & 0x3fff), 53, 0, 60);
      sock = join(TMP, 'show.sock');
      server = await startAdminServer(replayed, sock);
    });

    afterAll(async () => {
      await server?.close();
    });

    it('show, every kind, as text and as --json', async () => {
      const kinds = [...SHOW_WHATS].flatMap((what) => [[what], [what, '--json']]);
      kinds.push(['conntrack', '--stats'], ['conntrack', '--stats', '--json']);
      const ended = await limited(
        3,
        kinds.map((k) => () => intoClosingReader(['show', ...k, '--admin', sock], 'nothing')),
      );
      expect(kinds).toHaveLength(2 * SHOW_WHATS.length + 2);
      for (const [i, k] of kinds.entries()) expectQuiet(ended[i], `show ${k.join(' ')}`);
      // Every kind is served (services: none in this config, but the node tracks connections).
      for (const what of ['fdb', 'neigh', 'routes', 'ports', 'stats', 'graph', 'services']) {
        await expect(fetchState(sock, what)).resolves.toBeDefined();
      }
    }, 120_000);

    it('show conntrack and show conntrack --json | head -1, in front of a listing of megabytes', async () => {
      const [text, json] = await limited(2, [
        () => intoClosingReader(['show', 'conntrack', '--admin', sock], 'line'),
        () => intoClosingReader(['show', 'conntrack', '--json', '--admin', sock], 'line'),
      ]);
      // The table holds the flows the replayed frames made and the ones the test put in.
      expect(text.first).toMatch(/^udp {6}17 \d+ src=10\.244\.1\.2 dst=203\.0\.113\.\d+ sport=\d+ dport=53 /);
      expectQuiet(text, 'show conntrack');
      // The reader left early: no summary of a listing that was not shown whole.
      expect(text.stderr).toBe('');
      expect(json.first).toBe('[');
      expectQuiet(json, 'show conntrack --json');
      expect(replayed.ctx.conntrack!.count).toBe(before + FLOWS);
    }, 60_000);

    it('conntrack events and --json | head -1, while flows come', async () => {
      const ct = replayed.ctx.conntrack!;
      let port = 0;
      // A new flow every 20 ms, as on a live node.
      const feed = (): void => void ct.track(17, 0x0af40103, 0xcb007107 | 0, 40000 + (port++ % 20000), 123, 0, 60);
      const text = await intoClosingReader(['conntrack', 'events', '--admin', sock], 'line', feed);
      const json = await intoClosingReader(['conntrack', 'events', '--json', '--admin', sock], 'line', feed);
      expect(text.first).toMatch(/^ {4}\[NEW\] udp {6}17 30 src=10\.244\.1\.3 dst=203\.0\.113\.7 sport=\d+ dport=123 \[UNREPLIED\] /);
      expectQuiet(text, 'conntrack events');
      expect(JSON.parse(json.first)).toMatchObject({ event: 'NEW', proto: 'udp', orig: { dport: 123 } });
      expectQuiet(json, 'conntrack events --json');
      // The readers are gone: the server let go of the table's listener.
      await new Promise((r) => setTimeout(r, 100));
      expect(ConntrackEventHub.of(ct, replayed).readerCount).toBe(0);
      expect(ct.listener).toBeNull();
    }, 60_000);

    it('trace and trace --json', async () => {
      const clock = new VirtualClock();
      clock.set(1_700_000_000_000_000);
      dp = new Dataplane(parseConfig(`node: { name: n }\nbridges: [{ name: cni0, address: 10.244.1.1/24, mac: 0a:58:0a:f4:01:01 }]\nports: [{ name: pa, bridge: cni0 }, { name: pb, bridge: cni0 }]\n`, 'test'), { clock });
      dp.ctx.ports.names.forEach((_, p) => dp.setDriver(p, { transmit: (_pool, _s, n) => n }));
      const traceSock = join(TMP, 'trace.sock');
      const traced = await startAdminServer(dp, traceSock);
      // Frames keep arriving while the command waits for them, as on a live node.
      const arp = F.ethernet('ff:ff:ff:ff:ff:ff', A.mac, 0x0806, F.arp(1, A.mac, A.ip, '00:00:00:00:00:00', '10.244.1.9'));
      const feed = (): void => {
        dp.receive(0, arp);
        dp.run();
      };
      try {
        // One at a time: the dataplane follows one trace at once.
        const text = await intoClosingReader(['trace', '--admin', traceSock, '--count', '20', '--seconds', '20'], 'nothing', feed);
        const json = await intoClosingReader(['trace', '--admin', traceSock, '--count', '20', '--seconds', '20', '--json'], 'nothing', feed);
        expectQuiet(text, 'trace');
        expectQuiet(json, 'trace --json');
      } finally {
        await traced.close();
      }
    }, 60_000);
  });
});
