/**
 * The Kubernetes objects `manifests:` reads, as zod schemas: Service (v1) and EndpointSlice
 * (discovery.k8s.io/v1), in the shape `kubectl get svc,endpointslices -A -o yaml` prints them.
 *
 * Unlike the config file's, these objects are not strict: Kubernetes objects carry many
 * fields nodeplane has no use for (uid, managedFields, selector, topology hints...), and
 * they are ignored. The fields nodeplane does read are checked as the API server checks them,
 * so a hand-written manifest with a mistake is refused with the field's path, which
 * manifests.ts turns into a file and line. Fields `kubectl` prints as `null` (an EndpointSlice
 * without endpoints) are accepted wherever the API allows nil.
 *
 * What is read but not supported (SCTP) is refused here with a message saying so; what is
 * valid but not for nodeplane (IPv6 addresses, headless Services) passes, and the mapping
 * (manifest-map.ts) leaves it out with a note.
 */
import { z } from 'zod';
import { dnsLabel, hostIPv4Problem, int, portNumber } from './schema.ts';

/** A check on any value: its message, or undefined when fine. */
function checked<T>(problem: (v: unknown) => string | undefined) {
  return z.unknown().superRefine((v, ctx) => {
    const message = problem(v);
    if (message !== undefined) ctx.addIssue({ code: 'custom', message });
  }) as unknown as z.ZodType<T>;
}

/** An IP address as Kubernetes writes one: IPv4 (checked) or IPv6 (left to the mapping). */
export const isIPv6Text = (s: string): boolean => s.includes(':');

/** An IP address, or one of the `also` words (`None` for a headless Service, '' for unset). */
const ipText = (...also: string[]) =>
  checked<string>((v) => {
    if (typeof v !== 'string') return `expected an IP address, got ${JSON.stringify(v) ?? String(v)}`;
    if (also.includes(v) || isIPv6Text(v)) return undefined;
    return hostIPv4Problem(v);
  });

/** TCP and UDP; SCTP is valid Kubernetes that nodeplane refuses by name. */
const protocol = checked<'TCP' | 'UDP'>((v) => {
  if (v === 'TCP' || v === 'UDP') return undefined;
  if (v === 'SCTP') return 'SCTP is not supported: nodeplane translates TCP and UDP Service ports only';
  return `must be one of TCP, UDP (got ${JSON.stringify(v) ?? String(v)})`;
});

/** Kubernetes' IANA_SVC_NAME: what a named targetPort must be. */
const IANA_SVC_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?!-))*[a-z0-9]$|^[a-z]$/;

const targetPort = checked<number | string>((v) => {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 1 && v <= 65535 ? undefined : `must be a port number 1..65535 or a port name (got ${v})`;
  if (typeof v === 'string') {
    return v.length <= 15 && IANA_SVC_NAME.test(v)
      ? undefined
      : `'${v}' is not a port name (at most 15 characters of a-z 0-9 '-', with a letter; a number is written without quotes)`;
  }
  return `expected a port number or a port name, got ${JSON.stringify(v) ?? String(v)}`;
});

/** A Service port name (a DNS label): may be empty when the Service has one port. */
const portName = checked<string>((v) => {
  if (typeof v !== 'string') return `expected a string, got ${JSON.stringify(v) ?? String(v)}`;
  if (v === '' || (v.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(v))) return undefined;
  return `'${v}' must be at most 63 characters of a-z 0-9 and '-', starting and ending alphanumeric`;
});

const objectMeta = z.object({
  name: z.string().min(1),
  namespace: dnsLabel(63).optional(),
  labels: z.record(z.string(), z.string()).nullish(),
});

const servicePort = z.object({
  name: portName.optional(),
  protocol: protocol.optional(),
  port: portNumber,
  targetPort: targetPort.optional(),
  nodePort: portNumber.nullish(),
});

export const SERVICE_KINDS = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] as const;

const trafficPolicy = z.enum(['Cluster', 'Local']);

