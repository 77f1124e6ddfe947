/**
 * ip4-lookup: the routing decision for received IPv4 packets (Linux's ip_route_input), after
 * the PREROUTING hook: it reads the header as the hook left it, so a destination rewritten
 * there (DNAT) is the one routed.
 *
 * in:   IPv4 packets with a valid header (l3, rxIf set)
 * out:  local   — for one of our addresses or a broadcast address (through the input hook)
 *       vxlan   — VXLAN for a device's local address and port, straight to vxlan-decap while
 *                 the input hook (LOCAL_IN) has no handlers and nobody traces: what the input
 *                 hook and ip4-local would do with it (a whole datagram, UDP to a port a
 *                 device listens on at that address), without their two hops
 *       forward — to be routed (txIf and nextHop set)
 *       error   — no route: ICMP net unreachable (3/0) to the sender
 * drop: martian source: one of our own addresses (Linux's accept_local=0, fib_validate_source;
 *       Fib.isLocal answers without a second route lookup for nearly every source); a
 *       link-layer broadcast/multicast frame carrying a unicast packet for another host
 *       (Linux forwards only PACKET_HOST).
 *
 * Record Route on arrival of a packet for us: the address it was sent to, as
 * ip_options_compile writes it.
 */
import { dropReasons } from '../core/drop-reason.ts';
import { rd16, rd32i } from '../wire/bytes.ts';
import type { HookStage } from '../core/hook.ts';
import { Stage } from '../core/stage.ts';
import { RouteKind } from '../tables/fib.ts';
import { recordRouteInHeader } from '../wire/ipv4-options.ts';
import type { Context } from './context.ts';

const enum Drop {
  MARTIAN_SOURCE,
  L2_BROADCAST,
}

export const ICMP_NET_UNREACHABLE = (3 << 24) | (0 << 16);

export class Ip4Lookup extends Stage<'local' | 'vxlan' | 'forward' | 'error'> {
  readonly name = 'ip4-lookup';
  readonly nextNames = ['local', 'vxlan', 'forward', 'error'] as const;
  readonly dropReasons = dropReasons([
    ['ip4.martian-source', 'martian source address'],
    ['ip4.l2-broadcast-unicast', 'link-layer broadcast carrying unicast for another host'],
  ]);
  /** The input hook: `vxlan` is taken only while it has no handlers. */
  private inputHook: HookStage<string> | null = null;

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  /** Names the input hook whose handlers, when there are any, every local packet must meet. */
  watchInputHook(hook: HookStage<string>): void {
    this.inputHook = hook;
  }

  protected process(slots: Int32Array, n: number): void {
    const { pool, fib, vxlan } = this.ctx;
    const data = pool.data;
    const hook = this.inputHook;
    const vxlanDirect = vxlan.count > 0 && this.tracer === null && hook !== null && hook.handlers.length === 0;
    const view = pool.dataView;
    let k = 0;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const ip = pool.l3[slot];
      if (fib.isLocal(view.getInt32(ip + 12))) {
        this.drop(slot, Drop.MARTIAN_SOURCE);
        continue;
      }
      // As an int32 (the FIB and the pool's nextHop take either form of an address).
      const dst = view.getInt32(ip + 16);
      const route = fib.lookup(dst);
      if (route < 0) {
        pool.icmpError[slot] = ICMP_NET_UNREACHABLE;
        this.to(this.out.error, slot);
        continue;
      }
      const kind = fib.kind[route];
      if (kind === RouteKind.LOCAL || kind === RouteKind.BROADCAST) {
        if (kind === RouteKind.LOCAL && (data[ip] & 15) > 5) recordRouteInHeader(data, ip, dst);
        const l4 = pool.l4[slot];
        // A whole UDP datagram (not a fragment: l4 set) to a port and address a device listens on.
        if (vxlanDirect && kind === RouteKind.LOCAL && data[ip + 9] === 17 && l4 !== 0 && (rd16(data, ip + 6) & 0x3fff) === 0 && vxlan.listening[rd16(data, l4 + 2)] === 1 && vxlan.listens(rd32i(data, ip + 16), rd16(data, l4 + 2))) {
          this.to(this.out.vxlan, slot);
          continue;
        }
        this.to(this.out.local, slot);
        continue;
      }
      if ((data[pool.start[slot]] & 1) !== 0) {
        this.drop(slot, Drop.L2_BROADCAST);
        continue;
      }
      pool.txIf[slot] = fib.ifIndex[route];
      pool.nextHop[slot] = kind === RouteKind.GATEWAY ? fib.gateway[route] : dst;
      slots[k++] = slot;
    }
    this.toAll(this.out.forward, slots, k);
  }
}
