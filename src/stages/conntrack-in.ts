/**
 * conntrack-in: connection tracking for each IPv4 packet at a hook (Linux's nf_conntrack_in,
 * netfilter priority -200): it finds or creates the packet's conntrack entry, steps its
 * protocol state, and writes on the frame what the later handlers and the trace read:
 *
 *   pool.ct       the entry id (-1: none)       pool.ctDir   0 original, 1 reply
 *   pool.ctState  CtState: NEW, ESTABLISHED, RELATED, INVALID or UNTRACKED
 *   pool.l4       set for bridged frames too (ip4-input sets it for routed ones)
 *
 * Registered at prerouting (received packets), output (packets the router originates: an
 * echo reply is tracked as the reply of the request's entry, a reset as a reply, an ICMP
 * error as RELATED) and bridge-ip4 (bridged pod-to-pod IPv4).
 *
 * What is tracked: TCP, UDP and ICMP echo (the identifier as both ports), through
 * Conntrack.track (src/tables/conntrack.ts). ICMP errors of types 3, 11 and 12 quoting a
 * TCP, UDP or echo packet are RELATED when the *inverse* of the quoted tuple is an entry's
 * tuple (the quote is a packet the flow sent); the error travels in that tuple's direction.
 * An error that quotes nothing tracked, and any packet whose state the table rejects, is
 * INVALID; so is a TCP or UDP header that does not fit the datagram (Linux's tcp_error and
 * udp_error). Other protocols, other ICMP types (timestamps, router adverts...) and, at the
 * bridge, fragments pass UNTRACKED: no entry, no NAT. (Linux also tracks those generically;
 * the table follows the three protocols a Kubernetes node translates.) L4 checksums are not
 * verified (Linux's nf_conntrack_checksum): a corrupt segment keeps its state.
 *
 * A new entry is unconfirmed (conntrack-confirm.ts) until its packet passes POSTROUTING or
 * LOCAL_IN; one whose packet is dropped before is removed after the dispatch.
 *
 * While a Service's UDP cleanup is walking the table (ct.staleUdp), an entry found that the
 * walk will flush is flushed here instead, and the packet tracked as a new flow.
 *
 * Bridged frames come unvalidated: their IPv4 header is checked first as br_netfilter's
 * br_validate_ipv4 does (version, header length, total length, header checksum); a bad one
 * is dropped.
 *
 * drop: a new flow when the table is full and nothing may be evicted (Linux's "table full,
 *       dropping packet"); a bridged frame with a bad IPv4 header.
 */
import { dropReasons } from '../core/drop-reason.ts';
import { CtState } from '../core/frame-meta.ts';
import { type HookHandler, ACCEPT } from '../core/hook.ts';
import type { Tracer } from '../core/trace.ts';
import type { Context } from './context.ts';
import { type Conntrack, CT_LIVE, CtVerdict, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, type StaleEntries } from '../tables/conntrack.ts';
import { TCP_STATE_NAMES } from '../tables/conntrack-tcp.ts';
import { rd16, rd32i } from '../wire/bytes.ts';
import { checksumVerifies } from '../wire/checksum.ts';
import type { Unconfirmed } from './conntrack-confirm.ts';

const enum Drop {
  FULL,
  BAD_HEADER,
}

/** What pass 1 leaves in `refs` besides a ref found (>= 0). */
const enum Pass {
  MISS = -1,
  /** Dropped in pass 1 (a bridged frame with a bad IPv4 header). */
  DROPPED = -2,
  /** Not a TCP segment or UDP datagram with its header: ICMP, another protocol, a fragment. */
  OTHER = -3,
  /** A TCP or UDP header that does not fit the datagram: INVALID. */
  BAD_L4 = -4,
}

export const CT_STATE_NAMES = ['none', 'new', 'established', 'related', 'invalid', 'untracked'];

/** Whether a pending cleanup flushes entry `id`, which it does now (see StaleEntries). */
function flushedStale(stale: StaleEntries, id: number): boolean {
  if (!stale.isStale(id)) return false;
  stale.flushAtLookup(id);
  return true;
}

