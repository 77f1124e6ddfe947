/**
 * The NAT engine's two hook handlers (Linux's nf_nat_ipv4_fn at its two manip points):
 *
 *   NatDst  (priority -100, prerouting, output, bridge-ip4): the destination manip. A packet
 *           of the original direction of a DNAT'd flow goes to the endpoint; a reply of a
 *           SNAT'd (masqueraded) flow goes back to the address and port the flow came from.
 *   NatSrc  (priority 100, postrouting, bridge-ip4): the source manip. A packet of the
 *           original direction of a SNAT'd flow leaves from the translated address and port;
 *           a reply of a DNAT'd flow from the Service's address.
 *
 * Decisions are made once per flow, for its first packets (ctstate NEW, original direction),
 * by a NatPolicy: at NatSrc, ServiceMasquerade and Masquerade (service-masquerade.ts,
 * masquerade.ts); at NatDst, kube-proxy's DNAT (service-dnat.ts) at prerouting and output. A decision is a binding on
 * the conntrack entry (Conntrack.bindSnat / bindDnat: the reply tuple the translated packets
 * will draw). NatSrc then gives a *null binding* to a new flow whose reply tuple another
 * entry holds (the entry lacks CT_REPLY_INDEXED): SNAT to its own address with a free port,
 * as Linux's nf_nat_alloc_null_binding makes a clashing tuple unique.
 *
 * Translation follows the conntrack table's rule (conntrack.ts): a packet of ref leaves as
 * the inverse of the other tuple o = ref ^ 1 — source (dstOf(o), dportOf(o)), destination
 * (srcOf(o), sportOf(o)). Which manip applies where is Linux's: at the destination manip,
 * the original direction needs CT_DNAT and the reply direction CT_SNAT; at the source manip
 * the other way round. A flow without either bit is never touched (one status read).
 *
 * ICMP errors RELATED to a translated flow (nf_nat_icmp_reply_translation): the quoted
 * packet was sent in direction o, and is given back the fields of tuple o on the side this
 * manip does not change (at the destination manip the quote's source, at the source manip
 * its destination), with its IPv4 header checksum and, when quoted, its TCP/UDP checksum
 * updated; the outer header gets the manip's own side from the same tuple (destination
 * srcOf(o), source dstOf(o)); then the ICMP checksum is recomputed over the message.
 *
 * Checksums stay right without touching the payload (src/wire/nat-rewrite.ts): the IPv4
 * header and TCP/UDP checksums by RFC 1624 updates, an ICMP echo identifier with its
 * checksum; on an offload super-frame whose L4 checksum is partial (virtio-net NEEDS_CSUM)
 * only the pseudo-header part changes.
 *
 * drop: a packet whose entry was evicted after conntrack-in looked it up (a full table
 *       early-drops unassured entries for new flows, and Linux never evicts an entry whose
 *       first packet is still in flight: its entry is not in the table yet); NatSrc: a flow
 *       that needs a null binding and finds no free port; what the policy drops
 *       (masquerade: no free source port).
 */
import type { DropReason } from '../core/drop-reason.ts';
import { CtState } from '../core/frame-meta.ts';
import type { FramePool } from '../core/frame-pool.ts';
import { ACCEPT, type HookHandler, STOLEN } from '../core/hook.ts';
import type { Tracer } from '../core/trace.ts';
import type { Context } from './context.ts';
import { type Conntrack, CT_DNAT, CT_LIVE, CT_REPLY_INDEXED, CT_SNAT, IPPROTO_ICMP } from '../tables/conntrack.ts';
import type { NatPortAllocator } from '../tables/nat-port-allocator.ts';
import { rd16, rd32i } from '../wire/bytes.ts';
import { formatIpv4 } from '../wire/ipv4-address.ts';
import { NatSide, refreshIcmpChecksum, rewriteAddress, rewriteL4End, rewritePort, rewriteQuotedAddress, rewriteQuotedPort } from '../wire/nat-rewrite.ts';
import { VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_F_UDP_TUNNEL_CSUM } from '../wire/virtio-net.ts';

/**
 * Drop reason 0 of both manips: the packet's entry died between conntrack-in and here, evicted
 * by a later new flow of the same batch when the table was full (only unassured entries are).
 */
