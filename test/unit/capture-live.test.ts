/**
 * Live classic-pcap captures (src/capture/live-capture.ts): one port or 'all' to a memory
 * sink and to a file, both read back with our reader and tshark; a FIFO whose reader arrives
 * late and then leaves (EPIPE: one log line, no crash, the dataplane keeps going); closing
 * while still waiting for a reader; and `--capture-stdout`-style streaming from a child
 * process into a pipe, including a reader that quits early.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { LiveCapture, liveToPath } from '../../src/capture/live-capture.ts';
import { loadConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import { parseCapture, readCaptureSync } from '../../src/pcap/reader.ts';
import { memorySink } from '../../src/pcap/sink.ts';
import { describeWithTools, findTool, inCI, tsharkFields } from '../helpers/tshark.ts';

const FIXTURES = fileURLToPath(new URL('../../captures/replay/', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TMP = mkdtempSync(join(tmpdir(), 'nodeplane-live-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

interface Input {
  port: string;
  tsUs: number;
  bytes: Buffer;
}

function fixture(c: string, port: string): Input[] {
  return [...readCaptureSync(join(FIXTURES, c, `${port}.pcap`)).records()].map((r) => ({
    port,
    tsUs: r.tsSec * 1e6 + Math.floor(r.tsNsec / 1000),
    bytes: Buffer.from(r.data),
  }));
}

/** The lab dataplane with sink drivers; feed() runs frames through it. */
function lab() {
  const clock = new VirtualClock();
  const dp = new Dataplane(loadConfig(join(FIXTURES, 'lab.yaml')), { clock });
  const sent = { n: 0 };
  for (let p = 0; p < dp.ctx.ports.count; p++) dp.setDriver(p, { transmit: (_pool, _slots, n) => ((sent.n += n), n) });
  const feed = (inputs: Input[]): void => {
    for (const f of inputs) {
      clock.set(f.tsUs);
      dp.receive(dp.portIndex(f.port), f.bytes);
      dp.run();
    }
  };
  return { dp, clock, feed, sent };
}

function udpBurst(n: number, fromUs = 0): Input[] {
  const [first] = fixture('flood-learn', 'pa');
  return Array.from({ length: n }, (_, i) => ({ port: 'pa', tsUs: first!.tsUs + fromUs + i * 1000, bytes: first!.bytes }));
}

