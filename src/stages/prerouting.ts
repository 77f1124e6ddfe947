/**
 * prerouting: the PREROUTING hook (Linux's NF_INET_PRE_ROUTING): every IPv4 packet the router
 * receives passes it after its header was checked and before the routing decision, so a
 * destination rewritten here (DNAT: a Service's ClusterIP to one of its endpoints) is the one
 * routed. Connection tracking starts here for received packets.
 *
 * in:   IPv4 packets with a valid header (from ip4-input: l3, l4 and rxIf set)
 * out:  route — every packet the handlers accept, to ip4-lookup
 * drop: only what a registered handler drops (see core/hook.ts); none without handlers.
 */
import { HookStage } from '../core/hook.ts';
import type { Context } from './context.ts';

export class PreroutingHook extends HookStage<'route'> {
  readonly name = 'prerouting';
  readonly nextNames = ['route'] as const;

  constructor(ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    this.toAll(this.next.route, slots, this.runHandlers(slots, n));
  }
}
