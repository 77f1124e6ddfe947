/**
 * interface-output: sends a framed packet out of a router interface.
 *
 * in:   frames with txIf set, originated or routed by the router (inPort = NO_PORT)
 * out:  bridge  — the interface is a bridge's (cni0): the bridge picks the member port
 *       tx      — the interface is an L3 port (outPort set)
 *       vxlan   — the interface is a VXLAN device (flannel.1): vxlan-encap wraps the frame
 *       segment — a TCP super-frame for a VXLAN device: tcp-segment cuts it first
 * drop: an interface of no known kind.
 */
import { dropReasons } from '../core/drop-reason.ts';
import { NO_PORT } from '../core/frame-pool.ts';
import { Stage } from '../core/stage.ts';
import { IfKind } from '../tables/interface-table.ts';
import type { Context } from './context.ts';

const enum Drop {
  NO_OUTPUT_FOR_KIND,
}

export class InterfaceOutput extends Stage<'bridge' | 'tx' | 'vxlan' | 'segment'> {
  readonly name = 'interface-output';
  readonly nextNames = ['bridge', 'tx', 'vxlan', 'segment'] as const;
  readonly dropReasons = dropReasons([
    ['interface.no-output', 'interface kind has no output'],
  ]);

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    const { pool, ifs } = this.ctx;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const ifIndex = pool.txIf[slot];
      const kind = ifs.kind[ifIndex];
      pool.inPort[slot] = NO_PORT;
      if (kind === IfKind.BRIDGE) {
        this.to(this.next.bridge, slot);
      } else if (kind === IfKind.PORT) {
        pool.outPort[slot] = ifs.target[ifIndex];
        this.to(this.next.tx, slot);
      } else if (kind === IfKind.VXLAN) {
        this.to(pool.gsoType[slot] === 0 ? this.next.vxlan : this.next.segment, slot);
      } else {
        this.drop(slot, Drop.NO_OUTPUT_FOR_KIND);
      }
    }
  }
}
