/**
 * icmp-error: turns a packet the router could not deliver into the ICMP error its sender
 * should get (Linux's icmp_send), then drops the packet.
 *
 * in:   offending packets, icmpError = type << 24 | code << 16 | next-hop MTU
 * out:  output — the error as a new IPv4 packet to the sender, through the LOCAL_OUT hook and
 *                ip4-output like every packet the router originates
 * drop: every input frame: when an error replaces it, under the reason the error answers
 *       (ip4.ttl-expired, ip4.frag-needed, ip4.*-unreachable); otherwise why none was sent.
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
import { dropReasons } from '../core/drop-reason.ts';
import { rd16, rd32 } from '../wire/bytes.ts';
import { Stage } from '../core/stage.ts';
import { RouteKind } from '../tables/fib.ts';
import { ICMP_ERROR_MAX_DATAGRAM, ICMP_HLEN, writeIcmpError } from '../wire/icmp.ts';
import { IPV4_MIN_HLEN, IpProto, writeIpv4 } from '../wire/ipv4.ts';
import type { Context } from './context.ts';

const enum Drop {
  SENT,
  TTL_EXPIRED,
  FRAG_NEEDED,
  NET_UNREACHABLE,
  HOST_UNREACHABLE,
  PROTO_UNREACHABLE,
  PORT_UNREACHABLE,
  ABOUT_ICMP_ERROR,
  NOT_FIRST_FRAGMENT,
  BROADCAST,
  BAD_SOURCE,
  RATE_LIMITED,
  NO_ROUTE_BACK,
  POOL_EXHAUSTED,
}

export class IcmpError extends Stage<'output'> {
  readonly name = 'icmp-error';
  readonly nextNames = ['output'] as const;
  readonly dropReasons = dropReasons([
    ['icmp-error.sent', 'replaced by an icmp error'],
    ['ip4.ttl-expired', 'ttl expired in transit (replaced by icmp time exceeded)'],
    ['ip4.frag-needed', 'larger than the mtu with DF set (replaced by icmp fragmentation needed)'],
    ['ip4.net-unreachable', 'no route to the destination (replaced by icmp net unreachable)'],
    ['ip4.host-unreachable', 'neighbour resolution failed (replaced by icmp host unreachable)'],
    ['ip4.proto-unreachable', 'protocol not served by the router (replaced by icmp protocol unreachable)'],
    ['ip4.port-unreachable', 'udp to the router (replaced by icmp port unreachable)'],
    ['icmp-error.about-icmp-error', 'no error about an icmp error'],
    ['icmp-error.not-first-fragment', 'no error about a non-first fragment'],
    ['icmp-error.broadcast', 'no error about a broadcast or multicast packet'],
    ['icmp-error.bad-source', 'no error to an unanswerable source'],
    ['icmp-error.rate-limited', 'icmp error rate limited'],
    ['icmp-error.no-route-back', 'no route back to the sender'],
    ['icmp-error.no-slot', 'no free slot for an icmp error'],
  ]);
  override readonly events = ['sent'];
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
    // RFC 1812 §4.3.2.3: as much of the original as keeps the error within 576 bytes.
    const quote = Math.min(origLen, ICMP_ERROR_MAX_DATAGRAM - IPV4_MIN_HLEN - ICMP_HLEN);
    const eip = pool.start[out] + 14;
    const total = IPV4_MIN_HLEN + ICMP_HLEN + quote;
    writeIpv4(data, eip, 0xc0, total, ctx.ipIdent, 0, 64, IpProto.ICMP, from, src);
    ctx.ipIdent = (ctx.ipIdent + 1) & 0xffff;
    writeIcmpError(data, eip + IPV4_MIN_HLEN, err >>> 24, (err >>> 16) & 0xff, err & 0xffff, data, ip, quote);
    pool.len[out] = 14 + total;
    pool.l3[out] = eip;
    pool.l4[out] = eip + IPV4_MIN_HLEN;
    if (this.tracer !== null) this.tracer.derived(this.name, slot, out);
    this.sent++;
    this.to(this.out.output, out);
    return sentReason(err);
  }
}

/** The drop reason of a packet an error of type/code `err` replaced. */
function sentReason(err: number): number {
  const type = err >>> 24;
  const code = (err >>> 16) & 0xff;
  if (type === 11 && code === 0) return Drop.TTL_EXPIRED;
  if (type !== 3) return Drop.SENT;
  if (code === 4) return Drop.FRAG_NEEDED;
  if (code === 0) return Drop.NET_UNREACHABLE;
  if (code === 1) return Drop.HOST_UNREACHABLE;
  if (code === 2) return Drop.PROTO_UNREACHABLE;
  if (code === 3) return Drop.PORT_UNREACHABLE;
  return Drop.SENT;
}
