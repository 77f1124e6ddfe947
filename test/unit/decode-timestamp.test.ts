/**
 * The time stamp of `nodeplane decode`'s text lines: UTC date and time computed without a
 * Date (format-text.ts), which must give Date's text for every whole second it covers
 * (1970 up to the year 10000), and still go through Date outside that range.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatTimestamp } from '../../src/decode/format-text.ts';

const YEAR_10000 = 253402300800;
const byDate = (s: number) => new Date(s * 1000).toISOString().slice(0, 19).replace('T', ' ');

describe('formatTimestamp', () => {
  it('gives the date and time Date gives, for any second from 1970 to the year 9999', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: YEAR_10000 - 1 }), (s) => {
        expect(formatTimestamp(s, 0, false)).toBe(`${byDate(s)}.000000`);
      }),
      { numRuns: 20_000 },
    );
  });

  it('is right at the edges of days, months, leap days and centuries', () => {
    const cases: Array<[string, string]> = [
      ['1970-01-01T00:00:00Z', '1970-01-01 00:00:00'],
      ['1972-02-29T23:59:59Z', '1972-02-29 23:59:59'],
      ['2000-02-29T12:00:00Z', '2000-02-29 12:00:00'],
      ['2000-03-01T00:00:00Z', '2000-03-01 00:00:00'],
      ['2023-11-14T22:13:20Z', '2023-11-14 22:13:20'],
      ['2100-02-28T23:59:59Z', '2100-02-28 23:59:59'],
      ['2100-03-01T00:00:00Z', '2100-03-01 00:00:00'],
      ['2106-02-07T06:28:15Z', '2106-02-07 06:28:15'], // the last second of a pcap's 32-bit field
      ['9999-12-31T23:59:59Z', '9999-12-31 23:59:59'],
    ];
    for (const [iso, text] of cases) expect(formatTimestamp(Date.parse(iso) / 1000, 0, false)).toBe(`${text}.000000`);
  });

  it('keeps the fraction: microseconds, or nanoseconds when asked', () => {
    expect(formatTimestamp(1700000000, 10_000_000, false)).toBe('2023-11-14 22:13:20.010000');
    expect(formatTimestamp(1700000000, 123_456_789, true)).toBe('2023-11-14 22:13:20.123456789');
  });

  it('falls back to Date beyond the year 9999 and for seconds that are not whole', () => {
    expect(formatTimestamp(YEAR_10000, 0, false)).toBe(`${byDate(YEAR_10000)}.000000`);
    expect(formatTimestamp(1.5, 0, false)).toBe('1970-01-01 00:00:01.000000');
    expect(formatTimestamp(1e300, 0, false)).toBe('1e+300.000000');
  });
});
