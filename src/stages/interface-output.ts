/**
 * interface-output: sends a framed packet out of a router interface.
 *
 * in:   frames with txIf set, originated or routed by the router (inPort = NO_PORT)
 * out:  bridge  — the interface is a bridge's (cni0): the bridge picks the member port
 *       tx      — the interface is an L3 port (outPort set)
 *       vxlan   — the interface is a VXLAN device (flannel.1): vxlan-encap wraps the frame;
 *                 a TCPv4 super-frame too when the ports take UDP-tunnel super-frames
 *                 (ctx.udpTunnelGso) and the outer packet stays within 64 KiB
 *       segment — any other super-frame for a VXLAN device: tcp-segment cuts it first
 * drop: an interface of no known kind.
 */
import { dropReasons } from '../core/drop-reason.ts';
import { NO_PORT } from '../core/frame-pool.ts';
import { Stage } from '../core/stage.ts';
import { IfKind } from '../tables/interface-table.ts';
import { VIRTIO_NET_HDR_F_NEEDS_CSUM, VirtioGso } from '../wire/virtio-net.ts';
import type { Context } from './context.ts';

/** Largest inner frame whose outer IPv4 packet (+ IPv4, UDP, VXLAN: 36 bytes) fits 64 KiB. */
const MAX_TUNNELLED_FRAME = 65535 - 36;

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
    const { pool, ifs, vxlan } = this.ctx;
    let k = 0;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const ifIndex = pool.txIf[slot];
      const kind = ifs.kind[ifIndex];
      pool.inPort[slot] = NO_PORT;
      if (kind === IfKind.BRIDGE) {
        this.to(this.out.bridge, slot);
      } else if (kind === IfKind.PORT) {
        pool.outPort[slot] = ifs.target[ifIndex];
        slots[k++] = slot;
      } else if (kind === IfKind.VXLAN) {
        const gso = pool.gsoType[slot];
        // A tunnel super-frame must carry its inner checksum to complete (virtio_net_hdr_tnl_to_skb).
        // (A socket underlay sends datagrams: every super-frame is cut first.)
        const whole =
          gso === 0 ||
          (this.ctx.udpTunnelGso &&
            (gso & ~VirtioGso.ECN) === VirtioGso.TCPV4 &&
            (pool.vnetFlags[slot] & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0 &&
            pool.len[slot] <= MAX_TUNNELLED_FRAME &&
            vxlan.socket[vxlan.deviceOfIf[ifIndex]] === 0);
        this.to(whole ? this.out.vxlan : this.out.segment, slot);
      } else {
        this.drop(slot, Drop.NO_OUTPUT_FOR_KIND);
      }
    }
    this.toAll(this.out.tx, slots, k);
  }
}
