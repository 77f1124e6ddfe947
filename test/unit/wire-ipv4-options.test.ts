import { describe, expect, it } from 'vitest';
import { echoOptions, recordRoute } from '../../src/wire/ipv4-options.ts';

/** A 20-byte header (contents irrelevant here) followed by `opts`, padded to a multiple of 4. */
function header(opts: number[]): Buffer {
  const pad = (4 - (opts.length % 4)) % 4;
  const b = Buffer.alloc(20 + opts.length + pad, 0xa5);
  b[0] = 0x40 | ((20 + opts.length + pad) / 4);
  Buffer.from([...opts, ...new Array(pad).fill(0)]).copy(b, 20);
  return b;
}

const rr = (slots: number, pointer = 4): number[] => [7, 3 + 4 * slots, pointer, ...new Array(4 * slots).fill(0)];

describe('Record Route', () => {
  it('writes the address into the next free slot and advances the pointer, after NOPs', () => {
    const b = header([1, ...rr(3)]);
    expect(recordRoute(b, 0, b.length, 0x0af40101)).toBe(true);
    expect([...b.subarray(21, 24 + 4)]).toEqual([7, 15, 8, 10, 244, 1, 1]);
    expect(recordRoute(b, 0, b.length, 0x0af40201)).toBe(true);
    expect(b[23]).toBe(12);
    expect([...b.subarray(28, 32)]).toEqual([10, 244, 2, 1]);
  });

  it('leaves a full option, a bad pointer and a header without it alone', () => {
    const full = header(rr(1, 8));
    expect(recordRoute(full, 0, full.length, 1)).toBe(false);
    const bad = header(rr(2, 3));
    expect(recordRoute(bad, 0, bad.length, 1)).toBe(false);
    const none = header([1, 1, 1, 0]);
    expect(recordRoute(none, 0, none.length, 1)).toBe(false);
    const lying = header([7, 40, 4]);
    expect(recordRoute(lying, 0, lying.length, 1)).toBe(false);
  });
});

describe('echoOptions', () => {
  it('moves Record Route to the front and pads the rest with end-of-options, keeping the length', () => {
    const b = header([1, ...rr(2, 8)]);
    b.writeUInt32BE(0x0af40102, 24);
    expect(echoOptions(b, 0, b.length)).toBe(true);
    expect([...b.subarray(20, 32)]).toEqual([7, 11, 8, 10, 244, 1, 2, 0, 0, 0, 0, 0]);
  });

  it('turns options it does not keep into end-of-options', () => {
    const b = header([68, 8, 5, 0, 0, 0, 0, 0]);
    expect(echoOptions(b, 0, b.length)).toBe(true);
    expect([...b.subarray(20)]).toEqual(new Array(8).fill(0));
  });
});