const serviceSpec = z.object({
  type: z.enum(SERVICE_KINDS).optional(),
  clusterIP: ipText('None', '').optional(),
  clusterIPs: z.array(ipText('None')).nullish(),
  ports: z.array(servicePort).nullish(),
  externalIPs: z.array(ipText()).nullish(),
  loadBalancerIP: ipText('').optional(),
  sessionAffinity: z.enum(['None', 'ClientIP']).optional(),
  sessionAffinityConfig: z
    .object({ clientIP: z.object({ timeoutSeconds: int(1, 86400).nullish() }).nullish() })
    .nullish(),
  externalTrafficPolicy: trafficPolicy.optional(),
  internalTrafficPolicy: trafficPolicy.optional(),
});

const serviceStatus = z.object({
  loadBalancer: z
    .object({
      ingress: z
        .array(z.object({ ip: ipText().optional(), hostname: z.string().optional(), ipMode: z.enum(['VIP', 'Proxy']).optional() }))
        .nullish(),
    })
    .nullish(),
});

/** A v1 Service; the rules that relate its fields are checked as the API server does. */
export const serviceObject = z
  .object({
    metadata: objectMeta.extend({ name: dnsLabel(63) }),
    spec: serviceSpec,
    status: serviceStatus.nullish(),
  })
  .superRefine((svc, ctx) => {
    const spec = svc.spec;
    const ports = spec.ports ?? [];
    const type = spec.type ?? 'ClusterIP';
    const headless = spec.clusterIP === 'None';
    if (type !== 'ExternalName' && ports.length === 0 && !headless) {
      ctx.addIssue({ code: 'custom', path: ['spec', 'ports'], message: 'needs at least 1 entry' });
    }
    if (type !== 'ExternalName' && (spec.clusterIP === undefined || spec.clusterIP === '') && (spec.clusterIPs ?? []).length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['spec', 'clusterIP'],
        message: 'required: nodeplane does not allocate Service addresses (write the one the cluster gave, as `kubectl get svc -o yaml` prints it)',
      });
    }
    const keys = new Map<string, number>();
    const names = new Map<string, number>();
    ports.forEach((p, i) => {
      const key = `${p.port}/${p.protocol ?? 'TCP'}`;
      const dup = keys.get(key);
      if (dup !== undefined) ctx.addIssue({ code: 'custom', path: ['spec', 'ports', i, 'port'], message: `${key} is already spec.ports[${dup}]` });
      else keys.set(key, i);
      const name = p.name ?? '';
      if (name === '' && ports.length > 1) ctx.addIssue({ code: 'custom', path: ['spec', 'ports', i, 'name'], message: 'required when a Service has more than one port' });
      const dupName = names.get(name);
      if (name !== '' && dupName !== undefined) ctx.addIssue({ code: 'custom', path: ['spec', 'ports', i, 'name'], message: `${name} is already spec.ports[${dupName}]` });
      else names.set(name, i);
    });
  });

const conditions = z.object({
  ready: z.boolean().nullish(),
  serving: z.boolean().nullish(),
  terminating: z.boolean().nullish(),
});

const sliceEndpoint = z.object({
  addresses: z.array(z.string()).min(1),
  conditions: conditions.nullish(),
  nodeName: z.string().min(1).nullish(),
});

const slicePort = z.object({
  name: portName.nullish(),
  protocol: protocol.nullish(),
  port: portNumber.nullish(),
});

/** A discovery.k8s.io/v1 EndpointSlice; IPv4 addresses are checked when addressType says IPv4. */
export const endpointSliceObject = z
  .object({
    metadata: objectMeta,
    addressType: z.enum(['IPv4', 'IPv6', 'FQDN']),
    endpoints: z.array(sliceEndpoint).nullish(),
    ports: z.array(slicePort).nullish(),
  })
  .superRefine((slice, ctx) => {
    if (slice.addressType !== 'IPv4') return;
    (slice.endpoints ?? []).forEach((e, i) => {
      // kube-proxy programs the first address of an endpoint (the API allows exactly one).
      const problem = hostIPv4Problem(e.addresses[0]!);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['endpoints', i, 'addresses', 0], message: problem });
    });
  });

export type ServiceObject = z.output<typeof serviceObject>;
export type EndpointSliceObject = z.output<typeof endpointSliceObject>;

/** What every document must have before its kind decides the rest. */
export const typeMeta = z.object({ apiVersion: z.string().min(1), kind: z.string().min(1) });
