/**
 * The netfilter-style hooks: prerouting before the routing decision, output for everything
 * the router originates, postrouting once for every packet leaving through a router
 * interface (before fragmentation and neighbour resolution), and the bridge's IPv4 hook for
 * pod-to-pod traffic while connection tracking is on. A test handler registered at a hook
 * records what passes and may rewrite, drop or take frames, as conntrack and NAT will.
 */
import { dropReasons } from '../../src/core/drop-reason.ts';
import { describe, expect, it } from 'vitest';
import { ACCEPT, type HookHandler, type HookStage, STOLEN } from '../../src/core/hook.ts';
import { NO_PORT } from '../../src/core/frame-pool.ts';
import { TextTracer } from '../../src/decode/text-tracer.ts';
import { rd32, wr32 } from '../../src/wire/bytes.ts';
import { updateChecksum32 } from '../../src/wire/checksum.ts';
import { parseIpv4 } from '../../src/wire/ipv4-address.ts';
import * as F from '../helpers/frames.ts';
import { A, B, BCAST, C, GW, Harness, LAB, SEC, SLOW_GW, icmpOf, introduce, ip4Of, isIcmp, pingFrame, udpFrame } from './stage-harness.test.ts';

interface Seen {
  src: string;
  dst: string;
  proto: number;
  total: number;
  /** What the packet's first L4 byte is (ICMP type), read at l4; -1 when l4 is unknown. */
  l4Byte: number;
  fromRouter: boolean;
}

/** A hook handler for tests: records each frame, then answers what `verdict` says. */
class TestHandler implements HookHandler {
  readonly dropReasons = dropReasons([
    ['test.told-to-drop', 'told to drop'],
    ['test.second-reason', 'second reason'],
  ]);
  readonly seen: Seen[] = [];
  calls = 0;

  constructor(
    private readonly h: Harness,
    readonly name: string,
    readonly priority = 0,
    private readonly verdict: (slot: number) => number = () => ACCEPT,
  ) {}

  process(slots: Int32Array, n: number, verdicts: Int32Array): void {
    this.calls++;
    const pool = this.h.dp.pool;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const ip = pool.l3[slot];
      const f = ip4Of(pool.data, ip);
      this.seen.push({ src: f.src, dst: f.dst, proto: f.proto, total: f.total, l4Byte: pool.l4[slot] === 0 ? -1 : pool.data[pool.l4[slot]], fromRouter: pool.inPort[slot] === NO_PORT });
      const v = this.verdict(slot);
      if (v !== ACCEPT) verdicts[i] = v;
    }
  }
}

/** Rewrites the IPv4 address at `at` (12 source, 16 destination) with an incremental checksum update. */
function rewrite(h: Harness, slot: number, at: 12 | 16, to: string): void {
  const data = h.dp.pool.data;
  const ip = h.dp.pool.l3[slot];
  const old = rd32(data, ip + at);
  const next = parseIpv4(to);
  wr32(data, ip + at, next);
  const c = updateChecksum32(data.readUInt16BE(ip + 10), old, next);
  data.writeUInt16BE(c, ip + 10);
}

const hook = (h: Harness, name: string): HookStage<string> => h.dp.graph.get(name) as HookStage<string>;
const NAT = LAB + 'nat: { clusterCIDR: 10.244.0.0/16 }\n';

