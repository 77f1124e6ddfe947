/**
 * ip4-local: IPv4 packets addressed to the router itself (Linux's ip_local_deliver).
 *
 * in:   packets for one of our addresses or a broadcast address
 * out:  output — echo replies, built in place (ip4-output routes them back)
 *       error  — UDP to us: port unreachable (3/3); other protocols but ICMP and TCP:
 *                protocol unreachable (3/2), as a host without such a socket answers
 * drop: fragments (the router reassembles nothing), bad ICMP checksum, echo requests to a
 *       broadcast address (icmp_echo_ignore_broadcasts=1), TCP (no listener here; a reset
 *       is future work), ICMP other than echo request (consumed and counted).
 */
import { rd16, wr16, wr32, rd32 } from '../wire/bytes.ts';
import { Stage } from '../core/stage.ts';
import { RouteKind } from '../tables/fib.ts';
import { foldChecksum, internetChecksum, onesComplementSum, updateChecksum16 } from '../wire/checksum.ts';
import type { Context } from '../dataplane/context.ts';

const enum Drop {
  FRAGMENT,
  ICMP_CHECKSUM,
  ICMP_TRUNCATED,
  ECHO_BROADCAST,
  TCP,
  ICMP_OTHER,
  BROADCAST_UDP,
}

export const ICMP_PORT_UNREACHABLE = (3 << 24) | (3 << 16);
export const ICMP_PROTO_UNREACHABLE = (3 << 24) | (2 << 16);

export class Ip4Local extends Stage<'output' | 'error'> {
  readonly name = 'ip4-local';
  readonly nextNames = ['output', 'error'] as const;
  readonly dropReasons = [
    'fragment for the router (no reassembly)',
    'bad icmp checksum',
    'truncated icmp header',
    'echo request to a broadcast address (ignored)',
    'tcp to the router (no listener)',
    'icmp other than echo request (consumed)',
    'udp to a broadcast address (no listener)',
  ];
  echoReplies = 0;

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  protected process(slots: Int32Array, n: number): void {
    const { pool, fib } = this.ctx;
    const data = pool.data;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const ip = pool.l3[slot];
      if ((rd16(data, ip + 6) & 0x3fff) !== 0) {
        this.drop(slot, Drop.FRAGMENT);
        continue;
      }
      const hlen = (data[ip] & 15) << 2;
      const total = rd16(data, ip + 2);
      const proto = data[ip + 9];
      const dst = rd32(data, ip + 16);
      const toBroadcast = dst === 0xffffffff || fib.kind[fib.lookup(dst)] === RouteKind.BROADCAST;
      if (proto === 1) {
        const icmp = ip + hlen;
        const icmpLen = total - hlen;
        if (icmpLen < 8) {
          this.drop(slot, Drop.ICMP_TRUNCATED);
          continue;
        }
        if (foldChecksum(onesComplementSum(data, icmp, icmpLen)) !== 0) {
          this.drop(slot, Drop.ICMP_CHECKSUM);
          continue;
        }
        if (data[icmp] !== 8) {
          this.drop(slot, Drop.ICMP_OTHER);
          continue;
        }
        if (toBroadcast) {
          this.drop(slot, Drop.ECHO_BROADCAST);
          continue;
        }
        this.echoReply(slot, ip, hlen, icmp);
        this.to(this.next.output, slot);
        continue;
      }
      if (proto === 6) {
        this.drop(slot, Drop.TCP);
        continue;
      }
      if (toBroadcast) {
        this.drop(slot, Drop.BROADCAST_UDP);
        continue;
      }
      pool.icmpError[slot] = proto === 17 ? ICMP_PORT_UNREACHABLE : ICMP_PROTO_UNREACHABLE;
      this.to(this.next.error, slot);
    }
  }

  /** Rewrites an echo request into its reply, as Linux's icmp_echo does (TOS kept, TTL 64, DF clear). */
  private echoReply(slot: number, ip: number, hlen: number, icmp: number): void {
    const ctx = this.ctx;
    const data = ctx.pool.data;
    const src = rd32(data, ip + 12);
    const dst = rd32(data, ip + 16);
    wr32(data, ip + 12, dst);
    wr32(data, ip + 16, src);
    wr16(data, ip + 4, ctx.ipIdent);
    ctx.ipIdent = (ctx.ipIdent + 1) & 0xffff;
    wr16(data, ip + 6, 0);
    data[ip + 8] = 64;
    wr16(data, ip + 10, 0);
    wr16(data, ip + 10, internetChecksum(data, ip, hlen));
    const oldWord = rd16(data, icmp);
    data[icmp] = 0;
    wr16(data, icmp + 2, updateChecksum16(rd16(data, icmp + 2), oldWord, rd16(data, icmp)));
    this.echoReplies++;
  }
}
