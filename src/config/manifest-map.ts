/**
 * Kubernetes Services and EndpointSlices to `ServiceConfig`, the form the `services:` key of
 * the config gives and the dataplane programs — what kube-proxy reads from the API, read
 * from files.
 *
 * Two steps, so a change costs what it touches: each object becomes an entry on its own
 * (`serviceEntry`, `sliceEntry`: checked, IPv4 parts kept, what does not apply left out
 * with a note), and `joinService` makes one Service's `ServiceConfig` from its entry and the
 * entries of its EndpointSlices (those labelled `kubernetes.io/service-name` with its name,
 * in its namespace, from any file).
 *
 * Kubernetes' semantics, as kube-proxy applies them:
 *   - headless (clusterIP None) and ExternalName Services have nothing to translate: left out;
 *     the address is the first IPv4 one of clusterIP, clusterIPs (an IPv6-only Service is
 *     left out; IPv6 external and LoadBalancer addresses too);
 *   - LoadBalancer addresses: spec.loadBalancerIP, else the first status.loadBalancer.ingress
 *     ip (ingress with ipMode Proxy is not programmed, as kube-proxy does not);
 *   - endpoint conditions: ready and serving nil mean true, terminating nil means false;
 *     kube-proxy programs addresses[0] of each endpoint; an endpoint without nodeName is on
 *     no node, so never local ('' here);
 *   - ports: an EndpointSlice's ports carry, per Service port name and protocol, the number
 *     its endpoints listen on — a named targetPort resolved per pod. The Service port's
 *     targetPort is the first number found (the port itself when no slice has it: then no
 *     endpoint serves it); an endpoint whose slice disagrees with those targetPorts (another
 *     number, or a port missing) gets `ports`, the list of what it serves.
 *   - the same address in two slices of a Service (a pod moving between slices) counts once.
 */
import type { EndpointConfig, EndpointPortConfig, ServiceConfig } from './types.ts';
import { type EndpointSliceObject, isIPv6Text, type ServiceObject } from './manifest-schema.ts';

/** Notes about what a file holds that nodeplane leaves out, gathered per reason. */
export class Notes {
  private readonly byReason = new Map<string, string[]>();

  /** `item` (a name, or '' when the reason alone says it) left out for `reason`. */
  add(reason: string, item = ''): void {
    let items = this.byReason.get(reason);
    if (items === undefined) this.byReason.set(reason, (items = []));
    items.push(item);
  }

  /** One line per reason: how many, the first few names. */
  lines(): string[] {
    return [...this.byReason].map(([reason, items]) => {
      const named = items.filter((i) => i !== '');
      if (named.length === 0) return `${items.length} × ${reason}`;
      const shown = named.slice(0, 3).join(', ');
      return `${reason}: ${shown}${named.length > 3 ? ` and ${named.length - 3} more` : ''}`;
    });
  }
}

type PortProtocol = 'TCP' | 'UDP';

/**
 * `file:line` of an object read without positions (manifests.ts's fast reading): worked out
 * the first time a message prints it. Template strings and String() give the text.
 */
export class LazyWhere {
  private text: string | null = null;

  constructor(private readonly find: () => string) {}

  toString(): string {
    this.text ??= this.find();
    return this.text;
  }
}

/** A Service on its own: everything but the endpoints and resolved port numbers. */
export interface ServiceEntry {
  /** namespace/name */
  key: string;
  /** `file:line`, for messages. */
  at: string | LazyWhere;
  service: Omit<ServiceConfig, 'ports' | 'endpoints'>;
  ports: { name?: string; protocol: PortProtocol; port: number; targetPort: number | string; nodePort?: number }[];
}

/** An EndpointSlice on its own. */
export interface SliceEntry {
  /** namespace/name of the slice */
  key: string;
  /** namespace/name of its Service */
  serviceKey: string;
  /** `file:line`, for messages. */
  at: string | LazyWhere;
  /** `name/protocol` (name '' when unnamed) → the number its endpoints listen on. */
  ports: Map<string, number>;
  endpoints: Omit<EndpointConfig, 'ports'>[];
}

const portKey = (name: string | undefined, protocol: string): string => `${name ?? ''}/${protocol}`;

/** The first IPv4 address of a list of Kubernetes address texts. */
const firstIPv4 = (addrs: readonly (string | undefined)[]): string | undefined =>
  addrs.find((a): a is string => a !== undefined && a !== '' && a !== 'None' && !isIPv6Text(a));