describe('hook stages: the mechanism', () => {
  it('without handlers passes every frame on and counts no drop', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5' }));
    expect(h.take('up')).toHaveLength(1);
    for (const name of ['prerouting', 'postrouting']) expect(h.counters(name)).toEqual({ packets: 1, drops: {}, events: {} });
    expect(h.counters('output').packets).toBe(0);
  });

  it('while idle is passed by yet counts every packet; a handler registered later meets the next ones', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5' }));
    // Without handlers a large datagram (DF clear) is still fragmented after the hook.
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.200.0.5', dataLen: 1400, id: 0x43 }));
    expect(h.take('up')).toHaveLength(1);
    expect(h.take('slow')).toHaveLength(2);
    for (const name of ['prerouting', 'postrouting']) expect(h.counters(name).packets).toBe(2);
    const pre = new TestHandler(h, 'pre');
    const post = new TestHandler(h, 'post');
    hook(h, 'prerouting').register(pre);
    hook(h, 'postrouting').register(post);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.6' }));
    expect(h.take('up')).toHaveLength(1);
    expect(pre.seen.map((x) => x.dst)).toEqual(['203.0.113.6']);
    expect(post.seen.map((x) => x.dst)).toEqual(['203.0.113.6']);
    for (const name of ['prerouting', 'postrouting']) expect(h.counters(name).packets).toBe(3);
  });

  it('runs handlers by priority, lowest first, whatever the order they were registered in', () => {
    const h = new Harness();
    const order: string[] = [];
    const late = new TestHandler(h, 'late', 100, () => (order.push('late'), ACCEPT));
    const early = new TestHandler(h, 'early', -200, () => (order.push('early'), ACCEPT));
    const middle = new TestHandler(h, 'middle', 0, () => (order.push('middle'), ACCEPT));
    const pre = hook(h, 'prerouting');
    pre.register(late);
    pre.register(early);
    pre.register(middle);
    expect(pre.handlers.map((x) => x.name)).toEqual(['early', 'middle', 'late']);
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5' }));
    expect(order).toEqual(['early', 'middle', 'late']);
    expect(h.take('up')).toHaveLength(1);
    expect(() => pre.register(early)).toThrow(/registered already/);
  });

  it('drops with the handler\'s reason, counted and traced under the hook, and later handlers never see the frame', () => {
    const h = new Harness();
    const lines: string[] = [];
    h.dp.graph.setTracer(new TextTracer(h.dp.pool, h.dp.ctx.ports.names, () => '', (l) => lines.push(l)));
    const judge = new TestHandler(h, 'judge', 0, (slot) => (rd32(h.dp.pool.data, h.dp.pool.l3[slot] + 16) === parseIpv4('203.0.113.6') ? 1 : ACCEPT));
    const after = new TestHandler(h, 'after', 10);
    const pre = hook(h, 'prerouting');
    pre.register(judge);
    pre.register(after);
    introduce(h, A);
    h.rxBatch('pa', [
      udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5' }),
      udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.6' }),
      udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.7' }),
    ]);
    expect(h.take('up').map((f) => ip4Of(f).dst)).toEqual(['203.0.113.5', '203.0.113.7']);
    expect(h.drops('prerouting')).toEqual({ 'test.second-reason': 1 });
    expect(after.seen.map((s) => s.dst)).toEqual(['203.0.113.5', '203.0.113.7']);
    expect(lines.some((l) => l.includes('prerouting: dropped test.second-reason (judge: second reason)'))).toBe(true);
    // Unregistered, it stops judging; what it counted stays.
    pre.unregister(judge);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.6' }));
    expect(h.take('up')).toHaveLength(1);
    expect(h.drops('prerouting')).toEqual({ 'test.second-reason': 1 });
    h.dp.graph.setTracer(null);
  });

  it('lets a handler take a frame (STOLEN): not passed on, not counted as a drop', () => {
    const h = new Harness();
    const taken: number[] = [];
    const thief = new TestHandler(h, 'thief', 0, (slot) => {
      taken.push(slot);
      return STOLEN;
    });
    hook(h, 'postrouting').register(thief);
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5' }));
    expect(h.take('up')).toEqual([]);
    expect(h.drops('postrouting')).toEqual({});
    expect(taken).toHaveLength(1);
    // The handler answers for it: give it back to the hook, and it goes on its way.
    hook(h, 'postrouting').unregister(thief);
    hook(h, 'postrouting').enqueue(taken[0]);
    h.dp.run();
    expect(h.take('up').map((f) => ip4Of(f).dst)).toEqual(['203.0.113.5']);
  });

  it('trusts a handler that says how many frames it refused: 0 passes the batch as it is', () => {
    const h = new Harness();
    const counted = {
      name: 'counted', priority: 0, dropReasons: dropReasons([['test.odd', 'odd']]),
      // Refuses every other frame and says how many.
      process(slots: Int32Array, n: number, verdicts: Int32Array): number {
        let refused = 0;
        for (let i = 0; i < n; i += 2) {
          verdicts[i] = 0;
          refused++;
        }
        return refused;
      },
    };
    const none = { name: 'none', priority: 1, dropReasons: [], process: (): number => 0 };
    const after = new TestHandler(h, 'after', 2);
    for (const x of [counted, none, after]) hook(h, 'postrouting').register(x);
    introduce(h, A);
    h.rxBatch('pa', [0, 1, 2, 3].map((k) => udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5', sport: 1000 + k })));
    expect(h.take('up').map((f) => f.readUInt16BE(34))).toEqual([1001, 1003]);
    expect(after.seen).toHaveLength(2);
    expect(h.drops('postrouting')).toEqual({ 'test.odd': 2 });
  });
});

