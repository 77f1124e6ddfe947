/**
 * Conntrack: the connection tracking table (what `conntrack -L` shows): TCP, UDP and ICMP
 * echo flows on typed arrays, with Linux's states and timeouts. The storage (refs, layout,
 * ids, index, expiry, eviction, memory per entry) is ConntrackStore (conntrack-store.ts), the
 * NAT bindings NatBindings (nat-binding.ts); the TCP state machine is conntrack-tcp.ts;
 * views, chunked iteration, flush and statistics are conntrack-views.ts; SNAT ports come
 * from nat-port-allocator.ts.
 *
 * API for the stages (all arguments small integers; addresses as int32; the table's clock is
 * the `nowUs` field, which the dataplane sets before each batch):
 *
 *   track(proto, src, dst, sport, dport, l4, len): ref       everything for one packet:
 *       lookup, create when the packet may start a flow (TCP: a SYN; ICMP: an echo request;
 *       UDP: any), the protocol step. l4 = TCP flags byte or ICMP type. -1 when the packet
 *       has no entry; `verdict` holds the CtVerdict either way (INVALID, FULL, UNTRACKED).
 *   lookup(proto, src, dst, sport, dport): ref | -1           ref = id << 1 | dir (0 orig, 1 reply)
 *   create(proto, src, dst, sport, dport): id | -1            -1: full (drop) or present
 *   tcpPacket(ref, flags, len) / udpPacket(ref, len) / icmpPacket(ref, type, len): CtVerdict
 *       NEW, ESTABLISHED, INVALID; tcpPacket also REOPEN (a SYN reopened a closed entry,
 *       which is destroyed: create a new one for this SYN, as Linux does)
 *   bindSnat(id, newSrc, newPort) / bindDnat(id, newDst, newPort) / setReply(...): boolean
 *   srcOf(ref) dstOf(ref) sportOf(ref) dportOf(ref) protoOf(id) statusOf(id) (CT_* bits)
 *   tcpStateOf(id) (TcpState) serviceTagOf(id) / setServiceTag(id, v) (the Service code's int32) packetsOf(ref)
 *   bytesOf(ref) isExpired(id); for display deadlineOf(id) startOf(id) (doubles: a double
 *   returned from a call V8 does not inline is boxed, so keep them off the packet path)
 *   expire(nowUs, budget): destroyed    call between batches (the timer run): it reclaims
 *       what timed out, at most `budget`, and frees the ids of entries that died since the
 *       last call (until then a dead entry's id is not reused, so frames may carry ids)
 *   nextDeadline(): µs  when expire next has work (replay's timer); remove(id); listener
 *       (conntrack -E events); conntrack-views.ts for show, stats and flush
 *
 * ICMP echo uses the identifier as both ports; an echo request (type 8) travels in the
 * original direction, its reply (type 0, same identifier) in the reply direction.
 *
 * Translation: a packet of ref leaves as the inverse of the *other* tuple (ref ^ 1):
 * src' = dstOf(ref ^ 1), dst' = srcOf(ref ^ 1), sport' = dportOf(ref ^ 1),
 * dport' = sportOf(ref ^ 1). Without NAT that is the packet unchanged.
 *
 * ctstate, as iptables sees it: ESTABLISHED for every packet of the reply direction and for
 * the original direction once a reply was seen; NEW before that. INVALID: a TCP flag
 * combination no stack sends, a segment the state table rejects (an ACK in the original
 * direction while SYN_SENT, i.e. before any SYN-ACK; a FIN before the handshake...), a
 * packet that would start a TCP flow without being a SYN (as Linux with
 * nf_conntrack_tcp_loose=0), an ICMP echo reply with no request, or an echo message of the
 * wrong type for its direction. RELATED is the ICMP error stage's to decide: the header an
 * error quotes is a packet the flow sent, so the stage looks up the *inverse* of the quoted
 * tuple (for an echo, identifier as both ports); found as ref, the error travels in ref's
 * direction. Its quote is translated as a packet of ref ^ 1; its outer header, whose other
 * end may be a router and not the flow's peer, field by field as Linux does: in the original
 * direction CT_DNAT rewrites the destination and CT_SNAT the source, in the reply direction
 * CT_SNAT the destination and CT_DNAT the source (each from the formula above).
 *
 * Timeouts (seconds, `ConntrackTimeouts`): TCP as Linux's nf_conntrack_proto_tcp except
 * ESTABLISHED 86400 and CLOSE_WAIT 3600, which kube-proxy sets; an RST gives CLOSE's 10 s,
 * and an RST before any reply kills the entry at once (as Linux deletes it). UDP 30
 * unreplied, 120 once replied and still active more than 2 s after its first packet
 * (Linux's stream_ts); ICMP 30. ASSURED as Linux sets it: TCP when the ACK answering the
 * SYN-ACK brings ESTABLISHED; UDP at the first packet after a reply was seen (before the 2 s
 * that earn the stream timeout, as Linux); ICMP never. TCP window tracking is not done (see
 * conntrack-tcp.ts for what that leaves out).
 */
