/**
 * Fib: the router's IPv4 forwarding table (what `ip route show table all` shows).
 *
 * Longest-prefix match (Lpm4) maps a destination to a route id; a route says what to do:
 * deliver locally (one of our addresses, or a subnet's broadcast address), send straight to
 * the destination on a connected interface, or send to a gateway. Connected and local
 * routes come from interface addresses; static routes from config.
 *
 * `isLocal(addr)` answers "is this one of our addresses" (the route for it is LOCAL) for the
 * source check of every received packet without a second trie walk: local routes are /32s,
 * counted per 12-bit hash of their address, and an address whose bucket counts none cannot
 * be one (one load from an 8 KiB array). Only the rest, a source hashing where one of our
 * addresses does, is looked up. A local route wider than /32 (none is ever added) turns the
 * filter off, so the answer is always the lookup's.
 */
import { Lpm4 } from './lpm4.ts';

export const enum RouteKind {
  LOCAL = 0,
  BROADCAST = 1,
  CONNECTED = 2,
  GATEWAY = 3,
}

export const ROUTE_KIND_NAMES = ['local', 'broadcast', 'connected', 'gateway'];

export interface RouteView {
  prefix: number;
  prefixLen: number;
  kind: RouteKind;
  ifIndex: number;
  gateway: number;
  onlink: boolean;
}

const LOCAL_BUCKETS = 4096;

/** The bucket of `addr` in Fib's count of local addresses: the top 12 bits of a multiplicative hash. */
function localBucket(addr: number): number {
  return Math.imul(addr | 0, 0x9e3779b1) >>> 20;
}

export class Fib {
  private readonly lpm: Lpm4;
  kind: Uint8Array;
  ifIndex: Int32Array;
  gateway: Uint32Array;
  onlink: Uint8Array;
  private count = 0;
  /** Moves on with every route added or removed: what a cache of lookups compares with. */
  version = 0;
  /** LOCAL /32 routes per 12-bit hash of their address (see isLocal). */
  private readonly localBuckets = new Uint16Array(LOCAL_BUCKETS);
  /** LOCAL routes wider than /32: while any exists, isLocal always looks up. */
  private localWide = 0;
  /** Ids of removed routes, reused by add (a peer set replaced often must not grow the arrays). */
  private readonly freeIds: number[] = [];

  constructor(capacity = 1024) {
    this.lpm = new Lpm4();
    this.kind = new Uint8Array(capacity);
    this.ifIndex = new Int32Array(capacity);
    this.gateway = new Uint32Array(capacity);
    this.onlink = new Uint8Array(capacity);
  }

  /** Adds a route and returns its id. */
  add(prefix: number, prefixLen: number, kind: RouteKind, ifIndex: number, gateway = 0, onlink = false): number {
    // A route replacing one for the same prefix (the trie keeps the last) replaces its count too.
    const replaced = this.lpm.get(prefix >>> 0, prefixLen);
    if (replaced >= 0 && this.kind[replaced] === RouteKind.LOCAL) this.countLocal(prefix, prefixLen, -1);
    if (kind === RouteKind.LOCAL) this.countLocal(prefix, prefixLen, 1);
    let id = this.freeIds.pop();
    if (id === undefined) {
      if (this.count === this.kind.length) this.growTo(this.count * 2);
      id = this.count++;
    }
    this.kind[id] = kind;
    this.ifIndex[id] = ifIndex;
    this.gateway[id] = gateway >>> 0;
    this.onlink[id] = onlink ? 1 : 0;
    this.lpm.insert(prefix >>> 0, prefixLen, id);
    this.version++;
    return id;
  }

  /** The id of the route for exactly this prefix, or -1. */
  get(prefix: number, prefixLen: number): number {
    return this.lpm.get(prefix >>> 0, prefixLen);
  }

  /** Removes the route for exactly this prefix; false when there is none. */
  remove(prefix: number, prefixLen: number): boolean {
    const id = this.lpm.get(prefix >>> 0, prefixLen);
    if (id < 0 || !this.lpm.remove(prefix >>> 0, prefixLen)) return false;
    if (this.kind[id] === RouteKind.LOCAL) this.countLocal(prefix, prefixLen, -1);
    this.freeIds.push(id);
    this.version++;
    return true;
  }

  /** Whether `addr` is one of our addresses: its route is LOCAL (see the header). */
  isLocal(addr: number): boolean {
    if (this.localWide === 0 && this.localBuckets[localBucket(addr)] === 0) return false;
    const r = this.lpm.lookup(addr);
    return r >= 0 && this.kind[r] === RouteKind.LOCAL;
  }

  private countLocal(prefix: number, prefixLen: number, delta: 1 | -1): void {
    if (prefixLen === 32) this.localBuckets[localBucket(prefix)] += delta;
    else this.localWide += delta;
  }

  /** The route id for `dst`, or -1 when no route matches. */
  lookup(dst: number): number {
    return this.lpm.lookup(dst);
  }

  /** Whether `dst` is a broadcast address of ours: 255.255.255.255 or a subnet's broadcast. */
  isBroadcast(dst: number): boolean {
    const r = this.lpm.lookup(dst);
    return r >= 0 && this.kind[r] === RouteKind.BROADCAST;
  }

  get size(): number {
    return this.lpm.size;
  }

  routes(): RouteView[] {
    const out: RouteView[] = [];
    for (const e of this.lpm.entries()) {
      const id = e.value;
      out.push({ prefix: e.prefix, prefixLen: e.prefixLen, kind: this.kind[id] as RouteKind, ifIndex: this.ifIndex[id], gateway: this.gateway[id], onlink: this.onlink[id] === 1 });
    }
    return out;
  }

  private growTo(n: number): void {
    const k = new Uint8Array(n);
    k.set(this.kind);
    this.kind = k;
    const i = new Int32Array(n);
    i.set(this.ifIndex);
    this.ifIndex = i;
    const g = new Uint32Array(n);
    g.set(this.gateway);
    this.gateway = g;
    const o = new Uint8Array(n);
    o.set(this.onlink);
    this.onlink = o;
  }
}
