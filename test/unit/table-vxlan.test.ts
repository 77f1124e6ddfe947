/**
 * VxlanTable: devices found by (local address, port, VNI), the FDB of remote VTEP MACs and
 * the known-VTEP set it keeps (an address stays known while any entry names it).
 */
import { describe, expect, it } from 'vitest';
import { VxlanTable } from '../../src/tables/vxlan-table.ts';

const LOCAL = 0xc0a8320b; // 192.168.50.11 (above 2^31: int32 keys must hold it)
const V2 = 0xc0a8320c;
const V3 = 0xc0a8320d;

describe('VxlanTable', () => {
  it('finds a device by local address, port and VNI, and says who listens on a port', () => {
    const t = new VxlanTable(16, 8);
    t.addDevice(3, 1, 8472, LOCAL);
    t.addDevice(4, 2, 4789, LOCAL);
    expect(t.deviceFor(LOCAL, 8472, 1)).toBe(0);
    expect(t.deviceFor(LOCAL | 0, 4789, 2)).toBe(1);
    expect(t.deviceFor(LOCAL, 8472, 2)).toBe(-1);
    expect(t.deviceFor(V2, 8472, 1)).toBe(-1);
    expect([t.listening[8472], t.listening[4789], t.listening[53]]).toEqual([1, 1, 0]);
    expect([t.listens(LOCAL, 8472), t.listens(V2, 8472)]).toEqual([true, false]);
    expect([t.deviceOfIf[3], t.deviceOfIf[4], t.deviceOfIf[0]]).toEqual([0, 1, -1]);
  });

  it('maps a MAC to its VTEP, replaces and deletes, keeping the known-VTEP set in step', () => {
    const t = new VxlanTable(16, 8);
    t.addDevice(3, 1, 8472, LOCAL);
    expect(t.setFdb(3, 0x0e00, 0x00000002, V2)).toBe(true);
    expect(t.setFdb(3, 0x0e00, 0x80000003 | 0, V2)).toBe(true);
    const id = t.findFdb(3, 0x0e00, 0x00000002);
    expect(t.fdbDst[id] >>> 0).toBe(V2);
    expect(t.findFdb(4, 0x0e00, 0x00000002)).toBe(-1);
    expect(t.isKnownVtep(3, V2)).toBe(true);
    expect(t.isKnownVtep(4, V2)).toBe(false);
    // One of the two entries moves to V3: V2 is still named by the other.
    expect(t.setFdb(3, 0x0e00, 0x80000003, V3)).toBe(true);
    expect([t.isKnownVtep(3, V2), t.isKnownVtep(3, V3)]).toEqual([true, true]);
    expect(t.deleteFdb(3, 0x0e00, 0x00000002)).toBe(true);
    expect([t.isKnownVtep(3, V2), t.isKnownVtep(3, V3)]).toEqual([false, true]);
    expect(t.deleteFdb(3, 0x0e00, 0x00000002)).toBe(false);
    expect(t.fdbEntries()).toEqual([{ ifIndex: 3, macHi: 0x0e00, macLo: 0x80000003, dst: V3 }]);
    expect(t.fdbSize).toBe(1);
  });

  it('refuses entries beyond its capacity', () => {
    const t = new VxlanTable(16, 2);
    t.addDevice(3, 1, 8472, LOCAL);
    expect(t.setFdb(3, 0x0e00, 1, V2)).toBe(true);
    expect(t.setFdb(3, 0x0e00, 2, V3)).toBe(true);
    expect(t.setFdb(3, 0x0e00, 3, V3)).toBe(false);
    expect(t.fdbSize).toBe(2);
  });
});
