import { describe, expect, it } from 'vitest';
import {
  MAC_BROADCAST, formatMac, isLocalMac, isMulticastMac, macHi, macLo, parseMac, readMac, writeMac,
} from '../../src/wire/mac.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('wire/mac', () => {
  it('deconstructs: reads 6 bytes as hi16 * 2^32 + lo32', () => {
    const b = hex('00 ff 0a 58 0a f4 01 01 ee');
    expect(readMac(b, 2)).toBe(0x0a580af40101);
    expect(readMac(hex('ff ff ff ff ff ff'), 0)).toBe(MAC_BROADCAST);
    expect(readMac(hex('fe ed fa ce be ef'), 0)).toBe(0xfeedfacebeef);
    expect(macHi(0xfeedfacebeef)).toBe(0xfeed);
    expect(macLo(0xfeedfacebeef)).toBe(0xfacebeef);
  });

  it('constructs into a buffer pre-filled with 0xa5 without touching neighbours', () => {
    const b = Buffer.alloc(10, 0xa5);
    writeMac(b, 2, 0x0e0000000002);
    expect(b).toEqual(hex('a5 a5 0e 00 00 00 00 02 a5 a5'));
    writeMac(b, 2, 0xffeeddccbbaa);
    expect(b).toEqual(hex('a5 a5 ff ee dd cc bb aa a5 a5'));
  });

  it('parses and formats text', () => {
    expect(parseMac('0A:58:0a:f4:01:01')).toBe(0x0a580af40101);
    expect(parseMac('0a-58-0a-f4-1-1')).toBe(0x0a580af40101);
    expect(formatMac(0x0a580af40101)).toBe('0a:58:0a:f4:01:01');
    expect(formatMac(MAC_BROADCAST)).toBe('ff:ff:ff:ff:ff:ff');
    expect(formatMac(0)).toBe('00:00:00:00:00:00');
  });

  it.each(['', '0a:58:0a:f4:01', '0a:58:0a:f4:01:01:02', 'zz:58:0a:f4:01:01', '0a:58-0a:f4:01:01', '0a5:8:0a:f4:01:01'])(
    'rejects bad text %j',
    (s) => {
      expect(() => parseMac(s)).toThrow(/invalid MAC/);
    },
  );

  it('classifies group and local addresses', () => {
    expect(isMulticastMac(MAC_BROADCAST)).toBe(true);
    expect(isMulticastMac(parseMac('01:00:5e:00:00:01'))).toBe(true);
    expect(isMulticastMac(parseMac('33:33:00:00:00:01'))).toBe(true);
    expect(isMulticastMac(parseMac('00:00:5e:00:00:01'))).toBe(false);
    expect(isMulticastMac(parseMac('fe:ff:ff:ff:ff:ff'))).toBe(false);
    expect(isLocalMac(parseMac('02:00:00:00:00:01'))).toBe(true);
    expect(isLocalMac(parseMac('00:10:db:88:d2:ef'))).toBe(false);
  });
});
