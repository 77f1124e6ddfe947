/**
 * ip4-local: IPv4 packets addressed to the router itself (Linux's ip_local_deliver), sorted by
 * protocol.
 *
 * in:   packets for one of our addresses or a broadcast address
 * out:  reassemble — fragments (ip4-reassemble sends the whole datagram back here)
 *       vxlan — UDP to an address and port a VXLAN device listens on (vxlan-decap)
 *       icmp  — ICMP (icmp-local answers echo and timestamp requests)
 *       tcp   — TCP (tcp-reset answers: no socket listens here)
 *       error — UDP to us: port unreachable (3/3); any other protocol: protocol unreachable
 *               (3/2), as a host without such a socket answers
 * drop: UDP and other protocols to a broadcast address (no answer, as Linux gives none).
 */
import { dropReasons } from '../core/drop-reason.ts';
import { rd16, rd32i } from '../wire/bytes.ts';
import { Stage } from '../core/stage.ts';
import type { Context } from './context.ts';

const enum Drop {
  BROADCAST,
}

export const ICMP_PORT_UNREACHABLE = (3 << 24) | (3 << 16);
export const ICMP_PROTO_UNREACHABLE = (3 << 24) | (2 << 16);

export class Ip4Local extends Stage<'reassemble' | 'vxlan' | 'icmp' | 'tcp' | 'error'> {
  readonly name = 'ip4-local';
  readonly nextNames = ['reassemble', 'vxlan', 'icmp', 'tcp', 'error'] as const;
  readonly dropReasons = dropReasons([
    ['ip4.broadcast-no-listener', 'udp or other protocol to a broadcast address (no listener)'],
  ]);

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    const { pool, fib, vxlan } = this.ctx;
    const data = pool.data;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const ip = pool.l3[slot];
      if ((rd16(data, ip + 6) & 0x3fff) !== 0) {
        this.to(this.out.reassemble, slot);
        continue;
      }
      const proto = data[ip + 9];
      if (proto === 1) {
        this.to(this.out.icmp, slot);
        continue;
      }
      if (proto === 6) {
        this.to(this.out.tcp, slot);
        continue;
      }
      // int32: an address above 2^31 passed to a lookup must not be boxed.
      const dst = rd32i(data, ip + 16);
      const l4 = pool.l4[slot];
      if (proto === 17 && l4 !== 0 && vxlan.listening[rd16(data, l4 + 2)] === 1 && vxlan.listens(dst, rd16(data, l4 + 2))) {
        this.to(this.out.vxlan, slot);
        continue;
      }
      if (fib.isBroadcast(dst)) {
        this.drop(slot, Drop.BROADCAST);
        continue;
      }
      pool.icmpError[slot] = proto === 17 ? ICMP_PORT_UNREACHABLE : ICMP_PROTO_UNREACHABLE;
      this.to(this.out.error, slot);
    }
  }
}
