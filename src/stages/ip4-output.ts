/**
 * ip4-output: route lookup for packets the router itself sends (echo and timestamp replies,
 * resets, ICMP errors), after the LOCAL_OUT hook: it reads the header as the hook left it, so
 * a destination rewritten there is the one routed.
 *
 * in:   IPv4 packets with l3 set and the source address filled in (from the output hook)
 * out:  postrouting — txIf and nextHop set (postrouting then fragments what exceeds the
 *                     egress MTU with DF clear, a reply to a reassembled request say)
 * drop: no route to the destination; a destination that is our own address.
 */
import { dropReasons } from '../core/drop-reason.ts';
import { rd32i } from '../wire/bytes.ts';
import { recordRouteInHeader } from '../wire/ipv4-options.ts';
import { Stage } from '../core/stage.ts';
import { RouteKind } from '../tables/fib.ts';
import type { Context } from './context.ts';

const enum Drop {
  NO_ROUTE,
  LOCAL,
}

export class Ip4Output extends Stage<'postrouting'> {
  readonly name = 'ip4-output';
  readonly nextNames = ['postrouting'] as const;
  readonly dropReasons = dropReasons([
    ['ip4.local-no-route', 'no route for a locally originated packet'],
    ['ip4.local-to-local', 'locally originated packet to a local address'],
  ]);

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    const { pool, fib, ifs } = this.ctx;
    const data = pool.data;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const ip = pool.l3[slot];
      // int32: an address above 2^31 passed to the lookup must not be boxed.
      const dst = rd32i(data, ip + 16);
      const route = fib.lookup(dst);
      if (route < 0) {
        this.drop(slot, Drop.NO_ROUTE);
        continue;
      }
      const kind = fib.kind[route];
      if (kind === RouteKind.LOCAL || kind === RouteKind.BROADCAST) {
        this.drop(slot, Drop.LOCAL);
        continue;
      }
      const ifIndex = fib.ifIndex[route];
      pool.txIf[slot] = ifIndex;
      pool.nextHop[slot] = kind === RouteKind.GATEWAY ? fib.gateway[route] : dst;
      // Record Route in a reply (echoed options): our address on the way out, as ip_options_build.
      if ((data[ip] & 15) > 5 && ifs.hasAddress(ifIndex)) recordRouteInHeader(data, ip, ifs.addr[ifIndex]);
      this.to(this.out.postrouting, slot);
    }
  }
}
