/**
 * NatBindings: the NAT half of a conntrack entry. Source and destination NAT are decided
 * once, for a new entry, by giving it the reply tuple the translated packets will draw:
 *
 *   bindSnat(id, newSrc, newPort)  the original direction leaves from (newSrc, newPort):
 *                                  reply tuple (replySrc, newSrc, replySport, newPort)
 *   bindDnat(id, newDst, newPort)  the original direction goes to (newDst, newPort):
 *                                  reply tuple (newDst, replyDst, newPort, replyDport)
 *   setReply(id, src, dst, sport, dport)  any reply tuple
 *
 * Each re-indexes the reply tuple in one step — the old one leaves the index only when the
 * new one is free — or refuses (false, nothing changed) when another tuple, of any entry,
 * equals the new one: two flows never share a tuple, and the caller picks another port
 * (nat-port-allocator.ts). ICMP echo: SNAT's newPort is the new identifier, both ports of the
 * reply tuple; DNAT keeps the identifier.
 *
 * A packet of ref leaves as the inverse of the other tuple (ref ^ 1). After bindSnat, a
 * packet of the original direction (ref = id << 1) leaves from (dstOf(ref ^ 1),
 * dportOf(ref ^ 1)) = (newSrc, newPort); a reply (ref = id << 1 | 1), found by the new
 * reply tuple, goes back to (srcOf(ref ^ 1), sportOf(ref ^ 1)), the original source.
 *
 * A new entry whose inverse tuple another entry holds has no CT_REPLY_INDEXED: no reply can
 * find it until a binding gives it a free tuple. The stage at POSTROUTING should then bind a
 * source port even without a NAT rule (SNAT to its own address through the allocator), as
 * Linux's null binding makes a clashing tuple unique.
 */
import { ConntrackStore, CT_DNAT, CT_REPLY_INDEXED, CT_SNAT, IPPROTO_ICMP } from './conntrack-store.ts';

export class NatBindings extends ConntrackStore {
  /** Whether no tuple but `id`'s own reply equals this one (so its reply could take it). */
  isReplyFree(id: number, src: number, dst: number, sport: number, dport: number): boolean {
    const ref = this.index.find(this.protoOf(id), src | 0, dst | 0, (sport << 16) | dport);
    return ref < 0 || ref === ((id << 1) | 1);
  }

  /** Gives entry `id` this reply tuple, re-indexed in one step; false (no change) when taken. */
  setReply(id: number, src: number, dst: number, sport: number, dport: number): boolean {
    const rref = (id << 1) | 1;
    const proto = this.protoOf(id);
    const ports = (sport << 16) | dport;
    const index = this.index;
    const found = index.find(proto, src | 0, dst | 0, ports);
    if (found === rref) return true;
    if (found >= 0) return false;
    const st = this.statusOf(id);
    if ((st & CT_REPLY_INDEXED) !== 0) index.remove(rref);
    index.write(rref, proto, src | 0, dst | 0, ports);
    index.insert(rref);
    this.setStatus(id, st | CT_REPLY_INDEXED);
    return true;
  }

  /**
   * Source NAT: the original direction leaves from (newSrc, newPort), so replies come back
   * to it (ICMP echo: newPort is the new identifier). False when that reply tuple is taken.
   */
  bindSnat(id: number, newSrc: number, newPort: number): boolean {
    const rref = (id << 1) | 1;
    const icmp = this.protoOf(id) === IPPROTO_ICMP;
    if (!this.setReply(id, this.srcOf(rref), newSrc, icmp ? newPort : this.sportOf(rref), newPort)) return false;
    this.setStatus(id, this.statusOf(id) | CT_SNAT);
    return true;
  }

  /** Destination NAT: the original direction goes to (newDst, newPort); false when taken. ICMP keeps its identifier. */
  bindDnat(id: number, newDst: number, newPort: number): boolean {
    const rref = (id << 1) | 1;
    const icmp = this.protoOf(id) === IPPROTO_ICMP;
    if (!this.setReply(id, newDst, this.dstOf(rref), icmp ? this.sportOf(rref) : newPort, this.dportOf(rref))) return false;
    this.setStatus(id, this.statusOf(id) | CT_DNAT);
    return true;
  }
}
