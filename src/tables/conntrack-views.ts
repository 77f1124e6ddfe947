/**
 * Conntrack views for the control side: an entry as an object (`conntrack -L`), iteration in
 * bounded chunks (so `show conntrack` can stream 1,000,000 entries between batches without
 * stalling the packet thread), filters and flush (`conntrack -F`, `-D -p P -s A -d B`) and
 * the statistics of `conntrack -S`. These allocate; they are never on the packet path.
 *
 * Iteration is by id range and tolerates changes between chunks, as `conntrack -L` on a
 * live table does: an entry alive across the whole walk is visited exactly once; one
 * created or destroyed during it may or may not be.
 */
import type { Conntrack } from './conntrack.ts';
import { CT_ASSURED, CT_DNAT, CT_LIVE, CT_SEEN_REPLY, CT_SNAT, CT_REPLY_INDEXED, IPPROTO_TCP } from './conntrack-store.ts';
import { TCP_STATE_NAMES } from './conntrack-tcp.ts';

export interface ConntrackTupleView {
  /** IPv4 addresses as unsigned 32-bit numbers. */
  src: number;
  dst: number;
  sport: number;
  dport: number;
}

export interface ConntrackEntryView {
  id: number;
  proto: number;
  /** TCP state name (ESTABLISHED...), '' for other protocols. */
  state: string;
  /** Whole seconds until it expires, as `conntrack -L` prints them. */
  secondsLeft: number;
  original: ConntrackTupleView;
  reply: ConntrackTupleView;
  seenReply: boolean;
  assured: boolean;
  snat: boolean;
  dnat: boolean;
  /** False when another entry held the inverse tuple and no binding has given it one yet. */
  replyIndexed: boolean;
  packets: [number, number];
  bytes: [number, number];
}

export interface ConntrackStats {
  /** Live entries, and the most there may be. */
  count: number;
  max: number;
  /** Lookups that found a live entry. */
  found: number;
  /** Entries created. */
  new: number;
  /** Packets judged INVALID. */
  invalid: number;
  /** New entries refused because their tuple was present. */
  insertFailed: number;
  /** New flows refused because the table was full of entries that may not be evicted. */
  drop: number;
  /** Entries evicted (not ASSURED) to make room. */
  earlyDrop: number;
  /** Entries destroyed because their timeout passed. */
  expired: number;
}

function tupleView(ct: Conntrack, ref: number): ConntrackTupleView {
  return { src: ct.srcOf(ref) >>> 0, dst: ct.dstOf(ref) >>> 0, sport: ct.sportOf(ref), dport: ct.dportOf(ref) };
}

/** Entry `id` as an object, or null when it is not live (or has expired). */
export function conntrackEntryView(ct: Conntrack, id: number): ConntrackEntryView | null {
  if (id < 0 || id >= ct.highWater || !ct.isLive(id)) return null;
  const st = ct.statusOf(id);
  const proto = ct.protoOf(id);
  const ref = id << 1;
  return {
    id,
    proto,
    state: proto === IPPROTO_TCP ? TCP_STATE_NAMES[ct.tcpStateOf(id)] : '',
    secondsLeft: Math.max(0, Math.floor((ct.deadlineOf(id) - ct.nowUs) / 1e6)),
    original: tupleView(ct, ref),
    reply: tupleView(ct, ref | 1),
    seenReply: (st & CT_SEEN_REPLY) !== 0,
    assured: (st & CT_ASSURED) !== 0,
    snat: (st & CT_SNAT) !== 0,
    dnat: (st & CT_DNAT) !== 0,
    replyIndexed: (st & CT_REPLY_INDEXED) !== 0,
    packets: [ct.packetsOf(ref), ct.packetsOf(ref | 1)],
    bytes: [ct.bytesOf(ref), ct.bytesOf(ref | 1)],
  };
}

/**
 * Calls `fn(id)` for each live, unexpired entry with an id in [cursor, cursor + n). Returns
 * the cursor to continue from, or -1 when the walk is done. Work is bounded by `n` ids.
 */
export function forEachConntrackFrom(ct: Conntrack, cursor: number, n: number, fn: (id: number) => void): number {
  const end = Math.min(cursor + n, ct.highWater);
  for (let id = Math.max(0, cursor); id < end; id++) if (ct.isLive(id)) fn(id);
  return end >= ct.highWater ? -1 : end;
}

export interface ConntrackFilter {
  /** Only this IP protocol (6, 17, 1). */
  proto?: number;
  /** Only entries whose original source is this IPv4 address. */
  src?: number;
  /** Only entries whose original destination is this IPv4 address. */
  dst?: number;
}

/** Whether entry `id` (live or dying: its tuples are read) matches `filter`, as `conntrack -L -p P -s A -d B` selects. */
export function matchesConntrack(ct: Conntrack, id: number, filter: ConntrackFilter): boolean {
  if (filter.proto !== undefined && ct.protoOf(id) !== filter.proto) return false;
  if (filter.src !== undefined && ct.srcOf(id << 1) !== (filter.src | 0)) return false;
  if (filter.dst !== undefined && ct.dstOf(id << 1) !== (filter.dst | 0)) return false;
  return true;
}

/**
 * Destroys the live entries matching `filter` with ids in [from, to) (the whole table by
 * default; pass ranges to flush in chunks). Returns how many unexpired ones it destroyed.
 */
export function flushConntrack(ct: Conntrack, filter: ConntrackFilter = {}, from = 0, to = ct.highWater): number {
  let n = 0;
  for (let id = Math.max(0, from); id < Math.min(to, ct.highWater); id++) {
    if ((ct.statusOf(id) & CT_LIVE) === 0 || !matchesConntrack(ct, id, filter)) continue;
    // An entry already past its deadline goes too, but was not there to count.
    if (ct.isLive(id)) n++;
    ct.remove(id);
  }
  return n;
}

/** The counters of `conntrack -S`, and the current count. */
export function conntrackStats(ct: Conntrack): ConntrackStats {
  return {
    count: ct.count,
    max: ct.max,
    found: ct.found,
    new: ct.created,
    invalid: ct.invalid,
    insertFailed: ct.insertFailed,
    drop: ct.drop,
    earlyDrop: ct.earlyDrop,
    expired: ct.expired,
  };
}
