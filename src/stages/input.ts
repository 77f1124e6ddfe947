/**
 * input: the LOCAL_IN hook (Linux's NF_INET_LOCAL_IN): every IPv4 packet addressed to the
 * router passes it after the routing decision and before local delivery, where Linux's
 * conntrack confirms the entry a packet for the router created (so a flow to the router's
 * own address stays in the table, as `conntrack -L` shows it on a Linux node).
 *
 * in:   IPv4 packets for one of our addresses or a broadcast address (from ip4-lookup)
 * out:  local — every packet the handlers accept, to ip4-local
 * drop: only what a registered handler drops (see core/hook.ts); none without handlers.
 */
import { HookStage } from '../core/hook.ts';
import type { Context } from './context.ts';

export class InputHook extends HookStage<'local'> {
  readonly name = 'input';
  readonly nextNames = ['local'] as const;

  constructor(ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    this.toAll(this.out.local, slots, this.runHandlers(slots, n));
  }
}
