/**
 * arp-input: answering for our addresses and learning neighbours the way Linux does with
 * arp_accept=0 — requests to us create STALE entries, replies to our requests confirm them,
 * unsolicited replies create nothing, static entries never change.
 */
import { describe, expect, it } from 'vitest';
import { NeighState } from '../../src/tables/neighbour-table.ts';
import * as F from '../helpers/frames.ts';
import {
  A,
  B,
  BCAST,
  GW,
  Harness,
  SEC,
  SLOW,
  SLOW_GW,
  UP,
  arpFrame,
  arpOf,
  ethOf,
  introduce,
  isArp,
  ip4Of,
  neighbour,
  udpFrame,
} from './stage-harness.test.ts';

const NEW_MAC = '0a:58:0a:f4:01:77';

describe('arp-input: answering', () => {
  it('answers a request for the gateway address with the bridge MAC, to the asker only', () => {
    const h = new Harness();
    const req = arpFrame({ ethDst: BCAST, ethSrc: A.mac, op: 1, sha: A.mac, spa: A.ip, tpa: GW.ip });
    h.rx('pa', req);
    const [reply, ...more] = h.take('pa');
    expect(more).toEqual([]);
    expect(ethOf(reply)).toEqual({ dst: A.mac, src: GW.mac, type: 0x0806 });
    expect(arpOf(reply)).toEqual({ op: 2, sha: GW.mac, spa: GW.ip, tha: A.mac, tpa: A.ip });
    expect(reply.subarray(14, 20)).toEqual(Buffer.from([0, 1, 8, 0, 6, 4]));
    expect(reply.length).toBe(42);
    // The request itself is flooded to the other pods as any broadcast.
    expect(h.take('pb')).toEqual([req]);
    expect(h.take('pc')).toEqual([req]);
    expect(h.dp.stages.arpInput.requestsAnswered).toBe(1);
  });

  it('answers a padded (60-byte) request with a 42-byte reply', () => {
    const h = new Harness();
    const req = Buffer.concat([arpFrame({ ethDst: BCAST, ethSrc: A.mac, op: 1, sha: A.mac, spa: A.ip, tpa: GW.ip }), Buffer.alloc(18, 0xee)]);
    h.rx('pa', req);
    const [reply] = h.take('pa');
    expect(reply.length).toBe(42);
    expect(arpOf(reply).op).toBe(2);
  });

  it('answers on an L3 port with that port\'s MAC and address', () => {
    const h = new Harness();
    const asker = { mac: '02:00:00:00:50:42', ip: '192.168.50.42' };
    h.rx('up', arpFrame({ ethDst: BCAST, ethSrc: asker.mac, op: 1, sha: asker.mac, spa: asker.ip, tpa: UP.ip }));
    const [reply] = h.take('up');
    expect(ethOf(reply)).toEqual({ dst: asker.mac, src: UP.mac, type: 0x0806 });
    expect(arpOf(reply)).toEqual({ op: 2, sha: UP.mac, spa: UP.ip, tha: asker.mac, tpa: asker.ip });
  });

  it('does not answer a request for another host\'s address (a request for another interface\'s address is answered: see stage-linux-conformance)', () => {
    const h = new Harness();
    h.rx('pa', arpFrame({ ethDst: BCAST, ethSrc: A.mac, op: 1, sha: A.mac, spa: A.ip, tpa: B.ip }));
    h.rx('pa', arpFrame({ ethDst: BCAST, ethSrc: A.mac, op: 1, sha: A.mac, spa: A.ip, tpa: '10.244.1.77' }));
    expect(h.take('pa')).toEqual([]);
    expect(h.take('up')).toEqual([]);
    expect(h.dp.stages.arpInput.requestsAnswered).toBe(0);
    // And learns nothing from them (arp_accept=0: only requests for us create entries).
    expect(neighbour(h, 'cni0', A.ip)).toBeUndefined();
  });

  it('answers a duplicate-address probe (sender 0.0.0.0) but learns nothing from it', () => {
    const h = new Harness();
    h.rx('pa', arpFrame({ ethDst: BCAST, ethSrc: A.mac, op: 1, sha: A.mac, spa: '0.0.0.0', tpa: GW.ip }));
    const [reply] = h.take('pa');
    expect(arpOf(reply)).toEqual({ op: 2, sha: GW.mac, spa: GW.ip, tha: A.mac, tpa: '0.0.0.0' });
    expect(ethOf(reply).dst).toBe(A.mac);
    expect(h.dp.ctx.neigh.size).toBe(3); // the three static entries only
  });

  it('drops malformed ARP and ARP from a multicast sender MAC, with reasons', () => {
    const h = new Harness();
    const good = F.arp(1, A.mac, A.ip, '00:00:00:00:00:00', GW.ip);
    h.rx('pa', F.ethernet(BCAST, A.mac, 0x0806, good.slice(0, 20)));
    h.rx('pa', F.ethernet(BCAST, A.mac, 0x0806, [0, 6, ...good.slice(2)]));
    h.rx('pa', arpFrame({ ethDst: BCAST, ethSrc: A.mac, op: 1, sha: '01:00:5e:00:00:01', spa: A.ip, tpa: GW.ip }));
    h.rx('pa', arpFrame({ ethDst: BCAST, ethSrc: A.mac, op: 1, sha: A.mac, spa: '127.0.0.1', tpa: GW.ip }));
    expect(h.take('pa')).toEqual([]);
    expect(h.drops('arp-input')).toEqual({ 'arp.malformed': 2, 'arp.invalid-sender': 2 });
  });
});

