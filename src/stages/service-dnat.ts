/**
 * ServiceDnat: kube-proxy's DNAT — the NatPolicy of the `dnat` handler (NatDst, priority -100)
 * at prerouting and output. For the first packets of a new flow (ctstate NEW, original
 * direction, no DNAT binding yet) whose destination is a Service frontend (ServiceTable:
 * ClusterIP, NodePort on a node address, external IP, LoadBalancer IP), it picks an endpoint
 * and binds the flow to it (Conntrack.bindDnat); NatDst then rewrites the packet, and every
 * later packet of the flow — a retransmitted SYN, the second datagram of a UDP flow in the
 * same batch, which finds the first's entry unconfirmed — follows the binding. Replies are
 * translated back by the NAT engine (at prerouting, or at bridge-ip4 when the endpoint and the
 * client share a bridge).
 *
 * Which endpoints, as kube-proxy's chains choose (pkg/proxy/iptables):
 *   ClusterIP frontend     the cluster candidates (internalTrafficPolicy Local: the local ones);
 *                          masqueraded when the source is outside nat.clusterCIDR (with
 *                          kube-proxy's --cluster-cidr; no nat section: never)
 *   NodePort, external IP, LoadBalancer IP (KUBE-EXT):
 *     externalTrafficPolicy Cluster   the cluster candidates, masqueraded (KUBE-MARK-MASQ)
 *     externalTrafficPolicy Local     the local candidates, the client address kept; a source
 *                          inside nat.clusterCIDR (a pod) goes to the cluster candidates instead,
 *                          unmasqueraded, as kube-proxy short-circuits pod traffic
 * Candidates are the ready endpoints, or when none is ready the serving-and-terminating ones
 * (ServiceTable). The choice is uniform from the dataplane's seeded Random (kube-proxy's
 * statistic chain: rule i of n matches with probability 1/(n-i), uniform overall), unless
 * `sessionAffinity: ClientIP` has pinned the client (ServiceAffinity; the pin is refreshed by
 * each new connection and kept while its endpoint stays a candidate). A flow whose source is
 * its own endpoint (hairpin) is masqueraded, as KUBE-SEP's `-s <endpoint> -j KUBE-MARK-MASQ`.
 *
 * The flow's service tag (Conntrack.serviceTagOf: internal, not a connection mark) says its
 * endpoint and whether to masquerade (SERVICE_TAG_*): ServiceMasquerade reads it at
 * postrouting; `show services` counts connections by it, the UDP flush finds them by it.
 *
 * No endpoint at all (SP_REJECT): the packet goes to icmp-error with port unreachable (3/3),
 * as kube-proxy's REJECT rule; its entry, never confirmed, is removed after the dispatch, so a
 * UDP flow that began while the Service had no endpoint reaches one as soon as one exists.
 * kube-proxy's REJECT is in the filter table, after routing: at INPUT for a local address (a
 * NodePort), at FORWARD for anything routed on (a ClusterIP, an external or LoadBalancer IP
 * not the node's), where ip_forward has already decremented the TTL — which the error's quote
 * shows — or answered TTL 1 with time exceeded, or no route with unreachable, instead. The
 * reject stays here and does what the forward path would have done first (see `reject`).
 * Endpoints exist but none for the policy in force (Local): dropped, as kube-proxy's DROP
 * "has no local endpoints".
 *
 * A flow whose translated tuple another flow holds (the client also talks to the endpoint
 * directly, from the same port) gets another source port at once (`bindClashing`), as Linux's
 * null binding gives it at POSTROUTING; a masqueraded one is dropped instead (Linux would
 * masquerade it to a free tuple; here the masquerade's address is known only at postrouting).
 *
 * drop: no local endpoint for a Local policy; no free tuple for the flow (see above).
 */
