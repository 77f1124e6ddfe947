import { describe, expect, it } from 'vitest';
import { UDP_HLEN, UdpRepr, UdpView, writeUdpHeader } from '../../src/wire/udp.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const SRC = 0x0a000001; // 10.0.0.1
const DST = 0x0a000002; // 10.0.0.2

// 1234 > 53, length 10, checksum 0x7e67 (computed independently), data "hi"
const DGRAM = hex('04 d2 00 35 00 0a 7e 67 68 69');

describe('wire/udp', () => {
  const v = new UdpView();

  it('deconstructs a datagram', () => {
    v.bind(DGRAM, 0, DGRAM.length);
    expect(v.checkLen()).toBeNull();
    expect(v.srcPort).toBe(1234);
    expect(v.dstPort).toBe(53);
    expect(v.length).toBe(10);
    expect(v.checksum).toBe(0x7e67);
    expect(v.payloadOffset).toBe(8);
    expect(v.payloadLength).toBe(2);
    expect(v.checksumOk(SRC, DST)).toBe(true);
    expect(v.checksumOk(SRC, DST + 1)).toBe(false);
    expect(UdpRepr.parse(DGRAM, 0, 10, SRC, DST)).toEqual({ srcPort: 1234, dstPort: 53, payloadLen: 2 });
  });

  it('treats a zero checksum as none', () => {
    const b = Buffer.from(DGRAM);
    b.writeUInt16BE(0, 6);
    expect(v.bind(b, 0, 10).checksumOk(SRC, DST)).toBe(true);
  });

  it('constructs into a 0xa5 buffer and fills the checksum', () => {
    const b = Buffer.alloc(12, 0xa5);
    b.write('hi', 9);
    expect(writeUdpHeader(b, 1, 1234, 53, 10)).toBe(UDP_HLEN);
    expect(b.subarray(1, 7)).toEqual(DGRAM.subarray(0, 6));
    expect(b.readUInt16BE(7)).toBe(0);
    v.bind(b, 1, 10).fillChecksum(SRC, DST);
    expect(b).toEqual(Buffer.concat([hex('a5'), DGRAM, hex('a5')]));
    const r = Buffer.alloc(10, 0xa5);
    r.write('hi', 8);
    UdpRepr.emit({ srcPort: 1234, dstPort: 53, payloadLen: 2 }, r, 0, SRC, DST);
    expect(r).toEqual(DGRAM);
  });

  it('sends a computed zero checksum as 0xffff', () => {
    // Find data that makes the checksum compute to 0: choose the last word so the sum is 0xffff.
    const b = Buffer.alloc(10);
    writeUdpHeader(b, 0, 1, 2, 10);
    v.bind(b, 0, 10).fillChecksum(0, 0);
    const c = v.checksum; // the complement of the sum with data word 0
    b.writeUInt16BE(c, 8); // adding c to the sum makes it 0xffff -> computed checksum 0
    v.fillChecksum(0, 0);
    expect(v.checksum).toBe(0xffff);
    expect(v.checksumOk(0, 0)).toBe(true);
  });

  it('rejects a truncated header', () => {
    expect(v.bind(DGRAM, 0, 7).checkLen()).toBe('truncated udp header');
  });
  it('rejects a length below 8', () => {
    const b = Buffer.from(DGRAM);
    b.writeUInt16BE(7, 4);
    expect(v.bind(b, 0, 10).checkLen()).toBe('bad udp length');
  });
  it('rejects a length beyond the IP payload', () => {
    expect(v.bind(DGRAM, 0, 9).checkLen()).toBe('bad udp length');
  });
  it('reports a bad checksum through the Repr', () => {
    const b = Buffer.from(DGRAM);
    b[9] ^= 1;
    expect(UdpRepr.parse(b, 0, 10, SRC, DST)).toBe('bad udp checksum');
  });
});
