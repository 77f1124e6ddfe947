// The stream reader, fed the same bytes in arbitrary chunk sizes, yields exactly the records
// readCaptureSync does; plus the tick arithmetic of pcapng timestamps against BigInt.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PcapngWriter } from '../../src/pcap/pcapng-writer.ts';
import { PcapWriter } from '../../src/pcap/pcap-writer.ts';
import { CaptureStreamReader, parseCapture } from '../../src/pcap/reader.ts';
import type { CaptureRecord } from '../../src/pcap/record.ts';
import { memorySink } from '../../src/pcap/sink.ts';
import { MICROSECOND_SCALE, NANOSECOND_SCALE, tickScaleFromTsresol, ticksToTime, timeToTicks } from '../../src/pcap/timestamp.ts';

const PUBLIC = fileURLToPath(new URL('../../../shared/captures/public/', import.meta.url));
const havePublic = existsSync(PUBLIC);
if (!havePublic) console.warn(`pcap-stream: no shared captures beside the repository (${PUBLIC}); using generated files only`);

/** A comparable copy of a record (data as hex, since views die with their buffer). */
function snap(r: CaptureRecord) {
  return { ...r, data: r.data.toString('hex') };
}

/** Generated inputs that exercise both formats and both pcapng byte-order paths we write. */
function generated(): [string, Buffer][] {
  const a = memorySink();
  const pw = new PcapWriter(a, { nanosecond: true });
  for (let i = 0; i < 20; i++) pw.writeRecord(1_700_000_000 + i, i * 7919, Buffer.alloc(i * 13 + 1, i));
  const b = memorySink();
  const nw = new PcapngWriter(b, { comment: 'x' });
  const i0 = nw.addInterface({ name: 'a' });
  const i1 = nw.addInterface({ name: 'b', tsResolNs: 1 });
  for (let i = 0; i < 20; i++) {
    nw.writePacket(i % 2 ? i1 : i0, 1_700_000_000, i * 1001, Buffer.alloc(i * 17 + 3, i), {
      direction: i % 3 ? 'in' : 'out',
      comment: i % 4 ? undefined : `c${i}`,
    });
  }
  return [
    ['gen-ns.pcap', a.bytes()],
    ['gen.pcapng', b.bytes()],
  ];
}

const inputs: [string, Buffer][] = [
  ...generated(),
  ...(havePublic
    ? readdirSync(PUBLIC)
        .filter((f) => /\.pcap(ng)?$/.test(f))
        .sort()
        .map((f): [string, Buffer] => [f, readFileSync(PUBLIC + f)])
    : []),
];

function streamRecords(name: string, bytes: Buffer, sizes: number[]): ReturnType<typeof snap>[] {
  const r = new CaptureStreamReader(name);
  const out: ReturnType<typeof snap>[] = [];
  let pos = 0;
  let k = 0;
  while (pos < bytes.length) {
    const n = sizes[k++ % sizes.length]!;
    for (const rec of r.feed(bytes.subarray(pos, pos + n))) out.push(snap(rec));
    pos += n;
  }
  for (const rec of r.end()) out.push(snap(rec));
  return out;
}

describe('CaptureStreamReader', () => {
  for (const [name, bytes] of inputs) {
    it(`matches readCaptureSync on ${name} for any chunking`, () => {
      const want = [...parseCapture(bytes, name).records()].map(snap);
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 1, max: Math.max(1, bytes.length) }), { minLength: 1, maxLength: 20 }), (sizes) => {
          expect(streamRecords(name, bytes, sizes)).toEqual(want);
        }),
        { numRuns: 25, seed: 0x5eed },
      );
      // The two extremes: one byte at a time and everything at once.
      expect(streamRecords(name, bytes, [1])).toEqual(want);
      expect(streamRecords(name, bytes, [bytes.length])).toEqual(want);
    });
  }

  it('returns undrained records from end() and keeps record views valid', () => {
    const [, bytes] = generated()[1]!;
    const r = new CaptureStreamReader('x.pcapng');
    void r.feed(bytes.subarray(0, 100)); // never iterated
    const first = [...r.feed(bytes.subarray(100, 600))];
    const rest = [...r.feed(bytes.subarray(600)), ...r.end()];
    const want = [...parseCapture(bytes, 'x').records()].map(snap);
    expect([...first, ...rest].map(snap)).toEqual(want);
    expect(r.format).toBe('pcapng');
    expect(r.interfaces.map((i) => i.name)).toEqual(['a', 'b']);
    expect(r.offset).toBe(bytes.length);
  });

  it('reports a truncated tail only at end()', () => {
    const [, bytes] = generated()[0]!;
    const r = new CaptureStreamReader('t.pcap');
    const got = [...r.feed(bytes.subarray(0, bytes.length - 3))];
    expect(got.length).toBe(19);
    expect(() => r.end()).toThrow(/t\.pcap: truncated record data in record 20 \(\d+ of 248 bytes\) at byte offset \d+/);
  });
});