import { dropReasons } from '../core/drop-reason.ts';
import { ACCEPT, STOLEN } from '../core/hook.ts';
import type { FramePool } from '../core/frame-pool.ts';
import type { Random } from '../core/random.ts';
import type { Stage } from '../core/stage.ts';
import { type Conntrack, IPPROTO_TCP, IPPROTO_UDP } from '../tables/conntrack.ts';
import { SNAT_MAX_TRIES, SNAT_PORT_MAX, SNAT_PORT_MIN } from '../tables/nat-port-allocator.ts';
import type { ServiceAffinity } from '../tables/service-affinity.ts';
import { EP_IN_CLUSTER, EP_IN_LOCAL, FrontendKind, SERVICE_TAG_MASQ, SP_EXTERNAL_LOCAL, SP_INTERNAL_LOCAL, SP_REJECT, type ServiceTable } from '../tables/service-table.ts';
import { type Fib, RouteKind } from '../tables/fib.ts';
import { rd32 } from '../wire/bytes.ts';
import { decrementIpv4Ttl, IPV4_TTL } from '../wire/ipv4.ts';
import { formatIpv4 } from '../wire/ipv4-address.ts';
import type { Context } from './context.ts';
import type { NatPolicy } from './nat-manip.ts';

const enum Drop {
  NO_LOCAL,
  TUPLE_TAKEN,
}

/** ICMP destination unreachable (3), port unreachable (3), as pool.icmpError holds it. */
const PORT_UNREACHABLE = ((3 << 24) | (3 << 16)) >>> 0;

export class ServiceDnat implements NatPolicy {
  readonly dropReasons = dropReasons([
    ['service.no-local-endpoint', 'service: no local endpoint (traffic policy Local)'],
    ['service.no-free-tuple', 'service: no free tuple to the endpoint (held by another flow)'],
  ]);
  private readonly ct: Conntrack;
  private readonly pool: FramePool;
  private readonly random: Random;
  private readonly fib: Fib;
  /** At prerouting (a packet that may yet be forwarded), not output (the node's own). */
  private readonly atPrerouting: boolean;
  private cidrOn = false;
  private net = 0;
  private mask = 0;
  /** Flows bound to an endpoint. */
  translated = 0;
  /** Packets rejected with port unreachable (no endpoint). */
  rejected = 0;
  /** Flows that kept the endpoint their client was pinned to. */
  pinned = 0;
  /** Flows given another source port because the endpoint's reply tuple was taken. */
  clashes = 0;

  constructor(
    ctx: Context,
    private readonly table: ServiceTable,
    private readonly affinity: ServiceAffinity,
    /** The hook this policy runs at (for its tracer and name). */
    private readonly hook: Stage,
    /** Where rejected packets go to become port unreachable. */
    private readonly icmpError: Stage,
  ) {
    if (ctx.conntrack === null) throw new Error('service dnat: connection tracking is off');
    this.ct = ctx.conntrack;
    this.pool = ctx.pool;
    this.random = ctx.random;
    this.fib = ctx.fib;
    this.atPrerouting = hook.name === 'prerouting';
  }

  /** nat.clusterCIDR (which sources are pods), or null. */
  setClusterCidr(cidr: { addr: number; prefixLen: number } | null): void {
    this.cidrOn = cidr !== null;
    const len = cidr?.prefixLen ?? 0;
    this.mask = len === 0 ? 0 : -1 << (32 - len);
    this.net = (cidr?.addr ?? 0) & this.mask;
  }

