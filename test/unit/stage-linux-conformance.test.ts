/**
 * Corner cases where the dataplane must do what Linux does with default sysctls: ICMP errors
 * about fragments, martian addresses, neighbour timers and queue limits. Each was found
 * missing once and is pinned here.
 */
import { describe, expect, it } from 'vitest';
import { neighState } from '../../src/admin/state.ts';
import { A, BCAST, GW, Harness, LAB, MS, SEC, SLOW, arpFrame, arpOf, ethOf, icmpOf, introduce, ip4Of, isIcmp, udpFrame } from './stage-harness.test.ts';

describe('Linux conformance', () => {
  it('sends host unreachable for the first fragment of a datagram whose next hop does not answer', () => {
    // Linux fragments before resolving; arp_error_report answers each queued fragment with
    // icmp_send(HOST_UNREACH), which skips only non-first fragments.
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.9.0.77', dataLen: 1400, id: 0x99 }));
    h.advance(h.now + 3 * SEC);
    const errs = h.take('pa').filter((f) => isIcmp(f, 3, 1));
    expect(errs).toHaveLength(1);
    const quoted = ip4Of(Buffer.concat([Buffer.alloc(14), icmpOf(errs[0]).body]));
    expect([quoted.id, quoted.fragOffset, quoted.mf]).toEqual([0x99, 0, true]);
    expect(h.drops('icmp-error')).toEqual({ 'ip4.host-unreachable': 1, 'icmp-error.not-first-fragment': 1 });
  });

  it('with arp.queueLen 0 accounts for every packet that waited: sent or dropped, never a lost slot', () => {
    // With no room to wait, every packet that needs resolution is dropped and counted.
    const h = new Harness(LAB + 'arp: { queueLen: 0 }\n');
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.9.0.5', id: 1 }));
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.9.0.5', id: 2 }));
    const peer = '02:00:00:00:09:05';
    h.rx('slow', arpFrame({ ethDst: SLOW.mac, ethSrc: peer, op: 2, sha: peer, spa: '10.9.0.5', tha: SLOW.mac, tpa: SLOW.ip }), h.now + 10 * MS);
    const sent = h.take('slow').filter((f) => f.readUInt16BE(12) === 0x0800).length;
    const dropped = Object.values(h.drops('neighbour-output')).reduce((a, b) => a + b, 0);
    expect(sent + dropped).toBe(2);
    expect(h.dp.pool.available).toBe(h.startAvailable);
  });

  for (const dst of ['127.0.0.1', '0.0.0.0', '0.1.2.3']) {
    it(`drops a packet to the martian destination ${dst} instead of routing it by the default route`, () => {
      const h = new Harness();
      introduce(h, A);
      h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst }));
      expect(h.take('up')).toEqual([]);
      expect(h.take('pa')).toEqual([]);
      expect(Object.keys(h.drops('ip4-input')).join()).toMatch(/ip4\.martian-destination/);
    });
  }

  it('drops a packet whose source is one of the router\'s own addresses (martian source, accept_local=0)', () => {
    const h = new Harness();
    h.rx('pa', udpFrame({ from: { mac: A.mac, ip: GW.ip }, toMac: GW.mac, dst: '203.0.113.5' }));
    h.rx('pa', udpFrame({ from: { mac: A.mac, ip: '192.168.50.11' }, toMac: GW.mac, dst: '203.0.113.5' }));
    expect(h.take('up')).toEqual([]);
    // Found by the source's route lookup, after PREROUTING (Linux's fib_validate_source).
    expect(h.drops('ip4-lookup')).toEqual({ 'ip4.martian-source': 2 });
  });

  it('shows a REACHABLE entry as STALE once reachableMs passes without a confirmation', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.9.0.5' }));
    const peer = '02:00:00:00:09:05';
    h.rx('slow', arpFrame({ ethDst: SLOW.mac, ethSrc: peer, op: 2, sha: peer, spa: '10.9.0.5', tha: SLOW.mac, tpa: SLOW.ip }), h.now + 10 * MS);
    const state = () => neighState(h.dp).entries.find((e) => e.ip === '10.9.0.5' && e.dev === 'slow')?.state;
    expect(state()).toBe('REACHABLE');
    h.advance(h.now + 29 * SEC);
    expect(state()).toBe('REACHABLE');
    h.advance(h.now + 2 * SEC);
    expect(state()).toBe('STALE');
  });

  it('answers new packets to a neighbour that just failed at once, then resolves again after arp.failedMs', () => {
    const h = new Harness(LAB + 'arp: { failedMs: 2000 }\n');
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.9.0.77', id: 1 }));
    h.advance(h.now + 3 * SEC + 10 * MS);
    expect(h.take('pa').filter((f) => isIcmp(f, 3, 1))).toHaveLength(1);
    expect(h.take('slow')).toHaveLength(3);
    // Within the hold: host unreachable at once, no new request.
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.9.0.77', id: 2 }), h.now + 1 * SEC);
    expect(h.take('pa').filter((f) => isIcmp(f, 3, 1))).toHaveLength(1);
    expect(h.take('slow')).toEqual([]);
    // After it: a fresh resolution starts with a broadcast request.
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.9.0.77', id: 3 }), h.now + 1500 * MS);
    const reqs = h.take('slow');
    expect(reqs).toHaveLength(1);
    expect(ethOf(reqs[0]).dst).toBe(BCAST);
  });
});

describe('Linux conformance: the bridge', () => {
  it('does not forward IEEE 802.1D link-local group frames (LLDP, STP), but floods other multicast', () => {
    const h = new Harness();
    const lldp = Buffer.concat([Buffer.from([0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e]), Buffer.from([0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x02]), Buffer.from([0x88, 0xcc]), Buffer.alloc(46)]);
    const mdns = Buffer.concat([Buffer.from([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]), Buffer.from([0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x02]), Buffer.from([0x08, 0x00]), Buffer.alloc(46)]);
    h.rx('pa', lldp);
    expect(h.take('pb')).toEqual([]);
    expect(h.drops('bridge-forward')).toEqual({ 'bridge.link-local': 1 });
    h.rx('pa', mdns);
    expect(h.take('pb')).toHaveLength(1);
  });
});

describe('Linux conformance: ARP', () => {
  it("answers a request for any of the router's addresses on any interface, with that interface's MAC (arp_ignore=0)", () => {
    const h = new Harness();
    h.rx('pa', arpFrame({ ethDst: BCAST, ethSrc: A.mac, op: 1, sha: A.mac, spa: A.ip, tpa: '192.168.50.11' }));
    const [reply] = h.take('pa');
    expect(reply).toBeDefined();
    expect(arpOf(reply)).toEqual({ op: 2, sha: GW.mac, spa: '192.168.50.11', tha: A.mac, tpa: A.ip });
    // Not for an address that is not ours.
    h.rx('pa', arpFrame({ ethDst: BCAST, ethSrc: A.mac, op: 1, sha: A.mac, spa: A.ip, tpa: '192.168.50.99' }));
    expect(h.take('pa')).toEqual([]);
  });
});
