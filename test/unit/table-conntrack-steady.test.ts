/**
 * The steady cases of tcpPacket and udpPacket (an ACK on an assured ESTABLISHED entry, a
 * datagram of a UDP stream) skip the general state step. Differential test: random segment
 * and datagram sequences, with clock steps, through two tables — one as shipped, one whose
 * packet methods always take the general path — must give the same verdicts, flags words
 * (status, TCP state and aux), deadlines and counters at every step, and the same transitions later (a
 * wrong "last segment" kept by the shortcut would show up when a SYN meets TIME_WAIT).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Conntrack } from '../../src/tables/conntrack.ts';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG } from '../../src/tables/conntrack-tcp.ts';

const TCP = 6;
const UDP = 17;
const T0 = 1_000_000_000_000;
const A = 0x0af40102;
const B = 0x0af40203;

/** A table that shows its whole flags word (status, TCP state, TCP aux). */
class Shown extends Conntrack {
  flagsWord(id: number): number {
    return this.flagsOf(id);
  }
}

/** A table whose packet methods always take the general path. */
class GeneralOnly extends Shown {
  override tcpPacket(ref: number, flags: number, bytes: number): number {
    return (this as unknown as { tcpChange(r: number, f: number, b: number): number }).tcpChange(ref, flags, bytes);
  }
  override udpPacket(ref: number, bytes: number): number {
    return (this as unknown as { udpChange(r: number, b: number): number }).udpChange(ref, bytes);
  }
}

/** Mostly ACKs (the steady case), with every other flag combination now and then. */
const flags = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(TCP_ACK, TCP_ACK | TCP_PSH) },
  { weight: 3, arbitrary: fc.constantFrom(TCP_SYN, TCP_SYN | TCP_ACK, TCP_FIN | TCP_ACK, TCP_RST, TCP_RST | TCP_ACK, TCP_ACK | TCP_URG, 0, TCP_SYN | TCP_FIN) },
);
const step = fc.record({ dir: fc.integer({ min: 0, max: 1 }), flags, waitMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5000 })) });

/** What one table says about the flow after a packet. */
function observe(ct: Shown, proto: number, verdict: number): unknown[] {
  const ref = ct.lookup(proto, A, B, 40000, 80);
  if (ref < 0) return [verdict, ct.verdict, 'gone', ct.invalid];
  const id = ref >> 1;
  return [verdict, ct.verdict, ct.flagsWord(id), ct.tcpStateOf(id), ct.deadlineOf(id), ct.packetsOf(id << 1), ct.packetsOf((id << 1) | 1), ct.bytesOf(id << 1), ct.invalid];
}

function send(ct: Conntrack, proto: number, dir: number, f: number): number {
  return dir === 0 ? ct.track(proto, A, B, 40000, 80, f, 100) : ct.track(proto, B, A, 80, 40000, f, 100);
}

describe('steady packets take a shortcut that changes nothing', () => {
  it('TCP: same verdicts, states, deadlines and counters as the general step, over random conversations', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 120 }), (steps) => {
        const fast = new Shown({ max: 8 });
        const slow = new GeneralOnly({ max: 8 });
        fast.nowUs = slow.nowUs = T0;
        // Each conversation starts with a handshake, so the steady case is reached.
        const all = [{ dir: 0, flags: TCP_SYN, waitMs: 0 }, { dir: 1, flags: TCP_SYN | TCP_ACK, waitMs: 0 }, { dir: 0, flags: TCP_ACK, waitMs: 0 }, ...steps];
        for (const s of all) {
          fast.nowUs = slow.nowUs = fast.nowUs + s.waitMs * 1000;
          fast.expire(fast.nowUs, 16);
          slow.expire(slow.nowUs, 16);
          expect(observe(fast, TCP, send(fast, TCP, s.dir, s.flags))).toEqual(observe(slow, TCP, send(slow, TCP, s.dir, s.flags)));
        }
      }),
      { seed: 11, numRuns: 1500 },
    );
  });

  it('UDP: same verdicts, stream and assured bits, deadlines and counters as the general step', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ dir: fc.integer({ min: 0, max: 1 }), waitMs: fc.integer({ min: 0, max: 3000 }) }), { minLength: 1, maxLength: 80 }), (steps) => {
        const fast = new Shown({ max: 8 });
        const slow = new GeneralOnly({ max: 8 });
        fast.nowUs = slow.nowUs = T0;
        for (const s of steps) {
          fast.nowUs = slow.nowUs = fast.nowUs + s.waitMs * 1000;
          fast.expire(fast.nowUs, 16);
          slow.expire(slow.nowUs, 16);
          expect(observe(fast, UDP, send(fast, UDP, s.dir, 0))).toEqual(observe(slow, UDP, send(slow, UDP, s.dir, 0)));
        }
      }),
      { seed: 12, numRuns: 800 },
    );
  });
});
