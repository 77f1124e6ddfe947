/**
 * RFC 1624 incremental updates equal a full recomputation: 100,000 random headers (10-30
 * 16-bit words, checksum field anywhere), one field rewritten each (a 16-bit word, or a
 * 32-bit value such as an IPv4 address at any even offset), seeded so a failure reproduces.
 * checksumVerifies (ip4-input's check) says what the reference says, at any offset, for
 * 20-byte headers (its unrolled path) and other lengths, on good, bad and all-zero blocks.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { foldChecksum, internetChecksum, checksumVerifies, onesComplementSum, updateChecksum16, updateChecksum32 } from '../../src/wire/checksum.ts';
import { writeVxlanOuterHeaders } from '../../src/wire/vxlan.ts';

const SEED = 0x6e6f6465;
const RUNS = 100_000;

/** A reference checksum, written independently of src/wire/checksum.ts. */
function reference(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

const allZeroExcept = (b: Buffer, skip: number) => b.every((x, i) => x === 0 || i === skip || i === skip + 1);

/** Random header, the even offset of its checksum field, the even offset of the rewritten field. */
const header = (fieldBytes: number) =>
  fc.integer({ min: 10, max: 30 }).chain((words) =>
    fc.record({
      bytes: fc.uint8Array({ minLength: words * 2, maxLength: words * 2 }),
      csum: fc.integer({ min: 0, max: words - 1 }).map((w) => w * 2),
      field: fc.integer({ min: 0, max: words - fieldBytes / 2 }).map((w) => w * 2),
    }),
  ).filter((h) => h.field + fieldBytes <= h.csum || h.field >= h.csum + 2);

/** Stores the full checksum of `b` at `csum`; returns it. */
function fill(b: Buffer, csum: number): number {
  b.writeUInt16BE(0, csum);
  const c = internetChecksum(b, 0, b.length);
  b.writeUInt16BE(c, csum);
  return c;
}

describe('incremental checksum updates (RFC 1624 eqn. 3)', () => {
  it('agrees with the reference implementation on full sums', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 80 }), fc.integer({ min: 0, max: 0xffff }), (a, acc) => {
        const b = Buffer.from(a);
        expect(internetChecksum(b, 0, b.length)).toBe(reference(a));
        // an accumulator (e.g. a pseudo header) is the same as prepending its word
        const withAcc = Buffer.concat([Buffer.from([acc >>> 8, acc & 0xff]), b.length % 2 ? Buffer.concat([b, Buffer.alloc(1)]) : b]);
        expect(internetChecksum(b, 0, b.length, acc)).toBe(reference(withAcc));
        expect(onesComplementSum(b, 0, b.length, acc) - acc).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 2_000, seed: SEED },
    );
  });

  it('folds accumulators of every size as the reference does, past int32 too (a 64 KiB super-frame)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 33 }), (acc) => {
        let s = acc;
        while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
        expect(foldChecksum(acc)).toBe(~s & 0xffff);
      }),
      { numRuns: 20_000, seed: SEED },
    );
  });

  it('writes the outer VXLAN headers with an IPv4 checksum that verifies', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 50, max: 65535 }), fc.integer({ min: 0, max: 0xffff }), fc.integer(), fc.integer(), (tos, total, ident, src, dst) => {
        const b = Buffer.alloc(40, 0xaa);
        writeVxlanOuterHeaders(b, 2, tos, total, ident, 64, src, dst, 40000, 8472, 1);
        expect(reference(b.subarray(2, 22))).toBe(0);
        expect([b.readUInt32BE(14) | 0, b.readUInt32BE(18) | 0, b.readUInt16BE(4), b.readUInt16BE(26)]).toEqual([src, dst, total, total - 20]);
      }),
      { numRuns: 5_000, seed: SEED },
    );
  });

  it(`updateChecksum16 after rewriting one 16-bit field equals recomputation (${RUNS} cases)`, () => {
    fc.assert(
      fc.property(header(2), fc.integer({ min: 0, max: 0xffff }), ({ bytes, csum, field }, newWord) => {
        const b = Buffer.from(bytes);
        const old = fill(b, csum);
        const oldWord = b.readUInt16BE(field);
        b.writeUInt16BE(newWord, field);
        // RFC 1624 §3: equality holds unless all data words are zero (0x0000 vs 0xffff, "-0").
        fc.pre(!allZeroExcept(b, csum) && !allZeroExcept(Buffer.from(bytes), csum));
        const full = fill(Buffer.from(b), csum);
        expect(updateChecksum16(old, oldWord, newWord)).toBe(full);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it(`updateChecksum32 after rewriting one 32-bit value equals recomputation (${RUNS} cases)`, () => {
    fc.assert(
      fc.property(header(4), fc.integer({ min: 0, max: 0xffffffff }), ({ bytes, csum, field }, newValue) => {
        const b = Buffer.from(bytes);
        const old = fill(b, csum);
        const oldValue = b.readUInt32BE(field);
        b.writeUInt32BE(newValue, field);
        fc.pre(!allZeroExcept(b, csum) && !allZeroExcept(Buffer.from(bytes), csum));
        const full = fill(Buffer.from(b), csum);
        expect(updateChecksum32(old, oldValue, newValue)).toBe(full);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it('the verified result also checks out as a whole (sum with checksum folds to zero)', () => {
    fc.assert(
      fc.property(header(4), fc.integer({ min: 0, max: 0xffffffff }), ({ bytes, csum, field }, newValue) => {
        const b = Buffer.from(bytes);
        const old = fill(b, csum);
        const oldValue = b.readUInt32BE(field);
        b.writeUInt32BE(newValue, field);
        b.writeUInt16BE(updateChecksum32(old, oldValue, newValue), csum);
        fc.pre(!allZeroExcept(b, csum));
        expect(internetChecksum(b, 0, b.length)).toBe(0);
      }),
      { numRuns: 10_000, seed: SEED + 1 },
    );
  });

  it('checksumVerifies agrees with the reference, 20-byte headers and other lengths, at any offset', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.constant(20), fc.integer({ min: 0, max: 80 })),
        fc.integer({ min: 0, max: 7 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 0xffff }),
        (len, off, good, salt) => {
          const b = Buffer.alloc(off + len + 3, 0xa5);
          for (let i = 0; i < len; i++) b[off + i] = (Math.imul(i + 1, salt + 0x9e37) >>> 7) & 0xff;
          // A good block carries its checksum in its first word (as an IPv4 header at 10).
          if (good && len >= 2) {
            b.writeUInt16BE(0, off);
            b.writeUInt16BE(reference(b.subarray(off, off + len)), off);
          }
          expect(checksumVerifies(new DataView(b.buffer, b.byteOffset, b.length), off, len)).toBe(reference(b.subarray(off, off + len)) === 0);
        },
      ),
      { numRuns: 20_000, seed: SEED + 2 },
    );
    // All zero never verifies (it sums to 0, not 0xffff), nor does a header with a flipped bit.
    const view = (b: Buffer): DataView => new DataView(b.buffer, b.byteOffset, b.length);
    expect(checksumVerifies(view(Buffer.alloc(20)), 0, 20)).toBe(false);
    const h = Buffer.from('4500003c1c4640004006b1e6ac100a63ac100a0c', 'hex');
    expect(checksumVerifies(view(h), 0, 20)).toBe(true);
    h[8] ^= 0x10;
    expect(checksumVerifies(view(h), 0, 20)).toBe(false);
  });
});
