/**
 * ip4-reassemble: puts fragmented datagrams addressed to the router back together (Linux's
 * ip_defrag), so a fragmented ping to the gateway is answered as the kernel answers it.
 *
 * in:   fragments for one of our addresses (l3 set); while connection tracking is on, every
 *       fragment the router receives (from the prerouting hook, as Linux defragments before
 *       conntrack), forwarded ones included
 * out:  local      — the whole datagram, in a fresh slot, once every fragment is in (back to
 *                    ip4-local, which now sees an unfragmented datagram)
 *       prerouting — the same while connection tracking is on: back into the prerouting
 *                    hook, which tracks and routes the datagram like any other
 * drop: every fragment (absorbed into the datagram: not a loss); overlapping fragments (the
 *       whole datagram, as Linux has done since 2018); a datagram larger than a slot holds;
 *       more datagrams in progress than the table holds; expiry after 30 s (ipfrag_time).
 *
 * A datagram is keyed by (source, destination, identification, protocol) and assembled in a
 * slot of its own: the first fragment's header, then each fragment's payload at its offset,
 * with one bit per 8-byte block received. Rare path: it scans its few entries linearly.
 */
import { dropReasons } from '../core/drop-reason.ts';
import { rd16, rd32 } from '../wire/bytes.ts';
import { IPV4_FLAG_DF, Ipv4View } from '../wire/ipv4.ts';
import { Derivation } from '../core/frame-meta.ts';
import { Stage } from '../core/stage.ts';
import type { Context } from './context.ts';

const enum Drop {
  ABSORBED,
  OVERLAP,
  TOO_BIG,
  TABLE_FULL,
  EXPIRED,
  POOL_EXHAUSTED,
}

/** Datagrams being reassembled at once (Linux bounds it by memory, ipfrag_high_thresh). */
const MAX_DATAGRAMS = 64;
/** ipfrag_time. */
const TIMEOUT_US = 30_000_000;

export class Ip4Reassemble extends Stage<'local' | 'prerouting'> {
  readonly name = 'ip4-reassemble';
  readonly nextNames = ['local', 'prerouting'] as const;
  readonly dropReasons = dropReasons([
    ['ip4.fragment-queued', 'fragment taken into its datagram'],
    ['ip4.fragment-overlap', 'overlapping fragments (datagram dropped)'],
    ['ip4.reassembly-too-large', 'reassembled datagram larger than a slot'],
    ['ip4.reassembly-too-many', 'too many datagrams being reassembled'],
    ['ip4.reassembly-timeout', 'reassembly timed out (30 s)'],
    ['ip4.reassembly-no-slot', 'no free slot for reassembly'],
  ]);
  override readonly events = ['reassembled'];
  reassembled = 0;