const GONE: DropReason = { id: 'nat.entry-gone', text: 'conntrack entry evicted while the packet was in flight' };
const NO_NULL_BINDING: DropReason = { id: 'nat.no-unique-port', text: 'no free port to make the flow unique (null binding)' };

/** Decides the NAT binding of a new flow at one manip point. */
export interface NatPolicy {
  /** Why it drops packets (index = what `decide` answers). */
  readonly dropReasons: readonly DropReason[];
  /**
   * The first packets of entry `id` (ctstate NEW, original direction, no binding of this
   * manip yet) are in `slot`: bind the entry (bindSnat/bindDnat) or leave it. Returns ACCEPT,
   * a drop reason when the flow must not pass (no free port), or STOLEN when the policy has
   * handed the frame to another stage itself.
   */
  decide(slot: number, id: number): number;
}

/** The port (ICMP echo: identifier) at `side` of the packet at `l4`. */
function portAt(data: Buffer, l4: number, proto: number, side: NatSide): number {
  return proto === IPPROTO_ICMP ? rd16(data, l4 + 4) : rd16(data, side === NatSide.SOURCE ? l4 : l4 + 2);
}

/**
 * Whether the L4 checksum at `l4` is an offload partial sum: the one left to complete at this
 * header, or the outer UDP checksum of a UDP-tunnel super-frame that says it is partial too
 * (a tunnel super-frame's NEEDS_CSUM is its inner TCP's, not the outer UDP's at `l4`).
 */
function partialAt(pool: FramePool, slot: number, l4: number): boolean {
  const flags = pool.vnetFlags[slot];
  const at = l4 - pool.start[slot];
  return ((flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) !== 0 && pool.csumStart[slot] === at) || ((flags & VIRTIO_NET_HDR_F_UDP_TUNNEL_CSUM) !== 0 && pool.outerThOffset[slot] === at);
}

/** The packet in `slot` leaves from addr:port (ICMP echo: with identifier `port`). */
function rewriteSource(pool: FramePool, slot: number, addr: number, port: number): void {
  const data = pool.data;
  const ip = pool.l3[slot];
  const l4 = pool.l4[slot];
  const proto = data[ip + 9];
  const partial = partialAt(pool, slot, l4);
  rewriteAddress(data, ip, l4, proto, NatSide.SOURCE, addr, partial);
  rewritePort(data, l4, proto, NatSide.SOURCE, port, partial);
}

/** The packet in `slot` goes to addr:port (ICMP echo: with identifier `port`). */
function rewriteDestination(pool: FramePool, slot: number, addr: number, port: number): void {
  const data = pool.data;
  const ip = pool.l3[slot];
  const l4 = pool.l4[slot];
  const proto = data[ip + 9];
  const partial = partialAt(pool, slot, l4);
  rewriteAddress(data, ip, l4, proto, NatSide.DESTINATION, addr, partial);
  rewritePort(data, l4, proto, NatSide.DESTINATION, port, partial);
}

/** "a.b.c.d:port" of one end of the packet in `slot` (for trace notes). */
function endText(pool: FramePool, slot: number, side: NatSide): string {
  const data = pool.data;
  const ip = pool.l3[slot];
  const addr = rd32i(data, ip + (side === NatSide.SOURCE ? 12 : 16));
  const proto = data[ip + 9];
  const l4 = pool.l4[slot];
  const relatedQuote = proto === IPPROTO_ICMP && data[l4] !== 8 && data[l4] !== 0;
  return relatedQuote ? formatIpv4(addr) : `${formatIpv4(addr)}:${portAt(data, l4, proto, side)}`;
}

/**
 * One manip point: the translation of packets whose entry says so, and the decision for new
 * flows. `side` is what this manip rewrites.
 */
abstract class NatManip implements HookHandler {
  abstract readonly name: string;
  abstract readonly priority: number;
  readonly dropReasons: readonly DropReason[];
  protected readonly ct: Conntrack;
  protected readonly pool: FramePool;
  /** The status bit a packet of the original direction, then of the reply, needs for this manip to apply. */
  private readonly needOriginal: number;
  private readonly needReply: number;

