/**
 * Fib: the router's IPv4 forwarding table (what `ip route show table all` shows).
 *
 * Longest-prefix match (Lpm4) maps a destination to a route id; a route says what to do:
 * deliver locally (one of our addresses, or a subnet's broadcast address), send straight to
 * the destination on a connected interface, or send to a gateway. Connected and local
 * routes come from interface addresses; static routes from config.
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

export class Fib {
  private readonly lpm: Lpm4;
  kind: Uint8Array;
  ifIndex: Int32Array;
  gateway: Uint32Array;
  onlink: Uint8Array;
  private count = 0;
  /** Moves on with every route added or removed: what a cache of lookups compares with. */
  version = 0;
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
    this.freeIds.push(id);
    this.version++;
    return true;
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
