/**
 * `show services` (GET /v1/services): each Service port with its type, policies, frontends
 * and endpoints — `kubectl get svc` and `ipvsadm -Ln` together — as JSON, and its text.
 *
 * Active connections per endpoint are counted by walking the conntrack table, not kept on the
 * packet path: a flow's service tag names its endpoint (ServiceDnat), so the walk counts
 * the live DNAT'd entries whose tag is the endpoint and whose reply tuple still comes from
 * its address and port. Like `show conntrack` the walk is done in chunks of 1 ms of work, one
 * per turn of the event loop, so forwarding never waits for it; counts are those of a table
 * that may change during the walk (an entry alive throughout is counted once).
 *
 * Text, one block per Service port:
 *   default/web:http  LoadBalancer TCP  affinity ClientIP 10800s  policy external Cluster internal Cluster
 *     10.96.0.10:80 (clusterIP)  192.168.50.11:30080 (nodePort)  192.168.50.200:80 (loadBalancer)
 *     -> 10.244.1.3:8080  node1 local  ready  connections 2
 *     -> 10.244.2.5:8080  node2        not ready  connections 0
 * and, for a Service without any endpoint it could use, the line `no endpoints: rejected with
 * icmp port unreachable`.
 */
import type { Dataplane } from '../dataplane/dataplane.ts';
import { CT_DNAT, CT_LIVE } from '../tables/conntrack.ts';
import {
  EP_IN_CLUSTER,
  EP_IN_LOCAL,
  EP_LOCAL,
  EP_READY,
  EP_SERVING,
  EP_TERMINATING,
  FRONTEND_KIND_NAMES,
  SERVICE_TAG_ENDPOINT,
  SP_REJECT,
  type ServiceTable,
} from '../tables/service-table.ts';
import { formatIpv4, parseIpv4 } from '../wire/ipv4-address.ts';

export interface ServiceEndpointState {
  ip: string;
  port: number;
  nodeName: string;
  local: boolean;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  /** Whether the DNAT may choose it now (cluster or local candidate). */
  candidate: boolean;
  /** Live conntrack entries translated to it. */
  connections: number;
}

export interface ServicePortState {
  namespace: string;
  name: string;
  port: string;
  type: string;
  protocol: string;
  targetPort: number;
  sessionAffinity: string;
  sessionAffinityTimeoutSeconds: number | null;
  externalTrafficPolicy: string;
  internalTrafficPolicy: string;
  /** "address:port" with its kind; `waiting` when another Service holds the same frontend. */
  frontends: { address: string; kind: string; waiting: boolean }[];
  /** No endpoint could serve: packets are rejected with ICMP port unreachable. */
  rejecting: boolean;
  endpoints: ServiceEndpointState[];
}

export interface ServicesState {
  services: ServicePortState[];
  /** Flows translated, packets rejected, flows pinned by affinity, Service flows masqueraded, UDP entries flushed. */
  counters: { translated: number; rejected: number; pinned: number; masqueraded: number; flushed: number };
}

/** What /v1/services answers (409) for a dataplane without connection tracking, which has no Services. */
export const NO_SERVICES = 'this dataplane has no Services: its config has no services (nor nat or conntrack), so it runs without connection tracking';

const CHUNK_MS = 1;
const IDS_PER_CHECK = 256;

/** Counts live DNAT'd entries per endpoint id, in chunks between batches. */
function countConnections(dp: Dataplane, table: ServiceTable): Promise<Int32Array> {
  const ct = dp.ctx.conntrack!;
  const counts = new Int32Array(table.epAddr.length);
  let id = 0;
  return new Promise((resolve) => {
    const chunk = (): void => {
      const until = performance.now() + CHUNK_MS;
      while (id < ct.highWater) {
        const end = Math.min(id + IDS_PER_CHECK, ct.highWater);
        for (; id < end; id++) {
          if ((ct.statusOf(id) & (CT_LIVE | CT_DNAT)) !== (CT_LIVE | CT_DNAT) || ct.isExpired(id)) continue;
          const ep = (ct.serviceTagOf(id) & SERVICE_TAG_ENDPOINT) - 1;
          if (ep < 0 || ep >= counts.length || table.epSp[ep] < 0) continue;
          const reply = (id << 1) | 1;
          if (ct.srcOf(reply) === table.epAddr[ep] && ct.sportOf(reply) === table.epPort[ep]) counts[ep]++;
        }
        if (performance.now() >= until) break;
      }
      if (id < ct.highWater) setImmediate(chunk);
      else resolve(counts);
    };
    setImmediate(chunk);
  });
}

