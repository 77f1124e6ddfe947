/**
 * neighbour-output: resolution with Linux's neighbour state machine — the bounded queue of
 * waiting packets, three broadcast requests a second apart, host unreachable for each
 * waiting packet when they go unanswered, and REACHABLE → STALE → DELAY → PROBE with unicast
 * requests for an entry in use that nobody confirms.
 */
import { describe, expect, it } from 'vitest';
import { NeighState } from '../../src/tables/neighbour-table.ts';
import { A, BCAST, GW, Harness, LAB, MS, SEC, SLOW, arpFrame, arpOf, ethOf, icmpOf, introduce, ip4Of, isArp, isIcmp, neighbour, udpFrame } from './stage-harness.test.ts';

const PEER = { mac: '02:00:00:00:09:05', ip: '10.9.0.5' };

function toPeer(id: number, ttl = 64): Buffer {
  return udpFrame({ from: A, toMac: GW.mac, dst: PEER.ip, id, ttl });
}

function peerReplies(h: Harness, at = h.now): void {
  h.rx('slow', arpFrame({ ethDst: SLOW.mac, ethSrc: PEER.mac, op: 2, sha: PEER.mac, spa: PEER.ip, tha: SLOW.mac, tpa: SLOW.ip }), at);
}

describe('neighbour-output: resolving', () => {
  it('holds at most queueLen packets; a newer one pushes the oldest out and is counted', () => {
    const h = new Harness();
    introduce(h, A);
    for (let i = 1; i <= 5; i++) h.rx('pa', toPeer(i));
    expect(h.take('slow').filter((f) => isArp(f, 1))).toHaveLength(1);
    expect(h.drops('neighbour-output')).toEqual({ 'neigh.queue-overflow': 2 });
    peerReplies(h, h.now + 100 * MS);
    expect(h.take('slow').map((f) => ip4Of(f).id)).toEqual([3, 4, 5]);
  });

  it('the queue length comes from arp.queueLen', () => {
    const h = new Harness(LAB + 'arp: { queueLen: 1 }\n');
    introduce(h, A);
    for (let i = 1; i <= 3; i++) h.rx('pa', toPeer(i));
    expect(h.drops('neighbour-output')).toEqual({ 'neigh.queue-overflow': 2 });
    expect(h.take('slow').filter((f) => isArp(f, 1))).toHaveLength(1);
    peerReplies(h, h.now + 100 * MS);
    expect(h.take('slow').map((f) => ip4Of(f).id)).toEqual([3]);
  });

  it('sends three broadcast requests a second apart, then ICMP host unreachable for each waiting packet', () => {
    const h = new Harness();
    introduce(h, A);
    const t = h.now;
    const sent = [1, 2, 3].map((i) => toPeer(i));
    for (const f of sent) h.rx('pa', f, t);
    h.advance(t + 2_999_999);
    expect(h.take('pa')).toEqual([]);
    expect(neighbour(h, 'slow', PEER.ip)?.state).toBe(NeighState.INCOMPLETE);
    h.advance(t + 3 * SEC);
    const times = h.times('slow');
    const reqs = h.take('slow');
    expect(reqs.map((f) => [ethOf(f).dst, arpOf(f).op, arpOf(f).tpa, arpOf(f).spa])).toEqual([
      [BCAST, 1, PEER.ip, SLOW.ip],
      [BCAST, 1, PEER.ip, SLOW.ip],
      [BCAST, 1, PEER.ip, SLOW.ip],
    ]);
    expect(times.map((x) => x - t)).toEqual([0, SEC, 2 * SEC]);
    expect(neighbour(h, 'slow', PEER.ip)?.state).toBe(NeighState.FAILED);
    const errs = h.take('pa');
    expect(errs).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      const e = errs[i];
      expect(isIcmp(e, 3, 1)).toBe(true);
      expect(ethOf(e)).toEqual({ dst: A.mac, src: GW.mac, type: 0x0800 });
      expect(ip4Of(e)).toMatchObject({ src: GW.ip, dst: A.ip, proto: 1, checksumOk: true });
      const m = icmpOf(e);
      expect(m.checksumOk).toBe(true);
      // The quote is the packet as it waited: id i, TTL already decremented.
      const q = ip4Of(Buffer.concat([Buffer.alloc(14), m.body]));
      expect([q.id, q.ttl, q.src, q.dst]).toEqual([i + 1, 63, A.ip, PEER.ip]);
    }
    expect(h.dp.stages.neighbourOutput.resolutionsFailed).toBe(1);
    expect(h.dp.stages.icmpError.sent).toBe(3);
  });

  it('a packet after a failed resolution starts a new one', () => {
    const h = new Harness();
    introduce(h, A);
    const t = h.now;
    h.rx('pa', toPeer(1), t);
    h.advance(t + 3 * SEC);
    expect(h.take('pa').filter((f) => isIcmp(f, 3, 1))).toHaveLength(1);
    h.clear();
    // Past arp.failedMs (1 s by default): a new packet, a new broadcast request.
    h.rx('pa', toPeer(2), t + 5 * SEC);
    const [req] = h.take('slow');
    expect(isArp(req, 1) && ethOf(req).dst === BCAST && arpOf(req).tpa === PEER.ip).toBe(true);
    expect(neighbour(h, 'slow', PEER.ip)?.state).toBe(NeighState.INCOMPLETE);
    peerReplies(h, t + 5.5 * SEC);
    expect(h.take('slow').map((f) => ip4Of(f).id)).toEqual([2]);
    expect(h.take('pa')).toEqual([]);
  });

  it('with arp.failedMs 0 a packet right after the failure starts a new resolution, as Linux does', () => {
    const h = new Harness(LAB + 'arp: { failedMs: 0 }\n');
    introduce(h, A);
    const t = h.now;
    h.rx('pa', toPeer(1), t);
    h.advance(t + 3 * SEC);
    h.clear();
    h.rx('pa', toPeer(2), t + 3 * SEC);
    expect(h.take('slow').filter((f) => isArp(f, 1))).toHaveLength(1);
    expect(h.take('pa')).toEqual([]);
  });

  it('follows the retries and interval of the config', () => {
    const h = new Harness(LAB + 'arp: { retries: 2, retryIntervalMs: 250 }\n');
    introduce(h, A);
    const t = h.now;
    h.rx('pa', toPeer(1), t);
    h.advance(t + 10 * SEC);
    expect(h.take('slow').filter((f) => isArp(f, 1))).toHaveLength(2);
    const [err] = h.take('pa');
    expect(isIcmp(err, 3, 1)).toBe(true);
  });
});

