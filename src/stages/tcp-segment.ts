/**
 * tcp-segment: cuts a TCP super-frame (virtio-net GSO from an offloading TAP) into the
 * segments it stands for, in software, where the egress cannot take it whole: a VXLAN
 * device, whose encapsulation works on whole frames (Linux's skb_gso_segment before a
 * device without the offload).
 *
 * in:   framed TCPv4 super-frames (gsoType set, gsoSize the segment payload), l3 at IPv4
 * out:  segment — one frame per segment, each in a fresh slot: headers copied, IPv4 total
 *                 length, identification (the original's + k) and header checksum, TCP
 *                 sequence number, flags (FIN and PSH on the last segment only, CWR on the
 *                 first only, as tcp_gso_segment) and a full TCP checksum; no offload state
 * drop: the original (consumed); segments for which no slot was free; a super-frame that is
 *       not TCP over IPv4 or whose headers do not fit.
 *
 * A super-frame is up to 64 KiB: ~45 segments. When the pool is short of slots the stage
 * leaves the rest of its batch queued for the next dispatch round, after port-output has
 * sent (and freed) the segments made so far.
 */
import { Derivation } from '../core/frame-meta.ts';
import { dropReasons } from '../core/drop-reason.ts';
import { Stage } from '../core/stage.ts';
import { rd16, rd32i, wr16, wr32 } from '../wire/bytes.ts';
import { internetChecksum, pseudoHeaderSum } from '../wire/checksum.ts';
import type { Context } from './context.ts';

const enum Drop {
  POOL_EXHAUSTED,
  NOT_TCP4,
}

/** Slots left free for everything else while segmenting (ARP, ICMP errors, reads). */
const SLOT_RESERVE = 256;
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;

export class TcpSegment extends Stage<'segment'> {
  readonly name = 'tcp-segment';
  readonly nextNames = ['segment'] as const;
  readonly dropReasons = dropReasons([
    ['tcp.segment-no-slot', 'no free slot for a segment'],
    ['tcp.segment-not-tcp4', 'super-frame is not tcp over ipv4'],
  ]);
  segmentsMade = 0;

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    const pool = this.ctx.pool;
    const data = pool.data;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const s = pool.start[slot];
      const end = s + pool.len[slot];
      const ip = pool.l3[slot];
      const hlen = (data[ip] & 15) << 2;
      const tcp = ip + hlen;
      const mss = pool.gsoSize[slot];
      if (data[ip + 9] !== 6 || tcp + 20 > end || mss === 0) {
        this.drop(slot, Drop.NOT_TCP4);
        continue;
      }
      const thlen = (data[tcp + 12] >>> 4) << 2;
      const body = tcp + thlen;
      if (thlen < 20 || body > end) {
        this.drop(slot, Drop.NOT_TCP4);
        continue;
      }
      const payload = end - body;
      const count = payload === 0 ? 1 : Math.ceil(payload / mss);
      if (pool.available < count + SLOT_RESERVE && i > 0) {
        // Later: after what was made so far has left and freed its slots.
        this.enqueue(slot);
        continue;
      }
      this.segment(slot, s, ip, hlen, tcp, thlen, payload, mss);
    }
  }

  private segment(slot: number, s: number, ip: number, hlen: number, tcp: number, thlen: number, payload: number, mss: number): void {
    const pool = this.ctx.pool;
    const data = pool.data;
    const head = tcp + thlen - s;
    const ipOff = ip - s;
    const tcpOff = tcp - s;
    const src = rd32i(data, ip + 12);
    const dst = rd32i(data, ip + 16);
    const id0 = rd16(data, ip + 4);
    const seq0 = rd32i(data, tcp + 4);
    const flags0 = data[tcp + 13];
    const next = this.out.segment;
    let k = 0;
    for (let off = 0; off < payload || (off === 0 && payload === 0); off += mss, k++) {
      const seg = pool.alloc();
      if (seg < 0) {
        this.countDrop(Drop.POOL_EXHAUSTED);
        break;
      }
      const size = Math.min(mss, payload - off);
      const d = pool.start[seg];
      data.copyWithin(d, s, s + head);
      data.copyWithin(d + head, s + head + off, s + head + off + size);
      const sip = d + ipOff;
      const stcp = d + tcpOff;
      wr16(data, sip + 2, hlen + thlen + size);
      wr16(data, sip + 4, (id0 + k) & 0xffff);
      wr16(data, sip + 10, 0);
      wr16(data, sip + 10, internetChecksum(data, sip, hlen));
      wr32(data, stcp + 4, (seq0 + off) | 0);
      let flags = flags0;
      if (off + size < payload) flags &= ~(TCP_FIN | TCP_PSH);
      if (k > 0) flags &= ~TCP_CWR;
      data[stcp + 13] = flags;
      wr16(data, stcp + 16, 0);
      wr16(data, stcp + 16, internetChecksum(data, stcp, thlen + size, pseudoHeaderSum(src, dst, 6, thlen + size)));
      pool.derive(slot, seg, Derivation.CLONE);
      pool.len[seg] = head + size;
      pool.vnetFlags[seg] = 0;
      pool.gsoType[seg] = 0;
      pool.gsoSize[seg] = 0;
      pool.gsoHdrLen[seg] = 0;
      pool.csumStart[seg] = 0;
      pool.csumOffset[seg] = 0;
      if (this.tracer !== null) this.tracer.derived(this.name, slot, seg);
      this.segmentsMade++;
      this.to(next, seg);
      if (payload === 0) break;
    }
    this.consume(slot);
  }
}
