/**
 * `conntrack events` (`/v1/conntrack/events`, conntrack -E): NEW, UPDATE and DESTROY in order
 * for flows created, updated, removed and expired; a new entry read at the end of its batch
 * (after its NAT binding), also when it dies in that batch or its id is reused before the
 * flush; several readers at once with their own filters and counts; the listener detached
 * when the last reader leaves; lost events reported; the CLI's text and JSON lines.
 *
 * Table calls are made inside Dataplane.run() (in place of the stages, which would make
 * them during dispatch), so expiry runs before them and the end-of-batch hook after.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { requestJson, streamLines } from '../../src/admin/client.ts';
import { ConntrackEventHub } from '../../src/admin/conntrack-events.ts';
import type { ConntrackEventJson } from '../../src/admin/conntrack-json.ts';
import { TCP_ACK, TCP_FIN, TCP_SYN } from '../../src/tables/conntrack-tcp.ts';
import { NODE, POD_A, POD_B, SERVER, T0, TCP, UDP, natNode, serve, type NatNode, type Served } from '../helpers/conntrack-admin.ts';

const BIN = fileURLToPath(new URL('../../bin/nodeplane.js', import.meta.url));

type Line = ConntrackEventJson | { event: 'LOST'; count: number };

interface Reader {
  lines: Line[];
  /** Resolves when the stream ends (count, seconds, or stop()). */
  done: Promise<void>;
  stop(): void;
}

