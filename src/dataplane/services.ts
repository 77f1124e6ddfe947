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
 * Only when some UDP endpoint or frontend changed that way (TCP-only changes never walk the
 * table), the table's ids are walked in steps of at most 32,768 (udp-cleanup.ts): the first
 * during the apply, one after each dispatch until done (`Dataplane.run`), and a packet that
 * meets a stale entry the walk has not reached yet flushes it itself — so no pause is longer
 * than one step (docs/benchmarks.md, services.apply.udp-flush-walk.1M).
 */
import type { Context } from '../stages/context.ts';
import type { Masquerade } from '../stages/masquerade.ts';
import { ServiceDnat } from '../stages/service-dnat.ts';
import { ServiceMasquerade } from '../stages/service-masquerade.ts';
import type { Conntrack } from '../tables/conntrack.ts';
import type { NatPortAllocator } from '../tables/nat-port-allocator.ts';
import { ServiceAffinity } from '../tables/service-affinity.ts';
import type { ServiceSpec } from '../tables/service-spec.ts';
import { ServiceTable } from '../tables/service-table.ts';
import type { Stages } from './build-graph.ts';
import { UdpCleanup } from './udp-cleanup.ts';

export type ServiceSource = 'config' | 'manifests';

export interface ServicesApplied {
  services: number;
  servicePorts: number;
  endpoints: number;
  /** UDP conntrack entries flushed during this apply (the cleanup's first step; the rest follow: Services.flushed). */
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
  /** kube-proxy's UDP conntrack cleanup, in steps. */
  readonly cleanup: UdpCleanup;

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
    this.cleanup = new UdpCleanup(this.ct, this.table);
  }

  /** UDP entries flushed so far (by the cleanup's walks and at lookups). */
  get flushed(): number {
    return this.cleanup.flushed;
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
    const flushed = this.cleanup.begin(this.table.takeChanges());
    const t = this.table;
    return { services: t.serviceCount, servicePorts: t.servicePortCount, endpoints: t.endpointCount, flushed };
  }

  /** The Services of `source` last applied. */
  specsOf(source: ServiceSource): readonly ServiceSpec[] {
    return this.sources.get(source) ?? [];
  }
}
