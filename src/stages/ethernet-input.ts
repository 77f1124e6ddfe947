/**
 * ethernet-input: the first stage of every received frame.
 *
 * in:   frames from any port (inPort set)
 * out:  bridge  — frames of a port that is a bridge member
 *       l3      — frames on an L3 port addressed to its MAC (or broadcast/multicast); rxIf set
 * drop: runt frames; unicast frames on an L3 port addressed to another MAC (Linux's
 *       PACKET_OTHERHOST); frames on a port that is down.
 */
import { dropReasons } from '../core/drop-reason.ts';
import { Stage } from '../core/stage.ts';
import { PortRole } from '../tables/port-table.ts';
import type { Context } from './context.ts';

const enum Drop {
  RUNT,
  OTHER_HOST,
  PORT_DOWN,
}

export class EthernetInput extends Stage<'bridge' | 'l3'> {
  readonly name = 'ethernet-input';
  readonly nextNames = ['bridge', 'l3'] as const;
  readonly dropReasons = dropReasons([
    ['eth.runt', 'runt frame (shorter than an ethernet header)'],
    ['eth.other-host', 'unicast for another host on an L3 port'],
    ['port.rx-down', 'port down'],
  ]);

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    const { pool, ports, ifs } = this.ctx;
    const data = pool.data;
    const view = pool.dataView;
    const l3 = this.out.l3;
    let k = 0;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const port = pool.inPort[slot];
      if (pool.len[slot] < 14) {
        this.drop(slot, Drop.RUNT);
        continue;
      }
      if (ports.up[port] === 0) {
        this.drop(slot, Drop.PORT_DOWN);
        continue;
      }
      if (ports.role[port] === PortRole.BRIDGED) {
        slots[k++] = slot;
        continue;
      }
      const ifIndex = ports.ifOf[port];
      const s = pool.start[slot];
      if ((data[s] & 1) === 0 && (view.getUint16(s) !== ifs.macHi[ifIndex] || view.getInt32(s + 2) !== ifs.macLo[ifIndex])) {
        this.drop(slot, Drop.OTHER_HOST);
        continue;
      }
      pool.rxIf[slot] = ifIndex;
      this.to(l3, slot);
    }
    this.toAll(this.out.bridge, slots, k);
  }
}
