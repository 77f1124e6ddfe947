import { describe, expect, it } from 'vitest';
import {
  ETH_HLEN, EtherType, EthernetRepr, EthernetView, ethPayload, payloadOffset, writeEthernetHeader, writeEthernetHiLo, writeEthernetVlanHeader,
} from '../../src/wire/ethernet.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// dst 00:10:db:88:d2:ef, src c8:bc:c8:96:d2:a0, IPv4, then 2 payload bytes
const UNTAGGED = hex('00 10 db 88 d2 ef  c8 bc c8 96 d2 a0  08 00  45 00');
// same with an 802.1Q tag: PCP 5, DEI 0, VID 0x07b (123), inner ARP
const TAGGED = hex('00 10 db 88 d2 ef  c8 bc c8 96 d2 a0  81 00 a0 7b  08 06  00 01');
// 802.1ad S-tag VID 200 then 802.1Q C-tag PCP 1 VID 2001, inner ARP
const QINQ = hex('ff ff ff ff ff ff  00 20 d2 5a fb 3f  88 a8 00 c8  81 00 27 d1  08 06  00 01');

describe('wire/ethernet', () => {
  const v = new EthernetView();

  it('deconstructs an untagged header', () => {
    v.bind(UNTAGGED, 0, UNTAGGED.length);
    expect(v.checkLen()).toBeNull();
    expect(v.dst).toBe(0x0010db88d2ef);
    expect(v.src).toBe(0xc8bcc896d2a0);
    expect(v.etherType).toBe(EtherType.IPV4);
    expect(v.payloadOffset).toBe(14);
    expect(payloadOffset(UNTAGGED, 0, UNTAGGED.length)).toBe(14);
    expect(ethPayload.etherType).toBe(0x0800);
    expect(ethPayload.tags).toBe(0);
    expect(ethPayload.outerTci).toBe(-1);
  });

  it('deconstructs an 802.1Q tag', () => {
    v.bind(TAGGED, 0, TAGGED.length);
    expect(v.etherType).toBe(EtherType.VLAN);
    expect(v.vlanId).toBe(123);
    expect(v.pcp).toBe(5);
    expect(payloadOffset(TAGGED, 0, TAGGED.length)).toBe(18);
    expect(ethPayload).toMatchObject({ etherType: 0x0806, tags: 1, outerTpid: 0x8100, outerTci: 0xa07b, innerTci: -1 });
    expect(EthernetRepr.parse(TAGGED, 0, TAGGED.length)).toEqual({
      dst: 0x0010db88d2ef, src: 0xc8bcc896d2a0, etherType: 0x0806, vlan: { id: 123, pcp: 5, dei: false },
    });
  });

  it('walks stacked 802.1ad + 802.1Q tags, at an offset inside a larger buffer', () => {
    const b = Buffer.concat([hex('a5 a5 a5'), QINQ]);
    expect(payloadOffset(b, 3, QINQ.length)).toBe(3 + 22);
    expect(ethPayload).toMatchObject({
      etherType: 0x0806, tags: 2, outerTpid: 0x88a8, outerTci: 200, innerTpid: 0x8100, innerTci: 0x27d1,
    });
  });

  it('constructs untagged and tagged headers into 0xa5 buffers', () => {
    const b = Buffer.alloc(16, 0xa5);
    expect(writeEthernetHeader(b, 0, 0x0010db88d2ef, 0xc8bcc896d2a0, EtherType.IPV4)).toBe(ETH_HLEN);
    expect(b).toEqual(Buffer.concat([UNTAGGED.subarray(0, 14), hex('a5 a5')]));
    const h = Buffer.alloc(16, 0xa5);
    expect(writeEthernetHiLo(h, 0, 0x0010, 0xdb88d2ef | 0, 0xc8bc, 0xc896d2a0 | 0, EtherType.IPV4)).toBe(ETH_HLEN);
    expect(h).toEqual(b);

    const t = Buffer.alloc(20, 0xa5);
    expect(writeEthernetVlanHeader(t, 0, 0x0010db88d2ef, 0xc8bcc896d2a0, 0xa07b, EtherType.ARP)).toBe(18);
    expect(t).toEqual(Buffer.concat([TAGGED.subarray(0, 18), hex('a5 a5')]));

    const r = Buffer.alloc(20, 0xa5);
    expect(EthernetRepr.emit({ dst: 0x0010db88d2ef, src: 0xc8bcc896d2a0, etherType: 0x0806, vlan: { id: 123, pcp: 5 } }, r, 0)).toBe(18);
    expect(r).toEqual(t);
  });

  it('setters write in place', () => {
    const b = Buffer.from(TAGGED);
    v.bind(b, 0, b.length);
    v.dst = 0xffffffffffff;
    v.src = 0x020000000001;
    v.etherType = 0x88a8;
    v.tci = 0x0001;
    expect(b.subarray(0, 16)).toEqual(hex('ff ff ff ff ff ff 02 00 00 00 00 01 88 a8 00 01'));
  });

  it('rejects a truncated header', () => {
    v.bind(UNTAGGED, 0, 13);
    expect(v.checkLen()).toBe('truncated ethernet header');
    expect(EthernetRepr.parse(UNTAGGED, 0, 13)).toBe('truncated ethernet header');
  });

  it('rejects a truncated tag', () => {
    expect(payloadOffset(TAGGED, 0, 17)).toBe(-1);
    expect(payloadOffset(QINQ, 0, 20)).toBe(-1);
    expect(EthernetRepr.parse(TAGGED, 0, 17)).toBe('truncated vlan tag');
  });
});