describe('arp-input: learning (arp_accept=0)', () => {
  it('a request addressed to us creates the sender\'s entry as STALE', () => {
    const h = new Harness();
    introduce(h, A);
    expect(neighbour(h, 'cni0', A.ip)).toEqual({ state: NeighState.STALE, mac: A.mac });
  });

  it('an unsolicited reply from an unknown sender creates no entry', () => {
    const h = new Harness();
    h.rx('pa', arpFrame({ ethDst: GW.mac, ethSrc: A.mac, op: 2, sha: A.mac, spa: A.ip, tha: GW.mac, tpa: GW.ip }));
    h.rx('pa', arpFrame({ ethDst: BCAST, ethSrc: A.mac, op: 2, sha: A.mac, spa: A.ip, tha: BCAST, tpa: A.ip }));
    expect(neighbour(h, 'cni0', A.ip)).toBeUndefined();
    expect(h.take('pa')).toEqual([]);
  });

  it('a reply to our own request makes the entry REACHABLE and releases the waiting packets in order', () => {
    const h = new Harness();
    introduce(h, A);
    const sent = [1, 2, 3].map((i) => udpFrame({ from: A, toMac: GW.mac, dst: '10.9.0.5', id: i }));
    for (const f of sent) h.rx('pa', f);
    const [req, ...more] = h.take('slow');
    expect(more).toEqual([]);
    expect(ethOf(req)).toEqual({ dst: BCAST, src: SLOW.mac, type: 0x0806 });
    expect(arpOf(req)).toEqual({ op: 1, sha: SLOW.mac, spa: SLOW.ip, tha: '00:00:00:00:00:00', tpa: '10.9.0.5' });
    expect(neighbour(h, 'slow', '10.9.0.5')?.state).toBe(NeighState.INCOMPLETE);
    const peer = '02:00:00:00:09:05';
    h.rx('slow', arpFrame({ ethDst: SLOW.mac, ethSrc: peer, op: 2, sha: peer, spa: '10.9.0.5', tha: SLOW.mac, tpa: SLOW.ip }), h.now + 20_000);
    expect(neighbour(h, 'slow', '10.9.0.5')).toEqual({ state: NeighState.REACHABLE, mac: peer });
    const out = h.take('slow');
    expect(out.map((f) => ip4Of(f).id)).toEqual([1, 2, 3]);
    expect(out.every((f) => ethOf(f).dst === peer && ethOf(f).src === SLOW.mac)).toBe(true);
    expect(out.map((f) => ip4Of(f).ttl)).toEqual([63, 63, 63]);
    // Resolution done: no more requests, and no error to the sender.
    h.advance(h.now + 5 * SEC);
    expect(h.take('slow')).toEqual([]);
    expect(h.take('pa')).toEqual([]);
  });

  it('a gratuitous ARP (sender = target address) updates the MAC of an existing entry', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', arpFrame({ ethDst: BCAST, ethSrc: NEW_MAC, op: 1, sha: NEW_MAC, spa: A.ip, tpa: A.ip }), h.now + 2 * SEC);
    expect(neighbour(h, 'cni0', A.ip)).toEqual({ state: NeighState.STALE, mac: NEW_MAC });
    // The gratuitous reply form as well.
    h.rx('pa', arpFrame({ ethDst: BCAST, ethSrc: A.mac, op: 2, sha: A.mac, spa: A.ip, tha: BCAST, tpa: A.ip }), h.now + 2 * SEC);
    expect(neighbour(h, 'cni0', A.ip)?.mac).toBe(A.mac);
    // No answer to either.
    expect(h.take('pa')).toEqual([]);
  });

  it('a gratuitous ARP for an unknown address creates nothing', () => {
    const h = new Harness();
    h.rx('pa', arpFrame({ ethDst: BCAST, ethSrc: A.mac, op: 1, sha: A.mac, spa: A.ip, tpa: A.ip }));
    expect(neighbour(h, 'cni0', A.ip)).toBeUndefined();
  });

  it('static neighbours are PERMANENT and no ARP packet changes them', () => {
    const h = new Harness();
    const imposter = '02:00:00:00:66:66';
    expect(neighbour(h, 'slow', SLOW_GW.ip)).toEqual({ state: NeighState.PERMANENT, mac: SLOW_GW.mac });
    h.rx('slow', arpFrame({ ethDst: BCAST, ethSrc: imposter, op: 1, sha: imposter, spa: SLOW_GW.ip, tpa: SLOW_GW.ip }));
    h.rx('slow', arpFrame({ ethDst: SLOW.mac, ethSrc: imposter, op: 2, sha: imposter, spa: SLOW_GW.ip, tha: SLOW.mac, tpa: SLOW.ip }));
    h.rx('slow', arpFrame({ ethDst: BCAST, ethSrc: imposter, op: 1, sha: imposter, spa: SLOW_GW.ip, tpa: SLOW.ip }));
    expect(neighbour(h, 'slow', SLOW_GW.ip)).toEqual({ state: NeighState.PERMANENT, mac: SLOW_GW.mac });
    // The request for our address is still answered (to the asker).
    const replies = h.take('slow');
    expect(replies.filter((f) => isArp(f, 2))).toHaveLength(1);
    // Traffic keeps going to the configured MAC.
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.200.0.9' }));
    const [fwd] = h.take('slow');
    expect(ethOf(fwd).dst).toBe(SLOW_GW.mac);
  });

});