describe('neighbour-output: an entry in use', () => {
  function resolved(): { h: Harness; t: number } {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', toPeer(1));
    peerReplies(h, h.now + 10 * MS);
    h.clear();
    expect(neighbour(h, 'slow', PEER.ip)).toEqual({ state: NeighState.REACHABLE, mac: PEER.mac });
    return { h, t: h.now };
  }

  it('stays REACHABLE while used within reachableMs; unconfirmed after it but used, DELAY then PROBE (Linux timer)', () => {
    const { h, t } = resolved();
    h.rx('pa', toPeer(2), t + 29 * SEC);
    expect(h.take('slow').map((f) => ip4Of(f).id)).toEqual([2]);
    h.advance(t + 29 * SEC + 900 * MS);
    expect(h.take('slow')).toEqual([]);
    expect(neighbour(h, 'slow', PEER.ip)?.state).toBe(NeighState.REACHABLE);
    // The reachable timer fires at t + 30 s: used 1 s ago, within the 5 s delay → DELAY.
    h.advance(t + 30 * SEC + 10 * MS);
    expect(neighbour(h, 'slow', PEER.ip)?.state).toBe(NeighState.DELAY);
    expect(h.take('slow')).toEqual([]);
    h.advance(t + 35 * SEC + 10 * MS);
    expect(neighbour(h, 'slow', PEER.ip)?.state).toBe(NeighState.PROBE);
    expect(h.take('slow').map((f) => [ethOf(f).dst, arpOf(f).op])).toEqual([[PEER.mac, 1]]);
  });

  it('goes STALE when the reachable time ends unused', () => {
    const { h, t } = resolved();
    h.advance(t + 40 * SEC);
    expect(neighbour(h, 'slow', PEER.ip)?.state).toBe(NeighState.STALE);
    expect(h.take('slow')).toEqual([]);
  });

  it('after reachableMs a use sends at once and starts DELAY; 5 s unconfirmed → PROBE with unicast requests', () => {
    const { h, t } = resolved();
    const use = t + 31 * SEC;
    h.rx('pa', toPeer(2), use);
    const [fwd, ...more] = h.take('slow');
    expect(more).toEqual([]);
    expect(ip4Of(fwd).id).toBe(2);
    expect(ethOf(fwd).dst).toBe(PEER.mac);
    expect(neighbour(h, 'slow', PEER.ip)?.state).toBe(NeighState.DELAY);
    h.advance(use + 4_999_999);
    expect(h.take('slow')).toEqual([]);
    h.advance(use + 5 * SEC);
    expect(neighbour(h, 'slow', PEER.ip)?.state).toBe(NeighState.PROBE);
    const [probe] = h.take('slow');
    expect(ethOf(probe)).toEqual({ dst: PEER.mac, src: SLOW.mac, type: 0x0806 });
    expect(arpOf(probe)).toEqual({ op: 1, sha: SLOW.mac, spa: SLOW.ip, tha: '00:00:00:00:00:00', tpa: PEER.ip });
    // Packets keep flowing while probing.
    h.rx('pa', toPeer(3), use + 5.5 * SEC);
    expect(h.take('slow').map((f) => ip4Of(f).id)).toEqual([3]);
    // Unanswered: two more unicast probes a second apart, then FAILED.
    h.advance(use + 5 * SEC + 3 * SEC);
    const probes = h.take('slow');
    expect(probes.map((f) => [isArp(f, 1), ethOf(f).dst])).toEqual([
      [true, PEER.mac],
      [true, PEER.mac],
    ]);
    expect(neighbour(h, 'slow', PEER.ip)?.state).toBe(NeighState.FAILED);
  });

  it('a reply during PROBE confirms the entry: REACHABLE, no more probes', () => {
    const { h, t } = resolved();
    const use = t + 31 * SEC;
    h.rx('pa', toPeer(2), use);
    h.advance(use + 5 * SEC);
    h.clear();
    peerReplies(h, use + 5.2 * SEC);
    expect(neighbour(h, 'slow', PEER.ip)?.state).toBe(NeighState.REACHABLE);
    h.advance(use + 20 * SEC);
    expect(h.take('slow')).toEqual([]);
  });

  it('a STALE entry learned from a request goes DELAY on use and PROBE 5 s later', () => {
    const h = new Harness();
    introduce(h, A);
    const t = h.now;
    // A packet routed to A uses its STALE entry.
    h.rx('up', udpFrame({ from: { mac: '02:00:00:00:50:01', ip: '203.0.113.7' }, toMac: '02:00:00:00:50:11', dst: A.ip }), t + SEC);
    expect(h.take('pa')).toHaveLength(1);
    expect(neighbour(h, 'cni0', A.ip)?.state).toBe(NeighState.DELAY);
    h.advance(t + 6 * SEC);
    const [probe] = h.take('pa');
    expect(ethOf(probe).dst).toBe(A.mac);
    expect(arpOf(probe)).toMatchObject({ op: 1, tpa: A.ip, spa: GW.ip });
    expect(neighbour(h, 'cni0', A.ip)?.state).toBe(NeighState.PROBE);
  });
});

