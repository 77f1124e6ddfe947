/**
 * NatPortAllocator: the source port (ICMP echo: identifier) of a flow under source NAT.
 *
 * Input: a new conntrack entry, the address it is to leave from (masquerade: the egress
 * port's), and a port range. The flow keeps its own source port when the translated tuple
 * is free, that is when no entry holds the reply tuple it would have (dst → newSrc with those
 * ports), as Linux's get_unique_tuple prefers; otherwise ports of the range are tried from a
 * random offset (the dataplane's seeded Random, so replay repeats its choices), one after the
 * other, each through Conntrack.bindSnat, which re-indexes the reply tuple only if it is
 * free: two flows never share a tuple. The search stops after 248 tries, as Open vSwitch's
 * userspace NAT caps it, so a crowded range cannot stall the packet thread; the flow then
 * gets no binding (-1, counted `failed`) and the stage drops its packet.
 *
 * `snatRandomFully` is MASQUERADE --random-fully, which kube-proxy's KUBE-POSTROUTING uses for
 * the flows it marks (Service masquerade): no attempt at the flow's own port, a port drawn
 * uniformly from the range and the same bounded search from there (the own port may be drawn
 * like any other), as Linux's nf_nat_l4proto_unique_tuple with NF_NAT_RANGE_PROTO_RANDOM_FULLY.
 * Pod masquerade (the CNI bridge plugin's plain MASQUERADE) keeps using `snat`.
 *
 * Ranges: 1024–65535 for TCP and UDP, 0–65535 for ICMP identifiers, unless the caller gives
 * one. An original port outside the range is kept when free, as Linux does for a
 * MASQUERADE without --to-ports; with `strict` it is kept only inside the range (--to-ports).
 * (Linux also keeps a privileged source port privileged when it must change it; not done.)
 */
import type { Random } from '../core/random.ts';
import { IPPROTO_ICMP } from './conntrack-store.ts';
import type { NatBindings } from './nat-binding.ts';

export const SNAT_MAX_TRIES = 248;
export const SNAT_PORT_MIN = 1024;
export const SNAT_PORT_MAX = 65535;

export class NatPortAllocator {
  private readonly rng: Random;
  /** Flows that kept their own source port. */
  kept = 0;
  /** Flows given another port. */
  remapped = 0;
  /** Flows given a random port (snatRandomFully). */
  randomized = 0;
  /** Flows for which no free port was found within SNAT_MAX_TRIES. */
  failed = 0;
  /** Ports tried: the flow's own, then each of the range examined (the own one among them too). */
  tries = 0;

  constructor(rng: Random) {
    this.rng = rng;
  }

  /**
   * Binds source NAT to `newSrc` for entry `id`; returns the source port (identifier) it
   * leaves with, or -1 when none was free. `minPort`/`maxPort` < 0 take the protocol's range.
   */
  snat(ct: NatBindings, id: number, newSrc: number, minPort = -1, maxPort = -1, strict = false): number {
    const icmp = ct.protoOf(id) === IPPROTO_ICMP;
    const lo = minPort >= 0 ? minPort : icmp ? 0 : SNAT_PORT_MIN;
    const hi = maxPort >= 0 ? maxPort : SNAT_PORT_MAX;
    const own = ct.sportOf(id << 1);
    if (!strict || (own >= lo && own <= hi)) {
      this.tries++;
      if (ct.bindSnat(id, newSrc, own)) {
        this.kept++;
        return own;
      }
    }
    const port = this.search(ct, id, newSrc, lo, hi, own);
    if (port >= 0) this.remapped++;
    return port;
  }

  /**
   * Binds source NAT to `newSrc` for entry `id` with a port drawn at random from the
   * protocol's range (MASQUERADE --random-fully); returns it, or -1 when none was free.
   */
  snatRandomFully(ct: NatBindings, id: number, newSrc: number): number {
    const lo = ct.protoOf(id) === IPPROTO_ICMP ? 0 : SNAT_PORT_MIN;
    const port = this.search(ct, id, newSrc, lo, SNAT_PORT_MAX, -1);
    if (port >= 0) this.randomized++;
    return port;
  }

  /**
   * Tries the ports of lo..hi from a random offset, one after the other, at most
   * SNAT_MAX_TRIES of them, skipping `skip` (a port already tried; -1: none); the first free
   * one is bound and returned, else -1 (counted `failed`).
   */
  private search(ct: NatBindings, id: number, newSrc: number, lo: number, hi: number, skip: number): number {
    const size = hi - lo + 1;
    if (size <= 0) {
      this.failed++;
      return -1;
    }
    let port = lo + this.rng.below(size);
    const tries = size < SNAT_MAX_TRIES ? size : SNAT_MAX_TRIES;
    for (let i = 0; i < tries; i++) {
      this.tries++;
      if (port !== skip && ct.bindSnat(id, newSrc, port)) return port;
      port = port === hi ? lo : port + 1;
    }
    this.failed++;
    return -1;
  }
}
