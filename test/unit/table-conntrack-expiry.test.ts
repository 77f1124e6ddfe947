/**
 * Conntrack timeouts, expiry and capacity: UDP 30 s unreplied and 120 s as a stream, ICMP
 * 30 s, exact expiry at lookups, bounded work per expire call, nextDeadline as replay's
 * timer (one wake-up per busy second, not per entry), deadlines moved earlier or beyond the
 * wheel's span, no entry left after every timeout, early drop when full and refusal when
 * every entry is ASSURED, and a SYN flood that leaves established flows alone.
 */
import { describe, expect, it } from 'vitest';
import { Conntrack, CtVerdict, CT_ASSURED, CT_UDP_STREAM } from '../../src/tables/conntrack.ts';
import { TCP_ACK, TCP_RST, TCP_SYN } from '../../src/tables/conntrack-tcp.ts';
import { Random } from '../../src/core/random.ts';

const TCP = 6;
const UDP = 17;
const ICMP = 1;
const T0 = 1_700_000_000_000_000;
const POD = 0x0af40102;
const SERVER = 0x08080808;
const S = 1e6;

function table(max = 64): Conntrack {
  const ct = new Conntrack({ max });
  ct.nowUs = T0;
  return ct;
}

/** Runs expire at each nextDeadline up to `untilUs`, as replay's timer loop does; returns the wake-ups. */
function runTimersUntil(ct: Conntrack, untilUs: number, budget = 1_000_000): number {
  let wakeups = 0;
  for (;;) {
    const t = ct.nextDeadline();
    if (t > untilUs) break;
    expect(t).toBeGreaterThanOrEqual(ct.nowUs);
    ct.expire(t, budget);
    wakeups++;
    expect(wakeups).toBeLessThan(100_000);
  }
  ct.expire(untilUs, budget);
  return wakeups;
}

/** A TCP flow from POD:port to SERVER:80 through the handshake (ASSURED). */
function establish(ct: Conntrack, port: number): number {
  ct.track(TCP, POD, SERVER, port, 80, TCP_SYN, 60);
  ct.track(TCP, SERVER, POD, 80, port, TCP_SYN | TCP_ACK, 60);
  const ref = ct.track(TCP, POD, SERVER, port, 80, TCP_ACK, 60);
  expect(ct.statusOf(ref >> 1) & CT_ASSURED).toBe(CT_ASSURED);
  return ref;
}

describe('UDP and ICMP timeouts', () => {
  it('an unreplied UDP flow lives exactly 30 s', () => {
    const ct = table();
    const ref = ct.track(UDP, POD, SERVER, 5000, 53, 0, 60);
    expect(ct.verdict).toBe(CtVerdict.NEW);
    ct.nowUs = T0 + 30 * S - 1;
    expect(ct.lookup(UDP, POD, SERVER, 5000, 53)).toBe(ref);
    ct.nowUs = T0 + 30 * S;
    expect(ct.lookup(UDP, POD, SERVER, 5000, 53)).toBe(-1);
    expect(ct.count).toBe(0);
    expect(ct.expired).toBe(1);
  });

  it('a replied UDP flow is ASSURED at its next packet, and gets 120 s once active past 2 s', () => {
    const ct = table();
    const ref = ct.track(UDP, POD, SERVER, 5000, 53, 0, 60);
    const id = ref >> 1;
    const left = (): number => (ct.deadlineOf(id) - ct.nowUs) / S;
    ct.nowUs = T0 + 0.5 * S;
    ct.track(UDP, SERVER, POD, 53, 5000, 0, 60);
    expect(ct.verdict).toBe(CtVerdict.ESTABLISHED);
    expect(ct.statusOf(id) & CT_ASSURED).toBe(0);
    expect(left()).toBe(30);
    ct.nowUs = T0 + 1 * S;
    ct.track(UDP, POD, SERVER, 5000, 53, 0, 60);
    expect(ct.verdict).toBe(CtVerdict.ESTABLISHED);
    expect(ct.statusOf(id) & (CT_ASSURED | CT_UDP_STREAM)).toBe(CT_ASSURED);
    expect(left()).toBe(30);
    ct.nowUs = T0 + 2 * S; // not yet *more* than 2 s
    ct.track(UDP, POD, SERVER, 5000, 53, 0, 60);
    expect(left()).toBe(30);
    ct.nowUs = T0 + 2 * S + 1;
    ct.track(UDP, SERVER, POD, 53, 5000, 0, 60);
    expect(ct.statusOf(id) & CT_UDP_STREAM).toBe(CT_UDP_STREAM);
    expect(left()).toBe(120);
    ct.nowUs += 119 * S;
    expect(ct.lookup(UDP, POD, SERVER, 5000, 53)).toBe(ref);
    ct.nowUs += 1 * S;
    expect(ct.lookup(UDP, POD, SERVER, 5000, 53)).toBe(-1);
  });

  it('a UDP flow that only ever talks one way stays at 30 s however long it lasts', () => {
    const ct = table();
    const ref = ct.track(UDP, POD, SERVER, 5000, 514, 0, 60);
    for (let t = 1; t <= 100; t++) {
      ct.nowUs = T0 + t * 10 * S;
      expect(ct.track(UDP, POD, SERVER, 5000, 514, 0, 60)).toBe(ref);
      expect(ct.verdict).toBe(CtVerdict.NEW);
    }
    expect((ct.deadlineOf(ref >> 1) - ct.nowUs) / S).toBe(30);
    expect(ct.statusOf(ref >> 1) & CT_ASSURED).toBe(0);
  });

  it('an ICMP echo flow lives 30 s after its last packet and is never ASSURED', () => {
    const ct = table();
    const ref = ct.track(ICMP, POD, SERVER, 9, 9, 8, 84);
    ct.nowUs = T0 + 10 * S;
    ct.track(ICMP, SERVER, POD, 9, 9, 0, 84);
    ct.nowUs = T0 + 20 * S;
    ct.track(ICMP, POD, SERVER, 9, 9, 8, 84);
    expect(ct.statusOf(ref >> 1) & CT_ASSURED).toBe(0);
    ct.nowUs = T0 + 50 * S - 1;
    expect(ct.lookup(ICMP, SERVER, POD, 9, 9)).toBe(ref | 1);
    ct.nowUs = T0 + 50 * S;
    expect(ct.lookup(ICMP, SERVER, POD, 9, 9)).toBe(-1);
  });
});

