/**
 * MACs whose low 32 bits have the top bit set (half of all MACs; the kernel's random ones
 * included) travel as int32 halves: learning, forwarding, ARP and display must not care.
 */
import { describe, expect, it } from 'vitest';
import { fdbState, neighState } from '../../src/admin/state.ts';
import { BCAST, GW, Harness, arpFrame, udpFrame } from './stage-harness.test.ts';

const X = { port: 'pa', mac: 'd2:5c:ca:fe:00:01', ip: '10.244.1.20' };
const Y = { port: 'pb', mac: 'b2:67:81:8f:29:98', ip: '10.244.1.21' };

describe('MACs with the top bit of their low half set', () => {
  it('are learned, forwarded to one port and shown as written', () => {
    const h = new Harness();
    h.rx('pa', udpFrame({ from: X, toMac: Y.mac, dst: Y.ip }));
    h.clear();
    h.rx('pb', udpFrame({ from: Y, toMac: X.mac, dst: X.ip }));
    expect(h.take('pa')).toHaveLength(1);
    expect(h.take('pc')).toEqual([]);
    const macs = fdbState(h.dp).entries.map((e) => `${e.mac} ${e.port}`);
    expect(macs).toContain('d2:5c:ca:fe:00:01 pa');
    expect(macs).toContain('b2:67:81:8f:29:98 pb');
  });

  it('are learned by ARP, kept on a repeated request, and shown as written', () => {
    const h = new Harness();
    const ask = arpFrame({ ethDst: BCAST, ethSrc: Y.mac, op: 1, sha: Y.mac, spa: Y.ip, tpa: GW.ip });
    h.rx('pb', ask);
    const entry = () => neighState(h.dp).entries.find((e) => e.ip === Y.ip);
    expect(entry()).toMatchObject({ lladdr: Y.mac, state: 'STALE' });
    h.rx('pb', ask, h.now + 1000);
    // Recognised as the same MAC: the entry is left as it was (a different MAC would be
    // written again, re-stamping it 0 s ago).
    expect(entry()).toMatchObject({ lladdr: Y.mac, state: 'STALE', confirmedSecondsAgo: 0.001 });
  });
});
