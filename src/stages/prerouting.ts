/**
 * prerouting: the PREROUTING hook (Linux's NF_INET_PRE_ROUTING): every IPv4 packet the router
 * receives passes it after its header was checked and before the routing decision, so a
 * destination rewritten here (DNAT: a Service's ClusterIP to one of its endpoints) is the one
 * routed. Connection tracking starts here for received packets.
 *
 * While connection tracking is on, fragments are put back together first, as Linux's
 * nf_defrag_ipv4 does ahead of conntrack (priority -400): conntrack and NAT need the ports
 * only the first fragment has. They go to ip4-reassemble, which sends the whole datagram back
 * into this hook; a forwarded datagram is fragmented again after POSTROUTING if it exceeds
 * the egress MTU.
 *
 * in:   IPv4 packets with a valid header (from ip4-input: l3, l4 and rxIf set), and
 *       datagrams ip4-reassemble put together (connection tracking on)
 * out:  route  — every packet the handlers accept, to ip4-lookup
 *       defrag — fragments, while connection tracking is on (to ip4-reassemble)
 * drop: only what a registered handler drops (see core/hook.ts); none without handlers.
 */
import { HookStage } from '../core/hook.ts';
import type { Context } from './context.ts';

export class PreroutingHook extends HookStage<'route' | 'defrag'> {
  readonly name = 'prerouting';
  readonly nextNames = ['route', 'defrag'] as const;

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    if (this.ctx.conntrack !== null) n = this.defragmentFirst(slots, n);
    this.toAll(this.out.route, slots, this.runHandlers(slots, n));
  }

  /** Sends the fragments of the batch to ip4-reassemble; keeps the rest, in order. */
  private defragmentFirst(slots: Int32Array, n: number): number {
    const pool = this.ctx.pool;
    const data = pool.data;
    let k = 0;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const ip = pool.l3[slot];
      // MF set or a fragment offset: a fragment.
      if ((data[ip + 6] & 0x3f) !== 0 || data[ip + 7] !== 0) this.to(this.out.defrag, slot);
      else slots[k++] = slot;
    }
    return k;
  }
}
