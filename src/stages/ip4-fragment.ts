/**
 * ip4-fragment: splits a datagram larger than the egress MTU (DF clear) into fragments.
 *
 * in:   datagrams with txIf/nextHop set, past POSTROUTING (TTL already decremented when forwarded)
 * out:  neighbour — one frame per fragment, each a fresh slot
 * drop: the original (consumed); fragments for which no slot was free.
 *
 * Each fragment inherits the original's metadata as FRAME_META's fragment column says.
 * Every fragment but the last carries a multiple of 8 payload bytes and MF; offsets add to
 * the original's own offset, so a fragment can be fragmented again. Options are copied into
 * every fragment whole (RFC 791 copies only those with the copy flag; the Linux stack's
 * routers rarely see options at all).
 */
import { dropReasons } from '../core/drop-reason.ts';
import { rd16 } from '../wire/bytes.ts';
import { Derivation } from '../core/frame-meta.ts';
import { Stage } from '../core/stage.ts';
import { IPV4_FLAG_MF, Ipv4View } from '../wire/ipv4.ts';
import type { Context } from './context.ts';

const enum Drop {
  POOL_EXHAUSTED,
  MTU_TOO_SMALL,
}

export class Ip4Fragment extends Stage<'neighbour'> {
  readonly name = 'ip4-fragment';
  readonly nextNames = ['neighbour'] as const;
  readonly dropReasons = dropReasons([
    ['ip4.fragment-no-slot', 'no free slot for a fragment'],
    ['ip4.mtu-below-header', 'egress mtu too small for the header'],
  ]);
  override readonly events = ['fragmentsMade'];
  fragmentsMade = 0;
  private readonly ip = new Ipv4View();

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    const { pool, ifs } = this.ctx;
    const data = pool.data;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const ip = pool.l3[slot];
      const hlen = (data[ip] & 15) << 2;
      const total = rd16(data, ip + 2);
      const mtu = ifs.mtu[pool.txIf[slot]];
      const chunk = ((mtu - hlen) >> 3) << 3;
      if (chunk < 8) {
        this.drop(slot, Drop.MTU_TOO_SMALL);
        continue;
      }
      const flagsFrag = rd16(data, ip + 6);
      const baseOffset = (flagsFrag & 0x1fff) << 3;
      const lastHasMf = (flagsFrag & 0x2000) !== 0;
      const payload = total - hlen;
      for (let off = 0; off < payload; off += chunk) {
        const frag = pool.alloc();
        if (frag < 0) {
          this.countDrop(Drop.POOL_EXHAUSTED);
          break;
        }
        const size = Math.min(chunk, payload - off);
        const last = off + size >= payload;
        // The original's Ethernet header too: an ICMP error about a fragment that later
        // fails looks at how the datagram arrived (a link-layer broadcast gets none).
        const head = ip - pool.start[slot];
        const s = pool.start[frag];
        const fip = s + head;
        data.copy(data, s, ip - head, ip + hlen);
        data.copy(data, fip + hlen, ip + hlen + off, ip + hlen + off + size);
        const h = this.ip.bind(data, fip, hlen + size);
        h.totalLength = hlen + size;
        // The reserved bit travels; DF is clear (or the datagram would not be here).
        h.flagsAndFrag = (flagsFrag & 0x8000) | (last && !lastHasMf ? 0 : IPV4_FLAG_MF) | ((baseOffset + off) >> 3);
        h.fillChecksum();
        pool.len[frag] = head + hlen + size;
        pool.derive(slot, frag, Derivation.FRAGMENT);
        if (this.tracer !== null) this.tracer.derived(this.name, slot, frag);
        this.fragmentsMade++;
        this.to(this.out.neighbour, frag);
      }
      this.consume(slot);
    }
  }
}