  decide(slot: number, id: number): number {
    const ct = this.ct;
    const proto = ct.protoOf(id);
    if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) return ACCEPT;
    const fe = this.table.lookup(proto, ct.dstOf(id << 1), ct.dportOf(id << 1));
    return fe < 0 ? ACCEPT : this.bind(slot, id, fe);
  }

  /** The flow of entry `id` is to frontend `fe`: bind it to an endpoint, drop or reject it. */
  private bind(slot: number, id: number, fe: number): number {
    const t = this.table;
    const ct = this.ct;
    const sp = t.feSp[fe];
    const flags = t.spFlags[sp];
    if ((flags & SP_REJECT) !== 0) return this.reject(slot, id, sp);
    const src = ct.srcOf(id << 1);
    const external = t.feKind[fe] !== FrontendKind.CLUSTER_IP;
    const fromPod = this.cidrOn && (src & this.mask) === this.net;
    let local: boolean;
    let masq: boolean;
    if (external && (flags & SP_EXTERNAL_LOCAL) === 0) {
      local = false;
      masq = true;
    } else if (external) {
      local = !fromPod;
      masq = false;
    } else {
      local = (flags & SP_INTERNAL_LOCAL) !== 0;
      masq = this.cidrOn && !fromPod;
    }
    const choice = t.spChoice[sp];
    const n = local ? choice[1] : choice[0];
    if (n === 0) return Drop.NO_LOCAL;
    let ep = -1;
    let pinned = false;
    const seconds = t.spAffinitySeconds[sp];
    const aff = this.affinity;
    if (seconds > 0) {
      aff.nowUs = ct.nowUs;
      const a = aff.find(src, sp);
      if (a >= 0) {
        const e = aff.endpointOf(a);
        if (t.epSp[e] === sp && t.epGen[e] === aff.generationOf(a) && (t.epFlags[e] & (local ? EP_IN_LOCAL : EP_IN_CLUSTER)) !== 0) {
          ep = e;
          pinned = true;
        }
      }
    }
    if (ep < 0) ep = choice[(local ? 2 + choice[0] : 2) + (n === 1 ? 0 : this.random.below(n))];
    if (seconds > 0) aff.set(src, sp, ep, t.epGen[ep], seconds);
    const addr = t.epAddr[ep];
    if (addr === src) masq = true;
    if (!ct.bindDnat(id, addr, t.epPort[ep]) && (masq || !this.bindClashing(id, src, addr, t.epPort[ep]))) return Drop.TUPLE_TAKEN;
    ct.setServiceTag(id, (masq ? SERVICE_TAG_MASQ : 0) | (ep + 1));
    this.translated++;
    if (pinned) this.pinned++;
    const tracer = this.hook.tracer;
    if (tracer !== null) {
      const how = pinned ? 'ClientIP affinity' : n === 1 ? 'the only endpoint' : `random of ${n}`;
      tracer.note(this.hook.name, slot, `service ${t.servicePortName(sp)} -> ${formatIpv4(addr)}:${t.epPort[ep]} (${how}${local ? ', local' : ''}${masq ? ', masquerade' : ''})`);
    }
    return ACCEPT;
  }

  /**
   * The endpoint's reply tuple is another flow's (the client talks to the endpoint directly
   * from the same port too): DNAT with another source port, found as NatPortAllocator does
   * (from a random offset, at most SNAT_MAX_TRIES), which is what Linux's null binding at the
   * source manip ends up doing for such a flow. False when none is free.
   */
  private bindClashing(id: number, src: number, addr: number, port: number): boolean {
    const ct = this.ct;
    const own = ct.sportOf(id << 1);
    let p = SNAT_PORT_MIN + this.random.below(SNAT_PORT_MAX - SNAT_PORT_MIN + 1);
    for (let i = 0; i < SNAT_MAX_TRIES; i++) {
      if (p !== own && ct.setReply(id, addr, src, port, p)) {
        // The reply tuple is in place: both bindings now only set their status bits.
        ct.bindDnat(id, addr, port);
        ct.bindSnat(id, src, p);
        this.clashes++;
        return true;
      }
      p = p === SNAT_PORT_MAX ? SNAT_PORT_MIN : p + 1;
    }
    return false;
  }

  /**
   * No endpoint: the packet becomes an ICMP port unreachable to its sender (kube-proxy's REJECT).
   * A packet arriving for a destination the node routes on meets that REJECT at FORWARD in
   * Linux, after ip_forward: so its TTL is decremented here first (the quote then shows 63
   * where the sender wrote 64), and one that routing or ip_forward would stop first — no route,
   * TTL 1 — is left to them (ACCEPT, untranslated: ip4-lookup or ip4-forward sends their
   * error). Decrementing here rather than moving the reject after ip4-forward keeps the forward
   * path free of a Service check on every forwarded packet, for the sake of a rare one.
   */
  private reject(slot: number, id: number, sp: number): number {
    if (this.atPrerouting) {
      const data = this.pool.data;
      const ip = this.pool.l3[slot];
      const route = this.fib.lookup(rd32(data, ip + 16));
      if (route < 0 || this.fib.kind[route] !== RouteKind.LOCAL) {
        if (route < 0 || data[ip + IPV4_TTL] <= 1) return ACCEPT;
        decrementIpv4Ttl(data, ip);
      }
    }
    this.rejected++;
    this.pool.icmpError[slot] = PORT_UNREACHABLE;
    const tracer = this.hook.tracer;
    if (tracer !== null) {
      tracer.note(this.hook.name, slot, `service ${this.table.servicePortName(sp)}: no endpoints, rejected (icmp port unreachable)`);
      tracer.step(this.hook.name, this.icmpError.name, slot);
    }
    this.icmpError.enqueue(slot);
    return STOLEN;
  }
}
