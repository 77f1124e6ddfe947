/**
 * Conntrack table: one lookup finds either direction, NAT bindings re-index the reply tuple
 * or refuse a taken one, ICMP echo tuples, INVALID starts, views, flush filters, statistics,
 * events, dying ids, and the bytes per entry at 1,000,000.
 */
import { describe, expect, it } from 'vitest';
import {
  Conntrack,
  CtVerdict,
  CT_ASSURED,
  CT_REPLY_INDEXED,
  CT_SEEN_REPLY,
  CT_SNAT,
  type ConntrackListener,
} from '../../src/tables/conntrack.ts';
import { conntrackEntryView, conntrackStats, flushConntrack, forEachConntrackFrom } from '../../src/tables/conntrack-views.ts';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../../src/tables/conntrack-tcp.ts';

const TCP = 6;
const UDP = 17;
const ICMP = 1;
const T0 = 1_700_000_000_000_000;
const POD_A = 0x0af40102; // 10.244.1.2
const POD_B = 0x0af40103;
const SERVER = 0x08080808;
const NODE = 0xc0a83201; // 192.168.50.1, above 2^31: exercises int32 keys

function table(max = 64): Conntrack {
  const ct = new Conntrack({ max });
  ct.nowUs = T0;
  return ct;
}

describe('Conntrack lookups', () => {
  it('finds the entry from either direction with one lookup, and misses other tuples', () => {
    const ct = table();
    const id = ct.create(TCP, POD_A, SERVER, 40000, 80);
    expect(id).toBeGreaterThanOrEqual(0);
    expect(ct.lookup(TCP, POD_A, SERVER, 40000, 80)).toBe(id << 1);
    expect(ct.lookup(TCP, SERVER, POD_A, 80, 40000)).toBe((id << 1) | 1);
    expect(ct.lookup(UDP, POD_A, SERVER, 40000, 80)).toBe(-1);
    expect(ct.lookup(TCP, POD_A, SERVER, 40001, 80)).toBe(-1);
    expect(ct.lookup(TCP, POD_B, SERVER, 40000, 80)).toBe(-1);
    expect(ct.found).toBe(2);
    expect(ct.count).toBe(1);
  });

  it('takes addresses as uint32 or int32 alike', () => {
    const ct = table();
    const id = ct.create(UDP, NODE, 0xffffffff, 65535, 1);
    expect(ct.lookup(UDP, NODE | 0, -1, 65535, 1)).toBe(id << 1);
    expect(ct.lookup(UDP, -1, NODE, 1, 65535)).toBe((id << 1) | 1);
    expect(ct.srcOf(id << 1) >>> 0).toBe(NODE);
    expect(ct.sportOf(id << 1)).toBe(65535);
    expect(ct.dportOf((id << 1) | 1)).toBe(65535);
    expect(ct.protoOf(id)).toBe(UDP);
  });

  it('refuses to create a tuple that exists (insert_failed)', () => {
    const ct = table();
    ct.create(UDP, POD_A, SERVER, 1, 2);
    expect(ct.create(UDP, POD_A, SERVER, 1, 2)).toBe(-1);
    expect(ct.insertFailed).toBe(1);
    expect(ct.count).toBe(1);
  });

  it('tracks ICMP echo with the identifier as both ports, request out and reply back', () => {
    const ct = table();
    const ref = ct.track(ICMP, POD_A, SERVER, 0x1234, 0x1234, 8, 84);
    expect(ct.verdict).toBe(CtVerdict.NEW);
    const back = ct.track(ICMP, SERVER, POD_A, 0x1234, 0x1234, 0, 84);
    expect(back).toBe(ref | 1);
    expect(ct.verdict).toBe(CtVerdict.ESTABLISHED);
    expect(ct.statusOf(ref >> 1) & CT_SEEN_REPLY).toBe(CT_SEEN_REPLY);
    // An echo request coming back along the reply tuple, or a reply with no request: INVALID.
    expect(ct.track(ICMP, SERVER, POD_A, 0x1234, 0x1234, 8, 84)).toBe(-1);
    expect(ct.verdict).toBe(CtVerdict.INVALID);
    expect(ct.track(ICMP, SERVER, POD_B, 7, 7, 0, 84)).toBe(-1);
    expect(ct.verdict).toBe(CtVerdict.INVALID);
    expect(ct.invalid).toBe(2);
    expect(ct.count).toBe(1);
  });

  it('starts TCP only with a SYN: a non-SYN that starts nothing is INVALID and creates nothing', () => {
    const ct = table();
    for (const flags of [TCP_ACK, TCP_ACK | TCP_FIN, TCP_RST, TCP_SYN | TCP_ACK, TCP_SYN | TCP_FIN, 0]) {
      expect(ct.track(TCP, POD_A, SERVER, 40000, 80, flags, 60)).toBe(-1);
      expect(ct.verdict).toBe(CtVerdict.INVALID);
    }
    expect(ct.count).toBe(0);
    expect(ct.created).toBe(0);
    expect(ct.invalid).toBe(6);
    expect(ct.track(TCP, POD_A, SERVER, 40000, 80, TCP_SYN, 60)).toBe(0);
    expect(ct.verdict).toBe(CtVerdict.NEW);
  });

  it('leaves other protocols untracked', () => {
    const ct = table();
    expect(ct.track(47, POD_A, SERVER, 0, 0, 0, 100)).toBe(-1);
    expect(ct.verdict).toBe(CtVerdict.UNTRACKED);
    expect(ct.count).toBe(0);
  });
});