export class ConntrackIn implements HookHandler {
  readonly name = 'conntrack';
  readonly priority = -200;
  readonly dropReasons = dropReasons([
    ['conntrack.table-full', 'table full, new flow dropped'],
    ['conntrack.bad-bridged-header', 'bridged ipv4 header invalid (br_validate_ipv4)'],
  ]);
  private readonly ct: Conntrack;
  /** Pass 1's answer per batch position (see Pass). */
  private readonly refs: Int32Array;

  /**
   * `at`: the hook's name, for trace notes. `bridged`: frames come from bridge-ip4 (header
   * not validated, l4 not set).
   */
  constructor(
    private readonly ctx: Context,
    private readonly unconfirmed: Unconfirmed,
    private readonly at: string,
    private readonly bridged: boolean,
  ) {
    if (ctx.conntrack === null) throw new Error('conntrack-in: connection tracking is off');
    this.ct = ctx.conntrack;
    this.refs = new Int32Array(ctx.pool.capacity);
  }

  process(slots: Int32Array, n: number, verdicts: Int32Array, tracer: Tracer | null): number {
    // Two passes over the batch, each a loop of its own: V8 inlines what a loop calls only
    // up to a budget per compiled function, and lookup and the state step together exceed
    // it. Nothing between the passes can reuse an id (dead ids wait for the next expire), so
    // a ref found in the first pass is still this tuple's if its entry is still live.
    const refused = this.lookups(slots, n, verdicts);
    return refused + this.steps(slots, n, verdicts, tracer);
  }

