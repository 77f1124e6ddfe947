/**
 * ip4-input: IPv4 header validation and the routing decision (Linux's ip_rcv + ip_route_input).
 *
 * in:   IPv4 frames with rxIf and l3 set
 * out:  local   — for one of our addresses or a broadcast address
 *       forward — to be routed (txIf and nextHop set)
 *       error   — no route: ICMP net unreachable (3/0) to the sender
 * drop: bad version, header length, total length or header checksum; martian source (0/8,
 *       127/8, 224/3, or one of our own addresses: Linux's accept_local=0); martian
 *       destination (0/8, 127/8); multicast destination (no multicast routing); a link-layer broadcast/multicast
 *       frame carrying a unicast packet for another host (Linux forwards only PACKET_HOST).
 *
 * Ethernet padding after the IP total length is trimmed here, so later stages see the
 * datagram's true length.
 */
import { rd16, rd32 } from '../wire/bytes.ts';
import { Stage } from '../core/stage.ts';
import { RouteKind } from '../tables/fib.ts';
import { foldChecksum, onesComplementSum } from '../wire/checksum.ts';
import { recordRouteInHeader } from '../wire/ipv4-options.ts';
import type { Context } from './context.ts';

const enum Drop {
  TRUNCATED,
  VERSION,
  HEADER_LENGTH,
  TOTAL_LENGTH,
  CHECKSUM,
  MARTIAN_SOURCE,
  MULTICAST,
  L2_BROADCAST,
  MARTIAN_DESTINATION,
}

export const ICMP_NET_UNREACHABLE = (3 << 24) | (0 << 16);

export class Ip4Input extends Stage<'local' | 'forward' | 'error'> {
  readonly name = 'ip4-input';
  readonly nextNames = ['local', 'forward', 'error'] as const;
  readonly dropReasons = [
    'truncated ipv4 header',
    'bad ipv4 version',
    'bad ipv4 header length',
    'bad ipv4 total length',
    'bad ipv4 header checksum',
    'martian source address',
    'multicast destination (not routed)',
    'link-layer broadcast carrying unicast for another host',
    'martian destination address',
  ];

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    const { pool, fib } = this.ctx;
    const data = pool.data;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const ip = pool.l3[slot];
      const avail = pool.start[slot] + pool.len[slot] - ip;
      if (avail < 20) {
        this.drop(slot, Drop.TRUNCATED);
        continue;
      }
      const vihl = data[ip];
      if (vihl >>> 4 !== 4) {
        this.drop(slot, Drop.VERSION);
        continue;
      }
      const hlen = (vihl & 15) << 2;
      if (hlen < 20 || hlen > avail) {
        this.drop(slot, Drop.HEADER_LENGTH);
        continue;
      }
      const total = rd16(data, ip + 2);
      if (total < hlen || total > avail) {
        this.drop(slot, Drop.TOTAL_LENGTH);
        continue;
      }
      if (foldChecksum(onesComplementSum(data, ip, hlen)) !== 0) {
        this.drop(slot, Drop.CHECKSUM);
        continue;
      }
      const src = rd32(data, ip + 12);
      const srcTop = src >>> 24;
      if (srcTop === 0 || srcTop === 127 || srcTop >= 224) {
        this.drop(slot, Drop.MARTIAN_SOURCE);
        continue;
      }
      const srcRoute = fib.lookup(src);
      if (srcRoute >= 0 && fib.kind[srcRoute] === RouteKind.LOCAL) {
        this.drop(slot, Drop.MARTIAN_SOURCE);
        continue;
      }
      pool.len[slot] = ip - pool.start[slot] + total;
      // Where the L4 header is, for a datagram or its first fragment (a later one has none).
      pool.l4[slot] = (data[ip + 6] & 0x1f) === 0 && data[ip + 7] === 0 ? ip + hlen : 0;
      const dst = rd32(data, ip + 16);
      const dstTop = dst >>> 24;
      if (dstTop === 0 || dstTop === 127) {
        this.drop(slot, Drop.MARTIAN_DESTINATION);
        continue;
      }
      if (dst >>> 28 === 14) {
        this.drop(slot, Drop.MULTICAST);
        continue;
      }
      const route = fib.lookup(dst);
      if (route < 0) {
        pool.icmpError[slot] = ICMP_NET_UNREACHABLE;
        this.to(this.next.error, slot);
        continue;
      }
      const kind = fib.kind[route];
      if (kind === RouteKind.LOCAL || kind === RouteKind.BROADCAST) {
        // Record Route on arrival: the address it was sent to, as ip_options_compile does.
        if (hlen > 20 && kind === RouteKind.LOCAL) recordRouteInHeader(data, ip, dst);
        this.to(this.next.local, slot);
        continue;
      }
      if ((data[pool.start[slot]] & 1) !== 0) {
        this.drop(slot, Drop.L2_BROADCAST);
        continue;
      }
      pool.txIf[slot] = fib.ifIndex[route];
      pool.nextHop[slot] = kind === RouteKind.GATEWAY ? fib.gateway[route] : dst;
      this.to(this.next.forward, slot);
    }
  }
}
