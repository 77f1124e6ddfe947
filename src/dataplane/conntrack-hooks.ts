/**
 * ConntrackHooks: connection tracking and NAT attached to the graph's hooks, in netfilter's
 * order (priorities in brackets), when the config turns connection tracking on:
 *
 *   prerouting   conntrack-in (-200), dnat (-100, Services)  received packets
 *   output       conntrack-in (-200), dnat (-100, Services)  packets the router originates
 *   input        conntrack-confirm (last)                   packets for the router
 *   postrouting  filter (0: forwarded INVALID dropped), snat (100, Service masquerade, then
 *                pod masquerade), conntrack-confirm (last)
 *   bridge-ip4   conntrack-in (-200), dnat (-100), filter (0), snat (100, no masquerade),
 *                conntrack-confirm (last)                   bridged pod-to-pod IPv4
 *
 * Fragments are reassembled before prerouting's handlers (prerouting.ts). After each
 * dispatch `afterDispatch` removes the entries whose first packet was dropped before it was
 * confirmed (conntrack-confirm.ts), and takes a step of a pending Service UDP cleanup
 * (udp-cleanup.ts).
 */
import type { Context } from '../stages/context.ts';
import type { Stages } from './build-graph.ts';
import { NatPortAllocator } from '../tables/nat-port-allocator.ts';
import { ConntrackConfirm, Unconfirmed } from '../stages/conntrack-confirm.ts';
import { ConntrackIn } from '../stages/conntrack-in.ts';
import { ForwardInvalid } from '../stages/forward-invalid.ts';
import { Masquerade } from '../stages/masquerade.ts';
import { NatDst, NatSrc } from '../stages/nat-manip.ts';
import { parseCidr } from '../wire/ipv4-address.ts';
import { Services } from './services.ts';

/** Entries one dispatch may create and still have removed if unconfirmed, per pool slot. */
const UNCONFIRMED_PER_SLOT = 4;

export class ConntrackHooks {
  readonly unconfirmed: Unconfirmed;
  readonly allocator: NatPortAllocator;
  readonly masquerade: Masquerade;
  /** kube-proxy's part: the service table and its policies (services.ts). */
  readonly services: Services;

  constructor(ctx: Context, s: Stages, clusterCidr: string | null, nodeName: string) {
    if (ctx.conntrack === null) throw new Error('conntrack hooks: connection tracking is off');
    const pool = ctx.pool;
    this.unconfirmed = new Unconfirmed(ctx.conntrack, pool.capacity * UNCONFIRMED_PER_SLOT);
    this.allocator = new NatPortAllocator(ctx.random);
    this.masquerade = new Masquerade(ctx, this.allocator);
    this.services = new Services(ctx, s, nodeName, this.allocator, this.masquerade);
    this.setClusterCidr(clusterCidr);
    const u = this.unconfirmed;

    s.prerouting.register(new ConntrackIn(ctx, u, 'prerouting', false));
    s.prerouting.register(new NatDst(ctx, 'prerouting', this.services.prerouting));

    s.output.register(new ConntrackIn(ctx, u, 'output', false));
    s.output.register(new NatDst(ctx, 'output', this.services.output));

    s.input.register(new ConntrackConfirm(pool, u));

    s.postrouting.register(new ForwardInvalid(pool));
    s.postrouting.register(new NatSrc(ctx, 'postrouting', this.services.masquerade, this.allocator));
    s.postrouting.register(new ConntrackConfirm(pool, u));

    s.bridgeIp4.register(new ConntrackIn(ctx, u, 'bridge-ip4', true));
    s.bridgeIp4.register(new NatDst(ctx, 'bridge-ip4'));
    s.bridgeIp4.register(new ForwardInvalid(pool));
    s.bridgeIp4.register(new NatSrc(ctx, 'bridge-ip4', null, this.allocator));
    s.bridgeIp4.register(new ConntrackConfirm(pool, u));
  }

  /** `nat.clusterCIDR` ("10.244.0.0/16"), or null when the config has no `nat`. */
  setClusterCidr(cidr: string | null): void {
    const c = cidr === null ? null : parseCidr(cidr);
    this.masquerade.setClusterCidr(c);
    this.services.setClusterCidr(c);
  }

  /** Between dispatches: drops the entries of packets that never got confirmed; one more step of a pending UDP cleanup. */
  afterDispatch(): void {
    this.unconfirmed.sweep();
    const cleanup = this.services.cleanup;
    if (cleanup.pending) cleanup.step();
  }
}