  constructor(
    ctx: Context,
    /** The hook's name, for trace notes. */
    protected readonly at: string,
    private readonly side: NatSide,
    /** Own drop reasons first; the policy's follow them. */
    private readonly ownReasons: readonly DropReason[],
    protected readonly policy: NatPolicy | null,
  ) {
    if (ctx.conntrack === null) throw new Error('nat: connection tracking is off');
    this.ct = ctx.conntrack;
    this.pool = ctx.pool;
    this.dropReasons = [...ownReasons, ...(policy?.dropReasons ?? [])];
    if (ownReasons[0] !== GONE) throw new Error('nat: the first drop reason is the entry gone in flight');
    this.needOriginal = side === NatSide.SOURCE ? CT_SNAT : CT_DNAT;
    this.needReply = side === NatSide.SOURCE ? CT_DNAT : CT_SNAT;
  }

  process(slots: Int32Array, n: number, verdicts: Int32Array, tracer: Tracer | null): number {
    const pool = this.pool;
    const ct = this.ct;
    let refused = 0;
    const entries = pool.ct;
    const dirs = pool.ctDir;
    const states = pool.ctState;
    const needOriginal = this.needOriginal;
    const needReply = this.needReply;
    const source = this.side === NatSide.SOURCE;
    const data = pool.data;
    const l3s = pool.l3;
    const l4s = pool.l4;
    const vnetFlags = pool.vnetFlags;
    const side = this.side;
    const rec = ct.index.rec;
    // TCP and UDP, the common case, are rewritten here; ICMP and errors in methods.
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const id = entries[slot];
      if (id < 0) continue;
      const dir = dirs[slot];
      const state = states[slot];
      const status = ct.statusOf(id);
      if ((status & CT_LIVE) === 0) {
        // Evicted (table full) by a later packet of this batch: its NAT bits are gone with
        // it, so the packet cannot be translated as its flow was, nor bound anew.
        verdicts[i] = 0;
        refused++;
        continue;
      }
      if (state === CtState.NEW && dir === 0) {
        const v = this.decide(slot, id);
        if (v !== ACCEPT) {
          verdicts[i] = v;
          refused++;
          continue;
        }
      }
      if ((ct.statusOf(id) & (dir === 0 ? needOriginal : needReply)) === 0) continue;
      const other = (id << 1) | (dir ^ 1);
      const ip = l3s[slot];
      const proto = data[ip + 9];
      if (tracer !== null) this.traced(tracer, slot, other, state === CtState.RELATED);
      else if (state === CtState.RELATED || proto === IPPROTO_ICMP) this.translate(slot, other, state === CtState.RELATED);
      else {
        // One call site, so that V8 can inline it: the source manip takes the other tuple's
        // destination end, the destination manip its source end.
        const t = ct.index.tupleAt(other);
        const addr = rec[source ? t + 1 : t];
        const ports = rec[t + 2];
        const l4 = l4s[slot];
        rewriteL4End(data, ip, l4, proto, side, addr, source ? ports & 0xffff : ports >>> 16, vnetFlags[slot] !== 0 && partialAt(pool, slot, l4));
      }
    }
    return refused;
  }

  /** The decision for a new flow not bound by this manip yet; ACCEPT or a drop reason. */
  protected decide(slot: number, id: number): number {
    if (this.policy === null || (this.ct.statusOf(id) & (this.side === NatSide.SOURCE ? CT_SNAT : CT_DNAT)) !== 0) return ACCEPT;
    const v = this.policy.decide(slot, id);
    // STOLEN: the policy took the frame (a Service without endpoints rejects it through icmp-error).
    return v === ACCEPT || v === STOLEN ? v : this.ownReasons.length + v;
  }

  /**
   * Rewrites this manip's end of the packet in `slot` from tuple `o` (the other direction);
   * `related`: an ICMP error about the flow (translateError).
   */
  private translate(slot: number, o: number, related: boolean): void {
    const ct = this.ct;
    if (related) this.translateError(slot, o);
    else if (this.side === NatSide.SOURCE) rewriteSource(this.pool, slot, ct.dstOf(o), ct.dportOf(o));
    else rewriteDestination(this.pool, slot, ct.srcOf(o), ct.sportOf(o));
  }

  /** An ICMP error related to the flow: its quote and its outer header (see the header). */
  private translateError(slot: number, o: number): void {
    const pool = this.pool;
    const ct = this.ct;
    const data = pool.data;
    const ip = pool.l3[slot];
    const l4 = pool.l4[slot];
    const end = ip + rd16(data, ip + 2);
    const q = l4 + 8;
    const ql4 = q + ((data[q] & 15) << 2);
    const qlen = end - ql4;
    const qproto = data[q + 9];
    if (this.side === NatSide.SOURCE) {
      rewriteQuotedAddress(data, q, ql4, qlen, qproto, NatSide.DESTINATION, ct.dstOf(o));
      rewriteQuotedPort(data, ql4, qlen, qproto, NatSide.DESTINATION, ct.dportOf(o));
      rewriteAddress(data, ip, l4, IPPROTO_ICMP, NatSide.SOURCE, ct.dstOf(o), false);
    } else {
      rewriteQuotedAddress(data, q, ql4, qlen, qproto, NatSide.SOURCE, ct.srcOf(o));
      rewriteQuotedPort(data, ql4, qlen, qproto, NatSide.SOURCE, ct.sportOf(o));
      rewriteAddress(data, ip, l4, IPPROTO_ICMP, NatSide.DESTINATION, ct.srcOf(o), false);
    }
    refreshIcmpChecksum(data, l4, end - l4);
  }

  /** translate / translateError with a trace note of what changed (allocates). */
  private traced(tracer: Tracer, slot: number, o: number, related: boolean): void {
    const pool = this.pool;
    const side = this.side;
    const before = endText(pool, slot, side);
    const quoteAt = pool.l4[slot] + 8;
    const quoted = (q: number): string => formatIpv4(rd32i(pool.data, q + (side === NatSide.SOURCE ? 16 : 12)));
    const quoteBefore = related ? quoted(quoteAt) : '';
    this.translate(slot, o, related);
    const after = endText(pool, slot, side);
    const what = side === NatSide.SOURCE ? 'snat' : 'dnat';
    if (!related) {
      if (before !== after) tracer.note(this.at, slot, `${what} ${before} -> ${after}`);
      return;
    }
    const quoteSide = side === NatSide.SOURCE ? 'destination' : 'source';
    tracer.note(this.at, slot, `related icmp: ${what} ${before} -> ${after}; quoted ${quoteSide} ${quoteBefore} -> ${quoted(quoteAt)}`);
  }
}