  /**
   * Pass 1: validates bridged headers and looks up each TCP segment or UDP datagram; `refs[i]`
   * is the ref found, MISS, or what pass 2 must do instead (DROPPED, BAD_L4, OTHER).
   */
  private lookups(slots: Int32Array, n: number, verdicts: Int32Array): number {
    const data = this.ctx.pool.data;
    const l3s = this.ctx.pool.l3;
    const l4s = this.ctx.pool.l4;
    const refs = this.refs;
    const ct = this.ct;
    const bridged = this.bridged;
    let refused = 0;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const ip = l3s[slot];
      if (bridged) {
        const v = this.validateBridged(slot, ip);
        if (v !== ACCEPT) {
          verdicts[i] = v;
          refs[i] = Pass.DROPPED;
          refused++;
          continue;
        }
      }
      const l4 = l4s[slot];
      const proto = data[ip + 9];
      if (l4 === 0 || (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP)) {
        refs[i] = Pass.OTHER;
        continue;
      }
      const room = ip + ((data[ip + 2] << 8) | data[ip + 3]) - l4;
      let ok: boolean;
      if (proto === IPPROTO_TCP) {
        const doff = room >= 13 ? (data[l4 + 12] >>> 4) << 2 : 0;
        ok = room >= 20 && doff >= 20 && doff <= room;
      } else {
        const ulen = room >= 8 ? (data[l4 + 4] << 8) | data[l4 + 5] : 0;
        ok = ulen >= 8 && ulen <= room;
      }
      refs[i] = ok ? ct.lookup(proto, rd32i(data, ip + 12), rd32i(data, ip + 16), (data[l4] << 8) | data[l4 + 1], (data[l4 + 2] << 8) | data[l4 + 3]) : Pass.BAD_L4;
    }
    return refused;
  }

  /** Pass 2: the protocol step of each entry found, in order; creation for the misses; the rest. */
  private steps(slots: Int32Array, n: number, verdicts: Int32Array, tracer: Tracer | null): number {
    const pool = this.ctx.pool;
    const data = pool.data;
    const l3s = pool.l3;
    const l4s = pool.l4;
    const entries = pool.ct;
    const dirs = pool.ctDir;
    const states = pool.ctState;
    const refs = this.refs;
    const ct = this.ct;
    // Null but while a Service's UDP cleanup walks the table (src/dataplane/udp-cleanup.ts).
    const stale = ct.staleUdp;
    let refused = 0;
    for (let i = 0; i < n; i++) {
      const ref = refs[i];
      if (ref === Pass.DROPPED) continue;
      const slot = slots[i];
      let v = ACCEPT;
      if (ref >= 0 && (ct.statusOf(ref >> 1) & CT_LIVE) !== 0 && (stale === null || !flushedStale(stale, ref >> 1))) {
        const ip = l3s[slot];
        const len = (data[ip + 2] << 8) | data[ip + 3];
        const s = data[ip + 9] === IPPROTO_UDP ? ct.udpPacket(ref, len) : ct.tcpPacket(ref, data[l4s[slot] + 13], len);
        if (s === CtVerdict.NEW || s === CtVerdict.ESTABLISHED) {
          // NEW and ESTABLISHED are the same codes in CtVerdict and CtState.
          entries[slot] = ref >> 1;
          dirs[slot] = ref & 1;
          states[slot] = s;
        } else if (s === CtVerdict.INVALID) {
          entries[slot] = -1;
          states[slot] = CtState.INVALID;
        } else {
          // A SYN that reopened a closed entry: track creates the new one.
          v = this.tracked(slot);
        }
      } else if (ref === Pass.OTHER) {
        v = this.other(slot, l3s[slot], l4s[slot], data[l3s[slot] + 9]);
      } else if (ref === Pass.BAD_L4) {
        v = this.invalid(slot);
      } else {
        // A miss, or an entry that died since pass 1 (reopened or evicted by an earlier
        // packet of this batch, or flushed just above as stale): track looks again, and
        // creates the entry.
        v = this.tracked(slot);
      }
      if (v !== ACCEPT) {
        verdicts[i] = v;
        refused++;
      } else if (tracer !== null) {
        this.note(tracer, slot);
      }
    }
    return refused;
  }

  /** trackTuple for the TCP segment or UDP datagram in `slot`. */
  private tracked(slot: number): number {
    const pool = this.ctx.pool;
    const data = pool.data;
    const ip = pool.l3[slot];
    const l4 = pool.l4[slot];
    const proto = data[ip + 9];
    const info = proto === IPPROTO_TCP ? data[l4 + 13] : 0;
    return this.trackTuple(slot, proto, rd32i(data, ip + 12), rd32i(data, ip + 16), rd16(data, l4), rd16(data, l4 + 2), info, rd16(data, ip + 2));
  }

  /** Conntrack.track for the frame's tuple (creating its entry); sets ct, ctDir, ctState; ACCEPT or a drop reason. */
  private trackTuple(slot: number, proto: number, src: number, dst: number, sport: number, dport: number, info: number, len: number): number {
    const ct = this.ct;
    const pool = this.ctx.pool;
    const created = ct.created;
    const ref = ct.track(proto, src, dst, sport, dport, info, len);
    if (ref < 0) {
      pool.ct[slot] = -1;
      if (ct.verdict === CtVerdict.FULL) return Drop.FULL;
      pool.ctState[slot] = ct.verdict === CtVerdict.UNTRACKED ? CtState.UNTRACKED : CtState.INVALID;
      return ACCEPT;
    }
    pool.ct[slot] = ref >> 1;
    pool.ctDir[slot] = ref & 1;
    pool.ctState[slot] = ct.verdict;
    if (ct.created !== created) this.unconfirmed.add(ref >> 1);
    return ACCEPT;
  }

  /** A frame that is not TCP or UDP with ports: ICMP, another protocol, a fragment. */
  private other(slot: number, ip: number, l4: number, proto: number): number {
    const pool = this.ctx.pool;
    const data = pool.data;
    pool.ct[slot] = -1;
    if (l4 === 0 || proto !== IPPROTO_ICMP) {
      // Another protocol, or a non-first fragment (only where fragments are not reassembled first).
      pool.ctState[slot] = CtState.UNTRACKED;
      return ACCEPT;
    }
    const len = rd16(data, ip + 2);
    const room = ip + len - l4;
    if (room < 8) return this.invalid(slot);
    const type = data[l4];
    if (type === 3 || type === 11 || type === 12) return this.related(slot, l4, room);
    if (type !== 8 && type !== 0) {
      pool.ctState[slot] = CtState.UNTRACKED;
      return ACCEPT;
    }
    const id = rd16(data, l4 + 4);
    return this.trackTuple(slot, IPPROTO_ICMP, rd32i(data, ip + 12), rd32i(data, ip + 16), id, id, type, len);
  }

  /**
   * An ICMP error (room ≥ 8 bytes at l4): RELATED to the entry whose tuple is the inverse
   * of the quoted one, else INVALID. The quote needs its IPv4 header and 8 bytes after it.
   */
  private related(slot: number, l4: number, room: number): number {
    const pool = this.ctx.pool;
    const data = pool.data;
    const q = l4 + 8;
    if (room < 8 + 20 + 8 || data[q] >>> 4 !== 4) return this.invalid(slot);
    const qhlen = (data[q] & 15) << 2;
    if (qhlen < 20 || room < 8 + qhlen + 8 || (rd16(data, q + 6) & 0x1fff) !== 0) return this.invalid(slot);
    const qproto = data[q + 9];
    const ql4 = q + qhlen;
    let qsport: number;
    let qdport: number;
    if (qproto === IPPROTO_TCP || qproto === IPPROTO_UDP) {
      qsport = rd16(data, ql4);
      qdport = rd16(data, ql4 + 2);
    } else if (qproto === IPPROTO_ICMP && (data[ql4] === 8 || data[ql4] === 0)) {
      qsport = rd16(data, ql4 + 4);
      qdport = qsport;
    } else if (qproto === IPPROTO_ICMP) {
      return this.invalid(slot);
    } else {
      pool.ctState[slot] = CtState.UNTRACKED;
      return ACCEPT;
    }
    // The inverse of the quoted tuple: destination first.
    const ref = this.ct.lookup(qproto, rd32i(data, q + 16), rd32i(data, q + 12), qdport, qsport);
    if (ref < 0) return this.invalid(slot);
    pool.ct[slot] = ref >> 1;
    pool.ctDir[slot] = ref & 1;
    pool.ctState[slot] = CtState.RELATED;
    return ACCEPT;
  }

  private invalid(slot: number): number {
    this.ct.invalid++;
    this.ctx.pool.ct[slot] = -1;
    this.ctx.pool.ctState[slot] = CtState.INVALID;
    return ACCEPT;
  }

  /**
   * br_validate_ipv4 for a bridged frame: ACCEPT with l4 set (left 0 for a fragment), or
   * the drop reason.
   */
  private validateBridged(slot: number, ip: number): number {
    const pool = this.ctx.pool;
    const data = pool.data;
    const avail = pool.start[slot] + pool.len[slot] - ip;
    pool.ctState[slot] = CtState.NONE;
    pool.l4[slot] = 0;
    if (avail < 20) return Drop.BAD_HEADER;
    const vihl = data[ip];
    const hlen = (vihl & 15) << 2;
    if (vihl >>> 4 !== 4 || hlen < 20 || hlen > avail) return Drop.BAD_HEADER;
    const total = rd16(data, ip + 2);
    if (total < hlen || total > avail) return Drop.BAD_HEADER;
    if (!checksumVerifies(pool.dataView, ip, hlen)) return Drop.BAD_HEADER;
    // Bridged fragments pass untracked (l4 stays 0): no NAT applies to a bridged flow yet (see docs).
    if ((data[ip + 6] & 0x3f) !== 0 || data[ip + 7] !== 0) return ACCEPT;
    pool.l4[slot] = ip + hlen;
    return ACCEPT;
  }

  /**
   * Trace: what conntrack made of the frame, with the entry's TCP state and time left after
   * this packet, e.g. "ct established (entry 3, reply; SYN_RECV, expires in 60 s)"
   * (allocates; only while tracing).
   */
  private note(tracer: Tracer, slot: number): void {
    const pool = this.ctx.pool;
    const ct = this.ct;
    const st = pool.ctState[slot];
    const id = pool.ct[slot];
    let entry = '';
    if (id >= 0) {
      const tcp = ct.protoOf(id) === IPPROTO_TCP ? `${TCP_STATE_NAMES[ct.tcpStateOf(id)]}, ` : '';
      const left = Math.max(0, Math.round((ct.deadlineOf(id) - ct.nowUs) / 1e6));
      entry = ` (entry ${id}, ${pool.ctDir[slot] === 0 ? 'original' : 'reply'}; ${tcp}expires in ${left} s)`;
    }
    tracer.note(this.at, slot, `ct ${CT_STATE_NAMES[st]}${entry}`);
  }
}
