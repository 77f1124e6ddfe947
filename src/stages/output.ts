/**
 * output: the LOCAL_OUT hook (Linux's NF_INET_LOCAL_OUT): every IPv4 packet the router
 * originates — echo and timestamp replies, TCP resets, ICMP errors — passes it before its
 * route lookup, as Linux's ip_local_out runs it, so connection tracking sees the router's own
 * packets and a destination rewritten here is the one routed.
 *
 * in:   IPv4 packets the router built (l3 and l4 set, inPort NO_PORT, header complete)
 * out:  route — every packet the handlers accept, to ip4-output
 * drop: only what a registered handler drops (see core/hook.ts); none without handlers.
 */
import { HookStage } from '../core/hook.ts';
import type { Context } from './context.ts';

export class OutputHook extends HookStage<'route'> {
  readonly name = 'output';
  readonly nextNames = ['route'] as const;

  constructor(ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    this.toAll(this.out.route, slots, this.runHandlers(slots, n));
  }
}
