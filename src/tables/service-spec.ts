/**
 * ServiceSpec: a Kubernetes Service as the service table takes it — the shape of the config's
 * `services:` entries (SPEC §2; a `ServiceConfig` is one) and of what the manifest loader
 * makes of Service and EndpointSlice objects. Declared here, below the config layer, so the
 * table can take either; addresses are dotted strings, turned into integers once, when the
 * table applies a Service.
 *
 * Also: whether two specs say the same thing (`sameServiceSpec`), so applying an unchanged
 * Service costs a comparison and nothing else.
 */

export interface ServicePortSpec {
  readonly name?: string;
  /** 'TCP' or 'UDP' (the schema refuses SCTP). */
  readonly protocol: string;
  readonly port: number;
  /** Numeric: the number of every endpoint without `ports` of its own. A named targetPort
   * is resolved by whoever reads the EndpointSlices (per pod: EndpointSpec.ports). */
  readonly targetPort: number;
  readonly nodePort?: number;
}

/** A Service port an endpoint serves at a number of its own (an EndpointSlice's port). */
export interface EndpointPortSpec {
  /** The Service port's name (absent: the unnamed port). */
  readonly name?: string;
  readonly protocol: string;
  readonly port: number;
}

export interface EndpointSpec {
  readonly ip: string;
  readonly ready: boolean;
  /** EndpointSlice `conditions.serving`; defaults to `ready`. */
  readonly serving?: boolean;
  /** EndpointSlice `conditions.terminating`; defaults to false. */
  readonly terminating?: boolean;
  readonly nodeName: string;
  /** When present, the endpoint serves only the Service ports listed (by name and protocol),
   * each at the number given, as kube-proxy reads an EndpointSlice's ports; when absent,
   * every Service port at its targetPort. */
  readonly ports?: readonly EndpointPortSpec[];
}

/** The number `e` serves Service port `p` at, or -1 when it does not serve it. */
export function endpointPortFor(e: EndpointSpec, p: ServicePortSpec): number {
  const own = e.ports;
  if (own === undefined) return p.targetPort;
  const name = p.name ?? '';
  for (let i = 0; i < own.length; i++) if ((own[i].name ?? '') === name && own[i].protocol === p.protocol) return own[i].port;
  return -1;
}

export interface ServiceSpec {
  readonly name: string;
  readonly namespace: string;
  /** 'ClusterIP' | 'NodePort' | 'LoadBalancer'. */
  readonly type: string;
  readonly clusterIP: string;
  readonly externalIPs: readonly string[];
  readonly loadBalancerIP?: string;
  /** 'None' | 'ClientIP'. */
  readonly sessionAffinity: string;
  readonly sessionAffinityTimeoutSeconds: number;
  /** 'Cluster' | 'Local'. */
  readonly externalTrafficPolicy: string;
  /** 'Cluster' | 'Local'; Cluster when absent. */
  readonly internalTrafficPolicy?: string;
  readonly ports: readonly ServicePortSpec[];
  readonly endpoints: readonly EndpointSpec[];
}

/** "namespace/name": the key a Service is applied, replaced and removed by. */
export function serviceKey(s: { readonly namespace: string; readonly name: string }): string {
  return `${s.namespace}/${s.name}`;
}

/** "namespace/name:port-name" (or ":port/PROTO" for an unnamed port), for display. */
export function servicePortName(s: ServiceSpec, p: ServicePortSpec): string {
  return `${s.namespace}/${s.name}:${p.name ?? `${p.port}/${p.protocol}`}`;
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function samePort(a: ServicePortSpec, b: ServicePortSpec): boolean {
  return a.name === b.name && a.protocol === b.protocol && a.port === b.port && a.targetPort === b.targetPort && a.nodePort === b.nodePort;
}

function sameEndpointPorts(a: readonly EndpointPortSpec[] | undefined, b: readonly EndpointPortSpec[] | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i].name !== b[i].name || a[i].protocol !== b[i].protocol || a[i].port !== b[i].port) return false;
  return true;
}

function sameEndpoint(a: EndpointSpec, b: EndpointSpec): boolean {
  return (
    a.ip === b.ip &&
    a.ready === b.ready &&
    a.serving === b.serving &&
    a.terminating === b.terminating &&
    a.nodeName === b.nodeName &&
    sameEndpointPorts(a.ports, b.ports)
  );
}

/** Whether two specs would program the same rules (field by field; no strings built). */
export function sameServiceSpec(a: ServiceSpec, b: ServiceSpec): boolean {
  if (a === b) return true;
  if (
    a.name !== b.name ||
    a.namespace !== b.namespace ||
    a.type !== b.type ||
    a.clusterIP !== b.clusterIP ||
    a.loadBalancerIP !== b.loadBalancerIP ||
    a.sessionAffinity !== b.sessionAffinity ||
    a.sessionAffinityTimeoutSeconds !== b.sessionAffinityTimeoutSeconds ||
    a.externalTrafficPolicy !== b.externalTrafficPolicy ||
    (a.internalTrafficPolicy ?? 'Cluster') !== (b.internalTrafficPolicy ?? 'Cluster') ||
    !sameStrings(a.externalIPs, b.externalIPs) ||
    a.ports.length !== b.ports.length ||
    a.endpoints.length !== b.endpoints.length
  ) {
    return false;
  }
  for (let i = 0; i < a.ports.length; i++) if (!samePort(a.ports[i], b.ports[i])) return false;
  for (let i = 0; i < a.endpoints.length; i++) if (!sameEndpoint(a.endpoints[i], b.endpoints[i])) return false;
  return true;
}
