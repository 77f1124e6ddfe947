/**
 * l3-input: frames that reached one of the router's interfaces, sorted by EtherType.
 *
 * in:   frames with rxIf set (from an L3 port, or from a bridge to its router interface)
 * out:  arp  — ARP;  ip4 — IPv4 (l3 set to the IPv4 header)
 * drop: VLAN-tagged frames (router interfaces are untagged), IPv6 (never routed: SPEC §2),
 *       other EtherTypes.
 */
import { dropReasons } from '../core/drop-reason.ts';
import { Stage } from '../core/stage.ts';
import type { Context } from './context.ts';

const enum Drop {
  VLAN,
  IPV6,
  ETHERTYPE,
}

export class L3Input extends Stage<'arp' | 'ip4'> {
  readonly name = 'l3-input';
  readonly nextNames = ['arp', 'ip4'] as const;
  readonly dropReasons = dropReasons([
    ['l3.vlan-tagged', 'vlan-tagged frame at a router interface'],
    ['ip6.not-routed', 'ipv6 is not routed'],
    ['l3.unsupported-ethertype', 'unsupported ethertype'],
  ]);

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    const pool = this.ctx.pool;
    const view = pool.dataView;
    let k = 0;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const s = pool.start[slot];
      const type = view.getUint16(s + 12);
      pool.l3[slot] = s + 14;
      if (type === 0x0800) slots[k++] = slot;
      else if (type === 0x0806) this.to(this.out.arp, slot);
      else if (type === 0x86dd) this.drop(slot, Drop.IPV6);
      else if (type === 0x8100 || type === 0x88a8) this.drop(slot, Drop.VLAN);
      else this.drop(slot, Drop.ETHERTYPE);
    }
    this.toAll(this.out.ip4, slots, k);
  }
}