describe('prerouting', () => {
  it('routes the destination a handler rewrote there (DNAT before the routing decision)', () => {
    const h = new Harness();
    introduce(h, A);
    introduce(h, B);
    const dnat = new TestHandler(h, 'dnat', -100, (slot) => {
      if (rd32(h.dp.pool.data, h.dp.pool.l3[slot] + 16) === parseIpv4('10.96.0.10')) rewrite(h, slot, 16, B.ip);
      return ACCEPT;
    });
    hook(h, 'prerouting').register(dnat);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.96.0.10' }));
    // Without the rewrite the default route would send it to the uplink.
    expect(h.take('up')).toEqual([]);
    const [out] = h.take('pb');
    expect(ip4Of(out)).toMatchObject({ src: A.ip, dst: B.ip, ttl: 63, checksumOk: true });
    expect(dnat.seen).toEqual([{ src: A.ip, dst: '10.96.0.10', proto: 17, total: 60, l4Byte: 0x9c, fromRouter: false }]);
  });

  it('sees packets after header validation only, with l4 at the L4 header of a datagram or first fragment', () => {
    const h = new Harness();
    const rec = new TestHandler(h, 'rec');
    hook(h, 'prerouting').register(rec);
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5', badChecksum: true }));
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5', mf: true }));
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5', fragOffset: 800 }));
    expect(h.drops('ip4-input')).toEqual({ 'ip4.bad-checksum': 1 });
    // The UDP source port 40000 = 0x9c40 starts the L4 header; a later fragment has none.
    expect(rec.seen.map((s) => s.l4Byte)).toEqual([0x9c, -1]);
    h.clear();
  });
});

describe('output and postrouting: what the router originates', () => {
  function hooked(h: Harness): { output: TestHandler; post: TestHandler } {
    const output = new TestHandler(h, 'out');
    const post = new TestHandler(h, 'post');
    hook(h, 'output').register(output);
    hook(h, 'postrouting').register(post);
    return { output, post };
  }

  it('sends echo and timestamp replies, resets and ICMP errors through output, route lookup and postrouting', () => {
    const h = new Harness();
    const { output, post } = hooked(h);
    introduce(h, A);
    h.rx('pa', pingFrame({ from: A, toMac: GW.mac, dst: GW.ip }));
    const ts = [13, 0, 0, 0, 0, 7, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0];
    const tc = F.checksum(ts);
    ts[2] = tc >> 8;
    ts[3] = tc & 255;
    h.rx('pa', F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: GW.ip, proto: 1 }, ts)));
    const syn = [0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0];
    const sc = F.checksum([...F.ip(A.ip), ...F.ip(GW.ip), 0, 6, 0, 20, ...syn]);
    syn[16] = sc >> 8;
    syn[17] = sc & 255;
    h.rx('pa', F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: GW.ip, proto: 6 }, syn)));
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: GW.ip }));
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5', ttl: 1 }));
    const sent = h.take('pa');
    expect(sent.map((f) => [ip4Of(f).proto, ip4Of(f).proto === 1 ? icmpOf(f).type : 0])).toEqual([[1, 0], [1, 14], [6, 0], [1, 3], [1, 11]]);
    const made = [
      { src: GW.ip, dst: A.ip, proto: 1, total: 44, l4Byte: 0, fromRouter: true },
      { src: GW.ip, dst: A.ip, proto: 1, total: 40, l4Byte: 14, fromRouter: true },
      { src: GW.ip, dst: A.ip, proto: 6, total: 40, l4Byte: 0x00, fromRouter: true },
      { src: GW.ip, dst: A.ip, proto: 1, total: 88, l4Byte: 3, fromRouter: true },
      { src: GW.ip, dst: A.ip, proto: 1, total: 88, l4Byte: 11, fromRouter: true },
    ];
    expect(output.seen).toEqual(made);
    expect(post.seen).toEqual(made);
  });

  it('sends host unreachable for a packet whose neighbour never answers through output as well', () => {
    const h = new Harness();
    const { output } = hooked(h);
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.9.0.77' }));
    h.advance(h.now + 4 * SEC);
    expect(h.take('pa').filter((f) => isIcmp(f, 3, 1))).toHaveLength(1);
    expect(output.seen.map((s) => [s.dst, s.l4Byte])).toEqual([[A.ip, 3]]);
    h.clear();
  });

  it('lets a handler at output change the destination: ip4-output routes the new one', () => {
    const h = new Harness();
    introduce(h, A);
    introduce(h, B);
    hook(h, 'output').register(new TestHandler(h, 'redirect', 0, (slot) => (rewrite(h, slot, 16, B.ip), ACCEPT)));
    h.rx('pa', pingFrame({ from: A, toMac: GW.mac, dst: GW.ip }));
    expect(h.take('pa')).toEqual([]);
    const [reply] = h.take('pb');
    expect(ip4Of(reply)).toMatchObject({ src: GW.ip, dst: B.ip, checksumOk: true });
  });
});