import { CT_ASSURED, CT_SEEN_REPLY, CT_UDP_STREAM, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, T_ICMP, T_NOW, T_UDP, T_UDP_STREAM } from './conntrack-store.ts';
import { NatBindings } from './nat-binding.ts';
import { TCP_AUX_INITIAL, TCP_AUX_LAST_CLASS_MASK, TCP_AUX_LAST_CLASS_SHIFT, TCP_AUX_LAST_DIR_SHIFT, TcpAction, TcpClass, TcpState, tcpFlagClass, tcpStep } from './conntrack-tcp.ts';

/** Status of a UDP entry whose packets change nothing but its timeout and counters. */
const UDP_STEADY = CT_SEEN_REPLY | CT_ASSURED | CT_UDP_STREAM;
/**
 * A TCP entry in the steady case of tcpPacket: assured, replied, ESTABLISHED, its last
 * segment an ACK (aux's last class; the direction may be either: bit 18 is left out).
 */
const TCP_STEADY_MASK = CT_SEEN_REPLY | CT_ASSURED | (0xff << 8) | (TCP_AUX_LAST_CLASS_MASK << 16);
const TCP_STEADY = CT_SEEN_REPLY | CT_ASSURED | (TcpState.ESTABLISHED << 8) | ((TcpClass.ACK << TCP_AUX_LAST_CLASS_SHIFT) << 16);
/** The last segment's direction in the flags word (aux bit 2). */
const TCP_AUX_LAST_DIR_BIT = 16 + TCP_AUX_LAST_DIR_SHIFT;
const TCP_AUX_LAST_DIR = 1 << TCP_AUX_LAST_DIR_BIT;
/** TCP flags FIN SYN RST ACK URG (PSH left out): ACK alone. */
const TCP_ACK_ONLY = 0x10;

export * from './conntrack-store.ts';
export { NatBindings } from './nat-binding.ts';

export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;

/** What a packet is to conntrack (iptables' --ctstate), or why it has no entry. */
export const enum CtVerdict {
  INVALID = 0,
  NEW = 1,
  ESTABLISHED = 2,
  /** For the stage: an ICMP error about a tracked flow. */
  RELATED = 3,
  /** tcpPacket only: a SYN reopened a closed entry, now destroyed; create a new one. */
  REOPEN = 4,
  /** track only: no room for a new entry (`drop`), or its tuple was present (`insertFailed`). */
  FULL = 5,
  /** track only: a protocol conntrack does not follow. */
  UNTRACKED = 6,
}

export const CT_VERDICT_NAMES = ['invalid', 'new', 'established', 'related', 'reopen', 'full', 'untracked'];

/** Timeouts in seconds; names follow Linux's nf_conntrack_*_timeout_* sysctls. */
export interface ConntrackTimeouts {
  tcpSynSent: number;
  tcpSynRecv: number;
  tcpEstablished: number;
  tcpFinWait: number;
  tcpCloseWait: number;
  tcpLastAck: number;
  tcpTimeWait: number;
  tcpClose: number;
  tcpSynSent2: number;
  udp: number;
  udpStream: number;
  icmp: number;
}

export const DEFAULT_CONNTRACK_TIMEOUTS: Readonly<ConntrackTimeouts> = {
  tcpSynSent: 120,
  tcpSynRecv: 60,
  tcpEstablished: 86400, // kube-proxy's --conntrack-tcp-timeout-established (Linux: 5 days)
  tcpFinWait: 120,
  tcpCloseWait: 3600, // kube-proxy's --conntrack-tcp-timeout-close-wait (Linux: 60 s)
  tcpLastAck: 30,
  tcpTimeWait: 120,
  tcpClose: 10,
  tcpSynSent2: 120,
  udp: 30,
  udpStream: 120,
  icmp: 30,
};

export interface ConntrackOptions {
  /** Entries (config `conntrack.max`), 1 .. MAX_CONNTRACK_ENTRIES. */
  max: number;
  timeouts?: Partial<ConntrackTimeouts>;
  /** Seed of the tuple hash (from the dataplane's seeded Random), so collisions cannot be chosen. */
  hashSeed?: number;
}

