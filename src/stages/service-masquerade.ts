/**
 * ServiceMasquerade: the source NAT decision at postrouting (the NatPolicy of NatSrc there)
 * with Services: kube-proxy's KUBE-POSTROUTING (`-m mark --mark 0x4000/0x4000 -j MASQUERADE
 * --random-fully`) before the cluster's pod masquerade.
 *
 * A new flow whose service tag has SERVICE_TAG_MASQ (set by ServiceDnat: external traffic
 * under the Cluster policy, a ClusterIP reached from outside nat.clusterCIDR, a pod reaching
 * itself through its Service) takes the address of the interface it leaves by — any router
 * interface with an address: a bridge (an endpoint on this node, the hairpin's way back
 * through nodeplane), an L3 port, a VXLAN device — and a source port drawn at random from
 * 1024–65535 every time (--random-fully: NatPortAllocator.snatRandomFully), never the client's
 * own by preference. Every other flow goes to Masquerade (masquerade.ts), pod
 * traffic leaving the cluster; a marked flow leaving by an interface without an address does
 * too (counted `noAddress`).
 *
 * drop: no free source port (the reason Masquerade counts, shared).
 */
import type { DropReason } from '../core/drop-reason.ts';
import { ACCEPT } from '../core/hook.ts';
import type { FramePool } from '../core/frame-pool.ts';
import type { Conntrack } from '../tables/conntrack.ts';
import type { InterfaceTable } from '../tables/interface-table.ts';
import type { NatPortAllocator } from '../tables/nat-port-allocator.ts';
import { SERVICE_TAG_MASQ } from '../tables/service-table.ts';
import type { Context } from './context.ts';
import type { Masquerade } from './masquerade.ts';
import type { NatPolicy } from './nat-manip.ts';

export class ServiceMasquerade implements NatPolicy {
  readonly dropReasons: readonly DropReason[];
  private readonly ct: Conntrack;
  private readonly pool: FramePool;
  private readonly ifs: InterfaceTable;
  /** Service flows masqueraded. */
  masqueraded = 0;
  /** Marked flows that left by an interface without an address (not masqueraded). */
  noAddress = 0;

  constructor(
    ctx: Context,
    private readonly allocator: NatPortAllocator,
    private readonly pods: Masquerade,
  ) {
    if (ctx.conntrack === null) throw new Error('service masquerade: connection tracking is off');
    this.ct = ctx.conntrack;
    this.pool = ctx.pool;
    this.ifs = ctx.ifs;
    // Reason 0 of both is "no free source port".
    this.dropReasons = pods.dropReasons;
  }

  decide(slot: number, id: number): number {
    const ct = this.ct;
    if ((ct.serviceTagOf(id) & SERVICE_TAG_MASQ) === 0) return this.pods.decide(slot, id);
    const txIf = this.pool.txIf[slot];
    if (!this.ifs.hasAddress(txIf)) {
      this.noAddress++;
      return this.pods.decide(slot, id);
    }
    if (this.allocator.snatRandomFully(ct, id, this.ifs.addr[txIf] | 0) < 0) return 0;
    this.masqueraded++;
    return ACCEPT;
  }
}