describe('Conntrack NAT bindings', () => {
  it('re-indexes the reply tuple on SNAT: replies to the new source find the entry, the old reply tuple is gone', () => {
    const ct = table();
    const id = ct.create(UDP, POD_A, SERVER, 5000, 53);
    expect(ct.bindSnat(id, NODE, 6000)).toBe(true);
    expect(ct.statusOf(id) & (CT_SNAT | CT_REPLY_INDEXED)).toBe(CT_SNAT | CT_REPLY_INDEXED);
    expect(ct.lookup(UDP, SERVER, NODE, 53, 6000)).toBe((id << 1) | 1);
    expect(ct.lookup(UDP, SERVER, POD_A, 53, 5000)).toBe(-1);
    expect(ct.lookup(UDP, POD_A, SERVER, 5000, 53)).toBe(id << 1);
    // The packet translation the header describes: the inverse of the other tuple.
    const r = (id << 1) ^ 1;
    expect([ct.dstOf(r) >>> 0, ct.srcOf(r) >>> 0, ct.dportOf(r), ct.sportOf(r)]).toEqual([NODE, SERVER, 6000, 53]);
    const back = id << 1;
    expect([ct.dstOf(back) >>> 0, ct.dportOf(back)]).toEqual([SERVER, 53]);
    expect([ct.srcOf(back) >>> 0, ct.sportOf(back)]).toEqual([POD_A, 5000]);
  });

  it('refuses a reply tuple another entry holds and changes nothing', () => {
    const ct = table();
    const a = ct.create(TCP, POD_A, SERVER, 5000, 80);
    const b = ct.create(TCP, POD_B, SERVER, 5000, 80);
    expect(ct.bindSnat(a, NODE, 5000)).toBe(true);
    expect(ct.bindSnat(b, NODE, 5000)).toBe(false);
    expect(ct.statusOf(b) & CT_SNAT).toBe(0);
    expect(ct.lookup(TCP, SERVER, POD_B, 80, 5000)).toBe((b << 1) | 1);
    expect(ct.lookup(TCP, SERVER, NODE, 80, 5000)).toBe((a << 1) | 1);
    expect(ct.bindSnat(b, NODE, 5001)).toBe(true);
    expect(ct.lookup(TCP, SERVER, NODE, 80, 5001)).toBe((b << 1) | 1);
  });

  it('DNAT rewrites the reply source; SNAT and DNAT combine', () => {
    const ct = table();
    const vip = 0x0a600001;
    const id = ct.create(TCP, POD_A, vip, 40000, 80);
    expect(ct.bindDnat(id, POD_B, 8080)).toBe(true);
    expect(ct.bindSnat(id, NODE, 40000)).toBe(true);
    expect(ct.lookup(TCP, POD_B, NODE, 8080, 40000)).toBe((id << 1) | 1);
    expect(ct.lookup(TCP, vip, POD_A, 80, 40000)).toBe(-1);
  });

  it('leaves the reply unindexed when its inverse tuple is taken, until a binding frees it', () => {
    const ct = table();
    const a = ct.create(TCP, POD_A, SERVER, 1000, 80);
    ct.bindSnat(a, NODE, 1000); // reply SERVER:80 -> NODE:1000
    const b = ct.create(TCP, NODE, SERVER, 1000, 80); // its inverse is a's reply tuple
    expect(b).toBeGreaterThanOrEqual(0);
    expect(ct.statusOf(b) & CT_REPLY_INDEXED).toBe(0);
    expect(ct.lookup(TCP, SERVER, NODE, 80, 1000)).toBe((a << 1) | 1);
    expect(ct.isReplyFree(b, SERVER, NODE, 80, 1000)).toBe(false);
    expect(ct.bindSnat(b, NODE, 1001)).toBe(true);
    expect(ct.lookup(TCP, SERVER, NODE, 80, 1001)).toBe((b << 1) | 1);
    // Removing b must not disturb a's reply.
    ct.remove(b);
    expect(ct.lookup(TCP, SERVER, NODE, 80, 1000)).toBe((a << 1) | 1);
  });

  it('ICMP SNAT sets the new identifier as both reply ports', () => {
    const ct = table();
    const id = ct.create(ICMP, POD_A, SERVER, 77, 77);
    expect(ct.bindSnat(id, NODE, 900)).toBe(true);
    expect(ct.lookup(ICMP, SERVER, NODE, 900, 900)).toBe((id << 1) | 1);
  });
});