/** The destination manip (see the header): prerouting, output, bridge-ip4. */
export class NatDst extends NatManip {
  readonly name = 'dnat';
  readonly priority = -100;

  /**
   * `dnat`: the policy that decides DNAT for new flows — kube-proxy's Service rules
   * (ServiceDnat: ClusterIP, NodePort, external IPs to an endpoint). Without one (bridge-ip4)
   * this manip only translates flows bound elsewhere.
   */
  constructor(ctx: Context, at: string, dnat: NatPolicy | null = null) {
    super(ctx, at, NatSide.DESTINATION, [GONE], dnat);
  }
}

/** The source manip (see the header): postrouting (with masquerade), bridge-ip4 (without). */
export class NatSrc extends NatManip {
  readonly name = 'snat';
  readonly priority = 100;

  constructor(
    ctx: Context,
    at: string,
    snat: NatPolicy | null,
    private readonly allocator: NatPortAllocator,
  ) {
    super(ctx, at, NatSide.SOURCE, [GONE, NO_NULL_BINDING], snat);
  }

  /** The policy's decision, then a null binding when the reply tuple is still taken. */
  protected override decide(slot: number, id: number): number {
    const ct = this.ct;
    if ((ct.statusOf(id) & CT_SNAT) !== 0) return ACCEPT;
    const v = super.decide(slot, id);
    if (v !== ACCEPT) return v;
    if ((ct.statusOf(id) & CT_REPLY_INDEXED) === 0 && this.allocator.snat(ct, id, ct.srcOf(id << 1)) < 0) return 1;
    return ACCEPT;
  }
}