describe('Expiry', () => {
  it('reclaims an unreplied UDP flow on the virtual clock: nextDeadline within a second after its 30 s', () => {
    const ct = table();
    expect(ct.nextDeadline()).toBe(Infinity);
    ct.track(UDP, POD, SERVER, 5000, 53, 0, 60);
    const t = ct.nextDeadline();
    expect(t).toBeGreaterThanOrEqual(T0 + 30 * S);
    expect(t).toBeLessThanOrEqual(T0 + 31 * S);
    expect(ct.expire(t, 100)).toBe(1);
    expect(ct.count).toBe(0);
    expect(ct.nextDeadline()).toBe(Infinity);
  });

  it('does at most `budget` entries per call', () => {
    const ct = table(20_000);
    for (let i = 0; i < 10_000; i++) ct.create(UDP, POD + (i >> 10), SERVER, 1024 + (i & 1023), 53);
    const at = T0 + 40 * S;
    const counts: number[] = [];
    for (let calls = 0; ct.count > 0 && calls < 1000; calls++) counts.push(ct.expire(at, 128));
    expect(counts.every((n) => n <= 128)).toBe(true);
    expect(counts.length).toBe(Math.ceil(10_000 / 128));
    expect(ct.count).toBe(0);
    // Due work that a budget cut short is due at once.
    for (let i = 0; i < 300; i++) ct.create(UDP, POD, SERVER, 2000 + i, 53);
    ct.expire(at + 40 * S, 100);
    expect(ct.nextDeadline()).toBeLessThanOrEqual(at + 40 * S);
  });

  it('wakes once per busy second, not once per entry: 100,000 flows over 10 s drain in about 10 wake-ups', () => {
    const ct = table(200_000);
    for (let i = 0; i < 100_000; i++) {
      ct.nowUs = T0 + Math.floor(i / 10_000) * S + (i % 10_000) * 10;
      ct.track(UDP, 0x0a000000 + i, SERVER, 1000, 53, 0, 60);
    }
    const wakeups = runTimersUntil(ct, T0 + 60 * S);
    expect(wakeups).toBeLessThanOrEqual(12);
    expect(ct.count).toBe(0);
    expect(ct.expired).toBe(100_000);
  });

  it('files again a deadline moved earlier: an RST on an ESTABLISHED flow is reclaimed after 10 s, not a day', () => {
    const ct = table();
    establish(ct, 40000);
    ct.track(TCP, SERVER, POD, 80, 40000, TCP_RST, 40);
    ct.nowUs += 5 * S;
    ct.expire(ct.nowUs, 100);
    expect(ct.count).toBe(1);
    runTimersUntil(ct, ct.nowUs + 6 * S);
    expect(ct.count).toBe(0);
  });

  it('keeps entries whose timeout is beyond the wheel span (36 h) until it passes', () => {
    const ct = new Conntrack({ max: 8, timeouts: { tcpEstablished: 200_000 } });
    ct.nowUs = T0;
    const ref = establish(ct, 40000);
    runTimersUntil(ct, T0 + 199_999 * S);
    expect(ct.count).toBe(1);
    expect(ct.lookup(TCP, POD, SERVER, 40000, 80)).toBe(ref);
    runTimersUntil(ct, T0 + 200_001 * S);
    expect(ct.count).toBe(0);
  });

  it('keeps a flow refreshed for an hour, and no entry is left once every timeout has passed', () => {
    const ct = table(5000);
    const rng = new Random(7);
    let now = T0;
    const udpStream = ct.track(UDP, POD, SERVER, 7000, 7000, 0, 60);
    ct.track(UDP, SERVER, POD, 7000, 7000, 0, 60);
    for (let sec = 0; sec < 3600; sec++) {
      now = T0 + sec * S + rng.below(S);
      ct.nowUs = now;
      // A mix of short flows of every kind, some answered, some not.
      for (let k = 0; k < 2; k++) {
        const port = 1024 + rng.below(60000);
        const kind = rng.below(4);
        if (kind === 0) ct.track(UDP, POD, SERVER + rng.below(50), port, 53, 0, 60);
        else if (kind === 1) ct.track(ICMP, POD, SERVER, port, port, 8, 84);
        else if (kind === 2) ct.track(TCP, POD, SERVER, port, 443, TCP_SYN, 60);
        else establish(ct, port);
      }
      if (sec % 10 === 0) expect(ct.track(UDP, POD, SERVER, 7000, 7000, 0, 60)).toBe(udpStream);
      ct.expire(now, 256);
    }
    expect(ct.lookup(UDP, SERVER, POD, 7000, 7000)).toBe(udpStream | 1);
    expect(ct.count).toBeGreaterThan(100);
    runTimersUntil(ct, now + 86_401 * S, 1000);
    expect(ct.count).toBe(0);
    expect(ct.index.size).toBe(0);
    expect(ct.wheel.linked).toBe(0);
    expect(ct.nextDeadline()).toBe(Infinity);
  });
});