describe('postrouting: every packet leaving a router interface, once, before fragmentation', () => {
  it('sees a forwarded datagram whole, and a source it rewrote is in every fragment', () => {
    const h = new Harness();
    const snat = new TestHandler(h, 'snat', 100, (slot) => (rewrite(h, slot, 12, '10.9.0.1'), ACCEPT));
    hook(h, 'postrouting').register(snat);
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.200.0.5', dataLen: 1400, id: 0x42 }));
    expect(snat.seen).toEqual([{ src: A.ip, dst: '10.200.0.5', proto: 17, total: 1428, l4Byte: 0x9c, fromRouter: false }]);
    const frags = h.take('slow');
    expect(frags.length).toBe(2);
    for (const f of frags) expect(ip4Of(f)).toMatchObject({ src: '10.9.0.1', dst: '10.200.0.5', id: 0x42, ttl: 63, checksumOk: true });
    expect(frags.every((f) => f.subarray(0, 6).equals(Buffer.from(F.mac(SLOW_GW.mac))))).toBe(true);
    expect(h.counters('postrouting').packets).toBe(1);
    expect(h.counters('ip4-fragment').packets).toBe(1);
  });

  it('fragments a reply larger than the egress MTU after the hook (a reassembled ping to the router)', () => {
    const h = new Harness();
    const post = new TestHandler(h, 'post');
    hook(h, 'postrouting').register(post);
    h.rx('slow', F.ethernet('02:00:00:00:09:01', SLOW_GW.mac, 0x0806, F.arp(1, SLOW_GW.mac, SLOW_GW.ip, '00:00:00:00:00:00', '10.9.0.1')));
    h.clear();
    const icmp = F.icmpEcho(8, 9, 1, F.bytes(1500));
    const dgram = F.ipv4({ src: SLOW_GW.ip, dst: '10.9.0.1', proto: 1, id: 3 }, icmp);
    const payload = dgram.slice(20);
    const frag = (off: number, mf: boolean) =>
      F.ethernet('02:00:00:00:09:01', SLOW_GW.mac, 0x0800, F.ipv4({ src: SLOW_GW.ip, dst: '10.9.0.1', proto: 1, id: 3, mf, fragOffset: off }, payload.slice(off, off + 976)));
    h.rxBatch('slow', [frag(0, true), frag(976, false)]);
    expect(post.seen.map((s) => [s.total, s.fromRouter])).toEqual([[20 + 1508, true]]);
    const out = h.take('slow');
    expect(out.length).toBe(2);
    expect(out.map((f) => ip4Of(f).mf)).toEqual([true, false]);
  });
});

