/**
 * Differential tests of connection tracking against naive models: the tuple index against
 * a Map under random inserts and removals at its highest load, and the whole table against
 * a Map of flows with deadlines (UDP's 30 s / stream rules with short timeouts) under random
 * sequences of packets both ways, removals, clock jumps and bounded expire calls.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TupleIndex } from '../../src/tables/conntrack-index.ts';
import { Conntrack, CT_ASSURED, CT_SEEN_REPLY, CT_UDP_STREAM } from '../../src/tables/conntrack.ts';

const UDP = 17;
const T0 = 1_700_000_000_000_000;

describe('TupleIndex against a Map', () => {
  it('finds exactly what was inserted and not removed, with the buckets half full', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 199 })), { minLength: 1, maxLength: 3000, size: 'max' }), fc.integer(), (ops, seed) => {
        const entries = 64; // 128 refs, 256 buckets
        const idx = new TupleIndex(entries, seed);
        // 200 distinct tuples, few addresses, so words repeat and probe runs get long.
        const tuple = (k: number): [number, number, number, number] => [k % 3 === 0 ? 6 : 17, 0x0a000000 + (k % 7), -1 - (k % 5), (k << 16) | 53];
        const model = new Map<number, number>(); // tuple key → ref
        const freeRefs = Array.from({ length: entries * 2 }, (_, r) => entries * 2 - 1 - r);
        for (const [add, k] of ops) {
          const [p, s, d, ports] = tuple(k);
          if (add && !model.has(k) && freeRefs.length > 0) {
            const ref = freeRefs.pop()!;
            idx.write(ref, p, s, d, ports);
            expect(idx.insert(ref)).toBe(true);
            model.set(k, ref);
          } else if (!add && model.has(k)) {
            idx.remove(model.get(k)!);
            freeRefs.push(model.get(k)!);
            model.delete(k);
          } else if (add && model.has(k)) {
            // An equal tuple under another ref is refused.
            const spare = freeRefs[freeRefs.length - 1];
            if (spare !== undefined) {
              idx.write(spare, p, s, d, ports);
              expect(idx.insert(spare)).toBe(false);
            }
          }
        }
        expect(idx.size).toBe(model.size);
        for (let k = 0; k < 200; k++) expect(idx.find(...tuple(k))).toBe(model.get(k) ?? -1);
      }),
      { numRuns: 60 },
    );
  });
});

describe('TupleIndex with one long run', () => {
  it('finds and removes correctly when a run is longer than a bucket can record (127)', () => {
    const entries = 128; // 256 refs, 512 buckets
    const idx = new TupleIndex(entries, 99);
    // 256 tuples that all hash to one home bucket: one run of up to 256.
    const home = idx.homeOf(17, 1, 2, 0);
    const same: number[] = [];
    for (let k = 0; same.length < 2 * entries; k++) if (idx.homeOf(17, 1, 2, k) === home) same.push(k);
    let seed = 5;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const model = new Map<number, number>();
    const freeRefs = Array.from({ length: 2 * entries }, (_, r) => r);
    let most = 0;
    for (let step = 0; step < 20_000; step++) {
      const k = same[rnd(same.length)];
      // Inserts win three times in four, so the run grows long before removals thin it.
      if (model.has(k) && rnd(4) === 0) {
        idx.remove(model.get(k)!);
        freeRefs.push(model.get(k)!);
        model.delete(k);
      } else if (!model.has(k) && freeRefs.length > 0) {
        const ref = freeRefs.splice(rnd(freeRefs.length), 1)[0];
        idx.write(ref, 17, 1, 2, k);
        expect(idx.insert(ref)).toBe(true);
        model.set(k, ref);
      }
      most = Math.max(most, model.size);
      if (step % 500 === 0 || step === 19_999) for (const q of same) expect(idx.find(17, 1, 2, q)).toBe(model.get(q) ?? -1);
    }
    expect(most).toBeGreaterThan(200);
    expect(idx.size).toBe(model.size);
  });
});

type Op = { k: 'send'; flow: number; reply: boolean } | { k: 'remove'; flow: number } | { k: 'advance'; ms: number } | { k: 'expire'; budget: number } | { k: 'check' };

interface Flow {
  id: number;
  start: number;
  deadline: number;
  seenReply: boolean;
  assured: boolean;
  stream: boolean;
}

const FLOWS = 40;
const UDP_S = 3;
const STREAM_S = 7;
// Clients and servers from disjoint ranges: no flow's reply tuple is another's original.
const client = (f: number): number => 0x0a000001 + (f % 4);
const server = (f: number): number => (0xc0a80001 + (f % 3)) | 0;
const sport = (f: number): number => 1000 + f;
const dport = (f: number): number => 53 + (f % 2);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ k: fc.constant('send' as const), flow: fc.integer({ min: 0, max: FLOWS - 1 }), reply: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('remove' as const), flow: fc.integer({ min: 0, max: FLOWS - 1 }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('advance' as const), ms: fc.oneof(fc.integer({ min: 0, max: 2500 }), fc.integer({ min: 0, max: 20_000 })) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('expire' as const), budget: fc.integer({ min: 1, max: 16 }) }) },
  { weight: 1, arbitrary: fc.constant({ k: 'check' as const }) },
);

describe('Conntrack against a model', () => {
  it('agrees on which flows exist, their directions, deadlines and flags', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 400, size: 'max' }), (ops) => {
        const ct = new Conntrack({ max: FLOWS, timeouts: { udp: UDP_S, udpStream: STREAM_S } });
        const model = new Map<number, Flow>();
        let now = T0;
        ct.nowUs = now;
        const live = (f: number): Flow | undefined => {
          const m = model.get(f);
          if (m !== undefined && m.deadline <= now) model.delete(f);
          return model.get(f);
        };
        const check = (): void => {
          for (let f = 0; f < FLOWS; f++) {
            const m = live(f);
            const ref = ct.lookup(UDP, client(f), server(f), sport(f), dport(f));
            const back = ct.lookup(UDP, server(f), client(f), dport(f), sport(f));
            if (m === undefined) {
              expect(ref).toBe(-1);
              expect(back).toBe(-1);
              continue;
            }
            expect(ref).toBe(m.id << 1);
            expect(back).toBe((m.id << 1) | 1);
            expect(ct.deadlineOf(m.id)).toBe(m.deadline);
            const st = ct.statusOf(m.id);
            expect([(st & CT_SEEN_REPLY) !== 0, (st & CT_ASSURED) !== 0, (st & CT_UDP_STREAM) !== 0]).toEqual([m.seenReply, m.assured, m.stream]);
          }
          // Every expired entry met its lookup above: what is left is what the model holds.
          expect(ct.count).toBe(model.size);
          expect(new Set([...model.values()].map((m) => m.id)).size).toBe(model.size);
        };
        for (const op of ops) {
          if (op.k === 'advance') {
            now += op.ms * 1000;
            ct.nowUs = now;
          } else if (op.k === 'expire') {
            ct.expire(now, op.budget);
          } else if (op.k === 'check') {
            check();
          } else if (op.k === 'remove') {
            const m = live(op.flow);
            if (m !== undefined) {
              ct.remove(m.id);
              model.delete(op.flow);
            }
          } else {
            const f = op.flow;
            let m = live(f);
            if (op.reply) {
              if (m === undefined) continue; // a reply to nothing would start its own flow
              expect(ct.track(UDP, server(f), client(f), dport(f), sport(f), 0, 60)).toBe((m.id << 1) | 1);
            } else {
              const ref = ct.track(UDP, client(f), server(f), sport(f), dport(f), 0, 60);
              if (m === undefined) {
                expect(ref).toBeGreaterThanOrEqual(0);
                expect(ref & 1).toBe(0);
                m = { id: ref >> 1, start: now, deadline: 0, seenReply: false, assured: false, stream: false };
                model.set(f, m);
              } else {
                expect(ref).toBe(m.id << 1);
              }
            }
            // Linux's nf_conntrack_udp_packet, written out plainly.
            let timeout = UDP_S;
            if (m.seenReply) {
              if (m.stream || now > m.start + 2e6) {
                m.stream = true;
                timeout = STREAM_S;
              }
              m.assured = true;
            } else if (op.reply) {
              m.seenReply = true;
            }
            m.deadline = now + timeout * 1e6;
          }
        }
        check();
        // Past every deadline, bounded expire calls empty the table.
        now += (STREAM_S + 2) * 1e6;
        for (let i = 0; i < 100 && ct.count > 0; i++) ct.expire(now, 8);
        expect(ct.count).toBe(0);
        expect(ct.index.size).toBe(0);
      }),
      { numRuns: 100 },
    );
  });
});