function memoryCapture(port: number | 'all', snaplen?: number) {
  const { dp, clock, feed } = lab();
  const c = new LiveCapture({ port: port, clock, label: 'memory', snaplen });
  const sink = memorySink();
  c.attach(sink);
  dp.setObserver(c);
  feed(fixture('ping-gateway', 'pa'));
  c.close();
  return { c, bytes: sink.bytes() };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('live classic pcap stream', () => {
  it("'all' carries both directions of every port: a flooded frame appears once per port", () => {
    const { c, bytes } = memoryCapture('all');
    expect(bytes.readUInt32LE(0)).toBe(0xa1b2c3d4); // microsecond magic
    expect(bytes.readUInt32LE(20)).toBe(1); // LINKTYPE_ETHERNET
    const f = parseCapture(bytes, 'memory');
    expect(f.format).toBe('pcap');
    // ARP request rx pa, tx pb, tx pc; ARP reply tx pa; echo request rx pa; echo reply tx pa.
    expect([...f.records()].map((r) => r.origLen)).toEqual([42, 42, 42, 42, 98, 98]);
    expect(c.packets).toBe(6);
  });

  it('one port carries that port only, both directions', () => {
    expect(parseCapture(memoryCapture(0).bytes, 'pa').count).toBe(4);
    expect(parseCapture(memoryCapture(2).bytes, 'pc').count).toBe(1);
    expect(parseCapture(memoryCapture(3).bytes, 'up').count).toBe(0);
  });

  it('honours the snaplen', () => {
    const f = parseCapture(memoryCapture(0, 64).bytes, 'pa');
    expect(f.interfaces[0]!.snaplen).toBe(64);
    expect([...f.records()].map((r) => [r.caplen, r.origLen]).slice(2)).toEqual([
      [64, 98],
      [64, 98],
    ]);
  });

  it('writes a regular file at once when the path is not a FIFO', () => {
    const { dp, clock, feed } = lab();
    const path = join(TMP, 'live-file.pcap');
    const c = liveToPath(path, { port: 'all', clock });
    expect(c.state).toBe('open');
    dp.setObserver(c);
    feed(fixture('ping-gateway', 'pa'));
    c.close();
    expect(readCaptureSync(path).count).toBe(6);
  });
});

describeWithTools(['tshark'], 'live stream read by tshark', () => {
  it('is a valid classic pcap: ARP and ICMP in order, µs timestamps', () => {
    const path = join(TMP, 'live-tshark.pcap');
    writeFileSync(path, memoryCapture('all').bytes);
    const rows = tsharkFields(path, ['frame.time_epoch', 'arp.opcode', 'icmp.type']);
    expect(rows).toEqual([
      ['1700000000.000000000', '1', ''],
      ['1700000000.000000000', '1', ''],
      ['1700000000.000000000', '1', ''],
      ['1700000000.000000000', '2', ''],
      ['1700000000.010000000', '', '8'],
      ['1700000000.010000000', '', '0'],
    ]);
  });
});

const HAVE_MKFIFO = findTool('mkfifo') !== null;
if (!HAVE_MKFIFO && !inCI()) console.warn('skipping FIFO tests: mkfifo not found');
const describeFifo = HAVE_MKFIFO || inCI() ? describe : describe.skip;

describeFifo('live capture to a FIFO', () => {
  it('waits for a reader without blocking, streams to it, and survives it leaving (EPIPE)', async () => {
    const fifo = join(TMP, 'cap.fifo');
    const out = join(TMP, 'cap-from-fifo.pcap');
    execFileSync('mkfifo', [fifo]);
    const { dp, clock, feed, sent } = lab();
    const warnings: string[] = [];
    const c = liveToPath(fifo, { port: 'all', clock, log: { warn: (_o, msg) => warnings.push(msg) } });
    dp.setObserver(c);

    // No reader yet: the event loop runs, frames pass, nothing is recorded.
    expect(c.state).toBe('waiting');
    feed(udpBurst(2));
    expect(c.missed).toBe(6);
    await sleep(50);
    expect(c.state).toBe('waiting');

    const reader = spawn('sh', ['-c', 'exec cat "$0" > "$1"', fifo, out], { stdio: 'ignore' });
    const exited = new Promise<void>((r) => reader.once('exit', () => r()));
    expect(await c.ready).toBe(true);
    expect(c.state).toBe('open');
    feed(udpBurst(10, 10_000));
    expect(c.packets).toBe(30);
    await until(() => existsSync(out) && statSync(out).size === 24 + 30 * (16 + 62), 'the reader to catch up');

    reader.kill('SIGTERM');
    await exited;
    feed(udpBurst(5, 100_000)); // the first write after the reader left meets EPIPE
    expect(c.state).toBe('stopped');
    feed(udpBurst(5, 200_000));
    expect(warnings).toEqual(['live capture reader went away (EPIPE); capture stopped, dataplane continues']);
    expect(sent.n).toBe(2 * 22); // the dataplane kept forwarding throughout
    c.close();

    const f = readCaptureSync(out);
    expect(f.count).toBe(30);
    if (findTool('tshark')) expect(tsharkFields(out, ['udp.dstport'])).toHaveLength(30);
  });

  it('closing while waiting for a reader releases the pending open', async () => {
    const fifo = join(TMP, 'never.fifo');
    execFileSync('mkfifo', [fifo]);
    const { clock } = lab();
    const c = liveToPath(fifo, { port: 0, clock });
    expect(c.state).toBe('waiting');
    c.close();
    expect(await c.ready).toBe(false);
    expect(c.state).toBe('stopped');
  });
});

/** A child process that streams 'all' to stdout through createCaptures, like `run --capture-stdout all`. */
function writeChild(frames: number, gapMs: number): string {
  const src = (p: string) => JSON.stringify(pathToFileURL(join(ROOT, p)).href);
  const file = join(TMP, `child-${frames}.mts`);
  writeFileSync(
    file,
    `
import { createCaptures } from ${src('src/capture/create-captures.ts')};
import { loadConfig } from ${src('src/config/load.ts')};
import { VirtualClock } from ${src('src/core/clock.ts')};
import { Dataplane } from ${src('src/dataplane/dataplane.ts')};
import { readCaptureSync } from ${src('src/pcap/reader.ts')};
const clock = new VirtualClock();
const dp = new Dataplane(loadConfig(${JSON.stringify(join(FIXTURES, 'lab.yaml'))}), { clock });
let sent = 0;
for (let p = 0; p < dp.ctx.ports.count; p++) dp.setDriver(p, { transmit: (_a, _b, n) => ((sent += n), n) });
const log = { warn: (o: object, msg: string) => process.stderr.write(JSON.stringify({ ...o, msg }) + '\\n') };
const caps = createCaptures(dp, { stdoutPort: 'all', log });
dp.setObserver(caps.observer);
const [frame] = [...readCaptureSync(${JSON.stringify(join(FIXTURES, 'flood-learn', 'pa.pcap'))}).records()];
const bytes = Buffer.from(frame!.data);
for (let i = 0; i < ${frames}; i++) {
  const t = 1_700_000_000_000_000 + i * 1000;
  clock.set(t);
  dp.receive(0, bytes);
  dp.run();
  if (${gapMs} > 0) await new Promise((r) => setTimeout(r, ${gapMs}));
}
caps.flush();
caps.close();
process.stderr.write(JSON.stringify({ msg: 'done', sent }) + '\\n');
`,
  );
  return file;
}

describe('live capture to stdout from a child process', () => {
  it('pipes a readable classic pcap', async () => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/run-ts.js'), writeChild(50, 0)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => chunks.push(b));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const code = await new Promise<number | null>((r) => child.once('close', r));
    expect(code, stderr).toBe(0);
    const bytes = Buffer.concat(chunks);
    const f = parseCapture(bytes, 'stdout');
    expect(f.count).toBe(150);
    expect(stderr).toMatch(/"msg":"done","sent":100/);
    if (findTool('tshark')) {
      const path = join(TMP, 'from-stdout.pcap');
      writeFileSync(path, bytes);
      expect(tsharkFields(path, ['udp.srcport'])).toHaveLength(150);
    }
  }, 30_000);

  it('keeps running, logging once, when the reader quits early (| head -c 100)', async () => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/run-ts.js'), writeChild(60, 5)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    let got = 0;
    child.stdout.on('data', (b: Buffer) => {
      got += b.length;
      if (got >= 100) child.stdout.destroy(); // the reader goes away
    });
    const code = await new Promise<number | null>((r) => child.once('close', r));
    expect(code, stderr).toBe(0);
    expect(stderr.match(/reader went away/g)).toHaveLength(1);
    expect(stderr).toMatch(/"msg":"done","sent":120/);
  }, 30_000);
});
