import { describe, expect, it } from 'vitest';
import { TCP_MIN_HLEN, TcpFlag, TcpRepr, TcpView, flagsString, writeTcpHeader } from '../../src/wire/tcp.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const SRC = 0x0a000001;
const DST = 0x0a000002;

// 40000 > 80, seq 0x01020304, ack 0xa0b0c0d0, data offset 5, SYN+ACK, window 65535,
// checksum 0xa73b (computed independently), urgent 0, data "xyz"
const SEG = hex('9c 40 00 50 01 02 03 04 a0 b0 c0 d0 50 12 ff ff a7 3b 00 00 78 79 7a');

describe('wire/tcp', () => {
  const v = new TcpView();

  it('deconstructs a segment', () => {
    v.bind(SEG, 0, SEG.length);
    expect(v.checkLen()).toBeNull();
    expect(v.srcPort).toBe(40000);
    expect(v.dstPort).toBe(80);
    expect(v.seq).toBe(0x01020304);
    expect(v.ack).toBe(0xa0b0c0d0);
    expect(v.dataOffset).toBe(20);
    expect(v.flags).toBe(TcpFlag.SYN | TcpFlag.ACK);
    expect(v.flags9).toBe(0x12);
    expect(v.window).toBe(65535);
    expect(v.checksum).toBe(0xa73b);
    expect(v.urgent).toBe(0);
    expect(v.payloadOffset).toBe(20);
    expect(v.checksumOk(SRC, DST, SEG.length)).toBe(true);
    expect(v.checksumOk(SRC, DST, SEG.length - 1)).toBe(false);
    expect(TcpRepr.parse(SEG, 0, SEG.length, SRC, DST)).toEqual({
      srcPort: 40000, dstPort: 80, seq: 0x01020304, ack: 0xa0b0c0d0, flags: 0x12, window: 65535, payloadLen: 3,
    });
  });

  it('constructs into a 0xa5 buffer', () => {
    const b = Buffer.alloc(25, 0xa5);
    b.write('xyz', 21);
    expect(writeTcpHeader(b, 1, 40000, 80, 0x01020304, 0xa0b0c0d0, TcpFlag.SYN | TcpFlag.ACK, 65535)).toBe(TCP_MIN_HLEN);
    v.bind(b, 1, 23).fillChecksum(SRC, DST, 23);
    expect(b).toEqual(Buffer.concat([hex('a5'), SEG, hex('a5')]));
  });

  it('writes flags as letters, FIN first', () => {
    expect(flagsString(TcpFlag.SYN | TcpFlag.ACK)).toBe('SA');
    expect(flagsString(TcpFlag.SYN)).toBe('S');
    expect(flagsString(TcpFlag.FIN | TcpFlag.ACK)).toBe('FA');
    expect(flagsString(TcpFlag.PSH | TcpFlag.ACK)).toBe('PA');
    expect(flagsString(TcpFlag.RST | TcpFlag.ACK)).toBe('RA');
    expect(flagsString(0x1ff)).toBe('FSRPAUECN');
    expect(flagsString(0)).toBe('');
  });

  it('setters write in place', () => {
    const b = Buffer.from(SEG);
    v.bind(b, 0, b.length);
    v.srcPort = 1;
    v.dstPort = 2;
    v.seq = 0xffffffff;
    v.ack = 0x80000000;
    v.flags = TcpFlag.RST;
    v.window = 3;
    v.urgent = 4;
    expect(b.subarray(0, 20)).toEqual(hex('00 01 00 02 ff ff ff ff 80 00 00 00 50 04 00 03 a7 3b 00 04'));
    expect(v.seq).toBe(0xffffffff);
  });

  it('rejects a truncated header', () => {
    expect(v.bind(SEG, 0, 19).checkLen()).toBe('truncated tcp header');
  });
  it('rejects a data offset below 20', () => {
    const b = Buffer.from(SEG);
    b[12] = 0x40;
    expect(v.bind(b, 0, b.length).checkLen()).toBe('bad tcp data offset');
  });
  it('rejects options beyond the segment', () => {
    const b = Buffer.from(SEG);
    b[12] = 0x60;
    expect(v.bind(b, 0, 23).checkLen()).toBe('truncated tcp options');
  });
  it('reports a bad checksum through the Repr', () => {
    const b = Buffer.from(SEG);
    b[22] ^= 1;
    expect(TcpRepr.parse(b, 0, b.length, SRC, DST)).toBe('bad tcp checksum');
  });
});
