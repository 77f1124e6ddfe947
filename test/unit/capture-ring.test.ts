/**
 * The capture fast path: EPBs laid straight into memory (src/pcap/pcapng-epb.ts) are the
 * bytes PcapngWriter writes for the same packet, copied at once or as ranges noted and copied
 * in one call (the addon's copyRanges); a PortCapture writing through its ring and worker
 * (src/capture/capture-ring.ts) leaves every record, in order, each block within one
 * 4096-byte page; and a ring whose worker cannot write (a FIFO nobody reads yet) refuses
 * room instead of blocking, then writes everything once the worker can.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CaptureRing } from '../../src/capture/capture-ring.ts';
import { PortCapture } from '../../src/capture/port-capture.ts';
import { FramePool } from '../../src/core/frame-pool.ts';
import { type CopyRanges, EPB_OUTBOUND, EpbLayout, epbBytes, FILE_PAGE_SIZE, PAD_BLOCK_TYPE } from '../../src/pcap/pcapng-epb.ts';
import { nativeAddon } from '../../src/ports/native-addon.ts';
import { PcapngWriter } from '../../src/pcap/pcapng-writer.ts';
import { readCaptureSync } from '../../src/pcap/reader.ts';
import { memorySink } from '../../src/pcap/sink.ts';

const dir = mkdtempSync(join(tmpdir(), 'nodeplane-ring-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const samePage = (off: number, len: number): boolean => Math.floor(off / FILE_PAGE_SIZE) === Math.floor((off + len - 1) / FILE_PAGE_SIZE);

/** [type, offset, length] of every block of a little-endian pcapng, walked without the decoder. */
function blocks(file: Buffer): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let p = 0; p < file.length; ) {
    const len = file.readUInt32LE(p + 4);
    expect(file.readUInt32LE(p + len - 4)).toBe(len);
    out.push([file.readUInt32LE(p), p, len]);
    p += len;
  }
  return out;
}

const addon = nativeAddon();
const copyRanges = 'addon' in addon ? (addon.addon as { copyRanges?: CopyRanges }).copyRanges : undefined;

describe('EpbLayout', () => {
  it('lays out the bytes PcapngWriter writes: direction, comment, caplen below the length, odd lengths', () => {
    const frame = Buffer.from(Array.from({ length: 75 }, (_, i) => (i * 7) & 0xff));
    const cases: Array<{ caplen: number; flags: number; comment: string | null }> = [
      { caplen: 75, flags: EPB_OUTBOUND, comment: null },
      { caplen: 61, flags: 1, comment: null },
      { caplen: 75, flags: 0, comment: 'ip4-forward: ip4.ttl-expired (ttl expired in transit)' },
      { caplen: 72, flags: 0, comment: null },
    ];
    for (const c of cases) {
      const sink = memorySink();
      const w = new PcapngWriter(sink);
      w.addInterface({ name: 'pa', snaplen: c.caplen });
      const header = sink.bytes().length;
      w.writePacketFrom(0, 1_700_000_000, 123_456_000, frame, 0, 75, {
        direction: c.flags === 0 ? undefined : c.flags === 1 ? 'in' : 'out',
        comment: c.comment ?? undefined,
        origLen: 75,
      });
      const expected = sink.bytes().subarray(header);
      const us = 1_700_000_000_123_456;
      const buf = Buffer.alloc(512, 0xa5); // stale bytes: every pad byte must be written
      const comment = c.comment === null ? null : Buffer.from(c.comment);
      const size = new EpbLayout(buf).epb(8, 0, Math.floor(us / 2 ** 32), us >>> 0, frame, 0, c.caplen, 75, c.flags, comment);
      expect(size).toBe(epbBytes(c.caplen, c.flags !== 0, comment?.length ?? 0));
      expect(buf.subarray(8, 8 + size).equals(expected), JSON.stringify(c)).toBe(true);
      // The same with the copies noted and made in one call, into shared memory.
      if (copyRanges !== undefined) {
        const shared = Buffer.from(new SharedArrayBuffer(512)).fill(0xa5);
        const deferred = new EpbLayout(shared, copyRanges);
        deferred.epb(8, 0, Math.floor(us / 2 ** 32), us >>> 0, frame, 0, c.caplen, 75, c.flags, comment);
        deferred.pad(8 + size, 40);
        deferred.flushCopies();
        expect(shared.subarray(8, 8 + size).equals(expected), `deferred ${JSON.stringify(c)}`).toBe(true);
        expect([...shared.subarray(8 + size + 8, 8 + size + 36)].every((b) => b === 0)).toBe(true);
      }
    }
  });
});

