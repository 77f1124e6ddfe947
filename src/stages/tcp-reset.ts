/**
 * tcp-reset: answers TCP segments addressed to the router with a reset, as a Linux host
 * without a listening socket does (tcp_v4_send_reset): the peer's connect() fails at once
 * with ECONNREFUSED instead of timing out.
 *
 * in:   TCP segments for one of our addresses or a broadcast address (not fragments)
 * out:  output — the reset, built in place, through the LOCAL_OUT hook and ip4-output
 * drop: resets (never answered), segments to a broadcast address, truncated segments, bad
 *       checksums.
 *
 * The reset follows RFC 793: to a segment with ACK, seq = its ack number and flag RST; to
 * one without, seq 0, ack = its seq + its length (SYN and FIN count one each), flags RST+ACK.
 * The IPv4 header is Linux's: addresses swapped, TOS kept, TTL 64, DF set, no options.
 */
import { dropReasons } from '../core/drop-reason.ts';
import { rd16, rd32 } from '../wire/bytes.ts';
import { NO_PORT } from '../core/frame-pool.ts';
import { Stage } from '../core/stage.ts';
import { foldChecksum, onesComplementSum, pseudoHeaderSum } from '../wire/checksum.ts';
import { IPV4_FLAG_DF, IPV4_MIN_HLEN, IpProto, writeIpv4 } from '../wire/ipv4.ts';
import { TCP_MIN_HLEN, TcpView, writeTcpHeader } from '../wire/tcp.ts';
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
  readonly dropReasons = dropReasons([
    ['tcp.reset-to-router', 'tcp reset to the router (not answered)'],
    ['tcp.broadcast', 'tcp to a broadcast address'],
    ['tcp.truncated', 'truncated tcp header'],
    ['tcp.bad-checksum', 'bad tcp checksum'],
  ]);
  override readonly events = ['resetsSent'];
  resetsSent = 0;
  private readonly tcp = new TcpView();

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
      const r = ip + IPV4_MIN_HLEN;
      if ((flags & ACK) !== 0) {
        writeTcpHeader(data, r, dport, sport, ack, 0, RST, 0);
      } else {
        const consumed = segLen - doff + ((flags & SYN) !== 0 ? 1 : 0) + ((flags & FIN) !== 0 ? 1 : 0);
        writeTcpHeader(data, r, dport, sport, 0, (seq + consumed) >>> 0, RST | ACK, 0);
      }
      this.tcp.bind(data, r, TCP_MIN_HLEN).fillChecksum(dst, src, TCP_MIN_HLEN);
      writeIpv4(data, ip, tos, IPV4_MIN_HLEN + TCP_MIN_HLEN, this.ctx.ipIdent, IPV4_FLAG_DF, 64, IpProto.TCP, dst, src);
      this.ctx.ipIdent = (this.ctx.ipIdent + 1) & 0xffff;
      pool.len[slot] = ip - pool.start[slot] + IPV4_MIN_HLEN + TCP_MIN_HLEN;
      pool.l4[slot] = r;
      // From here on a packet the router made: LOCAL_OUT, not forwarded.
      pool.inPort[slot] = NO_PORT;
      pool.vnetFlags[slot] = 0;
      pool.gsoType[slot] = 0;
      this.resetsSent++;
      this.to(this.out.output, slot);
    }
  }
}
