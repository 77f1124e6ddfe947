/**
 * SNAT port allocation: a flow keeps its source port when the translated tuple is free and
 * gets another from the range when not, replies find the right flow, two flows never share
 * a tuple (property test against a model of used ports), a full range fails after trying
 * each port once, a crowded large range stops after 248 tries, ICMP identifiers, --to-ports
 * ranges, seeded (repeatable) choices, and --random-fully (a random port even when the own
 * one is free, spread over the whole range, unique, bounded like the rest).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Conntrack, CT_SNAT } from '../../src/tables/conntrack.ts';
import { NatPortAllocator, SNAT_MAX_TRIES } from '../../src/tables/nat-port-allocator.ts';
import { TCP_SYN } from '../../src/tables/conntrack-tcp.ts';
import { Random } from '../../src/core/random.ts';

const TCP = 6;
const UDP = 17;
const ICMP = 1;
const POD_A = 0x0af40102;
const POD_B = 0x0af40103;
const SERVER = 0x5db8d822;
const NODE = 0xc0a83201;

function table(max = 64): Conntrack {
  const ct = new Conntrack({ max });
  ct.nowUs = 1e15;
  return ct;
}

describe('NatPortAllocator', () => {
  it('keeps the source port when free; the second pod with the same port gets another; replies go to the right pod', () => {
    const ct = table();
    const alloc = new NatPortAllocator(new Random(1));
    const a = ct.track(TCP, POD_A, SERVER, 40000, 443, TCP_SYN, 60) >> 1;
    const b = ct.track(TCP, POD_B, SERVER, 40000, 443, TCP_SYN, 60) >> 1;
    expect(alloc.snat(ct, a, NODE)).toBe(40000);
    const pb = alloc.snat(ct, b, NODE);
    expect(pb).not.toBe(40000);
    expect(pb).toBeGreaterThanOrEqual(1024);
    expect(pb).toBeLessThanOrEqual(65535);
    expect(ct.lookup(TCP, SERVER, NODE, 443, 40000)).toBe((a << 1) | 1);
    expect(ct.lookup(TCP, SERVER, NODE, 443, pb)).toBe((b << 1) | 1);
    expect(ct.statusOf(b) & CT_SNAT).toBe(CT_SNAT);
    expect([alloc.kept, alloc.remapped, alloc.failed]).toEqual([1, 1, 0]);
  });

  it('keeps the port when only another destination uses it (the tuple differs)', () => {
    const ct = table();
    const alloc = new NatPortAllocator(new Random(1));
    const a = ct.create(UDP, POD_A, SERVER, 5353, 53);
    const b = ct.create(UDP, POD_B, SERVER + 1, 5353, 53);
    expect(alloc.snat(ct, a, NODE)).toBe(5353);
    expect(alloc.snat(ct, b, NODE)).toBe(5353);
  });

  it('fails after trying each port of a full small range once', () => {
    const ct = table();
    const alloc = new NatPortAllocator(new Random(3));
    const ports = new Set<number>();
    for (let i = 0; i < 10; i++) {
      const id = ct.create(UDP, POD_A, SERVER, 2000 + i, 53);
      const p = alloc.snat(ct, id, NODE, 3000, 3009, true);
      expect(p).toBeGreaterThanOrEqual(3000);
      expect(p).toBeLessThanOrEqual(3009);
      ports.add(p);
    }
    expect(ports.size).toBe(10);
    const id = ct.create(UDP, POD_A, SERVER, 2010, 53);
    const before = alloc.tries;
    expect(alloc.snat(ct, id, NODE, 3000, 3009, true)).toBe(-1);
    expect(alloc.tries - before).toBe(10);
    expect(alloc.failed).toBe(1);
    expect(ct.statusOf(id) & CT_SNAT).toBe(0);
  });

  it('stops after 248 tries in a crowded range, and counts the failure', () => {
    const ct = table(4096);
    const alloc = new NatPortAllocator(new Random(5));
    // Fill 1024–2047 completely towards SERVER:80.
    for (let p = 1024; p < 2048; p++) {
      const id = ct.create(TCP, POD_A, SERVER, p, 80);
      expect(alloc.snat(ct, id, NODE, 1024, 2047, true)).toBe(p);
    }
    const id = ct.create(TCP, POD_B, SERVER, 1500, 80);
    const before = alloc.tries;
    expect(alloc.snat(ct, id, NODE, 1024, 2047, true)).toBe(-1);
    expect(alloc.tries - before).toBe(1 + SNAT_MAX_TRIES);
    expect(SNAT_MAX_TRIES).toBe(248);
    expect(alloc.failed).toBe(1);
    // The entry still has its own, untranslated reply tuple.
    expect(ct.lookup(TCP, SERVER, POD_B, 80, 1500)).toBe((id << 1) | 1);
  });

  it('keeps a port outside the range when free (MASQUERADE), not with a strict range (--to-ports)', () => {
    const ct = table();
    const alloc = new NatPortAllocator(new Random(9));
    const a = ct.create(UDP, POD_A, SERVER, 123, 123);
    expect(alloc.snat(ct, a, NODE)).toBe(123);
    const b = ct.create(UDP, POD_B, SERVER, 123, 123);
    const p = alloc.snat(ct, b, NODE, 20000, 20099, true);
    expect(p).toBeGreaterThanOrEqual(20000);
    expect(p).toBeLessThanOrEqual(20099);
  });

  it('allocates ICMP echo identifiers: kept when free, another when taken, replies by identifier', () => {
    const ct = table();
    const alloc = new NatPortAllocator(new Random(11));
    const a = ct.track(ICMP, POD_A, SERVER, 7, 7, 8, 84) >> 1;
    const b = ct.track(ICMP, POD_B, SERVER, 7, 7, 8, 84) >> 1;
    expect(alloc.snat(ct, a, NODE)).toBe(7);
    const idb = alloc.snat(ct, b, NODE);
    expect(idb).not.toBe(7);
    expect(ct.track(ICMP, SERVER, NODE, idb, idb, 0, 84)).toBe((b << 1) | 1);
    expect(ct.track(ICMP, SERVER, NODE, 7, 7, 0, 84)).toBe((a << 1) | 1);
  });

  it('random-fully: a port drawn from the range although the own one is free, spread over it, replies found', () => {
    const ct = table(4096);
    const alloc = new NatPortAllocator(new Random(21));
    const ports: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const id = ct.create(TCP, POD_A + i, SERVER, 40000, 443);
      const p = alloc.snatRandomFully(ct, id, NODE);
      expect(p).toBeGreaterThanOrEqual(1024);
      expect(p).toBeLessThanOrEqual(65535);
      expect(ct.lookup(TCP, SERVER, NODE, 443, p)).toBe((id << 1) | 1);
      ports.push(p);
    }
    // Unique: each reply tuple (SERVER:443 → NODE:p) belongs to one flow.
    expect(new Set(ports).size).toBe(ports.length);
    // The own port (free for the first flow) is drawn like any other: about 2000/64512 times at most once.
    expect(ports.filter((p) => p === 40000).length).toBeLessThanOrEqual(1);
    // Spread over the range: each eighth of it gets 250 ± 5 standard deviations.
    const eighths = new Array(8).fill(0);
    for (const p of ports) eighths[Math.floor(((p - 1024) * 8) / 64512)]++;
    for (const n of eighths) expect(Math.abs(n - 250)).toBeLessThan(5 * Math.sqrt(250 * (7 / 8)));
    expect([alloc.kept, alloc.remapped, alloc.randomized, alloc.failed]).toEqual([0, 0, 2000, 0]);
  });

  it('random-fully: ICMP identifiers from 0–65535; a crowded range stops after 248 tries', () => {
    const ct = table(70_000);
    const alloc = new NatPortAllocator(new Random(23));
    const icmp = ct.track(ICMP, POD_A, SERVER, 7, 7, 8, 84) >> 1;
    const idn = alloc.snatRandomFully(ct, icmp, NODE);
    expect(idn).toBeGreaterThanOrEqual(0);
    expect(idn).toBeLessThanOrEqual(65535);
    expect(ct.track(ICMP, SERVER, NODE, idn, idn, 0, 84)).toBe((icmp << 1) | 1);
    // Every port of the range towards SERVER:80 taken (plain snat keeps each own port).
    let own = 0;
    for (let p = 1024; p <= 65535; p++) if (alloc.snat(ct, ct.create(UDP, POD_A, SERVER, p, 80), NODE) === p) own++;
    expect(own).toBe(64512);
    const id = ct.create(UDP, POD_B, SERVER, 5000, 80);
    const before = alloc.tries;
    expect(alloc.snatRandomFully(ct, id, NODE)).toBe(-1);
    expect(alloc.tries - before).toBe(SNAT_MAX_TRIES);
    expect(alloc.failed).toBe(1);
  });

  it('repeats its choices from the same seed', () => {
    const run = (seed: number): number[] => {
      const ct = table();
      const alloc = new NatPortAllocator(new Random(seed));
      const out: number[] = [];
      for (let i = 0; i < 20; i++) out.push(alloc.snat(ct, ct.create(UDP, POD_A + i, SERVER, 5000, 53), NODE));
      return out;
    };
    expect(run(42)).toEqual(run(42));
    expect(run(42)).not.toEqual(run(43));
  });

  it('never gives two flows one tuple, and keeps the port whenever it is free (property)', () => {
    type Op = { add: true; pod: number; srv: number; port: number } | { add: false; pick: number };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      { weight: 3, arbitrary: fc.record({ add: fc.constant(true as const), pod: fc.integer({ min: 0, max: 5 }), srv: fc.integer({ min: 0, max: 1 }), port: fc.integer({ min: 0, max: 5 }) }) },
      { weight: 1, arbitrary: fc.record({ add: fc.constant(false as const), pick: fc.nat() }) },
    );
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 300, size: 'max' }), fc.integer(), (ops, seed) => {
        const ct = table(400);
        const alloc = new NatPortAllocator(new Random(seed));
        const LO = 1024;
        const HI = 1039;
        const used = new Map<string, number>(); // "server:port" on NODE → entry id
        const live: { id: number; key: string }[] = [];
        for (const op of ops) {
          if (!op.add) {
            if (live.length === 0) continue;
            const [gone] = live.splice(op.pick % live.length, 1);
            ct.remove(gone.id);
            used.delete(gone.key);
            continue;
          }
          const pod = POD_A + op.pod;
          const srv = SERVER + op.srv;
          const sport = LO + op.port;
          if (ct.lookup(TCP, pod, srv, sport, 80) >= 0) continue; // that flow exists already
          const id = ct.create(TCP, pod, srv, sport, 80);
          expect(id).toBeGreaterThanOrEqual(0);
          const ownFree = !used.has(`${srv}:${sport}`);
          const taken = [...used.keys()].filter((k) => k.startsWith(`${srv}:`)).length;
          const port = alloc.snat(ct, id, NODE, LO, HI);
          if (ownFree) expect(port).toBe(sport);
          if (port < 0) {
            expect(taken).toBe(HI - LO + 1);
            ct.remove(id);
            continue;
          }
          const key = `${srv}:${port}`;
          expect(used.has(key)).toBe(false);
          used.set(key, id);
          live.push({ id, key });
        }
        for (const [key, id] of used) {
          const [srv, port] = key.split(':').map(Number);
          expect(ct.lookup(TCP, srv, NODE, 80, port)).toBe((id << 1) | 1);
        }
      }),
      { numRuns: 100 },
    );
  });
});