describe('neighbour-output: one batch to several next hops', () => {
  const PEER2 = { mac: '02:00:00:00:09:06', ip: '10.9.0.6' };
  const to = (dst: string, id: number): Buffer => udpFrame({ from: A, toMac: GW.mac, dst, id });

  it('frames each packet for its own next hop, in order, whatever the packet before it went to', () => {
    const h = new Harness();
    introduce(h, A);
    h.rxBatch('pa', [toPeer(1), to(PEER2.ip, 2)]);
    peerReplies(h, h.now + 10 * MS);
    h.rx('slow', arpFrame({ ethDst: SLOW.mac, ethSrc: PEER2.mac, op: 2, sha: PEER2.mac, spa: PEER2.ip, tha: SLOW.mac, tpa: SLOW.ip }), h.now + 10 * MS);
    h.clear();
    h.rxBatch('pa', [toPeer(3), toPeer(4), to(PEER2.ip, 5), to(PEER2.ip, 6), toPeer(7)], h.now + 10 * MS);
    const sent = h.take('slow');
    expect(sent.map((f) => [ip4Of(f).id, ethOf(f).dst, ethOf(f).src])).toEqual([
      [3, PEER.mac, SLOW.mac],
      [4, PEER.mac, SLOW.mac],
      [5, PEER2.mac, SLOW.mac],
      [6, PEER2.mac, SLOW.mac],
      [7, PEER.mac, SLOW.mac],
    ]);
  });

  it('a packet to an unknown next hop between two to a known one waits; the known one is framed on both sides', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', toPeer(1));
    peerReplies(h, h.now + 10 * MS);
    h.clear();
    h.rxBatch('pa', [toPeer(2), to(PEER2.ip, 3), toPeer(4)], h.now + 10 * MS);
    const sent = h.take('slow');
    expect(sent.map((f) => (isArp(f, 1) ? ['request', arpOf(f).tpa] : [ip4Of(f).id, ethOf(f).dst]))).toEqual([
      [2, PEER.mac],
      ['request', PEER2.ip],
      [4, PEER.mac],
    ]);
    expect(neighbour(h, 'slow', PEER2.ip)?.state).toBe(NeighState.INCOMPLETE);
  });

  it('a burst to a STALE entry is all sent and starts DELAY once', () => {
    const h = new Harness();
    introduce(h, A);
    const t = h.now;
    h.rx('pa', toPeer(1), t);
    peerReplies(h, t + 10 * MS);
    h.advance(t + 40 * SEC);
    expect(neighbour(h, 'slow', PEER.ip)?.state).toBe(NeighState.STALE);
    h.clear();
    h.rxBatch('pa', [toPeer(2), toPeer(3), toPeer(4)], t + 41 * SEC);
    expect(h.take('slow').map((f) => [ip4Of(f).id, ethOf(f).dst])).toEqual([
      [2, PEER.mac],
      [3, PEER.mac],
      [4, PEER.mac],
    ]);
    expect(neighbour(h, 'slow', PEER.ip)?.state).toBe(NeighState.DELAY);
    // One DELAY timer, from the first use: probing starts 5 s after it.
    h.advance(t + 46 * SEC + 10 * MS);
    expect(neighbour(h, 'slow', PEER.ip)?.state).toBe(NeighState.PROBE);
    expect(h.take('slow').map((f) => [ethOf(f).dst, arpOf(f).op])).toEqual([[PEER.mac, 1]]);
  });
});
