/**
 * Conntrack entries and events as JSON objects: what `/v1/conntrack` and
 * `/v1/conntrack/events` stream (one object a line) and `show conntrack --json` prints. The
 * fields follow `conntrack -L` (and its `-o xml` form) so a test can set them beside the
 * kernel's: protocol name and number, seconds left, TCP state, original and reply tuples
 * (TCP and UDP ports; for ICMP the type, code and identifier of each direction's echo
 * message, as conntrack prints them), UNREPLIED and ASSURED, counters per direction (Linux
 * prints them only with nf_conntrack_acct; we always have them), the mark (always 0: see
 * `mark` below).
 *
 * An entry is read from a flat record (`ConntrackRecord`) so a live entry and an event's
 * snapshot (conntrack-events.ts) go through one function. Also here: the filters of
 * `conntrack -L -p P -s A -d B` parsed from a query string. Never on the packet path.
 */
import type { Conntrack } from '../tables/conntrack.ts';
import { CT_ASSURED, CT_DNAT, CT_SEEN_REPLY, CT_SNAT, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from '../tables/conntrack-store.ts';
import { TCP_STATE_NAMES } from '../tables/conntrack-tcp.ts';
import type { ConntrackFilter } from '../tables/conntrack-views.ts';
import { formatIpv4, parseIpv4 } from '../wire/ipv4-address.ts';

/** One direction's tuple. TCP and UDP: ports; ICMP: the echo message's type, code and identifier. */
export interface ConntrackTupleJson {
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  type?: number;
  code?: number;
  id?: number;
}

export interface ConntrackEntryJson {
  /** The table's id of the entry (Linux's `id=`, shown by `conntrack -L -o id`). */
  id: number;
  /** tcp, udp or icmp. */
  proto: string;
  protonum: number;
  /** Whole seconds until the entry expires (null in a DESTROY event, as Linux omits it). */
  timeout: number | null;
  /** The TCP state (ESTABLISHED, ...); null for UDP and ICMP, which have none. */
  state: string | null;
  orig: ConntrackTupleJson;
  reply: ConntrackTupleJson;
  /** No packet of the reply direction seen yet (`[UNREPLIED]`). */
  unreplied: boolean;
  /** `[ASSURED]`: never evicted when the table is full. */
  assured: boolean;
  /** Whether a source or destination NAT binding gave the entry its reply tuple. */
  snat: boolean;
  dnat: boolean;
  packets: { orig: number; reply: number };
  bytes: { orig: number; reply: number };
  /**
   * The connection's mark: always 0. nodeplane sets none (no CONNMARK), and Linux shows 0 for
   * kube-proxy's flows too (its 0x4000 marks packets, not connections). The Service code's
   * own word per entry (Conntrack.serviceTagOf) is internal and never shown here.
   */
  mark: number;
}

export type ConntrackEventType = 'NEW' | 'UPDATE' | 'DESTROY';

/** An event of `conntrack -E`: the entry as it was then, with what happened and when. */
export interface ConntrackEventJson extends ConntrackEntryJson {
  event: ConntrackEventType;
  /** The dataplane's clock at the event, in seconds. */
  time: number;
}

/** Events a reader missed (the buffer was full, or the reader was slow), in place of them. */
export interface ConntrackLostJson {
  event: 'LOST';
  count: number;
}

/** The counters of `conntrack -S`, and the table's size (`conntrack -C`) and limit. */
export interface ConntrackStatsJson {
  entries: number;
  max: number;
  found: number;
  new: number;
  invalid: number;
  insertFailed: number;
  drop: number;
  earlyDrop: number;
  expired: number;
}

/**
 * An entry as flat numbers: `tuples` holds the original then the reply tuple, each as
 * src, dst (int32), sport, dport; `counters` packets orig, packets reply, bytes orig, bytes
 * reply. For ICMP echo both ports are the identifier.
 */
export interface ConntrackRecord {
  id: number;
  proto: number;
  /** CT_* status bits. */
  status: number;
  tcpState: number;
  /** Seconds left, or null. */
  timeout: number | null;
  tuples: Int32Array | number[];
  counters: Float64Array | number[];
}

const PROTO_NAMES: Record<number, string> = { [IPPROTO_TCP]: 'tcp', [IPPROTO_UDP]: 'udp', [IPPROTO_ICMP]: 'icmp' };
const ICMP_ECHO_REQUEST = 8;
const ICMP_ECHO_REPLY = 0;

export function protoName(proto: number): string {
  return PROTO_NAMES[proto] ?? 'unknown';
}

function tuple(proto: number, t: ArrayLike<number>, o: number, icmpType: number): ConntrackTupleJson {
  const src = formatIpv4(t[o] >>> 0);
  const dst = formatIpv4(t[o + 1] >>> 0);
  if (proto === IPPROTO_ICMP) return { src, dst, type: icmpType, code: 0, id: t[o + 2] };
  return { src, dst, sport: t[o + 2], dport: t[o + 3] };
}

/** The JSON object of a record. */
export function conntrackJson(r: ConntrackRecord): ConntrackEntryJson {
  const { proto, status, tuples: t, counters: c } = r;
  return {
    id: r.id,
    proto: protoName(proto),
    protonum: proto,
    timeout: r.timeout,
    state: proto === IPPROTO_TCP ? (TCP_STATE_NAMES[r.tcpState] ?? 'NONE') : null,
    orig: tuple(proto, t, 0, ICMP_ECHO_REQUEST),
    reply: tuple(proto, t, 4, ICMP_ECHO_REPLY),
    unreplied: (status & CT_SEEN_REPLY) === 0,
    assured: (status & CT_ASSURED) !== 0,
    snat: (status & CT_SNAT) !== 0,
    dnat: (status & CT_DNAT) !== 0,
    packets: { orig: c[0], reply: c[1] },
    bytes: { orig: c[2], reply: c[3] },
    mark: 0,
  };
}

/** Copies entry `id`'s tuples into t[o .. o + 8) and its counters into c[co .. co + 4). */
export function readConntrackTuples(ct: Conntrack, id: number, t: Int32Array, o: number, c: Float64Array, co: number): void {
  for (let dir = 0; dir < 2; dir++) {
    const ref = (id << 1) | dir;
    const p = o + dir * 4;
    t[p] = ct.srcOf(ref);
    t[p + 1] = ct.dstOf(ref);
    t[p + 2] = ct.sportOf(ref);
    t[p + 3] = ct.dportOf(ref);
    c[co + dir] = ct.packetsOf(ref);
    c[co + 2 + dir] = ct.bytesOf(ref);
  }
}

const scratchTuples = new Int32Array(8);
const scratchCounters = new Float64Array(4);

/** Live entry `id` as JSON, its timeout from the table's clock. */
export function conntrackEntryJson(ct: Conntrack, id: number): ConntrackEntryJson {
  readConntrackTuples(ct, id, scratchTuples, 0, scratchCounters, 0);
  return conntrackJson({
    id,
    proto: ct.protoOf(id),
    status: ct.statusOf(id),
    tcpState: ct.tcpStateOf(id),
    timeout: Math.max(0, Math.floor((ct.deadlineOf(id) - ct.nowUs) / 1e6)),
    tuples: scratchTuples,
    counters: scratchCounters,
  });
}

/** Stats as `show conntrack --stats --json` gives them. */
export function conntrackStatsJson(ct: Conntrack): ConntrackStatsJson {
  return {
    entries: ct.count,
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

/** A protocol as `conntrack -p` takes it: tcp, udp, icmp, or their numbers. Throws on anything else. */
export function parseProto(s: string): number {
  const t = s.trim().toLowerCase();
  for (const [num, name] of Object.entries(PROTO_NAMES)) if (t === name || t === num) return Number(num);
  throw new Error(`unknown protocol '${s}' (tcp, udp, icmp or 6, 17, 1)`);
}

/** The filter in a query string: `proto`, `src`, `dst` (original direction). Throws with the bad parameter named. */
export function parseConntrackFilter(q: URLSearchParams): ConntrackFilter {
  const f: ConntrackFilter = {};
  const proto = q.get('proto');
  if (proto !== null) f.proto = parseProto(proto);
  for (const key of ['src', 'dst'] as const) {
    const v = q.get(key);
    if (v === null) continue;
    try {
      f[key] = parseIpv4(v) | 0;
    } catch {
      throw new Error(`${key}: not an IPv4 address: '${v}'`);
    }
  }
  return f;
}

/** The query string of a filter (the client's side of parseConntrackFilter); `proto` etc. as given. */
export function conntrackFilterQuery(f: { proto?: string; src?: string; dst?: string }): URLSearchParams {
  const q = new URLSearchParams();
  for (const key of ['proto', 'src', 'dst'] as const) if (f[key] !== undefined) q.set(key, f[key]);
  return q;
}
