/**
 * ip4-forward: what Linux's ip_forward does to a packet it routes, in the same order, up to
 * the POSTROUTING hook.
 *
 * in:   routed packets (txIf, nextHop set)
 * out:  postrouting — TTL decremented, checksum updated incrementally (RFC 1624), Record
 *                     Route written; larger than the egress MTU only when DF is clear
 *                     (postrouting sends those to ip4-fragment)
 *       neighbour   — the same, straight to neighbour-output while POSTROUTING has nothing
 *                     to do (no handlers, nothing traced) and the packet fits the MTU; the
 *                     hook still counts them as its packets
 *       error       — TTL expiring (ICMP 11/0) or larger than the MTU with DF (ICMP 3/4 with
 *                     the next-hop MTU): checked before the hook, as ip_forward does, so the
 *                     error quotes the packet as it arrived
 * drop: an offload super-frame whose segments exceed the MTU without DF.
 *
 * A Record Route option gets the egress interface's address (other options pass untouched).
 * A TCP super-frame from an offloading TAP (gsoType set) is measured by the segments it will
 * become — IP header + TCP header + gsoSize — as Linux's skb_gso_validate_network_len does;
 * a UDP-tunnel super-frame up to the end of its inner TCP header (its checksum start).
 */
import { dropReasons } from '../core/drop-reason.ts';
import type { HookStage } from '../core/hook.ts';
import { Stage } from '../core/stage.ts';
import { updateChecksum16 } from '../wire/checksum.ts';
import { recordRouteInHeader } from '../wire/ipv4-options.ts';
import { VIRTIO_GSO_UDP_TUNNEL } from '../wire/virtio-net.ts';
import type { Context } from './context.ts';

const enum Drop {
  SUPER_FRAME_OVER_MTU,
}

export const ICMP_TTL_EXCEEDED = (11 << 24) | (0 << 16);
export const ICMP_FRAG_NEEDED = (3 << 24) | (4 << 16);

export class Ip4Forward extends Stage<'postrouting' | 'neighbour' | 'error'> {
  readonly name = 'ip4-forward';
  readonly nextNames = ['postrouting', 'neighbour', 'error'] as const;
  readonly dropReasons = dropReasons([
    ['ip4.super-frame-over-mtu', 'offload super-frame larger than the mtu without DF'],
  ]);
  override readonly events = ['ttlExpired', 'fragNeeded'];
  ttlExpired = 0;
  fragNeeded = 0;

  /** The POSTROUTING hook `postrouting` leads to: `neighbour` is taken only while it has nothing to do. */
  private postroutingHook: HookStage<string> | null = null;

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  /** Names the hook stage behind `postrouting`, so that an idle hook can be passed by. */
  watchPostrouting(hook: HookStage<string>): void {
    this.postroutingHook = hook;
  }

  protected process(slots: Int32Array, n: number): void {
    const { pool, ifs } = this.ctx;
    const data = pool.data;
    const view = pool.dataView;
    const hook = this.postroutingHook;
    // An idle hook would only pass on a packet that fits (postrouting.ts): one hop fewer.
    const direct = hook !== null && this.tracer === null && hook.handlers.length === 0;
    let k = 0;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const ip = pool.l3[slot];
      const w0 = view.getInt32(ip); // version, IHL, TOS, total length
      const w2 = view.getInt32(ip + 8); // TTL, protocol, checksum
      const ttl = w2 >>> 24;
      if (ttl <= 1) {
        this.ttlExpired++;
        pool.icmpError[slot] = ICMP_TTL_EXCEEDED;
        this.to(this.out.error, slot);
        continue;
      }
      let total = w0 & 0xffff;
      const gso = pool.gsoType[slot];
      if (gso !== 0) {
        const th = (gso & VIRTIO_GSO_UDP_TUNNEL) !== 0 ? pool.start[slot] + pool.csumStart[slot] : ip + ((w0 >>> 22) & 0x3c);
        total = th + ((data[th + 12] >>> 4) << 2) - ip + pool.gsoSize[slot];
      }
      const mtu = ifs.mtu[pool.txIf[slot]];
      let fragment = false;
      if (total > mtu) {
        if ((data[ip + 6] & 0x40) !== 0) {
          this.fragNeeded++;
          pool.icmpError[slot] = (ICMP_FRAG_NEEDED | mtu) >>> 0;
          this.to(this.out.error, slot);
          continue;
        }
        if (pool.gsoType[slot] !== 0) {
          // Its segments would each need fragmenting; such traffic does not occur from
          // Linux TCP with path MTU discovery (DF set), so it is dropped and counted.
          this.drop(slot, Drop.SUPER_FRAME_OVER_MTU);
          continue;
        }
        fragment = true;
      }
      // TTL decrement with an incremental checksum update (RFC 1624), one 32-bit write.
      const oldWord = w2 >>> 16;
      view.setInt32(ip + 8, ((oldWord - 0x100) << 16) | updateChecksum16(w2 & 0xffff, oldWord, oldWord - 0x100));
      // Record Route: the egress interface's address, as Linux's ip_forward_options writes it.
      if ((w0 & 0x0f000000) > 0x05000000 && ifs.hasAddress(pool.txIf[slot])) recordRouteInHeader(data, ip, ifs.addr[pool.txIf[slot]]);
      if (fragment && direct) {
        this.to(this.out.postrouting, slot); // to be fragmented after the hook
        continue;
      }
      slots[k++] = slot;
    }
    if (direct) {
      hook.packets += k;
      this.toAll(this.out.neighbour, slots, k);
    } else {
      this.toAll(this.out.postrouting, slots, k);
    }
  }
}
