import { describe, expect, it } from 'vitest';
import { IPV4_FLAG_DF, IPV4_FLAG_MF, IpProto, Ipv4Repr, Ipv4View, writeIpv4, writeIpv4Header } from '../../src/wire/ipv4.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// 10.0.0.1 > 10.0.0.2, TCP, total length 48, id 0xbeef, DF, ttl 64, checksum 0x67d6 (computed independently)
const HDR = hex('45 00 00 30 be ef 40 00 40 06 67 d6 0a 00 00 01 0a 00 00 02');
// IHL 6 with a 4-byte option (NOP NOP NOP EOL), tos 0xb8, total 28, MF, offset 185 units, ttl 1, UDP
const HDR_OPT = hex('46 b8 00 1c 00 07 20 b9 01 11 81 56 0a 00 00 01 0a 00 00 02 01 01 01 00');
// The textbook example (checksum 0xb861)
const WIKI = hex('45 00 00 73 00 00 40 00 40 11 b8 61 c0 a8 00 01 c0 a8 00 c7');

const withPayload = (h: Buffer, total: number) => Buffer.concat([h, Buffer.alloc(total - h.length, 0x11)]);

describe('wire/ipv4', () => {
  const v = new Ipv4View();

  it('deconstructs a header', () => {
    const b = withPayload(HDR, 48);
    v.bind(b, 0, b.length);
    expect(v.checkLen()).toBeNull();
    expect(v.version).toBe(4);
    expect(v.ihl).toBe(20);
    expect(v.headerLength).toBe(20);
    expect(v.tos).toBe(0);
    expect(v.totalLength).toBe(48);
    expect(v.ident).toBe(0xbeef);
    expect(v.df).toBe(true);
    expect(v.mf).toBe(false);
    expect(v.fragOffset).toBe(0);
    expect(v.isFragment).toBe(false);
    expect(v.ttl).toBe(64);
    expect(v.protocol).toBe(IpProto.TCP);
    expect(v.checksum).toBe(0x67d6);
    expect(v.src).toBe(0x0a000001);
    expect(v.dst).toBe(0x0a000002);
    expect(v.payloadOffset).toBe(20);
    expect(v.payloadLength).toBe(28);
    expect(v.checksumOk()).toBe(true);
    expect(v.bind(WIKI, 0, 20).checksum).toBe(0xb861);
  });

  it('verifies the textbook checksum and a header with options', () => {
    const b = withPayload(WIKI, 0x73);
    expect(v.bind(b, 0, b.length).checkLen()).toBeNull();
    expect(v.checksumOk()).toBe(true);
    expect(v.src).toBe(0xc0a80001);
    const o = withPayload(HDR_OPT, 28);
    v.bind(o, 0, o.length);
    expect(v.checkLen()).toBeNull();
    expect(v.ihl).toBe(24);
    expect(v.dscp).toBe(46);
    expect(v.ecn).toBe(0);
    expect(v.mf).toBe(true);
    expect(v.fragOffsetUnits).toBe(185);
    expect(v.fragOffset).toBe(1480);
    expect(v.isFragment).toBe(true);
    expect(v.payloadOffset).toBe(24);
    expect(v.checksumOk()).toBe(true);
  });

  it('constructs with writeIpv4 into a 0xa5 buffer', () => {
    const b = Buffer.alloc(22, 0xa5);
    expect(writeIpv4(b, 1, 0, 48, 0xbeef, IPV4_FLAG_DF, 64, IpProto.TCP, 0x0a000001, 0x0a000002)).toBe(20);
    expect(b).toEqual(Buffer.concat([hex('a5'), HDR, hex('a5')]));
  });

  it('writes the fixed part over options already in place, IHL and checksum covering them', () => {
    const b = Buffer.alloc(26, 0xa5);
    b.set([1, 1, 1, 0], 21);
    expect(writeIpv4(b, 1, 0xb8, 28, 7, IPV4_FLAG_MF | 185, 1, IpProto.UDP, 0x0a000001, 0x0a000002, 24)).toBe(24);
    expect(b).toEqual(Buffer.concat([hex('a5'), HDR_OPT, hex('a5')]));
  });

  it('constructs with options with writeIpv4Header', () => {
    const b = Buffer.alloc(26, 0xa5);
    const n = writeIpv4Header(b, 1, {
      tos: 0xb8, totalLength: 28, ident: 7, mf: true, fragOffset: 1480, ttl: 1, protocol: IpProto.UDP,
      src: 0x0a000001, dst: 0x0a000002, options: Uint8Array.of(1, 1, 1, 0),
    });
    expect(n).toBe(24);
    expect(b).toEqual(Buffer.concat([hex('a5'), HDR_OPT, hex('a5')]));
    const r = Buffer.alloc(20, 0xa5);
    Ipv4Repr.emit({ src: 0x0a000001, dst: 0x0a000002, protocol: 6, ttl: 64, tos: 0, ident: 0xbeef, df: true, mf: false, fragOffset: 0, payloadLen: 28 }, r, 0);
    expect(r).toEqual(HDR);
    expect(IPV4_FLAG_MF).toBe(0x2000);
  });

  it('decrements the TTL with an incremental checksum update, options included', () => {
    for (const h of [HDR, HDR_OPT, WIKI]) {
      const b = Buffer.from(h);
      v.bind(b, 0, b.length);
      const ttl = v.ttl;
      v.decrementTtl();
      expect(v.ttl).toBe(ttl - 1);
      expect(v.checksumOk()).toBe(true);
      const full = Buffer.from(b);
      new Ipv4View().bind(full, 0, full.length).fillChecksum();
      expect(v.checksum).toBe(full.readUInt16BE(10));
    }
  });

  it('setters write in place and fillChecksum repairs', () => {
    const b = withPayload(HDR, 48);
    v.bind(b, 0, b.length);
    v.src = 0xc0a80001;
    v.dst = 0xffffffff;
    v.df = false;
    v.mf = true;
    v.fragOffset = 16;
    v.ident = 1;
    v.ttl = 9;
    expect(v.checksumOk()).toBe(false);
    v.fillChecksum();
    expect(v.checksumOk()).toBe(true);
    expect(b.subarray(4, 10)).toEqual(hex('00 01 20 02 09 06'));
    expect(b.subarray(12, 20)).toEqual(hex('c0 a8 00 01 ff ff ff ff'));
    expect(v.src).toBe(0xc0a80001);
    expect(v.dst).toBe(0xffffffff);
  });

  it('rejects a truncated header', () => {
    expect(v.bind(HDR, 0, 19).checkLen()).toBe('truncated ipv4 header');
    const o = withPayload(HDR_OPT, 28);
    // IHL 24 but only 22 bytes present: the options are cut off
    expect(v.bind(o, 0, 22).checkLen()).toBe('truncated ipv4 header');
  });
  it('rejects a bad version', () => {
    const b = withPayload(HDR, 48);
    b[0] = 0x65;
    expect(v.bind(b, 0, 48).checkLen()).toBe('bad ipv4 version');
  });
  it('rejects a header length below 20', () => {
    const b = withPayload(HDR, 48);
    b[0] = 0x44;
    expect(v.bind(b, 0, 48).checkLen()).toBe('bad ipv4 header length');
  });
  it('rejects a total length below the header length', () => {
    const b = withPayload(HDR, 48);
    b.writeUInt16BE(19, 2);
    expect(v.bind(b, 0, 48).checkLen()).toBe('bad ipv4 total length');
  });
  it('rejects a total length beyond the bytes present', () => {
    const b = withPayload(HDR, 48);
    expect(v.bind(b, 0, 47).checkLen()).toBe('bad ipv4 total length');
    expect(Ipv4Repr.parse(b, 0, 47)).toBe('bad ipv4 total length');
  });
  it('accepts Ethernet padding after the packet', () => {
    const b = withPayload(HDR, 60);
    expect(v.bind(b, 0, 60).checkLen()).toBeNull();
  });
  it('reports a bad checksum through the Repr', () => {
    const b = withPayload(HDR, 48);
    b[11] ^= 1;
    expect(Ipv4Repr.parse(b, 0, 48)).toBe('bad ipv4 checksum');
  });
});
