import { describe, expect, it } from 'vitest';
import { ARP_LEN, ArpOp, ArpRepr, ArpView, writeArp, writeArpHiLo } from '../../src/wire/arp.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// Request who-has 10.0.0.1 tell 10.0.0.2 from 78:31:c1:c6:3f:c2
const REQUEST = hex('00 01 08 00 06 04 00 01  78 31 c1 c6 3f c2  0a 00 00 02  00 00 00 00 00 00  0a 00 00 01');

describe('wire/arp', () => {
  const v = new ArpView();

  it('deconstructs a request', () => {
    v.bind(REQUEST, 0, REQUEST.length);
    expect(v.checkLen()).toBeNull();
    expect(v.htype).toBe(1);
    expect(v.ptype).toBe(0x0800);
    expect(v.op).toBe(ArpOp.REQUEST);
    expect(v.sha).toBe(0x7831c1c63fc2);
    expect(v.spa).toBe(0x0a000002);
    expect(v.tha).toBe(0);
    expect(v.tpa).toBe(0x0a000001);
    expect(ArpRepr.format(ArpRepr.parse(REQUEST, 0, 28) as ArpRepr)).toBe('Request who-has 10.0.0.1 tell 10.0.0.2');
  });

  it('reads addresses with the high bit set as unsigned', () => {
    const b = Buffer.from(REQUEST);
    b.set([0xc0, 0xa8, 0x01, 0xfe], 14);
    expect(v.bind(b, 0, 28).spa).toBe(0xc0a801fe);
  });

  it('constructs a request into a 0xa5 buffer', () => {
    const b = Buffer.alloc(30, 0xa5);
    expect(writeArp(b, 1, ArpOp.REQUEST, 0x7831c1c63fc2, 0x0a000002, 0, 0x0a000001)).toBe(ARP_LEN);
    expect(b).toEqual(Buffer.concat([hex('a5'), REQUEST, hex('a5')]));
  });

  it('constructs the same request from MAC halves, the low half as an int32', () => {
    const b = Buffer.alloc(30, 0xa5);
    expect(writeArpHiLo(b, 1, ArpOp.REQUEST, 0x7831, 0xc1c63fc2 | 0, 0x0a000002, 0, 0, 0x0a000001)).toBe(ARP_LEN);
    expect(b).toEqual(Buffer.concat([hex('a5'), REQUEST, hex('a5')]));
  });

  it('turns a request into a reply in place with setters', () => {
    const b = Buffer.from(REQUEST);
    v.bind(b, 0, 28);
    v.op = ArpOp.REPLY;
    v.tha = v.sha;
    v.tpa = v.spa;
    v.sha = 0xf8eda5c0a4f1;
    v.spa = 0x0a000001;
    expect(b).toEqual(hex('00 01 08 00 06 04 00 02  f8 ed a5 c0 a4 f1  0a 00 00 01  78 31 c1 c6 3f c2  0a 00 00 02'));
  });

  const reject = (patch: (b: Buffer) => void, len: number, reason: string) => {
    const b = Buffer.from(REQUEST);
    patch(b);
    expect(v.bind(b, 0, len).checkLen()).toBe(reason);
  };
  it('rejects a truncated fixed header', () => reject(() => {}, 7, 'truncated arp header'));
  it('rejects a non-Ethernet hardware type', () => reject((b) => (b[1] = 6), 28, 'unsupported arp hardware type'));
  it('rejects a non-IPv4 protocol type', () => reject((b) => (b[2] = 0x86), 28, 'unsupported arp protocol type'));
  it('rejects a hardware address length other than 6', () => reject((b) => (b[4] = 255), 28, 'bad arp hardware address length'));
  it('rejects a protocol address length other than 4', () => reject((b) => (b[5] = 16), 28, 'bad arp protocol address length'));
  it('rejects truncated addresses', () => reject(() => {}, 27, 'truncated arp packet'));
});
