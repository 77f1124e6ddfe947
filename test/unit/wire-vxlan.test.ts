import { describe, expect, it } from 'vitest';
import {
  VXLAN_HLEN, VXLAN_PORT_IANA, VXLAN_PORT_LINUX, VxlanRepr, VxlanView, isVxlanPort, writeVxlanHeader,
} from '../../src/wire/vxlan.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// I flag, VNI 5001 (0x001389)
const HDR = hex('08 00 00 00 00 13 89 00');

describe('wire/vxlan', () => {
  const v = new VxlanView();

  it('deconstructs a header', () => {
    v.bind(HDR, 0, HDR.length);
    expect(v.checkLen()).toBeNull();
    expect(v.flags).toBe(0x08);
    expect(v.iFlag).toBe(true);
    expect(v.vni).toBe(5001);
    expect(v.payloadOffset).toBe(8);
    expect(v.bind(hex('08 00 00 00 ff ff ff 00'), 0, 8).vni).toBe(0xffffff);
  });

  it('constructs into a 0xa5 buffer', () => {
    const b = Buffer.alloc(10, 0xa5);
    expect(writeVxlanHeader(b, 1, 5001)).toBe(VXLAN_HLEN);
    expect(b).toEqual(Buffer.concat([hex('a5'), HDR, hex('a5')]));
    const r = Buffer.alloc(8, 0xa5);
    VxlanRepr.emit({ vni: 5001 }, r, 0);
    expect(r).toEqual(HDR);
    v.bind(r, 0, 8).vni = 0x123456;
    expect(r).toEqual(hex('08 00 00 00 12 34 56 00'));
  });

  it('knows both ports', () => {
    expect(VXLAN_PORT_IANA).toBe(4789);
    expect(VXLAN_PORT_LINUX).toBe(8472);
    expect(isVxlanPort(4789) && isVxlanPort(8472) && !isVxlanPort(4790)).toBe(true);
  });

  it('rejects a truncated header', () => {
    expect(v.bind(HDR, 0, 7).checkLen()).toBe('truncated vxlan header');
  });
  it('rejects a header without the I flag', () => {
    expect(v.bind(hex('00 00 00 00 00 13 89 00'), 0, 8).checkLen()).toBe('vxlan I flag not set');
    expect(VxlanRepr.parse(hex('80 00 00 00 00 13 89 00'), 0, 8)).toBe('vxlan I flag not set');
  });
});
