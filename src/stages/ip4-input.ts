/**
 * ip4-input: IPv4 header validation (Linux's ip_rcv), before the PREROUTING hook.
 *
 * in:   IPv4 frames with rxIf and l3 set
 * out:  prerouting — a valid header, Ethernet padding trimmed, l4 set
 *       route      — the same, straight to ip4-lookup while PREROUTING has nothing to do (no
 *                    handlers, connection tracking off, nothing traced); the hook still
 *                    counts them as its packets
 * drop: bad version, header length, total length or header checksum; martian source (0/8,
 *       127/8, 224/3); martian destination (0/8, 127/8); multicast destination (no multicast
 *       routing).
 *
 * Only what needs no route lookup is decided here: whether the source is one of our own
 * addresses, and where the packet goes, are ip4-lookup's, after the hook (a destination
 * rewritten there is the one routed). Ethernet padding after the IP total length is trimmed,
 * so later stages see the datagram's true length.
 */
import { dropReasons } from '../core/drop-reason.ts';
import type { HookStage } from '../core/hook.ts';
import { Stage } from '../core/stage.ts';
import { checksumVerifies, wordsVerify } from '../wire/checksum.ts';
import type { Context } from './context.ts';

const enum Drop {
  TRUNCATED,
  VERSION,
  HEADER_LENGTH,
  TOTAL_LENGTH,
  CHECKSUM,
  MARTIAN_SOURCE,
  MULTICAST,
  MARTIAN_DESTINATION,
}

export class Ip4Input extends Stage<'prerouting' | 'route'> {
  readonly name = 'ip4-input';
  readonly nextNames = ['prerouting', 'route'] as const;
  readonly dropReasons = dropReasons([
    ['ip4.truncated', 'truncated ipv4 header'],
    ['ip4.bad-version', 'bad ipv4 version'],
    ['ip4.bad-header-length', 'bad ipv4 header length'],
    ['ip4.bad-total-length', 'bad ipv4 total length'],
    ['ip4.bad-checksum', 'bad ipv4 header checksum'],
    ['ip4.martian-source', 'martian source address'],
    ['ip4.multicast', 'multicast destination (not routed)'],
    ['ip4.martian-destination', 'martian destination address'],
  ]);

  /** The PREROUTING hook `prerouting` leads to: `route` is taken only while it has nothing to do. */
  private preroutingHook: HookStage<string> | null = null;

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
  }

  /** Names the hook stage behind `prerouting`, so that an idle hook can be passed by. */
  watchPrerouting(hook: HookStage<string>): void {
    this.preroutingHook = hook;
  }

  protected process(slots: Int32Array, n: number): void {
    const pool = this.ctx.pool;
    const view = pool.dataView;
    let k = 0;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const ip = pool.l3[slot];
      const avail = pool.start[slot] + pool.len[slot] - ip;
      if (avail < 20) {
        this.drop(slot, Drop.TRUNCATED);
        continue;
      }
      // The fixed header, read once as five words: every check below takes its fields from them.
      const w0 = view.getInt32(ip); // version, IHL, TOS, total length
      const w1 = view.getInt32(ip + 4); // id, flags, fragment offset
      const w2 = view.getInt32(ip + 8); // TTL, protocol, checksum
      const w3 = view.getInt32(ip + 12); // source
      const w4 = view.getInt32(ip + 16); // destination
      const vihl = w0 >>> 24;
      if (vihl >>> 4 !== 4) {
        this.drop(slot, Drop.VERSION);
        continue;
      }
      const hlen = (vihl & 15) << 2;
      if (hlen < 20 || hlen > avail) {
        this.drop(slot, Drop.HEADER_LENGTH);
        continue;
      }
      const total = w0 & 0xffff;
      if (total < hlen || total > avail) {
        this.drop(slot, Drop.TOTAL_LENGTH);
        continue;
      }
      if (hlen === 20 ? !wordsVerify(w0, w1, w2, w3, w4) : !checksumVerifies(view, ip, hlen)) {
        this.drop(slot, Drop.CHECKSUM);
        continue;
      }
      const srcTop = w3 >>> 24;
      if (srcTop === 0 || srcTop === 127 || srcTop >= 224) {
        this.drop(slot, Drop.MARTIAN_SOURCE);
        continue;
      }
      const dstTop = w4 >>> 24;
      if (dstTop === 0 || dstTop === 127) {
        this.drop(slot, Drop.MARTIAN_DESTINATION);
        continue;
      }
      if (dstTop >>> 4 === 14) {
        this.drop(slot, Drop.MULTICAST);
        continue;
      }
      pool.len[slot] = ip - pool.start[slot] + total;
      // Where the L4 header is, for a datagram or its first fragment (a later one has none).
      pool.l4[slot] = (w1 & 0x1fff) === 0 ? ip + hlen : 0;
      slots[k++] = slot;
    }
    const hook = this.preroutingHook;
    // An idle hook would only pass the batch on (prerouting.ts): one hop fewer, same count.
    if (hook !== null && this.tracer === null && this.ctx.conntrack === null && hook.handlers.length === 0) {
      hook.packets += k;
      this.toAll(this.out.route, slots, k);
    } else {
      this.toAll(this.out.prerouting, slots, k);
    }
  }
}
