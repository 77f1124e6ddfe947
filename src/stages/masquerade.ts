/**
 * Masquerade: the source NAT decision for pod traffic leaving the cluster (the CNI bridge
 * plugin's ipMasq and flannel's rules; in iptables terms
 * `-t nat -A POSTROUTING -s <clusterCIDR> ! -d <clusterCIDR> -j MASQUERADE`, limited to L3
 * ports). A NatPolicy of NatSrc at postrouting.
 *
 * A new flow (its first packets: ctstate NEW, original direction) whose source is inside
 * `nat.clusterCIDR`, whose destination is outside it and which leaves through an L3 port
 * (not a bridge interface) with an address takes that address as its source. The source
 * port (ICMP echo identifier) is kept when the translated tuple is free, else another one of
 * 1024-65535 (0-65535 for identifiers) is found by NatPortAllocator, in at most 248 tries.
 * Replies are translated back by the destination manip (NatDst) through the binding.
 *
 * The addresses read are the packet's as it reaches POSTROUTING: after a DNAT, so a flow to
 * a Service whose endpoint is a pod stays unmasqueraded, as with kube-proxy.
 *
 * drop: a flow for which no free source port was found (Linux's NF_DROP when
 *       get_unique_tuple fails), counted by the allocator as `failed`.
 */
import { dropReasons } from '../core/drop-reason.ts';
import { ACCEPT } from '../core/hook.ts';
import type { FramePool } from '../core/frame-pool.ts';
import type { Context } from './context.ts';
import type { Conntrack } from '../tables/conntrack.ts';
import { IfKind, type InterfaceTable } from '../tables/interface-table.ts';
import type { NatPortAllocator } from '../tables/nat-port-allocator.ts';
import { rd32i } from '../wire/bytes.ts';
import type { NatPolicy } from './nat-manip.ts';

export class Masquerade implements NatPolicy {
  readonly dropReasons = dropReasons([
    ['nat.no-port', 'masquerade: no free source port'],
  ]);
  /** nat.clusterCIDR as network and mask (int32); `on` false when the config has no `nat`. */
  private net = 0;
  private mask = 0;
  private on = false;
  /** Flows masqueraded. */
  masqueraded = 0;
  private readonly pool: FramePool;
  private readonly ifs: InterfaceTable;
  private readonly ct: Conntrack;

  constructor(
    ctx: Context,
    private readonly allocator: NatPortAllocator,
  ) {
    if (ctx.conntrack === null) throw new Error('masquerade: connection tracking is off');
    this.pool = ctx.pool;
    this.ifs = ctx.ifs;
    this.ct = ctx.conntrack;
  }

  /** The cluster's pod network (`nat.clusterCIDR`), or null: masquerade nothing. */
  setClusterCidr(cidr: { addr: number; prefixLen: number } | null): void {
    this.on = cidr !== null;
    const len = cidr?.prefixLen ?? 0;
    this.mask = len === 0 ? 0 : -1 << (32 - len);
    this.net = (cidr?.addr ?? 0) & this.mask;
  }

  decide(slot: number, id: number): number {
    if (!this.on) return ACCEPT;
    const pool = this.pool;
    const data = pool.data;
    const ip = pool.l3[slot];
    const mask = this.mask;
    if ((rd32i(data, ip + 12) & mask) !== this.net || (rd32i(data, ip + 16) & mask) === this.net) return ACCEPT;
    const ifs = this.ifs;
    const txIf = pool.txIf[slot];
    if (ifs.kind[txIf] !== IfKind.PORT || !ifs.hasAddress(txIf)) return ACCEPT;
    if (this.allocator.snat(this.ct, id, ifs.addr[txIf] | 0) < 0) return 0;
    this.masqueraded++;
    return ACCEPT;
  }
}