describe('PortCapture through its ring', () => {
  it('writes every record in order, each block within one page, whole frames and cut ones', () => {
    const pool = new FramePool(512);
    const sizes = Array.from({ length: 300 }, (_, i) => 60 + ((i * 977) % 1455));
    const slots = sizes.map((n, i) => pool.fill(Buffer.alloc(n, i & 0xff), 0));
    let t = 1_700_000_000_000_000;
    const cap = new PortCapture({ dir, portNames: ['pa', 'pb'], snaplen: 1000, clock: { nowUs: () => (t += 10) }, prefix: 'order', capacity: 512 });
    for (let b = 0; b < slots.length; b += 30) {
      for (let i = b; i < b + 30; i++) (i % 2 === 0 ? cap.onRx(0, pool, slots[i]!) : cap.onTx(1, pool, slots[i]!));
      cap.flush(pool);
    }
    cap.close();
    expect(cap.packets).toBe(300);
    expect(cap.ringDrops).toBe(0);
    const file = join(dir, readdirSync(dir).find((f) => f.startsWith('order-'))!);
    const bytes = readFileSync(file);
    for (const [type, off, len] of blocks(bytes)) if (type !== PAD_BLOCK_TYPE) expect(samePage(off, len), `block ${type} at ${off}`).toBe(true);
    const records = [...readCaptureSync(file).records()];
    expect(records.map((r) => r.origLen)).toEqual(sizes);
    expect(records.map((r) => r.data.length)).toEqual(sizes.map((n) => Math.min(n, 1000)));
    expect(records.map((r) => r.data[0])).toEqual(sizes.map((_, i) => i & 0xff));
    expect(records.map((r) => r.flags)).toEqual(sizes.map((_, i) => (i % 2 === 0 ? 1 : 2)));
    expect(records.map((r) => r.interfaceId)).toEqual(sizes.map((_, i) => i % 2));
  });
});

describe('CaptureRing', () => {
  it('refuses room, never blocks, while its worker cannot write; writes it all once the worker can', () => {
    const fifo = join(dir, 'slow.fifo');
    execFileSync('mkfifo', [fifo]);
    const size = 1024 * 1024;
    const ring = new CaptureRing(size);
    ring.open(fifo); // the worker now waits in open(2) for a reader
    const batch = 16 * 1024;
    let written = 0;
    const t0 = Date.now();
    for (let i = 0; i < 1000; i++) {
      const off = ring.reserve(batch);
      if (off < 0) break;
      ring.layout.buf.fill(i & 0xff, off, off + batch);
      ring.commit(off, batch);
      written += batch;
    }
    expect(Date.now() - t0).toBeLessThan(1000);
    // The ring holds what fits in it (a unit header per batch, the path to open); no more.
    expect(written).toBeGreaterThan(size - 3 * batch);
    expect(written).toBeLessThan(size);
    expect(ring.reserve(batch)).toBe(-1);
    const fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const got: Buffer[] = [];
    const buf = Buffer.alloc(1 << 16);
    let total = 0;
    const deadline = Date.now() + 10_000;
    while (total < written && Date.now() < deadline) {
      let n = 0;
      try {
        n = readSync(fd, buf);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      }
      if (n > 0) {
        got.push(Buffer.from(buf.subarray(0, n)));
        total += n;
      }
    }
    ring.close();
    closeSync(fd);
    const all = Buffer.concat(got);
    expect(all.length).toBe(written);
    for (let i = 0; i < written / batch; i++) expect(all[i * batch], `batch ${i}`).toBe(i & 0xff);
  });
});
