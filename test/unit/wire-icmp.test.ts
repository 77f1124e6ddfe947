import { describe, expect, it } from 'vitest';
import {
  ICMP_HLEN, ICMP_TIMESTAMP_LEN, IcmpRepr, IcmpType, IcmpUnreachCode, IcmpView, icmpHasIdSeq, isIcmpError, writeIcmpEcho, writeIcmpError,
  writeIcmpTimestamp,
} from '../../src/wire/icmp.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// Echo request id 0x1234 seq 1 with data "abcd"; checksum 0x2104 computed independently
const ECHO = hex('08 00 21 04 12 34 00 01 61 62 63 64');
// The quoted original: an IPv4/UDP header (28 bytes)
const QUOTED = hex('45 00 00 1c 00 01 00 00 40 11 66 cc 0a 00 00 02 0a 00 00 01 00 00 00 00 00 00 00 00');
// Echo reply id 0x1234 seq 1 that kept its request's code 3; checksum computed independently
const ECHO_REPLY_CODE3 = hex('00 03 29 01 12 34 00 01 61 62 63 64');
// Timestamp reply id 0x1234 seq 2: originate 0x01020304, receive 0x05060708, transmit 0x05060709
const TS_REPLY = hex('0e 00 c3 a6 12 34 00 02 01 02 03 04 05 06 07 08 05 06 07 09');
// Destination unreachable, fragmentation needed, next-hop MTU 1400, quoting QUOTED
const FRAG_NEEDED = Buffer.concat([hex('03 04 f7 85 00 00 05 78'), QUOTED]);

describe('wire/icmp', () => {
  const v = new IcmpView();

  it('deconstructs an echo request', () => {
    v.bind(ECHO, 0, ECHO.length);
    expect(v.checkLen()).toBeNull();
    expect(v.type).toBe(IcmpType.ECHO_REQUEST);
    expect(v.code).toBe(0);
    expect(v.checksum).toBe(0x2104);
    expect(v.ident).toBe(0x1234);
    expect(v.seq).toBe(1);
    expect(v.dataOffset).toBe(8);
    expect(v.checksumOk()).toBe(true);
    expect(IcmpRepr.parse(ECHO, 0, ECHO.length)).toEqual({ type: 8, code: 0, ident: 0x1234, seq: 1, data: Buffer.from('abcd') });
  });

  it('deconstructs a fragmentation-needed error', () => {
    v.bind(FRAG_NEEDED, 0, FRAG_NEEDED.length);
    expect(v.type).toBe(IcmpType.DEST_UNREACH);
    expect(v.code).toBe(IcmpUnreachCode.FRAG_NEEDED);
    expect(v.nextHopMtu).toBe(1400);
    expect(v.checksumOk()).toBe(true);
    expect(isIcmpError(v.type)).toBe(true);
    expect(isIcmpError(8)).toBe(false);
    expect(icmpHasIdSeq(0)).toBe(true);
    expect(icmpHasIdSeq(3)).toBe(false);
  });

  it('constructs an echo into a 0xa5 buffer', () => {
    const b = Buffer.alloc(14, 0xa5);
    b.write('abcd', 9);
    expect(writeIcmpEcho(b, 1, IcmpType.ECHO_REQUEST, 0x1234, 1, 4)).toBe(12);
    expect(b).toEqual(Buffer.concat([hex('a5'), ECHO, hex('a5')]));
  });

  it('constructs an echo reply keeping a non-zero code', () => {
    const b = Buffer.alloc(14, 0xa5);
    b.write('abcd', 9);
    expect(writeIcmpEcho(b, 1, IcmpType.ECHO_REPLY, 0x1234, 1, 4, 3)).toBe(12);
    expect(b).toEqual(Buffer.concat([hex('a5'), ECHO_REPLY_CODE3, hex('a5')]));
  });

  it('constructs a timestamp reply into a 0xa5 buffer and reads it back', () => {
    const b = Buffer.alloc(22, 0xa5);
    expect(writeIcmpTimestamp(b, 1, IcmpType.TIMESTAMP_REPLY, 0, 0x1234, 2, 0x01020304, 0x05060708, 0x05060709)).toBe(ICMP_TIMESTAMP_LEN);
    expect(b).toEqual(Buffer.concat([hex('a5'), TS_REPLY, hex('a5')]));
    v.bind(TS_REPLY, 0, TS_REPLY.length);
    expect([v.type, v.ident, v.seq, v.originate, v.receive, v.transmit]).toEqual([14, 0x1234, 2, 0x01020304, 0x05060708, 0x05060709]);
    expect(v.checksumOk()).toBe(true);
  });

  it('constructs an error quoting part of another buffer', () => {
    const src = Buffer.concat([hex('ee ee'), QUOTED, hex('ff ff ff')]);
    const b = Buffer.alloc(ICMP_HLEN + QUOTED.length + 2, 0xa5);
    expect(writeIcmpError(b, 1, IcmpType.DEST_UNREACH, IcmpUnreachCode.FRAG_NEEDED, 1400, src, 2, QUOTED.length)).toBe(36);
    expect(b).toEqual(Buffer.concat([hex('a5'), FRAG_NEEDED, hex('a5')]));
  });

  it('turns a request into a reply with an incremental checksum', () => {
    const b = Buffer.from(ECHO);
    v.bind(b, 0, b.length);
    v.makeEchoReply();
    expect(v.type).toBe(IcmpType.ECHO_REPLY);
    expect(v.checksumOk()).toBe(true);
    expect(b).toEqual(hex('00 00 29 04 12 34 00 01 61 62 63 64'));
    v.seq = 2;
    expect(v.checksumOk()).toBe(false);
    v.fillChecksum();
    expect(v.checksumOk()).toBe(true);
  });

  it('rejects a truncated header', () => {
    expect(v.bind(ECHO, 0, 7).checkLen()).toBe('truncated icmp header');
    expect(IcmpRepr.parse(ECHO, 0, 7)).toBe('truncated icmp header');
  });

  it('reports a bad checksum through the Repr', () => {
    const b = Buffer.from(ECHO);
    b[11] ^= 0x40;
    expect(IcmpRepr.parse(b, 0, b.length)).toBe('bad icmp checksum');
  });
});
