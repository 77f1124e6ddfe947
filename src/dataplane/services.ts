/**
 * Services: kube-proxy's part of the dataplane — the service table, ClientIP affinity, the
 * DNAT policy at prerouting and output and the masquerade at postrouting — and the one API by
 * which Services are applied, at start, on reload and from Kubernetes manifests:
 *
 *   Dataplane.applyServices(services, source = 'config')   (dataplane.ts calls apply below)
 *
 * `services` is the whole set from one source: 'config' (the `services:` key; applyConfig
 * passes it at start and on every reload) or 'manifests' (what the manifest loader made of
 * Service and EndpointSlice objects). The dataplane runs both sets together; a Service named
 * in both (same namespace/name) is taken from `manifests`. Applying is a diff keyed by
 * namespace/name, then by port and endpoint address (service-table.ts): pass the *same
 * objects* for Services that did not change and each costs a map lookup and a pointer
 * comparison (an equal copy costs a field-by-field comparison); flows to endpoints that stay
 * are untouched. Takes effect for the next packet; nothing is refused here (validate the
 * Services first: the config schema and validate.ts's checks).
 *
 * Conntrack follows kube-proxy's cleanup for UDP (there is no connection to break for TCP):
 * entries of endpoints removed, or no longer candidates, are flushed, and so are entries to a
 * UDP frontend that had no endpoint and now has one (made while nothing translated them).
 * That is one synchronous walk of the table's ids, only when some UDP endpoint or frontend
 * changed that way (TCP-only changes never walk it): O(conntrack entries), 4-7 ms at
 * 1,000,000 entries (docs/benchmarks.md, services.apply.udp-flush-walk.1M), a pause of the
 * packet thread that kube-proxy's conntrack calls do not cause (they run beside it).
 */
import type { Context } from '../stages/context.ts';
import type { Masquerade } from '../stages/masquerade.ts';
import { ServiceDnat } from '../stages/service-dnat.ts';
import { ServiceMasquerade } from '../stages/service-masquerade.ts';
import { type Conntrack, CT_DNAT, CT_LIVE, IPPROTO_UDP } from '../tables/conntrack.ts';
import type { NatPortAllocator } from '../tables/nat-port-allocator.ts';
import { ServiceAffinity } from '../tables/service-affinity.ts';
import type { ServiceSpec } from '../tables/service-spec.ts';
import { SERVICE_TAG_ENDPOINT, type ServiceChanges, ServiceTable } from '../tables/service-table.ts';
import type { Stages } from './build-graph.ts';

/** Up to this many stale endpoints or revived frontends are searched linearly per entry. */
const LINEAR_MAX = 16;

export type ServiceSource = 'config' | 'manifests';

export interface ServicesApplied {
  services: number;
  servicePorts: number;
  endpoints: number;
  /** UDP conntrack entries flushed by this apply. */
  flushed: number;
}

export class Services {
  readonly table: ServiceTable;
  readonly affinity: ServiceAffinity;
  readonly prerouting: ServiceDnat;
  readonly output: ServiceDnat;
  readonly masquerade: ServiceMasquerade;
  private readonly ct: Conntrack;
  private readonly sources = new Map<ServiceSource, readonly ServiceSpec[]>();
  /** UDP entries flushed so far. */
  flushed = 0;

  constructor(ctx: Context, s: Stages, nodeName: string, allocator: NatPortAllocator, pods: Masquerade) {
    if (ctx.conntrack === null) throw new Error('services: connection tracking is off');
    this.ct = ctx.conntrack;
    const addresses: number[] = [];
    for (let i = 0; i < ctx.ifs.count; i++) if (ctx.ifs.hasAddress(i)) addresses.push(ctx.ifs.addr[i] | 0);
    this.table = new ServiceTable(nodeName, addresses);
    this.affinity = new ServiceAffinity();
    this.prerouting = new ServiceDnat(ctx, this.table, this.affinity, s.prerouting, s.icmpError);
    this.output = new ServiceDnat(ctx, this.table, this.affinity, s.output, s.icmpError);
    this.masquerade = new ServiceMasquerade(ctx, allocator, pods);
  }