/** A Service's entry, or null (with a note) when there is nothing for nodeplane to translate. */
export function serviceEntry(obj: ServiceObject, at: string | LazyWhere, notes: Notes): ServiceEntry | null {
  const namespace = obj.metadata.namespace ?? 'default';
  const key = `${namespace}/${obj.metadata.name}`;
  const spec = obj.spec;
  const type = spec.type ?? 'ClusterIP';
  if (type === 'ExternalName') {
    notes.add('ExternalName Services left out (a DNS name, nothing to translate)', key);
    return null;
  }
  if (spec.clusterIP === 'None') {
    notes.add('headless Services left out (clusterIP None, nothing to translate)', key);
    return null;
  }
  const clusterIP = firstIPv4([spec.clusterIP, ...(spec.clusterIPs ?? [])]);
  if (clusterIP === undefined) {
    notes.add('IPv6-only Services left out (nodeplane translates IPv4)', key);
    return null;
  }
  const externalIPs = spec.externalIPs ?? [];
  const externalV4 = externalIPs.filter((a) => !isIPv6Text(a));
  if (externalV4.length < externalIPs.length) notes.add('IPv6 external IPs left out', key);

  let loadBalancerIP: string | undefined;
  if (type === 'LoadBalancer') {
    const ingress = obj.status?.loadBalancer?.ingress ?? [];
    const proxied = ingress.filter((i) => i.ipMode === 'Proxy' && i.ip !== undefined);
    if (proxied.length > 0) notes.add('LoadBalancer ingress with ipMode Proxy not programmed (the load balancer sends to the node)', key);
    const vips = [spec.loadBalancerIP, ...ingress.filter((i) => i.ipMode !== 'Proxy').map((i) => i.ip)];
    const v4 = vips.filter((a): a is string => a !== undefined && a !== '' && !isIPv6Text(a));
    loadBalancerIP = v4[0];
    if (new Set(v4).size > 1) notes.add('LoadBalancer Services with several addresses: only the first is programmed', key);
  }
  const affinity = spec.sessionAffinity ?? 'None';
  return {
    key,
    at,
    service: {
      name: obj.metadata.name,
      namespace,
      type,
      clusterIP,
      externalIPs: externalV4,
      ...(loadBalancerIP !== undefined ? { loadBalancerIP } : {}),
      sessionAffinity: affinity,
      // Kubernetes' default for ClientIP affinity: 3 hours.
      sessionAffinityTimeoutSeconds: spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? 10800,
      externalTrafficPolicy: spec.externalTrafficPolicy ?? 'Cluster',
      internalTrafficPolicy: spec.internalTrafficPolicy ?? 'Cluster',
    },
    ports: (spec.ports ?? []).map((p) => ({
      ...(p.name ? { name: p.name } : {}),
      protocol: p.protocol ?? 'TCP',
      port: p.port,
      targetPort: p.targetPort ?? p.port,
      ...(p.nodePort != null && type !== 'ClusterIP' ? { nodePort: p.nodePort } : {}),
    })),
  };
}

/** A slice's entry, or null (with a note) when kube-proxy would not read it. */
export function sliceEntry(obj: EndpointSliceObject, at: string | LazyWhere, notes: Notes): SliceEntry | null {
  const namespace = obj.metadata.namespace ?? 'default';
  const key = `${namespace}/${obj.metadata.name}`;
  if (obj.addressType !== 'IPv4') {
    notes.add(`EndpointSlices of addressType ${obj.addressType} left out (nodeplane translates IPv4)`, key);
    return null;
  }
  const service = obj.metadata.labels?.['kubernetes.io/service-name'];
  if (service === undefined || service === '') {
    notes.add('EndpointSlices without the label kubernetes.io/service-name left out (they belong to no Service)', key);
    return null;
  }
  const ports = new Map<string, number>();
  for (const p of obj.ports ?? []) {
    // A port without a number means "all ports" in the API; kube-proxy skips it, so do we.
    if (p.port != null) ports.set(portKey(p.name ?? '', p.protocol ?? 'TCP'), p.port);
  }
  return {
    key,
    serviceKey: `${namespace}/${service}`,
    at,
    ports,
    endpoints: (obj.endpoints ?? []).map((e) => ({
      ip: e.addresses[0]!,
      ready: e.conditions?.ready ?? true,
      serving: e.conditions?.serving ?? true,
      terminating: e.conditions?.terminating ?? false,
      nodeName: e.nodeName ?? '',
    })),
  };
}

/** The Service of `entry` with the endpoints of `slices` (its slices, in a stable order). */
export function joinService(entry: ServiceEntry, slices: readonly SliceEntry[]): ServiceConfig {
  const ports = entry.ports.map((p) => {
    const key = portKey(p.name, p.protocol);
    let targetPort = typeof p.targetPort === 'number' ? p.targetPort : undefined;
    if (targetPort === undefined) {
      for (const s of slices) {
        targetPort = s.ports.get(key);
        if (targetPort !== undefined) break;
      }
    }
    return {
      ...(p.name !== undefined ? { name: p.name } : {}),
      protocol: p.protocol,
      port: p.port,
      targetPort: targetPort ?? p.port,
      ...(p.nodePort !== undefined ? { nodePort: p.nodePort } : {}),
    };
  });

  const endpoints: EndpointConfig[] = [];
  const seen = new Set<string>();
  for (const s of slices) {
    // Whether this slice's numbers are the Service's; if not, its endpoints say their own.
    let own: EndpointPortConfig[] | undefined;
    if (ports.some((p) => s.ports.get(portKey(p.name, p.protocol)) !== p.targetPort)) {
      own = [];
      for (const p of ports) {
        const n = s.ports.get(portKey(p.name, p.protocol));
        if (n !== undefined) own.push({ ...(p.name !== undefined ? { name: p.name } : {}), protocol: p.protocol, port: n });
      }
    }
    for (const e of s.endpoints) {
      if (seen.has(e.ip)) continue;
      seen.add(e.ip);
      endpoints.push(own === undefined ? { ...e } : { ...e, ports: own });
    }
  }
  return { ...entry.service, ports, endpoints };
}