  private readonly slot = new Int32Array(MAX_DATAGRAMS).fill(-1);
  private readonly src = new Uint32Array(MAX_DATAGRAMS);
  private readonly dst = new Uint32Array(MAX_DATAGRAMS);
  private readonly key = new Uint32Array(MAX_DATAGRAMS);
  private readonly startedUs = new Float64Array(MAX_DATAGRAMS);
  /** Payload bytes expected (known once the last fragment arrived), else -1. */
  private readonly total = new Int32Array(MAX_DATAGRAMS);
  private readonly hlen = new Int32Array(MAX_DATAGRAMS);
  private readonly blocks: Uint8Array[] = [];
  private readonly maxPayload: number;
  private readonly ip = new Ipv4View();

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
    // Ethernet header and a full IPv4 header in front of the payload.
    this.maxPayload = ctx.pool.maxFrame - 14 - 60;
    for (let e = 0; e < MAX_DATAGRAMS; e++) this.blocks.push(new Uint8Array(Math.ceil(this.maxPayload / 8)));
  }

  protected process(slots: Int32Array, n: number): void {
    const now = this.ctx.nowUs;
    this.expire(now);
    for (let i = 0; i < n; i++) this.take(slots[i], now);
  }

  /** When the oldest datagram in progress expires (µs), or Infinity. */
  nextDeadline(): number {
    let t = Infinity;
    for (let e = 0; e < MAX_DATAGRAMS; e++) if (this.slot[e] >= 0 && this.startedUs[e] + TIMEOUT_US < t) t = this.startedUs[e] + TIMEOUT_US;
    // Expiry is "older than": one microsecond past the timeout.
    return t === Infinity ? t : t + 1;
  }

  /** Drops the datagrams whose time is up (a timer of the dataplane). */
  runTimers(): void {
    this.expire(this.ctx.nowUs);
  }

  private take(frag: number, now: number): void {
    const pool = this.pool;
    const data = pool.data;
    const ip = pool.l3[frag];
    const hlen = (data[ip] & 15) << 2;
    const flags = rd16(data, ip + 6);
    const offset = (flags & 0x1fff) << 3;
    const more = (flags & 0x2000) !== 0;
    const len = rd16(data, ip + 2) - hlen;
    const src = rd32(data, ip + 12);
    const dst = rd32(data, ip + 16);
    const key = ((rd16(data, ip + 4) << 8) | data[ip + 9]) >>> 0;
    if (offset + len > this.maxPayload || (more && (len & 7) !== 0)) {
      this.drop(frag, Drop.TOO_BIG);
      return;
    }
    let e = this.find(src, dst, key);
    if (e < 0) {
      e = this.start(frag, src, dst, key, now);
      if (e < 0) return;
    }
    const bits = this.blocks[e];
    const first = offset >> 3;
    const last = (offset + len + 7) >> 3;
    for (let b = first; b < last; b++) {
      if (bits[b] !== 0) {
        this.discard(e);
        this.drop(frag, Drop.OVERLAP);
        return;
      }
    }
    bits.fill(1, first, last);
    const asm = this.slot[e];
    const asmIp = pool.l3[asm];
    if (offset === 0) {
      // The first fragment's header is the datagram's (options included).
      data.copy(data, asmIp, ip, ip + hlen);
      this.hlen[e] = hlen;
    }
    data.copy(data, asmIp + 60 + offset, ip + hlen, ip + hlen + len);
    if (!more) this.total[e] = offset + len;
    this.drop(frag, Drop.ABSORBED);
    this.completeIfWhole(e);
  }

  private completeIfWhole(e: number): void {
    const total = this.total[e];
    const hlen = this.hlen[e];
    if (total < 0 || hlen === 0) return;
    const bits = this.blocks[e];
    const blocks = (total + 7) >> 3;
    for (let b = 0; b < blocks; b++) if (bits[b] === 0) return;
    const pool = this.pool;
    const data = pool.data;
    const asm = this.slot[e];
    const asmIp = pool.l3[asm];
    // The payload sits 60 bytes in; slide it up to the real header length.
    if (hlen < 60) data.copy(data, asmIp + hlen, asmIp + 60, asmIp + 60 + total);
    const h = this.ip.bind(data, asmIp, hlen + total);
    h.totalLength = hlen + total;
    h.flagsAndFrag = h.flagsAndFrag & IPV4_FLAG_DF;
    h.fillChecksum();
    pool.len[asm] = asmIp - pool.start[asm] + hlen + total;
    pool.l4[asm] = asmIp + hlen;
    this.slot[e] = -1;
    this.reassembled++;
    // With connection tracking on, fragments came from the prerouting hook (see there).
    this.to(this.ctx.conntrack !== null ? this.out.prerouting : this.out.local, asm);
  }

  private find(src: number, dst: number, key: number): number {
    for (let e = 0; e < MAX_DATAGRAMS; e++) {
      if (this.slot[e] >= 0 && this.src[e] === src && this.dst[e] === dst && this.key[e] === key) return e;
    }
    return -1;
  }

  /** Opens an entry for the datagram `frag` belongs to; -1 (fragment dropped) when impossible. */
  private start(frag: number, src: number, dst: number, key: number, now: number): number {
    let e = -1;
    for (let i = 0; i < MAX_DATAGRAMS && e < 0; i++) if (this.slot[i] < 0) e = i;
    if (e < 0) {
      this.drop(frag, Drop.TABLE_FULL);
      return -1;
    }
    const pool = this.pool;
    const asm = pool.alloc();
    if (asm < 0) {
      this.drop(frag, Drop.POOL_EXHAUSTED);
      return -1;
    }
    // The assembly slot carries the first-seen fragment's metadata (ports, interfaces) as
    // FRAME_META's reassemble column says, and its link-layer header.
    pool.data.copy(pool.data, pool.start[asm], pool.start[frag], pool.l3[frag]);
    pool.derive(frag, asm, Derivation.REASSEMBLE);
    this.slot[e] = asm;
    this.src[e] = src;
    this.dst[e] = dst;
    this.key[e] = key;
    this.startedUs[e] = now;
    this.total[e] = -1;
    this.hlen[e] = 0;
    this.blocks[e].fill(0);
    return e;
  }

  /**
   * Drops the datagrams in progress that came in on port `port` or router interface `ifIndex`
   * (-1: none): a port removed at run time leaves nothing that names its number. Returns how many.
   */
  discardFrom(port: number, ifIndex: number): number {
    const pool = this.pool;
    let n = 0;
    for (let e = 0; e < MAX_DATAGRAMS; e++) {
      const s = this.slot[e];
      if (s < 0 || (pool.inPort[s] !== port && (ifIndex < 0 || pool.rxIf[s] !== ifIndex))) continue;
      this.discard(e);
      n++;
    }
    return n;
  }

  private discard(e: number): void {
    this.pool.free(this.slot[e]);
    this.slot[e] = -1;
  }

  private expire(now: number): void {
    for (let e = 0; e < MAX_DATAGRAMS; e++) {
      if (this.slot[e] >= 0 && now - this.startedUs[e] > TIMEOUT_US) {
        this.discard(e);
        this.countDrop(Drop.EXPIRED);
      }
    }
  }
}