describe('A full table', () => {
  it('early-drops an entry that is not ASSURED to make room', () => {
    const ct = table(8);
    for (let i = 0; i < 8; i++) ct.track(UDP, POD, SERVER, 1000 + i, 53, 0, 60);
    expect(ct.track(UDP, POD, SERVER, 2000, 53, 0, 60)).toBeGreaterThanOrEqual(0);
    expect(ct.earlyDrop).toBe(1);
    expect(ct.count).toBe(8);
    expect(ct.lookup(UDP, POD, SERVER, 2000, 53)).toBeGreaterThanOrEqual(0);
  });

  it('reclaims expired entries before dropping any', () => {
    const ct = table(8);
    for (let i = 0; i < 8; i++) ct.track(UDP, POD, SERVER, 1000 + i, 53, 0, 60);
    ct.nowUs += 31 * S;
    expect(ct.track(UDP, POD, SERVER, 2000, 53, 0, 60)).toBeGreaterThanOrEqual(0);
    expect(ct.earlyDrop).toBe(0);
    expect(ct.expired).toBeGreaterThan(0);
  });

  it('evicts the one unassured entry among assured ones', () => {
    const ct = table(8);
    const assured = [];
    for (let i = 0; i < 7; i++) assured.push(establish(ct, 40000 + i));
    ct.track(UDP, POD, SERVER, 999, 53, 0, 60);
    expect(ct.track(UDP, POD, SERVER, 2000, 53, 0, 60)).toBeGreaterThanOrEqual(0);
    expect(ct.lookup(UDP, POD, SERVER, 999, 53)).toBe(-1);
    for (let i = 0; i < 7; i++) expect(ct.lookup(TCP, POD, SERVER, 40000 + i, 80)).toBe(assured[i]);
  });

  it('refuses a new flow when every entry is ASSURED, and the established flows go on', () => {
    const ct = table(8);
    const refs = [];
    for (let i = 0; i < 8; i++) refs.push(establish(ct, 40000 + i));
    expect(ct.track(TCP, POD, SERVER, 50000, 80, TCP_SYN, 60)).toBe(-1);
    expect(ct.verdict).toBe(CtVerdict.FULL);
    expect(ct.drop).toBe(1);
    expect(ct.earlyDrop).toBe(0);
    for (let i = 0; i < 8; i++) {
      expect(ct.track(TCP, SERVER, POD, 80, 40000 + i, TCP_ACK, 1500)).toBe(refs[i] | 1);
      expect(ct.verdict).toBe(CtVerdict.ESTABLISHED);
    }
  });

  it('a SYN flood from random sources early-drops its own entries and leaves established flows alone', () => {
    const max = 4096;
    const ct = table(max);
    const rng = new Random(42);
    const refs = [];
    for (let i = 0; i < 16; i++) refs.push(establish(ct, 30000 + i));
    let most = 0;
    for (let i = 0; i < 200_000; i++) {
      ct.nowUs = T0 + i * 5; // 200,000 SYNs/s
      ct.track(TCP, rng.nextU32() | 0, SERVER, 1024 + rng.below(60000), 80, TCP_SYN, 60);
      if ((i & 255) === 255) ct.expire(ct.nowUs, 256); // between batches
      most = Math.max(most, ct.count);
    }
    expect(most).toBe(max);
    expect(ct.earlyDrop).toBeGreaterThan(150_000);
    for (let i = 0; i < 16; i++) expect(ct.track(TCP, POD, SERVER, 30000 + i, 80, TCP_ACK, 1500)).toBe(refs[i]);
    expect(ct.highWater).toBeLessThanOrEqual(ct.idCapacity);
  });
});