/** The Services of a running dataplane (which must track connections: see NO_SERVICES). */
export async function servicesState(dp: Dataplane): Promise<ServicesState> {
  const hooks = dp.conntrackHooks;
  if (hooks === null) throw new Error(NO_SERVICES);
  const svc = hooks.services;
  const t = svc.table;
  const counts = await countConnections(dp, t);
  const out: ServicePortState[] = [];
  const specs = [...t.specs()].sort((a, b) => (a.namespace === b.namespace ? a.name.localeCompare(b.name) : a.namespace.localeCompare(b.namespace)));
  for (const s of specs) {
    const nodeOf = new Map(s.endpoints.map((e) => [formatIpv4(parseIpv4(e.ip)), e.nodeName]));
    t.servicePortsOf(s.namespace, s.name).forEach((sp, i) => {
      const p = s.ports[i];
      const fronts = t.spFrontends[sp];
      const frontends: ServicePortState['frontends'] = [];
      for (let k = 0; k < fronts.length; k += 3) {
        frontends.push({ address: `${formatIpv4(fronts[k])}:${fronts[k + 1] & 0xffff}`, kind: FRONTEND_KIND_NAMES[fronts[k + 2]], waiting: !t.ownsFrontend(sp, fronts[k], fronts[k + 1]) });
      }
      const endpoints = [...t.spEndpoints[sp]].map((ep): ServiceEndpointState => {
        const f = t.epFlags[ep];
        const ip = formatIpv4(t.epAddr[ep]);
        return {
          ip,
          port: t.epPort[ep],
          // Endpoints with ports of their own may serve only some ports: found by address.
          nodeName: nodeOf.get(ip) ?? '',
          local: (f & EP_LOCAL) !== 0,
          ready: (f & EP_READY) !== 0,
          serving: (f & EP_SERVING) !== 0,
          terminating: (f & EP_TERMINATING) !== 0,
          candidate: (f & (EP_IN_CLUSTER | EP_IN_LOCAL)) !== 0,
          connections: counts[ep] ?? 0,
        };
      });
      out.push({
        namespace: s.namespace,
        name: s.name,
        port: p.name ?? `${p.port}/${p.protocol}`,
        type: s.type,
        protocol: p.protocol,
        targetPort: p.targetPort,
        sessionAffinity: s.sessionAffinity,
        sessionAffinityTimeoutSeconds: s.sessionAffinity === 'ClientIP' ? s.sessionAffinityTimeoutSeconds : null,
        externalTrafficPolicy: s.externalTrafficPolicy,
        internalTrafficPolicy: s.internalTrafficPolicy ?? 'Cluster',
        frontends,
        rejecting: (t.spFlags[sp] & SP_REJECT) !== 0,
        endpoints,
      });
    });
  }
  const counters = {
    translated: svc.prerouting.translated + svc.output.translated,
    rejected: svc.prerouting.rejected + svc.output.rejected,
    pinned: svc.prerouting.pinned + svc.output.pinned,
    masqueraded: svc.masquerade.masqueraded,
    flushed: svc.flushed,
  };
  return { services: out, counters };
}

/** The text of `show services` (see the header). */
export function formatServices(s: ServicesState): string {
  const lines: string[] = [];
  for (const p of s.services) {
    const affinity = p.sessionAffinityTimeoutSeconds === null ? '' : `  affinity ClientIP ${p.sessionAffinityTimeoutSeconds}s`;
    lines.push(`${p.namespace}/${p.name}:${p.port}  ${p.type} ${p.protocol}${affinity}  policy external ${p.externalTrafficPolicy} internal ${p.internalTrafficPolicy}`);
    lines.push(`  ${p.frontends.map((f) => `${f.address} (${f.kind}${f.waiting ? ', held by another Service' : ''})`).join('  ')}`);
    const w = Math.max(0, ...p.endpoints.map((e) => `${e.ip}:${e.port}`.length));
    const n = Math.max(0, ...p.endpoints.map((e) => e.nodeName.length));
    for (const e of p.endpoints) {
      const state = e.ready ? 'ready' : e.terminating ? (e.serving ? 'terminating, serving' : 'terminating') : 'not ready';
      lines.push(`  -> ${`${e.ip}:${e.port}`.padEnd(w)}  ${e.nodeName.padEnd(n)} ${e.local ? 'local' : '     '}  ${state}${e.candidate ? '' : ' (unused)'}  connections ${e.connections}`);
    }
    if (p.rejecting) lines.push('  no endpoints: rejected with icmp port unreachable');
  }
  const c = s.counters;
  lines.push(`flows translated ${c.translated}, rejected ${c.rejected}, pinned by affinity ${c.pinned}, masqueraded ${c.masqueraded}, udp entries flushed ${c.flushed}`);
  return lines.join('\n') + '\n';
}