describe('bridge-ip4: the bridge\'s IPv4 hook (br_netfilter)', () => {
  it('is passed by pod-to-pod IPv4 unicast only while connection tracking is on, known unicast and flood copies alike', () => {
    const h = new Harness(NAT);
    expect(h.dp.ctx.conntrack).not.toBeNull();
    const rec = new TestHandler(h, 'rec');
    hook(h, 'bridge-ip4').register(rec);
    introduce(h, B);
    h.rx('pa', udpFrame({ from: A, toMac: B.mac, dst: B.ip }));
    expect(h.take('pb')).toHaveLength(1);
    // C is unknown: the frame is flooded to pb and pc, each copy through the hook.
    h.rx('pa', udpFrame({ from: A, toMac: C.mac, dst: C.ip }));
    expect([h.take('pb').length, h.take('pc').length]).toEqual([1, 1]);
    // Not hooked: broadcast IPv4, ARP, frames for the router, frames the router sends.
    h.rx('pa', udpFrame({ from: A, toMac: BCAST, dst: '10.244.1.255' }));
    h.rx('pa', pingFrame({ from: A, toMac: GW.mac, dst: B.ip }));
    h.clear();
    expect(rec.seen.map((s) => s.dst)).toEqual([B.ip, C.ip, C.ip]);
    expect(h.counters('bridge-ip4').packets).toBe(3);
  });

  it('is never passed when the config asks for no connection tracking: the fast path is as before', () => {
    const h = new Harness();
    expect(h.dp.ctx.conntrack).toBeNull();
    introduce(h, B);
    h.rx('pa', udpFrame({ from: A, toMac: B.mac, dst: B.ip }));
    h.rx('pa', udpFrame({ from: A, toMac: C.mac, dst: C.ip }));
    expect([h.take('pb').length, h.take('pc').length]).toEqual([2, 1]);
    expect(h.counters('bridge-ip4').packets).toBe(0);
  });

  it('delivers what a handler rewrote (a reply translated back) and drops what it drops', () => {
    const h = new Harness(NAT);
    hook(h, 'bridge-ip4').register(new TestHandler(h, 'unnat', 0, (slot) => {
      const src = rd32(h.dp.pool.data, h.dp.pool.l3[slot] + 12);
      if (src === parseIpv4(B.ip)) rewrite(h, slot, 12, '10.96.0.10');
      return src === parseIpv4(C.ip) ? 0 : ACCEPT;
    }));
    introduce(h, A);
    h.rx('pb', udpFrame({ from: B, toMac: A.mac, dst: A.ip }));
    h.rx('pc', udpFrame({ from: C, toMac: A.mac, dst: A.ip }));
    const got = h.take('pa');
    expect(got.map((f) => ip4Of(f))).toMatchObject([{ src: '10.96.0.10', dst: A.ip, checksumOk: true }]);
    expect(h.drops('bridge-ip4')).toEqual({ 'test.told-to-drop': 1 });
  });

  it('gives each flood copy it sees bytes of its own: a rewrite of one copy leaves the others as they were', () => {
    const h = new Harness(NAT);
    const pb = h.port('pb');
    hook(h, 'bridge-ip4').register(new TestHandler(h, 'rewrite-one', 0, (slot) => {
      expect(h.dp.pool.isShared(slot)).toBe(false);
      if (h.dp.pool.outPort[slot] === pb) rewrite(h, slot, 12, '10.96.0.10');
      return ACCEPT;
    }));
    h.rx('pa', udpFrame({ from: A, toMac: C.mac, dst: C.ip }));
    expect(h.take('pb').map((f) => ip4Of(f))).toMatchObject([{ src: '10.96.0.10', dst: C.ip, checksumOk: true }]);
    expect(h.take('pc').map((f) => ip4Of(f))).toMatchObject([{ src: A.ip, dst: C.ip, checksumOk: true }]);
  });
});

describe('graph shape', () => {
  it('has the hooks where Linux has them', () => {
    const h = new Harness();
    const edges = h.dp.graph.describe();
    for (const e of [
      'ip4-input -prerouting-> prerouting',
      'prerouting -route-> ip4-lookup',
      'prerouting -defrag-> ip4-reassemble',
      'ip4-reassemble -prerouting-> prerouting',
      'ip4-lookup -local-> input',
      'input -local-> ip4-local',
      'ip4-lookup -forward-> ip4-forward',
      'ip4-forward -postrouting-> postrouting',
      'icmp-local -output-> output',
      'tcp-reset -output-> output',
      'icmp-error -output-> output',
      'output -route-> ip4-output',
      'ip4-output -postrouting-> postrouting',
      'postrouting -fragment-> ip4-fragment',
      'postrouting -neighbour-> neighbour-output',
      'bridge-forward -ip4-> bridge-ip4',
      'bridge-ip4 -tx-> port-output',
    ]) expect(edges).toContain(e);
    // Nothing but postrouting feeds fragmentation; nothing routed skips postrouting except
    // ip4-forward's edge past it, taken only while it has no handlers (the handler tests above).
    expect(edges.filter((e) => e.endsWith('> ip4-fragment'))).toEqual(['postrouting -fragment-> ip4-fragment']);
    expect(edges.filter((e) => e.endsWith('> neighbour-output')).sort()).toEqual([
      'arp-input -neighbour-> neighbour-output',
      'ip4-forward -neighbour-> neighbour-output',
      'ip4-fragment -neighbour-> neighbour-output',
      'postrouting -neighbour-> neighbour-output',
    ]);
    expect(edges.filter((e) => e.endsWith('> ip4-lookup')).sort()).toEqual([
      'ip4-input -route-> ip4-lookup',
      'prerouting -route-> ip4-lookup',
    ]);
  });
});
