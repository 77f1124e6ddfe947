// Sinks: a capture written through fdSink into a FIFO is read live by our stream reader and by
// tshark; a reader that goes away (EPIPE) stops the writing without an exception; and a writer
// killed with SIGKILL mid-capture leaves a file that reads cleanly (SPEC section 4).
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { PcapngWriter } from '../../src/pcap/pcapng-writer.ts';
import { PcapWriter } from '../../src/pcap/pcap-writer.ts';
import { CaptureStreamReader, readCaptureSync } from '../../src/pcap/reader.ts';
import { fdSink } from '../../src/pcap/sink.ts';
import { describeWithTools, findTool } from '../helpers/tshark.ts';

const dir = mkdtempSync(join(tmpdir(), 'nodeplane-sink-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const haveMkfifo = findTool('mkfifo') !== null;
if (!haveMkfifo) console.warn('skipping FIFO sink tests: mkfifo not found');

const REPO = fileURLToPath(new URL('../../', import.meta.url));

function fifo(name: string): string {
  const p = join(dir, name);
  const r = spawnSync('mkfifo', [p]);
  if (r.status !== 0) throw new Error(`mkfifo failed: ${r.stderr}`);
  return p;
}

/** Collects a child's stdout and exit code. */
function collect(child: ReturnType<typeof spawn>): Promise<{ out: Buffer; code: number | null }> {
  const parts: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => parts.push(b));
  return new Promise((resolve) => child.on('close', (code) => resolve({ out: Buffer.concat(parts), code })));
}

describe.skipIf(!haveMkfifo)('fdSink on a FIFO', () => {
  it('streams a pcapng to a reader on the other end', async () => {
    const path = fifo('live.pcapng');
    const cat = spawn('cat', [path], { stdio: ['ignore', 'pipe', 'inherit'] });
    const done = collect(cat);
    const fd = openSync(path, 'w'); // blocks until cat has opened the read end
    const sink = fdSink(fd, { closeFd: true });
    const w = new PcapngWriter(sink);
    const id = w.addInterface({ name: 'pa' });
    for (let i = 0; i < 500; i++) w.writePacket(id, 1_700_000_000, i, Buffer.alloc(100 + (i % 50), i), { direction: 'in' });
    w.close();
    const { out } = await done;
    const r = new CaptureStreamReader('fifo');
    const recs = [...r.feed(out), ...r.end()];
    expect(recs.length).toBe(500);
    expect(sink.stats).toEqual({ droppedUnits: 0, broken: false });
  });

  it('stops quietly when the reader goes away (EPIPE)', async () => {
    const path = fifo('gone.pcap');
    const head = spawn('head', ['-c', '100', path], { stdio: ['ignore', 'pipe', 'inherit'] });
    const done = collect(head);
    const fd = openSync(path, 'w');
    const sink = fdSink(fd, { closeFd: true });
    const w = new PcapWriter(sink);
    // Keep writing until head has exited and the kernel reports EPIPE.
    const { out } = await new Promise<{ out: Buffer; code: number | null }>((resolve) => {
      const tick = () => {
        for (let i = 0; i < 50 && !sink.stats.broken; i++) w.writeRecord(1, 0, Buffer.alloc(200));
        if (sink.stats.broken) resolve(done);
        else setTimeout(tick, 5);
      };
      tick();
    });
    expect(out.length).toBe(100);
    expect(sink.stats.broken).toBe(true);
    expect(() => w.writeRecord(2, 0, Buffer.alloc(60))).not.toThrow();
    expect(() => w.close()).not.toThrow();
  });
});

describe('fileSink when the writer is killed', () => {
  it('leaves whole records, except possibly a last one cut at a page boundary', async () => {
    const out = join(dir, 'killed.pcapng');
    const script = join(dir, 'writer.mts');
    const src = (f: string) => JSON.stringify(join(REPO, 'src/pcap', f));
    writeFileSync(
      script,
      `import { PcapngWriter } from ${src('pcapng-writer.ts')};
import { fileSink } from ${src('sink.ts')};
const w = new PcapngWriter(fileSink(${JSON.stringify(out)}));
const id = w.addInterface({ name: 'pa' });
let n = 0;
for (;;) {
  w.writePacket(id, 1_700_000_000, n % 1e9, Buffer.alloc(64 + (n % 1400), n & 0xff), { comment: 'n' + n });
  if (++n === 2000) process.stdout.write('go\\n');
}
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
    const size = readFileSync(out).length;
    const cap = readCaptureSync(out, { allowTruncatedTail: true });
    expect(cap.count).toBeGreaterThanOrEqual(2000);
    // Every record that is there is whole: the last one's comment survived.
    const recs = [...cap.records()];
    expect(recs.at(-1)!.comment).toBe(`n${recs.length - 1}`);
    if (cap.truncatedTail) {
      // SIGKILL stopped the kernel's copy of the last write at a page boundary (see sink.ts).
      expect(cap.truncatedTail.message).toMatch(/truncated block/);
      expect(size % 4096).toBe(0);
      expect(() => readCaptureSync(out)).toThrow(/truncated block/);
    }
  });
});

describeWithTools(['tshark'], 'tshark reading from a FIFO', () => {
  it.skipIf(!haveMkfifo)('reads a live pcapng stream', async () => {
    const path = fifo('tshark.pcapng');
    const ts = spawn(findTool('tshark')!, ['-r', path, '-T', 'fields', '-e', 'frame.packet_flags_direction'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const done = collect(ts);
    const fd = openSync(path, 'w');
    const w = new PcapngWriter(fdSink(fd));
    const id = w.addInterface({ name: 'pa' });
    for (let i = 0; i < 10; i++) w.writePacket(id, 1_700_000_000 + i, 0, Buffer.alloc(60, 1), { direction: i % 2 ? 'out' : 'in' });
    w.close();
    closeSync(fd);
    const { out, code } = await done;
    expect(code).toBe(0);
    expect(out.toString().trim().split('\n').map(Number)).toEqual([1, 2, 1, 2, 1, 2, 1, 2, 1, 2]);
  });
});