export class Conntrack extends NatBindings {
  readonly timeouts: ConntrackTimeouts;
  /** track(): the CtVerdict of the last packet. */
  verdict: number = CtVerdict.INVALID;

  constructor(opts: ConntrackOptions) {
    super(opts.max, opts.hashSeed);
    this.timeouts = { ...DEFAULT_CONNTRACK_TIMEOUTS };
    this.setTimeouts(opts.timeouts ?? {});
  }

  /** Changes timeouts (seconds); each entry takes them at its next packet. */
  setTimeouts(t: Partial<ConntrackTimeouts>): void {
    Object.assign(this.timeouts, t);
    const s = this.timeouts;
    const us = this.timeoutUs;
    us[TcpState.SYN_SENT] = s.tcpSynSent * 1e6;
    us[TcpState.SYN_RECV] = s.tcpSynRecv * 1e6;
    us[TcpState.ESTABLISHED] = s.tcpEstablished * 1e6;
    us[TcpState.FIN_WAIT] = s.tcpFinWait * 1e6;
    us[TcpState.CLOSE_WAIT] = s.tcpCloseWait * 1e6;
    us[TcpState.LAST_ACK] = s.tcpLastAck * 1e6;
    us[TcpState.TIME_WAIT] = s.tcpTimeWait * 1e6;
    us[TcpState.CLOSE] = s.tcpClose * 1e6;
    us[TcpState.SYN_SENT2] = s.tcpSynSent2 * 1e6;
    us[T_UDP] = s.udp * 1e6;
    us[T_UDP_STREAM] = s.udpStream * 1e6;
    us[T_ICMP] = s.icmp * 1e6;
    us[T_NOW] = 0;
  }

  /** A new entry for a tuple `lookup` missed (reply = inverse). Returns its id, or -1 (counted `drop` / `insertFailed`). */
  create(proto: number, src: number, dst: number, sport: number, dport: number): number {
    return this.createEntry(proto, src, dst, sport, dport, TCP_AUX_INITIAL);
  }

  /**
   * A TCP segment with these header flags on entry ref; returns a CtVerdict. An ACK (PSH
   * aside) on an assured ESTABLISHED entry — nearly every segment of a connection — changes
   * only the last segment's direction in aux (what tcpStep would give): kept small so that
   * conntrack-in's loop inlines it, with everything else in tcpChange.
   */
  tcpPacket(ref: number, flags: number, bytes: number): number {
    const id = ref >> 1;
    const f = this.flagsOf(id);
    if ((f & TCP_STEADY_MASK) !== TCP_STEADY || (flags & 0x37) !== TCP_ACK_ONLY) return this.tcpChange(ref, flags, bytes);
    const g = (f & ~TCP_AUX_LAST_DIR) | ((ref & 1) << TCP_AUX_LAST_DIR_BIT);
    if (g !== f) this.setFlags(id, g);
    this.refresh(id, TcpState.ESTABLISHED);
    this.account(ref, bytes);
    return CtVerdict.ESTABLISHED;
  }

  /** tcpPacket for every segment but the steady case. */
  private tcpChange(ref: number, flags: number, bytes: number): number {
    const id = ref >> 1;
    const dir = ref & 1;
    const f = this.flagsOf(id);
    let st = f & 0xff;
    const verdict = dir === 1 || (st & CT_SEEN_REPLY) !== 0 ? CtVerdict.ESTABLISHED : CtVerdict.NEW;
    const cls = tcpFlagClass(flags);
    if (cls < 0) {
      this.invalid++;
      return CtVerdict.INVALID;
    }
    const old = (f >> 8) & 0xff;
    const step = tcpStep(old, (f >> 16) & 0xff, dir, cls);
    const action = step >>> 16;
    if (action === TcpAction.INVALID) {
      this.invalid++;
      return CtVerdict.INVALID;
    }
    if (action === TcpAction.REOPEN) {
      this.destroy(id, true);
      return CtVerdict.REOPEN;
    }
    const aux = (step >> 8) & 0xff;
    if (action === TcpAction.IGNORE) {
      this.setFlags(id, (f & 0xffff) | (aux << 16));
      return verdict;
    }
    const next = step & 0xff;
    let notify = old !== next;
    let row = cls === TcpClass.RST ? TcpState.CLOSE : next;
    if ((st & CT_SEEN_REPLY) === 0) {
      // A reset before any reply: nothing was established, the entry dies now (Linux kills it).
      if (cls === TcpClass.RST) row = T_NOW;
    } else if ((st & CT_ASSURED) === 0 && (old === TcpState.SYN_RECV || old === TcpState.ESTABLISHED) && next === TcpState.ESTABLISHED) {
      st |= CT_ASSURED;
      notify = true;
    }
    if (dir === 1 && (st & CT_SEEN_REPLY) === 0) {
      st |= CT_SEEN_REPLY;
      notify = true;
    }
    this.setFlags(id, st | (next << 8) | (aux << 16));
    this.refresh(id, row);
    this.account(ref, bytes);
    if (notify && this.listener !== null) this.listener.onUpdate(id);
    return verdict;
  }

