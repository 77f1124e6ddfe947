/**
 * icmp-local: ICMP messages addressed to the router (Linux's icmp_rcv).
 *
 * in:   ICMP packets for one of our addresses or a broadcast address (not fragments)
 * out:  output — replies built in place: echo reply (type 0) to an echo request, timestamp
 *       reply (14) to a timestamp request (13), through the LOCAL_OUT hook and ip4-output
 * drop: truncated or bad-checksum ICMP; echo and timestamp requests to a broadcast address
 *       (icmp_echo_ignore_broadcasts=1 covers both); every other type is absorbed (errors
 *       and replies addressed to the router concern no socket here).
 *
 * Replies are as Linux's icmp_reply makes them: addresses swapped, TOS kept, TTL 64, DF
 * clear, a fresh IP identification, options echoed (Record Route kept, the rest dropped). Timestamps are milliseconds since midnight UTC
 * (RFC 792), from the dataplane clock.
 */
import { dropReasons } from '../core/drop-reason.ts';
import { rd16, rd32 } from '../wire/bytes.ts';
import { NO_PORT } from '../core/frame-pool.ts';
import { Stage } from '../core/stage.ts';
import { foldChecksum, onesComplementSum } from '../wire/checksum.ts';
import { ICMP_HLEN, IcmpType, writeIcmpEcho, writeIcmpTimestamp } from '../wire/icmp.ts';
import { IpProto, writeIpv4 } from '../wire/ipv4.ts';
import { echoOptions } from '../wire/ipv4-options.ts';
import type { Context } from './context.ts';

const enum Drop {
  TRUNCATED,
  CHECKSUM,
  BROADCAST,
  OTHER,
}

const MS_PER_DAY = 86_400_000;

export class IcmpLocal extends Stage<'output'> {
  readonly name = 'icmp-local';
  readonly nextNames = ['output'] as const;
  readonly dropReasons = dropReasons([
    ['icmp.truncated', 'truncated icmp message'],
    ['icmp.bad-checksum', 'bad icmp checksum'],
    ['icmp.broadcast-request', 'echo or timestamp request to a broadcast address (ignored)'],
    ['icmp.absorbed', 'icmp other than echo or timestamp request (absorbed)'],
  ]);
  override readonly events = ['echoReplies', 'timestampReplies'];
  echoReplies = 0;
  timestampReplies = 0;

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
      const icmp = ip + hlen;
      const icmpLen = rd16(data, ip + 2) - hlen;
      const type = icmpLen >= 8 ? data[icmp] : -1;
      if (icmpLen < 8 || (type === 13 && icmpLen < 20)) {
        this.drop(slot, Drop.TRUNCATED);
        continue;
      }
      // An offloading TAP may hand over a checksum still to be completed: nothing to verify.
      if ((pool.vnetFlags[slot] & 1) === 0 && foldChecksum(onesComplementSum(data, icmp, icmpLen)) !== 0) {
        this.drop(slot, Drop.CHECKSUM);
        continue;
      }
      if (type !== 8 && type !== 13) {
        this.drop(slot, Drop.OTHER);
        continue;
      }
      const dst = rd32(data, ip + 16);
      if (fib.isBroadcast(dst)) {
        this.drop(slot, Drop.BROADCAST);
        continue;
      }
      const code = data[icmp + 1];
      const ident = rd16(data, icmp + 4);
      const seq = rd16(data, icmp + 6);
      let len: number;
      if (type === IcmpType.ECHO_REQUEST) {
        // The data stays where it is; the reply keeps the request's code, as Linux's does.
        len = writeIcmpEcho(data, icmp, IcmpType.ECHO_REPLY, ident, seq, icmpLen - ICMP_HLEN, code);
        this.echoReplies++;
      } else {
        // Timestamp reply: originate kept, receive and transmit stamped now; 20 bytes long.
        const ms = Math.floor(this.ctx.nowUs / 1000) % MS_PER_DAY;
        len = writeIcmpTimestamp(data, icmp, IcmpType.TIMESTAMP_REPLY, code, ident, seq, rd32(data, icmp + 8), ms, ms);
        this.timestampReplies++;
      }
      this.replyHeader(slot, ip, hlen, len);
      this.to(this.out.output, slot);
    }
  }

  /** Turns the request's IPv4 header into the reply's. */
  private replyHeader(slot: number, ip: number, hlen: number, payload: number): void {
    const ctx = this.ctx;
    const pool = ctx.pool;
    const data = pool.data;
    const src = rd32(data, ip + 12);
    const dst = rd32(data, ip + 16);
    if (hlen > 20) echoOptions(data, ip, hlen);
    writeIpv4(data, ip, data[ip + 1], hlen + payload, ctx.ipIdent, 0, 64, IpProto.ICMP, dst, src, hlen);
    ctx.ipIdent = (ctx.ipIdent + 1) & 0xffff;
    pool.len[slot] = ip - pool.start[slot] + hlen + payload;
    pool.l4[slot] = ip + hlen;
    // From here on a packet the router made: LOCAL_OUT, not forwarded.
    pool.inPort[slot] = NO_PORT;
    pool.vnetFlags[slot] = 0;
    pool.gsoType[slot] = 0;
  }
}
