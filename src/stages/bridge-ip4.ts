/**
 * bridge-ip4: the bridge's IPv4 hook, as Linux's br_netfilter runs iptables for bridged IPv4
 * when bridge-nf-call-iptables=1 (which Kubernetes requires): IPv4 frames bridged from one
 * member port to another pass it, so connection tracking and NAT see pod-to-pod traffic too —
 * a reply bridged from a Service's endpoint to its client is translated back here.
 *
 * bridge-forward sends it only untagged IPv4 frames with a unicast destination MAC that go
 * from a member port to a member port (known unicast, and each flood copy of unknown
 * unicast, with bytes of its own), and only while connection tracking is on (`ctx.conntrack`
 * set: the config has `nat`, `conntrack` or services); otherwise the bridge's fast path does
 * not change at all.
 * Frames the router sends through its bridge interface passed POSTROUTING already, and
 * broadcast and multicast frames are not sent here.
 *
 * in:   bridged frames, outPort decided, l3 set to the IPv4 header (not yet validated: a
 *       handler that parses it checks it first, as br_netfilter's br_validate_ipv4 does)
 * out:  tx — every frame the handlers accept, to port-output
 * drop: only what a registered handler drops (see core/hook.ts); none without handlers.
 */
import { HookStage } from '../core/hook.ts';
import type { Context } from './context.ts';

export class BridgeIp4Hook extends HookStage<'tx'> {
  readonly name = 'bridge-ip4';
  readonly nextNames = ['tx'] as const;

  constructor(ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    this.toAll(this.out.tx, slots, this.runHandlers(slots, n));
  }
}