function subscribe(sock: string, query = ''): Reader {
  const lines: Line[] = [];
  const abort = new AbortController();
  const done = streamLines(sock, `/v1/conntrack/events${query}`, {
    idleTimeoutMs: 0,
    signal: abort.signal,
    onLines: (ls) => void lines.push(...ls.filter((l) => l !== '').map((l) => JSON.parse(l) as Line)),
  });
  return { lines, done, stop: () => abort.abort() };
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Runs one batch at `atUs`: `fn` makes the table calls a stage would, during dispatch. */
function batch(n: NatNode, atUs: number, fn: () => void = () => undefined): void {
  n.clock.set(atUs);
  const graph = n.dp.graph;
  const dispatch = graph.dispatch;
  graph.dispatch = () => {
    fn();
    return dispatch.call(graph);
  };
  try {
    n.dp.run();
  } finally {
    graph.dispatch = dispatch;
  }
}

const SEC = 1_000_000;

/** A pod's TCP connection masqueraded to the node's port 1025, through its handshake and a FIN. */
function tcpFlow(n: NatNode, t: number): number {
  const { ct } = n;
  let id = -1;
  batch(n, t, () => {
    id = ct.track(TCP, POD_A, SERVER, 40000, 80, TCP_SYN, 60) >> 1;
    // POSTROUTING, later in the same batch: the port was taken, the flow gets 1025.
    expect(ct.bindSnat(id, NODE, 1025)).toBe(true);
  });
  batch(n, t + 10_000, () => void ct.track(TCP, SERVER, NODE, 80, 1025, TCP_SYN | TCP_ACK, 60));
  batch(n, t + 20_000, () => void ct.track(TCP, POD_A, SERVER, 40000, 80, TCP_ACK, 52));
  batch(n, t + SEC, () => void ct.track(TCP, POD_A, SERVER, 40000, 80, TCP_FIN | TCP_ACK, 52));
  return id;
}

let served: Served | undefined;

afterEach(async () => {
  await served?.close();
  served = undefined;
});

const events = (r: Reader): ConntrackEventJson[] => r.lines.filter((l): l is ConntrackEventJson => l.event !== 'LOST');

describe('conntrack events', () => {
  it('reports a TCP flow NEW, UPDATE at each state change and DESTROY when flushed, in order, NEW with its NAT reply', async () => {
    const n = natNode();
    served = await serve(n.dp);
    const r = subscribe(served.sock);
    await until('the reader', () => n.ct.listener !== null);
    expect(n.dp.afterBatch).not.toBeNull();
    const id = tcpFlow(n, T0 + SEC);
    await until('4 events', () => r.lines.length >= 4);
    const orig = { src: '10.244.1.2', dst: '203.0.113.7', sport: 40000, dport: 80 };
    const reply = { src: '203.0.113.7', dst: '192.168.50.11', sport: 80, dport: 1025 };
    // Every batch ran before the first flush: each event still shows the state of its own moment.
    expect(r.lines.map((e) => e.event === 'LOST' ? e : [e.event, e.state, e.timeout, e.unreplied, e.assured, e.time])).toEqual([
      ['NEW', 'SYN_SENT', 120, true, false, (T0 + SEC) / 1e6],
      ['UPDATE', 'SYN_RECV', 60, false, false, (T0 + SEC + 10_000) / 1e6],
      ['UPDATE', 'ESTABLISHED', 86400, false, true, (T0 + SEC + 20_000) / 1e6],
      ['UPDATE', 'FIN_WAIT', 120, false, true, (T0 + 2 * SEC) / 1e6],
    ]);
    for (const e of events(r)) expect(e).toMatchObject({ id, proto: 'tcp', orig, reply, snat: true });
    const flushed = await requestJson(served.sock, 'DELETE', '/v1/conntrack');
    expect(flushed).toEqual({ deleted: 1 });
    await until('the DESTROY', () => r.lines.length >= 5);
    expect(r.lines[4]).toMatchObject({ event: 'DESTROY', id, timeout: null, orig, reply, packets: { orig: 3, reply: 1 }, bytes: { orig: 164, reply: 60 } });
    expect(r.lines).toHaveLength(5);
    r.stop();
  });

  it('reports a UDP flow that times out: NEW, UPDATE when answered, DESTROY when the timer reaps it', async () => {
    const n = natNode();
    served = await serve(n.dp);
    const r = subscribe(served.sock, '?proto=udp');
    await until('the reader', () => n.ct.listener !== null);
    batch(n, T0 + SEC, () => void n.ct.track(UDP, POD_B, SERVER, 5353, 53, 0, 70));
    batch(n, T0 + SEC + 5000, () => void n.ct.track(UDP, SERVER, POD_B, 53, 5353, 0, 90));
    batch(n, T0 + 40 * SEC); // 30 s after its last packet: the expiry before this batch reaps it
    await until('3 events', () => r.lines.length >= 3);
    expect(r.lines.map((e) => [e.event, (e as ConntrackEventJson).unreplied, (e as ConntrackEventJson).timeout])).toEqual([
      ['NEW', true, 30],
      ['UPDATE', false, 30],
      ['DESTROY', false, null],
    ]);
    expect(r.lines[2]).toMatchObject({ time: (T0 + 40 * SEC) / 1e6, packets: { orig: 1, reply: 1 }, bytes: { orig: 70, reply: 90 } });
    expect(n.ct.count).toBe(0);
    r.stop();
  });

  it('reads an entry that dies in its own batch, and one whose id is reused before the flush, for the right flow', async () => {
    const n = natNode();
    served = await serve(n.dp);
    const r = subscribe(served.sock);
    await until('the reader', () => n.ct.listener !== null);
    const { ct } = n;
    let x = -1;
    let y = -1;
    batch(n, T0 + SEC, () => {
      x = ct.track(UDP, POD_A, SERVER, 1111, 53, 0, 60) >> 1;
      expect(ct.bindSnat(x, NODE, 2222)).toBe(true);
      ct.remove(x);
    });
    // The next batch's expiry frees x's id, and the new flow takes it: all before any flush.
    batch(n, T0 + 2 * SEC, () => {
      y = ct.track(UDP, POD_B, SERVER, 3333, 53, 0, 60) >> 1;
    });
    expect(y).toBe(x);
    await until('3 events', () => r.lines.length >= 3);
    expect(events(r).map((e) => [e.event, e.id, e.orig.src, e.orig.sport, e.reply.dst, e.reply.dport])).toEqual([
      ['NEW', x, '10.244.1.2', 1111, '192.168.50.11', 2222],
      ['DESTROY', x, '10.244.1.2', 1111, '192.168.50.11', 2222],
      ['NEW', y, '10.244.1.3', 3333, '10.244.1.3', 3333],
    ]);
    r.stop();
  });

  it('fans out to several readers, each with its filter and count, and detaches when the last one leaves', async () => {
    const n = natNode();
    served = await serve(n.dp);
    const all = subscribe(served.sock);
    const udp2 = subscribe(served.sock, '?proto=udp&count=2');
    const hub = ConntrackEventHub.of(n.ct, n.dp);
    await until('both readers', () => hub.readerCount === 2);
    tcpFlow(n, T0 + SEC);
    batch(n, T0 + 3 * SEC, () => {
      n.ct.track(UDP, POD_B, SERVER, 1, 53, 0, 60);
      n.ct.track(UDP, POD_B, SERVER, 2, 53, 0, 60);
      n.ct.track(UDP, POD_B, SERVER, 3, 53, 0, 60);
    });
    // The second reader's stream ends by itself after its 2 events.
    await udp2.done;
    expect(events(udp2).map((e) => [e.event, e.proto, e.orig.sport])).toEqual([
      ['NEW', 'udp', 1],
      ['NEW', 'udp', 2],
    ]);
    await until('7 events', () => all.lines.length >= 7);
    expect(events(all).map((e) => `${e.event} ${e.proto}`)).toEqual(['NEW tcp', 'UPDATE tcp', 'UPDATE tcp', 'UPDATE tcp', 'NEW udp', 'NEW udp', 'NEW udp']);
    expect(hub.readerCount).toBe(1);
    expect(n.ct.listener).toBe(hub);
    all.stop();
    await all.done;
    await until('the listener gone', () => n.ct.listener === null);
    expect(n.dp.afterBatch).toBeNull();
    expect(hub.readerCount).toBe(0);
  });

  it('ends a reader after its seconds, and refuses readers while someone else holds the listener', async () => {
    const n = natNode();
    served = await serve(n.dp);
    const t0 = Date.now();
    const quiet = subscribe(served.sock, '?seconds=0.3');
    await quiet.done;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(quiet.lines).toEqual([]);
    expect(n.ct.listener).toBeNull();
    n.ct.listener = { onNew: () => undefined, onUpdate: () => undefined, onDestroy: () => undefined };
    await expect(streamLines(served.sock, '/v1/conntrack/events', { onLines: () => undefined })).rejects.toThrow(
      `${served.sock}: conntrack events: the conntrack table already has another listener`,
    );
  });

  it('tells a reader how many events it lost when more came between two flushes than the buffer holds', async () => {
    const n = natNode(65536);
    served = await serve(n.dp);
    const r = subscribe(served.sock);
    await until('the reader', () => n.ct.listener !== null);
    batch(n, T0 + SEC, () => {
      for (let i = 0; i < 40_000; i++) n.ct.track(UDP, POD_A + (i >> 15), SERVER, 1024 + (i & 0x7fff), 53, 0, 60);
    });
    await until('every event or its loss', () => events(r).length + r.lines.reduce((s, l) => s + (l.event === 'LOST' ? l.count : 0), 0) >= 40_000, 20_000);
    // The ring was full before the first flush: the stream opens with the count of the lost.
    expect(r.lines[0]).toMatchObject({ event: 'LOST' });
    expect((r.lines[0] as { count: number }).count).toBeGreaterThan(0);
    // What arrived came in the order of the flows (the ring kept the first ones).
    const ports = events(r).map((e) => e.orig.sport ?? -1);
    expect(ports.every((p, i) => i === 0 || p > ports[i - 1])).toBe(true);
    expect(events(r).every((e) => e.orig.src === '10.244.1.2')).toBe(true);
    r.stop();
  }, 30_000);

  it('drops events for a reader that does not read, instead of buffering them, and tells it how many once it reads again', async () => {
    const n = natNode(65536);
    served = await serve(n.dp);
    const lines: Line[] = [];
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => (release = r));
    let first = true;
    const abort = new AbortController();
    const done = streamLines(served.sock, '/v1/conntrack/events', {
      idleTimeoutMs: 0,
      signal: abort.signal,
      onLines: (ls) => {
        lines.push(...ls.filter((l) => l !== '').map((l) => JSON.parse(l) as Line));
        if (!first) return;
        first = false;
        return released;
      },
    });
    await until('the reader', () => n.ct.listener !== null);
    // Three batches of 20,000 new flows (each fits the ring), each flushed before the next.
    for (let b = 0; b < 3; b++) {
      batch(n, T0 + (b + 1) * SEC, () => {
        for (let i = 0; i < 20_000; i++) n.ct.track(UDP, POD_A + b, SERVER, 1024 + i, 53, 0, 60);
      });
      for (let k = 0; k < 50; k++) await new Promise((r) => setImmediate(r));
    }
    release();
    const total = (): number => lines.reduce((s, l) => s + (l.event === 'LOST' ? l.count : 1), 0);
    await until('every event or its loss', () => total() >= 60_000, 20_000);
    expect(total()).toBe(60_000);
    const lost = lines.filter((l) => l.event === 'LOST').reduce((s, l) => s + (l as { count: number }).count, 0);
    expect(lost).toBeGreaterThan(0);
    abort.abort();
    await done;
  }, 30_000);

  it('nodeplane conntrack events prints conntrack -E lines as they come, and --json one object a line', async () => {
    const n = natNode();
    served = await serve(n.dp);
    const run = (args: string[]): { out: Promise<{ code: number | null; stdout: string; stderr: string }> } => {
      const child = spawn(process.execPath, [BIN, 'conntrack', 'events', '--admin', served!.sock, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      return { out: new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr }))) };
    };
    const text = run(['--count', '5']);
    const json = run(['--count', '1', '--json', '--proto', 'tcp']);
    const hub = ConntrackEventHub.of(n.ct, n.dp);
    await until('both commands', () => hub.readerCount === 2, 15_000);
    tcpFlow(n, T0 + SEC);
    await new Promise((r) => setTimeout(r, 50));
    await requestJson(served.sock, 'DELETE', '/v1/conntrack');
    const t = await text.out;
    const tail = 'src=10.244.1.2 dst=203.0.113.7 sport=40000 dport=80';
    const back = 'src=203.0.113.7 dst=192.168.50.11 sport=80 dport=1025';
    expect(t).toEqual({
      code: 0,
      stdout: [
        `    [NEW] tcp      6 120 SYN_SENT ${tail} [UNREPLIED] ${back}`,
        ` [UPDATE] tcp      6 60 SYN_RECV ${tail} ${back}`,
        ` [UPDATE] tcp      6 86400 ESTABLISHED ${tail} ${back} [ASSURED]`,
        ` [UPDATE] tcp      6 120 FIN_WAIT ${tail} ${back} [ASSURED]`,
        `[DESTROY] tcp      6 ${tail} packets=3 bytes=164 ${back} packets=1 bytes=60 [ASSURED]`,
        '',
      ].join('\n'),
      stderr: 'nodeplane: 5 flow events have been shown.\n',
    });
    const j = await json.out;
    expect(j.code).toBe(0);
    expect(j.stdout.split('\n')).toHaveLength(2);
    expect(JSON.parse(j.stdout)).toMatchObject({ event: 'NEW', proto: 'tcp', state: 'SYN_SENT', orig: { sport: 40000 }, reply: { dport: 1025 } });
  }, 60_000);
});
