/**
 * tcp-reset: answers TCP segments addressed to the router with a reset, as a Linux host
 * without a listening socket does (tcp_v4_send_reset): the peer's connect() fails at once
 * with ECONNREFUSED instead of timing out.
 *
 * in:   TCP segments for one of our addresses or a broadcast address (not fragments)
 * out:  output — the reset, built in place (ip4-output routes it back)
 * drop: resets (never answered), segments to a broadcast address, truncated segments, bad
 *       checksums.
 *
 * The reset follows RFC 793: to a segment with ACK, seq = its ack number and flag RST; to
 * one without, seq 0, ack = its seq + its length (SYN and FIN count one each), flags RST+ACK.
 * The IPv4 header is Linux's: addresses swapped, TOS kept, TTL 64, DF set, no options.
 */
import { rd16, rd32, wr16, wr32 } from '../wire/bytes.ts';
import { Stage } from '../core/stage.ts';
import { foldChecksum, internetChecksum, onesComplementSum, pseudoHeaderSum } from '../wire/checksum.ts';
import type { Context } from './context.ts';

const enum Drop {
  RESET,
  BROADCAST,
  TRUNCATED,
  CHECKSUM,
}

const FIN = 0x01;
const SYN = 0x02;
const RST = 0x04;
const ACK = 0x10;

export class TcpReset extends Stage<'output'> {
  readonly name = 'tcp-reset';
  readonly nextNames = ['output'] as const;
  readonly dropReasons = ['tcp reset to the router (not answered)', 'tcp to a broadcast address', 'truncated tcp header', 'bad tcp checksum'];
  resetsSent = 0;

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    const { pool, fib } = this.ctx;
    const data = pool.data;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const ip = pool.l3[slot];
      const hlen = (data[ip] & 15) << 2;
      const segLen = rd16(data, ip + 2) - hlen;
      const tcp = ip + hlen;
      const doff = segLen >= 20 ? (data[tcp + 12] >>> 4) << 2 : 0;
      if (segLen < 20 || doff < 20 || doff > segLen) {
        this.drop(slot, Drop.TRUNCATED);
        continue;
      }
      const src = rd32(data, ip + 12);
      const dst = rd32(data, ip + 16);
      // An offloading TAP may hand over a checksum still to be completed: nothing to verify.
      if ((pool.vnetFlags[slot] & 1) === 0 && foldChecksum(onesComplementSum(data, tcp, segLen, pseudoHeaderSum(src, dst, 6, segLen))) !== 0) {
        this.drop(slot, Drop.CHECKSUM);
        continue;
      }
      const flags = data[tcp + 13];
      if ((flags & RST) !== 0) {
        this.drop(slot, Drop.RESET);
        continue;
      }
      if (fib.isBroadcast(dst)) {
        this.drop(slot, Drop.BROADCAST);
        continue;
      }
      const sport = rd16(data, tcp);
      const dport = rd16(data, tcp + 2);
      const seq = rd32(data, tcp + 4);
      const ack = rd32(data, tcp + 8);
      const tos = data[ip + 1];
      // Rebuild the segment as a bare 20-byte reset right after a 20-byte IPv4 header.
      const r = ip + 20;
      wr16(data, r, dport);
      wr16(data, r + 2, sport);
      if ((flags & ACK) !== 0) {
        wr32(data, r + 4, ack);
        wr32(data, r + 8, 0);
        data[r + 13] = RST;
      } else {
        const consumed = segLen - doff + ((flags & SYN) !== 0 ? 1 : 0) + ((flags & FIN) !== 0 ? 1 : 0);
        wr32(data, r + 4, 0);
        wr32(data, r + 8, (seq + consumed) >>> 0);
        data[r + 13] = RST | ACK;
      }
      data[r + 12] = 5 << 4;
      wr16(data, r + 14, 0);
      wr16(data, r + 16, 0);
      wr16(data, r + 18, 0);
      wr16(data, r + 16, internetChecksum(data, r, 20, pseudoHeaderSum(dst, src, 6, 20)));
      data[ip] = 0x45;
      data[ip + 1] = tos;
      wr16(data, ip + 2, 40);
      wr16(data, ip + 4, this.ctx.ipIdent);
      this.ctx.ipIdent = (this.ctx.ipIdent + 1) & 0xffff;
      wr16(data, ip + 6, 0x4000);
      data[ip + 8] = 64;
      data[ip + 9] = 6;
      wr32(data, ip + 12, dst);
      wr32(data, ip + 16, src);
      wr16(data, ip + 10, 0);
      wr16(data, ip + 10, internetChecksum(data, ip, 20));
      pool.len[slot] = ip - pool.start[slot] + 40;
      pool.vnetFlags[slot] = 0;
      pool.gsoType[slot] = 0;
      this.resetsSent++;
      this.to(this.next.output, slot);
    }
  }
}
