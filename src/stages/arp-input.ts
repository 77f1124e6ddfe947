/**
 * arp-input: ARP at a router interface (Linux's arp_process with default sysctls).
 *
 * in:   ARP frames with rxIf and l3 set
 * out:  reply     — our replies, rewritten in place, toward interface-output (txIf set)
 *       neighbour — packets that were waiting for the address just learned
 * drop: malformed ARP, ARP on an interface without an address.
 *
 * Replies: to requests for any of the router's addresses, on whichever interface they arrive
 * (Linux's default arp_ignore=0), with that interface's MAC. Learning follows Linux's
 * arp_accept=0: a request addressed to us creates or refreshes the sender's entry (STALE,
 * like neigh_event_ns); a reply to our own request confirms it (REACHABLE) and releases the
 * queued packets; any ARP packet from a sender we already know (a gratuitous one included)
 * updates its MAC; an unsolicited reply for an unknown sender creates nothing. Static
 * (PERMANENT) entries are never changed. Sender 0.0.0.0 (a duplicate-address probe) is
 * answered but not learned.
 */
import { dropReasons } from '../core/drop-reason.ts';
import { macHiAt, macLoAt, rd16, rd32 } from '../wire/bytes.ts';
import { ARP_LEN, ArpOp, writeArpHiLo } from '../wire/arp.ts';
import { EtherType, writeEthernetHiLo } from '../wire/ethernet.ts';
import { NO_PORT } from '../core/frame-pool.ts';
import { Stage } from '../core/stage.ts';
import { RouteKind } from '../tables/fib.ts';
import { NeighState } from '../tables/neighbour-table.ts';
import type { Context } from './context.ts';

const enum Drop {
  MALFORMED,
  NO_ADDRESS,
  BAD_SENDER,
}

// Offsets inside the ARP packet.
const OPER = 6;
const SHA = 8;
const SPA = 14;
const TPA = 24;

export class ArpInput extends Stage<'reply' | 'neighbour'> {
  readonly name = 'arp-input';
  readonly nextNames = ['reply', 'neighbour'] as const;
  readonly dropReasons = dropReasons([
    ['arp.malformed', 'malformed arp'],
    ['arp.no-address', 'arp on an interface without an address'],
    ['arp.invalid-sender', 'invalid sender (multicast mac or martian address)'],
  ]);
  override readonly events = ['requestsAnswered', 'entriesLearned'];
  requestsAnswered = 0;
  entriesLearned = 0;

  private readonly release = (slot: number): void => this.to(this.out.neighbour, slot);

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    const { pool, ifs, neigh } = this.ctx;
    const data = pool.data;
    const now = this.ctx.nowUs;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const a = pool.l3[slot];
      const ifIndex = pool.rxIf[slot];
      if (pool.start[slot] + pool.len[slot] - a < 28 || rd16(data, a) !== 1 || rd16(data, a + 2) !== 0x0800 || data[a + 4] !== 6 || data[a + 5] !== 4) {
        this.drop(slot, Drop.MALFORMED);
        continue;
      }
      if (!ifs.hasAddress(ifIndex)) {
        this.drop(slot, Drop.NO_ADDRESS);
        continue;
      }
      const op = rd16(data, a + OPER);
      const shaHi = macHiAt(data, a + SHA);
      const shaLo = macLoAt(data, a + SHA);
      const spa = rd32(data, a + SPA);
      const tpa = rd32(data, a + TPA);
      const myAddr = ifs.addr[ifIndex];
      if ((shaHi & 0x0100) !== 0 || (spa >>> 24) === 127 || spa >>> 28 >= 14) {
        this.drop(slot, Drop.BAD_SENDER);
        continue;
      }
      // Any of the router's addresses, asked on any interface: Linux's arp_ignore=0 (weak host).
      let forUs = tpa === myAddr;
      if (!forUs && tpa !== 0) {
        const r = this.ctx.fib.lookup(tpa);
        forUs = r >= 0 && this.ctx.fib.kind[r] === RouteKind.LOCAL;
      }

      if (spa !== 0 && spa !== myAddr) {
        let id = neigh.find(ifIndex, spa);
        if (id < 0 && op === 1 && forUs) id = neigh.create(ifIndex, spa, now);
        if (id >= 0) this.learn(id, shaHi, shaLo, op === 2 && forUs, now);
      }

      if (op === 1 && forUs) {
        // Turn the request into our reply in place.
        const s = pool.start[slot];
        const myHi = ifs.macHi[ifIndex];
        const myLo = ifs.macLo[ifIndex];
        writeArpHiLo(data, a, ArpOp.REPLY, myHi, myLo, tpa, shaHi, shaLo, spa);
        writeEthernetHiLo(data, s, shaHi, shaLo, myHi, myLo, EtherType.ARP);
        pool.len[slot] = a - s + ARP_LEN;
        pool.inPort[slot] = NO_PORT;
        pool.txIf[slot] = ifIndex;
        this.requestsAnswered++;
        this.to(this.out.reply, slot);
        continue;
      }
      this.consume(slot);
    }
  }

  /** Applies what an ARP packet says about its sender to the existing entry `id`. */
  private learn(id: number, hi: number, lo: number, isReplyToUs: boolean, now: number): void {
    const neigh = this.ctx.neigh;
    const state = neigh.state[id];
    if (state === NeighState.PERMANENT) return;
    const sameMac = neigh.macHi[id] === hi && neigh.macLo[id] === lo;
    const waiting = state === NeighState.INCOMPLETE || state === NeighState.PROBE || state === NeighState.DELAY;
    if (isReplyToUs && (waiting || sameMac || state === NeighState.NONE || state === NeighState.FAILED)) {
      neigh.update(id, hi, lo, NeighState.REACHABLE, now);
      neigh.setDeadline(id, now + neigh.timers.reachableUs);
    } else if (state === NeighState.NONE || state === NeighState.INCOMPLETE || state === NeighState.FAILED || !sameMac) {
      neigh.update(id, hi, lo, NeighState.STALE, now);
    } else {
      return;
    }
    if (state === NeighState.NONE || state === NeighState.INCOMPLETE) this.entriesLearned++;
    if (neigh.queued[id] > 0) neigh.drain(id, this.release);
  }
}
