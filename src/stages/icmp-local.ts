/**
 * icmp-local: ICMP messages addressed to the router (Linux's icmp_rcv).
 *
 * in:   ICMP packets for one of our addresses or a broadcast address (not fragments)
 * out:  output — replies built in place: echo reply (type 0) to an echo request, timestamp
 *       reply (14) to a timestamp request (13); ip4-output routes them back
 * drop: truncated or bad-checksum ICMP; echo and timestamp requests to a broadcast address
 *       (icmp_echo_ignore_broadcasts=1 covers both); every other type is absorbed (errors
 *       and replies addressed to the router concern no socket here).
 *
 * Replies are as Linux's icmp_reply makes them: addresses swapped, TOS kept, TTL 64, DF
 * clear, a fresh IP identification, options echoed (Record Route kept, the rest dropped). Timestamps are milliseconds since midnight UTC
 * (RFC 792), from the dataplane clock.
 */
import { rd16, rd32, wr16, wr32 } from '../wire/bytes.ts';
import { Stage } from '../core/stage.ts';
import { foldChecksum, internetChecksum, onesComplementSum } from '../wire/checksum.ts';
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
  readonly dropReasons = [
    'truncated icmp message',
    'bad icmp checksum',
    'echo or timestamp request to a broadcast address (ignored)',
    'icmp other than echo or timestamp request (absorbed)',
  ];
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
      let len = icmpLen;
      if (type === 8) {
        data[icmp] = 0;
        this.echoReplies++;
      } else {
        // Timestamp reply: originate kept, receive and transmit stamped now; 20 bytes long.
        const ms = Math.floor(this.ctx.nowUs / 1000) % MS_PER_DAY;
        data[icmp] = 14;
        wr32(data, icmp + 12, ms);
        wr32(data, icmp + 16, ms);
        len = 20;
        this.timestampReplies++;
      }
      wr16(data, icmp + 2, 0);
      wr16(data, icmp + 2, internetChecksum(data, icmp, len));
      this.replyHeader(slot, ip, hlen, len);
      this.to(this.next.output, slot);
    }
  }

  /** Turns the request's IPv4 header into the reply's. */
  private replyHeader(slot: number, ip: number, hlen: number, payload: number): void {
    const ctx = this.ctx;
    const pool = ctx.pool;
    const data = pool.data;
    const src = rd32(data, ip + 12);
    wr32(data, ip + 12, rd32(data, ip + 16));
    wr32(data, ip + 16, src);
    if (hlen > 20) echoOptions(data, ip, hlen);
    wr16(data, ip + 2, hlen + payload);
    wr16(data, ip + 4, ctx.ipIdent);
    ctx.ipIdent = (ctx.ipIdent + 1) & 0xffff;
    wr16(data, ip + 6, 0);
    data[ip + 8] = 64;
    wr16(data, ip + 10, 0);
    wr16(data, ip + 10, internetChecksum(data, ip, hlen));
    pool.len[slot] = ip - pool.start[slot] + hlen + payload;
    pool.vnetFlags[slot] = 0;
    pool.gsoType[slot] = 0;
  }
}
