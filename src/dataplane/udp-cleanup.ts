/**
 * UdpCleanup: kube-proxy's conntrack cleanup for UDP Services, done in bounded steps. When
 * applying Services changes what a UDP flow should reach (ServiceTable.takeChanges), the
 * flows' entries must go, as kube-proxy's `conntrack -D` makes them go:
 *   - stale endpoints (removed, no longer candidates, at another port): the DNAT'd UDP entries
 *     whose service tag names the endpoint and whose reply comes from its address and port;
 *   - revived frontends (a UDP Service port that had no endpoint and now has one): the UDP
 *     entries to that address and port without DNAT, made while nothing translated them.
 *
 * Finding them takes a walk of every conntrack id: ~7 ns an id, 7 ms at 1,000,000 entries,
 * too long a pause for the packet thread in one piece. So the walk is cut in steps of at most
 * WALK_STEP ids (32,768: 0.2-0.4 ms), the first when the Services are applied, one more after
 * each dispatch (Dataplane.run: each batch and each timer tick) until the end of the table.
 *
 * While a walk is pending, a packet must not keep going to a removed endpoint through an
 * entry the walk has not reached yet. So the walk also installs itself as the table's
 * `staleUdp` check: conntrack-in, for a packet that found a UDP entry, asks `isStale(id)`
 * first, and a stale entry is removed there and then and the packet tracked as a new flow —
 * what it would have met had the walk been done at once. The check costs nothing when no walk
 * is pending (conntrack-in reads the field once per batch) and nothing for TCP. The price of
 * an index of entries per endpoint, which would flush exactly without walking, would be paid
 * on every UDP flow's creation and death instead; and revived frontends have no endpoint to
 * index by.
 *
 * Entries made while the walk is pending are never stale: a stale endpoint is no candidate
 * (no new flow gets its tag with its address and port) and a revived frontend translates
 * every new flow. Except when a later apply brings them back within the walk: an endpoint a
 * candidate again at the same address and port (a flap, or its id reused for the same pod), a
 * revived frontend gone or without endpoints again. Those are dropped from the pending work
 * when the next changes arrive — kube-proxy, whose syncs are at least a second apart, would
 * have seen no change at all — and the walk starts over from id 0 for the merged work.
 */
import { type Conntrack, CT_DNAT, CT_LIVE, IPPROTO_UDP } from '../tables/conntrack.ts';
import { EP_IN_CLUSTER, EP_IN_LOCAL, SERVICE_TAG_ENDPOINT, type ServiceChanges, type ServiceTable, SP_REJECT, type StaleEndpoint } from '../tables/service-table.ts';

/** Ids walked per step (see the header). */
export const WALK_STEP = 32768;

/** Up to this many stale endpoints or revived frontends are searched linearly. */
const LINEAR_MAX = 16;

export class UdpCleanup {
  private stale: StaleEndpoint[] = [];
  private revived: { addr: number; port: number }[] = [];
  // The pending work as arrays (and hashed when large), rebuilt when changes arrive.
  private staleTag = new Int32Array(0);
  private staleAddr = new Int32Array(0);
  private stalePort = new Int32Array(0);
  /** Service tag → indices into stale*, when there are more than LINEAR_MAX. */
  private staleAt: Map<number, number[]> | null = null;
  private revAddr = new Int32Array(0);
  private revPort = new Int32Array(0);
  private revivedSet: Set<number> | null = null;
  /** The next id to walk; -1 when no walk is pending. */
  private cursor = -1;
  /** Entries flushed, by walks and at lookups. */
  flushed = 0;
  /** Steps taken (the bench reads it). */
  steps = 0;

  constructor(
    private readonly ct: Conntrack,
    private readonly table: ServiceTable,
  ) {}

  /** Whether a walk is pending. */
  get pending(): boolean {
    return this.cursor >= 0;
  }

  /**
   * Adds what applying Services changed, starts the walk over and takes its first step.
   * Returns the entries that step flushed.
   */
  begin(c: ServiceChanges): number {
    const more = c.staleUdpEndpoints.length > 0 || c.revivedUdpFrontends.length > 0;
    if (!more && !this.pending) return 0;
    const t = this.table;
    // What this apply brought back is no longer stale (see the header).
    this.stale = this.stale.filter((e) => !(t.epAddr[e.ep] === e.addr && t.epPort[e.ep] === e.port && (t.epFlags[e.ep] & (EP_IN_CLUSTER | EP_IN_LOCAL)) !== 0));
    this.revived = this.revived.filter((f) => {
      const fe = t.lookup(IPPROTO_UDP, f.addr, f.port);
      return fe >= 0 && (t.spFlags[t.feSp[fe]] & SP_REJECT) === 0;
    });
    this.stale.push(...c.staleUdpEndpoints);
    this.revived.push(...c.revivedUdpFrontends);
    if (this.stale.length === 0 && this.revived.length === 0) {
      this.finish();
      return 0;
    }
    this.index();
    // New work: from the first id again (the walk so far did not look for it).
    if (more) this.cursor = 0;
    this.ct.staleUdp = this;
    return this.step();
  }

