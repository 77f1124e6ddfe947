/**
 * postrouting: the POSTROUTING hook (Linux's NF_INET_POST_ROUTING): every IPv4 packet that
 * leaves through a router interface — forwarded by ip4-forward or originated and routed by
 * ip4-output — passes it once, routed, before fragmentation and neighbour resolution, where
 * Linux runs SNAT and masquerade (before ip_fragment) and conntrack confirms new entries.
 *
 * in:   routed IPv4 packets (txIf, nextHop set; TTL already decremented when forwarded).
 *       Forwarded packets still carry their inPort; originated ones have NO_PORT.
 * out:  fragment  — larger than the egress MTU with DF clear (an offload super-frame is
 *                   measured by its segments in ip4-forward and never fragmented here)
 *       neighbour — everything else
 * drop: only what a registered handler drops (see core/hook.ts); none without handlers.
 */
import { HookStage } from '../core/hook.ts';
import type { Context } from './context.ts';

export class PostroutingHook extends HookStage<'neighbour' | 'fragment'> {
  readonly name = 'postrouting';
  readonly nextNames = ['neighbour', 'fragment'] as const;

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    const m = this.runHandlers(slots, n);
    const { pool, ifs } = this.ctx;
    const data = pool.data;
    const view = pool.dataView;
    const mtu = ifs.mtu;
    let k = 0;
    for (let i = 0; i < m; i++) {
      const slot = slots[i];
      const ip = pool.l3[slot];
      // Total length over the MTU, DF clear, and not a super-frame: Linux's ip_finish_output.
      if (view.getUint16(ip + 2) > mtu[pool.txIf[slot]] && (data[ip + 6] & 0x40) === 0 && pool.gsoType[slot] === 0) {
        this.to(this.out.fragment, slot);
      } else {
        slots[k++] = slot;
      }
    }
    this.toAll(this.out.neighbour, slots, k);
  }
}
