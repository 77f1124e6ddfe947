/**
 * bridge-forward (with ethernet-input in front and port-output behind): flooding, learning,
 * station moves, ageing, the FDB bound, port state, and what is never sent back or forwarded.
 * Flood copies share the frame's bytes; the router's copy has its own, since it may rewrite it.
 */
import { describe, expect, it } from 'vitest';
import * as F from '../helpers/frames.ts';
import { A, B, BCAST, C, GW, Harness, SEC, T0, arpFrame, udpFrame } from './stage-harness.test.ts';

const POD_PORTS = ['pa', 'pb', 'pc'];
const MCAST = '01:00:5e:00:00:fb';

/** A frame from `from` to `toMac` that the router has no interest in (unknown EtherType). */
function l2(from: { mac: string }, toMac: string, tag = 1): Buffer {
  return F.ethernet(toMac, from.mac, 0x88b5, F.bytes(46, tag));
}

function sent(h: Harness): Record<string, Buffer[]> {
  const out: Record<string, Buffer[]> = {};
  for (const p of [...POD_PORTS, 'up', 'slow']) out[p] = h.take(p);
  return out;
}

describe('bridge-forward', () => {
  it('floods a broadcast to every other member and hands a copy to the router interface', () => {
    const h = new Harness();
    const f = l2(A, BCAST);
    h.rx('pa', f);
    const out = sent(h);
    expect(out.pa).toEqual([]);
    expect(out.pb).toEqual([f]);
    expect(out.pc).toEqual([f]);
    expect(out.up).toEqual([]);
    expect(out.slow).toEqual([]);
    // The router's copy reached l3-input (and was dropped there as an unknown EtherType).
    expect(h.counters('l3-input')).toEqual({ packets: 1, drops: { 'l3.unsupported-ethertype': 1 }, events: {} });
    expect(h.drops('bridge-forward')).toEqual({});
  });

  it('floods multicast like broadcast, never back out of the ingress', () => {
    const h = new Harness();
    h.rx('pb', l2(B, MCAST));
    const out = sent(h);
    expect([out.pa.length, out.pb.length, out.pc.length]).toEqual([1, 0, 1]);
    expect(h.counters('l3-input').packets).toBe(1);
  });

  it('floods an unknown unicast to the other members but not to the router', () => {
    const h = new Harness();
    h.rx('pa', l2(A, B.mac));
    const out = sent(h);
    expect([out.pa.length, out.pb.length, out.pc.length]).toEqual([0, 1, 1]);
    expect(h.counters('l3-input').packets).toBe(0);
  });

  it('sends a known unicast to exactly one port, learned from the source of earlier frames', () => {
    const h = new Harness();
    h.rx('pb', l2(B, BCAST));
    h.clear();
    const f = l2(A, B.mac, 2);
    h.rx('pa', f);
    const out = sent(h);
    expect(out.pb).toEqual([f]);
    expect([out.pa.length, out.pc.length, out.up.length, out.slow.length]).toEqual([0, 0, 0, 0]);
    expect(h.dp.ctx.fdb.size).toBe(2);
  });

  it('drops a frame whose destination was learned on the ingress port itself, with its reason', () => {
    const h = new Harness();
    h.rx('pa', l2(A, BCAST));
    h.clear();
    // A second station behind pa (a pod's own bridge, say) sends to A.
    h.rx('pa', l2({ mac: '0a:58:0a:f4:01:99' }, A.mac));
    expect(sent(h)).toEqual({ pa: [], pb: [], pc: [], up: [], slow: [] });
    expect(h.drops('bridge-forward')).toEqual({ 'bridge.no-reflect': 1 });
  });

  it('drops a frame with a multicast or all-zero source MAC and learns nothing from it', () => {
    const h = new Harness();
    h.rx('pa', l2({ mac: MCAST }, BCAST));
    h.rx('pa', l2({ mac: '00:00:00:00:00:00' }, BCAST));
    expect(sent(h)).toEqual({ pa: [], pb: [], pc: [], up: [], slow: [] });
    expect(h.drops('bridge-forward')).toEqual({ 'bridge.invalid-source': 2 });
    expect(h.dp.ctx.fdb.size).toBe(0);
  });

  it('re-learns a station that moved to another port at once and counts the move', () => {
    const h = new Harness();
    h.rx('pa', l2(A, BCAST));
    h.rx('pc', l2(A, BCAST)); // A now on pc
    h.clear();
    const f = l2(B, A.mac);
    h.rx('pb', f);
    const out = sent(h);
    expect(out.pc).toEqual([f]);
    expect(out.pa).toEqual([]);
    expect(h.dp.ctx.fdb.moves).toBe(1);
  });

  it('forgets a station after ageingSeconds without frames from it: flooding resumes', () => {
    const yaml = (
      '\nnode: { name: n }\nbridges:\n  - { name: cni0, address: 10.244.1.1/24, ageingSeconds: 10 }\n' +
      'ports:\n  - { name: pa, bridge: cni0 }\n  - { name: pb, bridge: cni0 }\n  - { name: pc, bridge: cni0 }\n'
    );
    const h = new Harness(yaml);
    h.rx('pb', l2(B, BCAST), T0);
    h.clear();
    h.rx('pa', l2(A, B.mac), T0 + 9 * SEC);
    expect(h.take('pc')).toEqual([]);
    expect(h.take('pb')).toHaveLength(1);
    // B last sent at T0: by T0 + 10.5 s it is unknown again.
    h.rx('pa', l2(A, B.mac), T0 + 10.5 * SEC);
    expect(h.take('pc')).toHaveLength(1);
    expect(h.take('pb')).toHaveLength(1);
    expect(h.dp.stages.bridgeForward.flooded).toBe(2);
  });

  it('with a full table, counts the station it cannot learn and still floods its traffic', () => {
    const yaml = (
      '\nnode: { name: n }\nbridges:\n  - { name: cni0, address: 10.244.1.1/24 }\n' +
      'ports:\n  - { name: pa, bridge: cni0 }\n  - { name: pb, bridge: cni0 }\n  - { name: pc, bridge: cni0 }\nfdb: { maxEntries: 2 }\n'
    );
    const h = new Harness(yaml);
    h.rx('pa', l2(A, BCAST));
    h.rx('pb', l2(B, BCAST));
    h.rx('pc', l2(C, BCAST));
    expect(h.dp.ctx.fdb.full).toBe(1);
    expect(h.dp.ctx.fdb.size).toBe(2);
    h.clear();
    // Frames to C (never learned) are flooded; frames from C still reach their destination.
    h.rx('pa', l2(A, C.mac));
    expect([h.take('pb').length, h.take('pc').length]).toEqual([1, 1]);
    h.rx('pc', l2(C, A.mac));
    expect([h.take('pa').length, h.take('pb').length]).toEqual([1, 0]);
    expect(h.dp.ctx.fdb.full).toBe(2);
  });

  it('does not flood to a port that is down, drops what arrives on it, and forgets what it learned there', () => {
    const h = new Harness();
    h.rx('pb', l2(B, BCAST));
    h.clear();
    h.dp.setPortUp(h.port('pb'), false);
    expect(h.dp.ctx.fdb.lookup(0, 0x0a58, 0x0af40103, h.now)).toBe(-1);
    h.rx('pa', l2(A, BCAST));
    h.rx('pb', l2(B, BCAST));
    h.rx('pa', l2(A, B.mac));
    const out = sent(h);
    expect(out.pb).toEqual([]);
    expect(out.pc).toHaveLength(2);
    expect(h.drops('ethernet-input')).toEqual({ 'port.rx-down': 1 });
    expect(h.drops('port-output')).toEqual({});
    h.dp.setPortUp(h.port('pb'), true);
    h.rx('pa', l2(A, BCAST));
    expect(h.take('pb')).toHaveLength(1);
  });

  it('drops a unicast with nowhere to go on a one-port bridge, with its reason', () => {
    const yaml = '\nnode: { name: n }\nbridges:\n  - { name: br0 }\nports:\n  - { name: pa, bridge: br0 }\n';
    const h = new Harness(yaml);
    h.rx('pa', l2(A, B.mac));
    expect(h.take('pa')).toEqual([]);
    expect(h.drops('bridge-forward')).toEqual({ 'bridge.no-destination': 1 });
  });

  it('bridges IPv6 between pods while the router drops its copy as not routed', () => {
    const h = new Harness();
    const v6 = F.ethernet('33:33:00:00:00:01', A.mac, 0x86dd, [0x60, 0, 0, 0, 0, 8, 58, 255, ...new Array(32).fill(0), ...F.bytes(8)]);
    h.rx('pa', v6);
    expect(h.take('pb')).toEqual([v6]);
    expect(h.take('pc')).toEqual([v6]);
    expect(h.drops('l3-input')).toEqual({ 'ip6.not-routed': 1 });
    // Unicast IPv6 from pod to pod is forwarded; unicast IPv6 to the gateway MAC is dropped.
    h.rx('pb', l2(B, BCAST));
    h.clear();
    const uni = F.ethernet(B.mac, A.mac, 0x86dd, [...v6.subarray(14)]);
    h.rx('pa', uni);
    expect(h.take('pb')).toHaveLength(1);
    h.rx('pa', F.ethernet(GW.mac, A.mac, 0x86dd, [...v6.subarray(14)]));
    expect(h.drops('l3-input')).toEqual({ 'ip6.not-routed': 2, 'l3.unsupported-ethertype': 1 });
    expect(sent(h)).toEqual({ pa: [], pb: [], pc: [], up: [], slow: [] });
  });

  it('delivers a frame for the gateway MAC to the router only', () => {
    const h = new Harness();
    h.rx('pa', arpFrame({ ethDst: GW.mac, ethSrc: A.mac, op: 2, sha: A.mac, spa: A.ip, tha: GW.mac, tpa: GW.ip }));
    expect([h.take('pb').length, h.take('pc').length]).toEqual([0, 0]);
    expect(h.counters('arp-input').packets).toBe(1);
  });

  it('counts ports rx and tx like ip -s link', () => {
    const h = new Harness();
    const f = l2(A, BCAST);
    h.rx('pa', f);
    const { rxFrames, rxBytes, txFrames, txBytes } = h.dp.ctx.ports;
    const [pa, pb, pc] = POD_PORTS.map((p) => h.port(p));
    expect([rxFrames[pa], rxBytes[pa], txFrames[pa]]).toEqual([1, f.length, 0]);
    expect([txFrames[pb], txBytes[pb], txFrames[pc], txBytes[pc]]).toEqual([1, f.length, 1, f.length]);
  });
});