  /** nat.clusterCIDR as { addr, prefixLen }, or null. */
  setClusterCidr(cidr: { addr: number; prefixLen: number } | null): void {
    this.prerouting.setClusterCidr(cidr);
    this.output.setClusterCidr(cidr);
  }

  /** Replaces the Services of `source` (see the header). */
  apply(services: readonly ServiceSpec[], source: ServiceSource = 'config'): ServicesApplied {
    this.sources.set(source, services);
    const config = this.sources.get('config') ?? [];
    const manifests = this.sources.get('manifests') ?? [];
    this.table.apply(manifests.length === 0 ? config : config.length === 0 ? manifests : [...config, ...manifests]);
    const flushed = this.flush(this.table.takeChanges());
    this.flushed += flushed;
    const t = this.table;
    return { services: t.serviceCount, servicePorts: t.servicePortCount, endpoints: t.endpointCount, flushed };
  }

  /** The Services of `source` last applied. */
  specsOf(source: ServiceSource): readonly ServiceSpec[] {
    return this.sources.get(source) ?? [];
  }

  /** Destroys the UDP entries the changes make stale (see the header); returns how many. */
  private flush(c: ServiceChanges): number {
    const nStale = c.staleUdpEndpoints.length;
    const nRevived = c.revivedUdpFrontends.length;
    if (nStale === 0 && nRevived === 0) return 0;
    const ct = this.ct;
    // Stale endpoints by service tag (endpoint id + 1), with their address and port then.
    const staleTag = new Int32Array(nStale);
    const staleAddr = new Int32Array(nStale);
    const stalePort = new Int32Array(nStale);
    c.staleUdpEndpoints.forEach((e, k) => {
      staleTag[k] = e.ep + 1;
      staleAddr[k] = e.addr;
      stalePort[k] = e.port;
    });
    const revAddr = new Int32Array(nRevived);
    const revPort = new Int32Array(nRevived);
    c.revivedUdpFrontends.forEach((f, k) => {
      revAddr[k] = f.addr;
      revPort[k] = f.port;
    });
    // Many at once (a large Service removed, many applied): hashed, else a short linear search.
    const staleAt = nStale > LINEAR_MAX ? new Map<number, number>() : null;
    staleTag.forEach((m, k) => staleAt?.set(m, k));
    const revivedSet = nRevived > LINEAR_MAX ? new Set<number>() : null;
    for (let k = 0; k < nRevived && revivedSet !== null; k++) revivedSet.add(revAddr[k] * 65536 + revPort[k]);
    let n = 0;
    const high = ct.highWater;
    for (let id = 0; id < high; id++) {
      const st = ct.statusOf(id);
      if ((st & CT_LIVE) === 0 || ct.protoOf(id) !== IPPROTO_UDP) continue;
      let gone = false;
      if ((st & CT_DNAT) !== 0) {
        if (nStale === 0) continue;
        const tag = ct.serviceTagOf(id) & SERVICE_TAG_ENDPOINT;
        let k = -1;
        if (staleAt !== null) k = staleAt.get(tag) ?? -1;
        else for (let j = 0; j < nStale && k < 0; j++) if (staleTag[j] === tag) k = j;
        const reply = (id << 1) | 1;
        gone = k >= 0 && ct.srcOf(reply) === staleAddr[k] && ct.sportOf(reply) === stalePort[k];
      } else if (nRevived > 0) {
        const dst = ct.dstOf(id << 1);
        const dport = ct.dportOf(id << 1);
        if (revivedSet !== null) gone = revivedSet.has(dst * 65536 + dport);
        else for (let k = 0; k < nRevived && !gone; k++) gone = revAddr[k] === dst && revPort[k] === dport;
      }
      if (gone) {
        ct.remove(id);
        n++;
      }
    }
    return n;
  }
}