describe('Conntrack views, flush, statistics, events', () => {
  it('shows an entry as conntrack -L would: state, seconds left, tuples, flags, counters', () => {
    const ct = table();
    const ref = ct.track(TCP, POD_A, SERVER, 40000, 80, TCP_SYN, 60);
    ct.track(TCP, SERVER, POD_A, 80, 40000, TCP_SYN | TCP_ACK, 60);
    ct.nowUs += 1_500_000;
    ct.track(TCP, POD_A, SERVER, 40000, 80, TCP_ACK, 52);
    const v = conntrackEntryView(ct, ref >> 1)!;
    expect(v.state).toBe('ESTABLISHED');
    expect(v.secondsLeft).toBe(86400);
    expect(v.assured && v.seenReply).toBe(true);
    expect(v.original).toEqual({ src: POD_A, dst: SERVER, sport: 40000, dport: 80 });
    expect(v.reply).toEqual({ src: SERVER, dst: POD_A, sport: 80, dport: 40000 });
    expect(v.packets).toEqual([2, 1]);
    expect(v.bytes).toEqual([112, 60]);
    expect(conntrackEntryView(ct, 5)).toBeNull();
  });

  it('flushes all, by protocol, or by original destination, and counts what it removed', () => {
    const ct = table();
    ct.create(TCP, POD_A, SERVER, 1, 80);
    ct.create(UDP, POD_A, SERVER, 1, 53);
    ct.create(UDP, POD_A, NODE, 2, 53);
    ct.create(ICMP, POD_B, NODE, 3, 3);
    expect(flushConntrack(ct, { proto: UDP, dst: NODE })).toBe(1);
    expect(ct.lookup(UDP, POD_A, NODE, 2, 53)).toBe(-1);
    expect(flushConntrack(ct, { dst: NODE })).toBe(1);
    expect(flushConntrack(ct, { proto: TCP })).toBe(1);
    expect(ct.count).toBe(1);
    expect(flushConntrack(ct)).toBe(1);
    expect(ct.count).toBe(0);
    expect(ct.lookup(UDP, POD_A, SERVER, 1, 53)).toBe(-1);
  });

  it('iterates in bounded chunks that visit every live entry once, even with changes between chunks', () => {
    const ct = table(1000);
    for (let i = 0; i < 600; i++) ct.create(UDP, POD_A, SERVER, 1000 + i, 53);
    const seen = new Set<number>();
    let cursor = 0;
    let chunks = 0;
    let removedLater = -1;
    while (cursor >= 0) {
      let calls = 0;
      cursor = forEachConntrackFrom(ct, cursor, 100, (id) => {
        expect(seen.has(id)).toBe(false);
        seen.add(id);
        calls++;
      });
      expect(calls).toBeLessThanOrEqual(100);
      chunks++;
      // Between chunks: one entry not yet visited dies, one new one is born.
      if (chunks === 2) {
        removedLater = 550;
        ct.remove(removedLater);
        ct.create(UDP, POD_B, SERVER, 1, 53);
      }
    }
    expect(chunks).toBeGreaterThanOrEqual(6);
    expect(seen.has(removedLater)).toBe(false);
    for (let id = 0; id < 600; id++) if (id !== removedLater) expect(seen.has(id)).toBe(true);
  });

  it('counts as conntrack -S does', () => {
    const ct = table(2);
    ct.track(UDP, POD_A, SERVER, 1, 53, 0, 60);
    ct.track(UDP, SERVER, POD_A, 53, 1, 0, 60);
    ct.track(TCP, POD_A, SERVER, 1, 80, TCP_ACK, 60);
    ct.track(UDP, POD_B, SERVER, 1, 53, 0, 60);
    const s = conntrackStats(ct);
    expect(s).toMatchObject({ count: 2, max: 2, found: 1, new: 2, invalid: 1, insertFailed: 0, drop: 0, earlyDrop: 0 });
  });

  it('reports NEW, UPDATE (reply seen, state, assured) and DESTROY to a listener, nothing more', () => {
    const ct = table();
    const log: string[] = [];
    const listener: ConntrackListener = {
      onNew: (id) => log.push(`new ${id}`),
      onUpdate: (id) => log.push(`update ${id} ${ct.tcpStateOf(id)} ${ct.statusOf(id) & (CT_SEEN_REPLY | CT_ASSURED)}`),
      onDestroy: (id) => log.push(`destroy ${id} ${ct.srcOf(id << 1) === POD_A}`),
    };
    ct.listener = listener;
    ct.track(TCP, POD_A, SERVER, 40000, 80, TCP_SYN, 60);
    ct.track(TCP, POD_A, SERVER, 40000, 80, TCP_SYN, 60); // retransmission: no change
    ct.track(TCP, SERVER, POD_A, 80, 40000, TCP_SYN | TCP_ACK, 60);
    ct.track(TCP, POD_A, SERVER, 40000, 80, TCP_ACK, 60);
    ct.track(TCP, POD_A, SERVER, 40000, 80, TCP_ACK, 1500); // data: no change
    ct.remove(0);
    expect(log).toEqual(['new 0', 'update 0 1 0', 'update 0 2 1', 'update 0 3 3', 'destroy 0 true']);
  });

  it('keeps a destroyed entry readable and its id unused until the next expire', () => {
    const ct = table(4);
    const a = ct.create(UDP, POD_A, SERVER, 1, 53);
    ct.remove(a);
    expect(ct.isLive(a)).toBe(false);
    const b = ct.create(UDP, POD_B, SERVER, 1, 53);
    expect(b).not.toBe(a);
    expect(ct.srcOf(a << 1) >>> 0).toBe(POD_A);
    ct.expire(T0, 100);
    ct.remove(b);
    ct.expire(T0, 100);
    const c = ct.create(UDP, NODE, SERVER, 1, 53);
    expect([a, b]).toContain(c);
  });
});

describe('Conntrack memory', () => {
  it('holds 1,000,000 entries in at most 128 bytes each, index included', () => {
    const ct = new Conntrack({ max: 1_000_000 });
    expect(ct.bytesPerEntry).toBeLessThanOrEqual(128);
    expect(ct.bytesPerEntry).toBeGreaterThan(100);
    ct.nowUs = T0;
    let refused = 0;
    for (let i = 0; i < 1_000_000; i++) if (ct.create(UDP, 0x0a000000 + (i >> 8), SERVER, 1024 + (i & 255), 53) < 0) refused++;
    expect(refused).toBe(0);
    expect(ct.count).toBe(1_000_000);
    expect(ct.lookup(UDP, SERVER, 0x0a000000 + (999_999 >> 8), 53, 1024 + (999_999 & 255))).toBeGreaterThanOrEqual(0);
  });
});