describe('pcapng tick arithmetic', () => {
  const big = (hi: number, lo: number) => (BigInt(hi) << 32n) | BigInt(lo);

  it('ticksToTime agrees with BigInt division for every supported resolution', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.oneof(fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0x80, max: 0x80 + 45 })),
        (hi, lo, resol) => {
          const s = tickScaleFromTsresol(resol)!;
          const t = ticksToTime(hi, lo, s, { sec: 0, nsec: 0 });
          const ticks = big(hi, lo);
          const tps = BigInt(s.ticksPerSec);
          // Seconds beyond 2^53 cannot be a number at all (year 285 million): out of scope.
          fc.pre(ticks / tps <= BigInt(Number.MAX_SAFE_INTEGER));
          expect(BigInt(t.sec)).toBe(ticks / tps);
          expect(BigInt(t.nsec)).toBe(((ticks % tps) * 1_000_000_000n) / tps);
        },
      ),
      { numRuns: 2000, seed: 42 },
    );
  });

  it('timeToTicks is exact for µs and ns and inverts ticksToTime', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 999_999_999 }), (sec, nsec) => {
        for (const s of [MICROSECOND_SCALE, NANOSECOND_SCALE]) {
          const t = timeToTicks(sec, nsec, s, { hi: 0, lo: 0 });
          const want = BigInt(sec) * BigInt(s.ticksPerSec) + BigInt(Math.floor(nsec / s.nsMul));
          expect(big(t.hi, t.lo)).toBe(want);
          const back = ticksToTime(t.hi, t.lo, s, { sec: 0, nsec: 0 });
          expect(back).toEqual({ sec, nsec: nsec - (nsec % s.nsMul) });
        }
      }),
      { numRuns: 2000, seed: 7 },
    );
  });

  it('rejects resolutions too fine to convert exactly', () => {
    expect(tickScaleFromTsresol(15)).toBeUndefined();
    expect(tickScaleFromTsresol(0x80 + 46)).toBeUndefined();
    expect(tickScaleFromTsresol(0x80 + 10)!.nsPerTick).toBeCloseTo(1e9 / 1024);
  });
});

describe('allowTruncatedTail', () => {
  const [, bytes] = generated()[1]!;
  const cut = bytes.subarray(0, bytes.length - 10);

  it('ends the capture at the last whole block instead of failing', () => {
    expect(() => parseCapture(cut, 'cut.pcapng')).toThrow(/truncated block/);
    const cap = parseCapture(cut, 'cut.pcapng', { allowTruncatedTail: true });
    expect(cap.count).toBe(19);
    expect([...cap.records()].length).toBe(19);
    expect(cap.truncatedTail?.message).toMatch(/^cut\.pcapng: truncated block \(\d+ of \d+ bytes\) at byte offset \d+$/);
    const r = new CaptureStreamReader('cut.pcapng', { allowTruncatedTail: true });
    expect([...r.feed(cut), ...r.end()].length).toBe(19);
    expect(r.truncatedTail?.offset).toBe(cap.truncatedTail!.offset);
  });

  it('still rejects an empty file or a cut file header', () => {
    expect(() => parseCapture(Buffer.alloc(0), 'e', { allowTruncatedTail: true })).toThrow(/empty file/);
    expect(() => parseCapture(bytes.subarray(0, 3), 'h', { allowTruncatedTail: true })).toThrow(/truncated file header/);
  });
});