describe('flood copies', () => {
  /** Replaces the drivers of the pod ports with ones that note how each frame was held. */
  function watch(h: Harness): Record<string, { bytes: Buffer; start: number; shared: boolean }[]> {
    const seen: Record<string, { bytes: Buffer; start: number; shared: boolean }[]> = {};
    for (const name of POD_PORTS) {
      seen[name] = [];
      h.dp.setDriver(h.port(name), {
        transmit: (pool, slots, n) => {
          for (let i = 0; i < n; i++) seen[name].push({ bytes: Buffer.from(pool.view(slots[i])), start: pool.start[slots[i]], shared: pool.isShared(slots[i]) });
          return n;
        },
      });
    }
    return seen;
  }

  it('are sent from the same bytes, unchanged, while the router answers an ARP request in its own copy', () => {
    const h = new Harness();
    const seen = watch(h);
    const request = arpFrame({ ethDst: BCAST, ethSrc: A.mac, op: 1, sha: A.mac, spa: A.ip, tpa: GW.ip });
    h.rx('pa', request);
    // pb and pc got the request as sent, from one copy of its bytes (pb's is a shared copy).
    expect(seen.pb.map((f) => f.bytes)).toEqual([request]);
    expect(seen.pc.map((f) => f.bytes)).toEqual([request]);
    expect(seen.pb[0].start).toBe(seen.pc[0].start);
    expect(seen.pb[0].shared).toBe(true);
    // The router turned its copy into the reply in place, without touching theirs.
    expect(seen.pa).toHaveLength(1);
    expect(seen.pa[0].bytes.readUInt16BE(20)).toBe(2);
    expect(seen.pa[0].start).not.toBe(seen.pb[0].start);
    expect(h.drops('bridge-forward')).toEqual({});
  });

  it('an unknown unicast to many members: one set of bytes, every slot back in the pool', () => {
    const yaml = `
node: { name: n }
bridges:
  - { name: br0 }
ports:
${Array.from({ length: 8 }, (_, i) => `  - { name: q${i}, bridge: br0 }`).join('\n')}
`;
    const h = new Harness(yaml, 64);
    const starts = new Set<number>();
    const got: Buffer[] = [];
    for (let p = 0; p < 8; p++) {
      h.dp.setDriver(p, {
        transmit: (pool, slots, n) => {
          for (let i = 0; i < n; i++) {
            starts.add(pool.start[slots[i]]);
            got.push(Buffer.from(pool.view(slots[i])));
          }
          return n;
        },
      });
    }
    const f = udpFrame({ from: A, toMac: B.mac, dst: B.ip, dataLen: 1400 });
    h.rx('q0', f);
    expect(got).toEqual(new Array(7).fill(f));
    expect(starts.size).toBe(1);
    expect(h.dp.pool.available).toBe(h.startAvailable);
  });

  it('with the pool nearly exhausted: the copies that find no slot are counted, nothing leaks', () => {
    const h = new Harness(undefined, 2);
    const f = l2(A, BCAST);
    h.rx('pa', f);
    // Two slots: the frame and the router's copy. pb's shared copy finds none; pc takes the original.
    expect(h.take('pb')).toEqual([]);
    expect(h.take('pc')).toEqual([f]);
    expect(h.counters('l3-input').packets).toBe(1);
    expect(h.drops('bridge-forward')).toEqual({ 'bridge.no-slot': 1 });
  });
});

describe('udp between pods on the bridge', () => {
  it('is bridged untouched (no TTL change) once the destination is known', () => {
    const h = new Harness();
    h.rx('pb', l2(B, BCAST));
    h.clear();
    const f = udpFrame({ from: A, toMac: B.mac, dst: B.ip, ttl: 1 });
    h.rx('pa', f);
    expect(h.take('pb')).toEqual([f]);
    expect(h.counters('ip4-input').packets).toBe(0);
  });
});