  /** Walks up to `budget` more ids, flushing the stale entries; returns how many it flushed. */
  step(budget = WALK_STEP): number {
    if (this.cursor < 0) return 0;
    const ct = this.ct;
    const high = ct.highWater;
    const end = Math.min(high, this.cursor + budget);
    const anyStale = this.staleTag.length > 0;
    const anyRevived = this.revAddr.length > 0;
    let n = 0;
    for (let id = this.cursor; id < end; id++) {
      const st = ct.statusOf(id);
      if ((st & CT_LIVE) === 0 || ct.protoOf(id) !== IPPROTO_UDP) continue;
      if ((st & CT_DNAT) !== 0 ? anyStale && this.toStaleEndpoint(id) : anyRevived && this.toRevivedFrontend(id)) {
        ct.remove(id);
        n++;
      }
    }
    this.steps++;
    this.flushed += n;
    this.cursor = end;
    if (end >= high) this.finish();
    return n;
  }

  /** Walks to the end of the table at once; returns how many it flushed. */
  finishNow(): number {
    let n = 0;
    while (this.cursor >= 0) n += this.step();
    return n;
  }

  /**
   * Whether entry `id` is one the pending walk will flush (see the header): conntrack-in
   * asks for each packet that found an entry while a walk is pending.
   */
  isStale(id: number): boolean {
    const ct = this.ct;
    const st = ct.statusOf(id);
    if ((st & CT_LIVE) === 0 || ct.protoOf(id) !== IPPROTO_UDP) return false;
    return (st & CT_DNAT) !== 0 ? this.toStaleEndpoint(id) : this.toRevivedFrontend(id);
  }

  /** A live UDP entry with DNAT: whether its endpoint (tag, reply source and port) is stale. */
  private toStaleEndpoint(id: number): boolean {
    const ct = this.ct;
    const n = this.staleTag.length;
    if (n === 0) return false;
    const tag = ct.serviceTagOf(id) & SERVICE_TAG_ENDPOINT;
    const reply = (id << 1) | 1;
    if (this.staleAt !== null) {
      const ks = this.staleAt.get(tag);
      if (ks === undefined) return false;
      const addr = ct.srcOf(reply);
      const port = ct.sportOf(reply);
      for (const k of ks) if (this.staleAddr[k] === addr && this.stalePort[k] === port) return true;
      return false;
    }
    for (let k = 0; k < n; k++) {
      if (this.staleTag[k] === tag && ct.srcOf(reply) === this.staleAddr[k] && ct.sportOf(reply) === this.stalePort[k]) return true;
    }
    return false;
  }

  /** A live UDP entry without DNAT: whether it goes to a revived frontend. */
  private toRevivedFrontend(id: number): boolean {
    const ct = this.ct;
    const n = this.revAddr.length;
    if (n === 0) return false;
    const dst = ct.dstOf(id << 1);
    const dport = ct.dportOf(id << 1);
    if (this.revivedSet !== null) return this.revivedSet.has(dst * 65536 + dport);
    for (let k = 0; k < n; k++) if (this.revAddr[k] === dst && this.revPort[k] === dport) return true;
    return false;
  }

  /** Called by conntrack-in: a packet found stale entry `id`, which goes now. */
  flushAtLookup(id: number): void {
    this.ct.remove(id);
    this.flushed++;
  }

  private finish(): void {
    this.cursor = -1;
    this.stale = [];
    this.revived = [];
    this.index();
    if (this.ct.staleUdp === this) this.ct.staleUdp = null;
  }

  /** The pending work as arrays, hashed when large. */
  private index(): void {
    const ns = this.stale.length;
    this.staleTag = new Int32Array(ns);
    this.staleAddr = new Int32Array(ns);
    this.stalePort = new Int32Array(ns);
    this.staleAt = ns > LINEAR_MAX ? new Map() : null;
    this.stale.forEach((e, k) => {
      this.staleTag[k] = e.ep + 1;
      this.staleAddr[k] = e.addr;
      this.stalePort[k] = e.port;
      if (this.staleAt !== null) {
        const ks = this.staleAt.get(e.ep + 1);
        if (ks === undefined) this.staleAt.set(e.ep + 1, [k]);
        else ks.push(k);
      }
    });
    const nr = this.revived.length;
    this.revAddr = new Int32Array(nr);
    this.revPort = new Int32Array(nr);
    this.revivedSet = nr > LINEAR_MAX ? new Set() : null;
    this.revived.forEach((f, k) => {
      this.revAddr[k] = f.addr;
      this.revPort[k] = f.port;
      this.revivedSet?.add(f.addr * 65536 + f.port);
    });
  }
}
