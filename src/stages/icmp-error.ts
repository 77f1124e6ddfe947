/**
 * icmp-error: turns a packet the router could not deliver into the ICMP error its sender
 * should get (Linux's icmp_send), then drops the packet.
 *
 * in:   offending packets, icmpError = type << 24 | code << 16 | next-hop MTU
 * out:  neighbour — the error as a new IPv4 packet, already routed back to the sender
 * drop: every input frame (the error replaces it); reasons say when no error is sent.
 *
 * Never about an ICMP error, a fragment other than the first, a packet sent to a broadcast or
 * multicast address (IPv4 or link layer), or from an address that cannot be answered
 * (RFC 1122 §3.2.2, RFC 1812 §4.3.2.7). Rate limited as Linux limits them: a token bucket for
 * all errors (icmp_msgs_per_sec/icmp_msgs_burst) and one per destination (icmp_ratelimit,
 * burst 6); fragmentation needed is exempt from both. The source is our address on the interface that faces
 * the sender (Linux's default icmp_errors_use_inbound_ifaddr=0: the exiting interface of the
 * error), or the original destination when that was us. The quote is the original IP header
 * and as much payload as keeps the error within 576 bytes, as Linux does.
 */
import { rd16, rd32, wr16, wr32 } from '../wire/bytes.ts';
import { Stage } from '../core/stage.ts';
import { RouteKind } from '../tables/fib.ts';
import { internetChecksum } from '../wire/checksum.ts';
import type { Context } from './context.ts';

const enum Drop {
  SENT,
  ABOUT_ICMP_ERROR,
  NOT_FIRST_FRAGMENT,
  BROADCAST,
  BAD_SOURCE,
  RATE_LIMITED,
  NO_ROUTE_BACK,
  POOL_EXHAUSTED,
}

/** Largest ICMP error datagram (RFC 1812 §4.3.2.3). */
const MAX_ERROR_DATAGRAM = 576;

export class IcmpError extends Stage<'neighbour'> {
  readonly name = 'icmp-error';
  readonly nextNames = ['neighbour'] as const;
  readonly dropReasons = [
    'replaced by an icmp error',
    'no error about an icmp error',
    'no error about a non-first fragment',
    'no error about a broadcast or multicast packet',
    'no error to an unanswerable source',
    'icmp error rate limited',
    'no route back to the sender',
    'no free slot for an icmp error',
  ];
  sent = 0;

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      this.drop(slot, this.answer(slot));
    }
  }

  /** Emits the error for `slot` if one is due; returns the reason code to count the original under. */
  private answer(slot: number): number {
    const ctx = this.ctx;
    const { pool, fib, ifs } = ctx;
    const data = pool.data;
    const ip = pool.l3[slot];
    const hlen = (data[ip] & 15) << 2;
    const proto = data[ip + 9];
    const fragOff = rd16(data, ip + 6) & 0x1fff;
    const src = rd32(data, ip + 12);
    const dst = rd32(data, ip + 16);
    if (fragOff !== 0) return Drop.NOT_FIRST_FRAGMENT;
    if (proto === 1) {
      const t = data[ip + hlen];
      if (t === 3 || t === 4 || t === 5 || t === 11 || t === 12) return Drop.ABOUT_ICMP_ERROR;
    }
    const dstRoute = fib.lookup(dst);
    if ((data[pool.start[slot]] & 1) !== 0 || dst >>> 28 >= 14 || (dstRoute >= 0 && fib.kind[dstRoute] === RouteKind.BROADCAST)) {
      return Drop.BROADCAST;
    }
    const top = src >>> 24;
    if (top === 0 || top === 127 || top >= 224) return Drop.BAD_SOURCE;
    const back = fib.lookup(src);
    if (back < 0 || fib.kind[back] === RouteKind.LOCAL || fib.kind[back] === RouteKind.BROADCAST) return Drop.NO_ROUTE_BACK;
    // Linux's icmp_ratemask: fragmentation needed is never limited (path MTU discovery needs it).
    const err = pool.icmpError[slot];
    const fragNeeded = err >>> 24 === 3 && ((err >>> 16) & 0xff) === 4;
    if (!fragNeeded && (!ctx.icmpLimiter.take(ctx.nowUs) || !ctx.icmpPerHost.allow(src, ctx.nowUs))) return Drop.RATE_LIMITED;
    const out = pool.alloc();
    if (out < 0) return Drop.POOL_EXHAUSTED;

    const backIf = fib.ifIndex[back];
    let from = dstRoute >= 0 && fib.kind[dstRoute] === RouteKind.LOCAL ? dst : 0;
    if (from === 0) from = ifs.hasAddress(backIf) ? ifs.addr[backIf] : ifs.hasAddress(pool.rxIf[slot]) ? ifs.addr[pool.rxIf[slot]] : 0;
    const origLen = pool.start[slot] + pool.len[slot] - ip;
    const quote = Math.min(origLen, MAX_ERROR_DATAGRAM - 28);
    const eip = pool.start[out] + 14;
    const icmp = eip + 20;
    const total = 28 + quote;
    data[eip] = 0x45;
    data[eip + 1] = 0xc0;
    wr16(data, eip + 2, total);
    wr16(data, eip + 4, ctx.ipIdent);
    ctx.ipIdent = (ctx.ipIdent + 1) & 0xffff;
    wr16(data, eip + 6, 0);
    data[eip + 8] = 64;
    data[eip + 9] = 1;
    wr16(data, eip + 10, 0);
    wr32(data, eip + 12, from);
    wr32(data, eip + 16, src);
    wr16(data, eip + 10, internetChecksum(data, eip, 20));
    data[icmp] = err >>> 24;
    data[icmp + 1] = (err >>> 16) & 0xff;
    wr16(data, icmp + 2, 0);
    wr16(data, icmp + 4, 0);
    wr16(data, icmp + 6, err & 0xffff);
    data.copy(data, icmp + 8, ip, ip + quote);
    wr16(data, icmp + 2, internetChecksum(data, icmp, 8 + quote));
    pool.len[out] = 14 + total;
    pool.l3[out] = eip;
    pool.txIf[out] = backIf;
    pool.nextHop[out] = fib.kind[back] === RouteKind.GATEWAY ? fib.gateway[back] : src;
    if (this.tracer !== null) this.tracer.derived(this.name, slot, out);
    this.sent++;
    this.to(this.next.neighbour, out);
    return Drop.SENT;
  }
}