  /**
   * A UDP datagram on entry ref; returns a CtVerdict. A stream (replied, assured, past its
   * first 2 s) only has its timeout and counters moved: kept small so that conntrack-in's
   * loop inlines it, with every state change in udpChange.
   */
  udpPacket(ref: number, bytes: number): number {
    const id = ref >> 1;
    if ((this.flagsOf(id) & UDP_STEADY) !== UDP_STEADY) return this.udpChange(ref, bytes);
    this.refresh(id, T_UDP_STREAM);
    this.account(ref, bytes);
    return CtVerdict.ESTABLISHED;
  }

  /** udpPacket for an entry that is not a steady stream yet. */
  private udpChange(ref: number, bytes: number): number {
    const id = ref >> 1;
    const dir = ref & 1;
    const f = this.flagsOf(id);
    let st = f & 0xff;
    const verdict = dir === 1 || (st & CT_SEEN_REPLY) !== 0 ? CtVerdict.ESTABLISHED : CtVerdict.NEW;
    let notify = false;
    let row = T_UDP;
    if ((st & CT_SEEN_REPLY) !== 0) {
      if ((st & CT_UDP_STREAM) !== 0 || this.isPastStreamAge(id)) {
        st |= CT_UDP_STREAM;
        row = T_UDP_STREAM;
      }
      if ((st & CT_ASSURED) === 0) {
        st |= CT_ASSURED;
        notify = true;
      }
    } else if (dir === 1) {
      st |= CT_SEEN_REPLY;
      notify = true;
    }
    if (st !== (f & 0xff)) this.setFlags(id, (f & ~0xff) | st);
    this.refresh(id, row);
    this.account(ref, bytes);
    if (notify && this.listener !== null) this.listener.onUpdate(id);
    return verdict;
  }

  /** An ICMP echo request (original direction) or echo reply (reply direction) on entry ref. */
  icmpPacket(ref: number, type: number, bytes: number): number {
    const id = ref >> 1;
    const dir = ref & 1;
    if (type !== (dir === 0 ? ICMP_ECHO_REQUEST : ICMP_ECHO_REPLY)) {
      this.invalid++;
      return CtVerdict.INVALID;
    }
    const f = this.flagsOf(id);
    const verdict = dir === 1 || (f & CT_SEEN_REPLY) !== 0 ? CtVerdict.ESTABLISHED : CtVerdict.NEW;
    this.refresh(id, T_ICMP);
    this.account(ref, bytes);
    if (dir === 1 && (f & CT_SEEN_REPLY) === 0) {
      this.setFlags(id, f | CT_SEEN_REPLY);
      if (this.listener !== null) this.listener.onUpdate(id);
    }
    return verdict;
  }

  /**
   * Everything for one packet (see the header). Returns the ref, or -1 when the packet has
   * no entry; `verdict` is set either way.
   */
  track(proto: number, src: number, dst: number, sport: number, dport: number, l4: number, bytes: number): number {
    if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP && proto !== IPPROTO_ICMP) {
      this.verdict = CtVerdict.UNTRACKED;
      return -1;
    }
    let ref = this.lookup(proto, src, dst, sport, dport);
    // Twice at most: a SYN that reopens a closed entry then creates a new one.
    for (let attempt = 0; attempt < 2; attempt++) {
      if (ref < 0) {
        if (proto === IPPROTO_TCP ? tcpFlagClass(l4) !== TcpClass.SYN : proto === IPPROTO_ICMP && l4 !== ICMP_ECHO_REQUEST) {
          this.invalid++;
          this.verdict = CtVerdict.INVALID;
          return -1;
        }
        const id = this.create(proto, src, dst, sport, dport);
        if (id < 0) {
          this.verdict = CtVerdict.FULL;
          return -1;
        }
        ref = id << 1;
      }
      const v = proto === IPPROTO_TCP ? this.tcpPacket(ref, l4, bytes) : proto === IPPROTO_UDP ? this.udpPacket(ref, bytes) : this.icmpPacket(ref, l4, bytes);
      if (v !== CtVerdict.REOPEN) {
        this.verdict = v;
        return v === CtVerdict.INVALID ? -1 : ref;
      }
      ref = -1;
    }
    this.verdict = CtVerdict.INVALID;
    return -1;
  }
}
