/**
 * kube-proxy's iptables mode, for the kernel twin: from nodeplane's `services:` config and
 * the node's facts, the `iptables-restore` input kube-proxy would load (its syncProxyRules),
 * and the jump rules it puts into the built-in chains. Written from kube-proxy's documented
 * and observed behaviour (pkg/proxy/iptables in Kubernetes 1.28+), independently of
 * nodeplane's own Services code, so that the twin is a second opinion and not a copy.
 *
 * nat table:
 *   PREROUTING, OUTPUT → KUBE-SERVICES; POSTROUTING → KUBE-POSTROUTING
 *   KUBE-SERVICES: per Service port, ClusterIP → the internal policy chain (KUBE-SVC-*, or
 *     KUBE-SVL-* with internalTrafficPolicy Local), externalIPs and LoadBalancer ingress IPs →
 *     KUBE-EXT-*; last, the jump to KUBE-NODEPORTS for local destinations.
 *   KUBE-NODEPORTS: nodePort → KUBE-EXT-*.
 *   KUBE-SVC-* / KUBE-SVL-*: the ClusterIP from outside the cluster CIDR → KUBE-MARK-MASQ;
 *     ClientIP affinity (`-m recent --rcheck`), then `-m statistic --mode random
 *     --probability 1/(n-i)` to each KUBE-SEP-*.
 *   KUBE-EXT-*: Cluster policy: KUBE-MARK-MASQ, then KUBE-SVC-*; Local policy: pods (the
 *     cluster CIDR) → KUBE-SVC-*, node-local sources masqueraded → KUBE-SVC-*, others →
 *     KUBE-SVL-* (no rule when there is no local endpoint: the filter table drops them).
 *   KUBE-SEP-*: from the endpoint itself (hairpin) → KUBE-MARK-MASQ; `-m recent --set` with
 *     affinity; DNAT --to-destination ip:targetPort.
 *   KUBE-MARK-MASQ: mark 0x4000. KUBE-POSTROUTING: unmarked RETURN, clear the mark,
 *     MASQUERADE --random-fully.
 * filter table:
 *   KUBE-SERVICES (FORWARD/OUTPUT, new connections): ClusterIP of a port without endpoints →
 *     REJECT (icmp-port-unreachable); internalTrafficPolicy Local without a local one → DROP.
 *   KUBE-EXTERNAL-SERVICES (INPUT/FORWARD, new): externalIPs, LoadBalancer IPs and NodePorts
 *     without endpoints → REJECT; with endpoints but none local under Local policy → DROP.
 *   KUBE-FORWARD: ctstate INVALID → DROP; marked → ACCEPT; RELATED,ESTABLISHED → ACCEPT.
 *   KUBE-FIREWALL: kubelet's "block incoming localnet connections" (route_localnet is on).
 */
import { createHash } from 'node:crypto';
import type { ServiceConfig } from '../../src/config/types.ts';

/**
 * A Service as the config gives it; internalTrafficPolicy and the endpoints' serving and
 * terminating conditions may be left out (Cluster; serving = ready, not terminating).
 */
export type KubeService = Omit<ServiceConfig, 'internalTrafficPolicy' | 'endpoints'> & {
  internalTrafficPolicy?: 'Cluster' | 'Local';
  endpoints: Array<{ ip: string; ready: boolean; nodeName?: string; serving?: boolean; terminating?: boolean }>;
};

export interface NodeFacts {
  /** This node's name: endpoints with it are local. */
  nodeName: string;
  /** --cluster-cidr: kube-proxy's local traffic detector (pods are sources inside it). */
  clusterCIDR: string;
  /**
   * --nodeport-addresses as addresses: NodePorts answer on these only. Absent: on every local
   * address (`-m addrtype --dst-type LOCAL`), kube-proxy's default, with localhost NodePorts.
   */
  nodePortAddresses?: string[];
  /** --masquerade-bit (default 14: mark 0x4000). */
  masqueradeBit?: number;
}

export interface KubeProxyRules {
  /** `iptables-restore --noflush` input: the filter and nat tables' KUBE-* chains. */
  restore: string;
  /** Jump rules into the built-in chains (`iptables` arguments), inserted in this order, each at the top. */
  jumps: string[][];
  /** Sysctls kube-proxy sets on the node. */
  sysctls: Record<string, number>;
}

const RFC4648 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** base32 (RFC 4648, upper case) of `bytes`, unpadded. */
function base32(bytes: Uint8Array): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += RFC4648[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += RFC4648[(acc << (5 - bits)) & 31];
  return out;
}

/** The 16 characters kube-proxy derives a chain name from: base32(sha256(text)). */
function hash16(text: string): string {
  return base32(createHash('sha256').update(text).digest()).slice(0, 16);
}

/** "namespace/name:port" (":port" only for a named port), as kube-proxy's ServicePortName prints. */
export function servicePortName(s: { namespace: string; name: string }, portName: string | undefined): string {
  return `${s.namespace}/${s.name}${portName ? `:${portName}` : ''}`;
}

export const chainNames = {
  svc: (spn: string, proto: string): string => `KUBE-SVC-${hash16(spn + proto)}`,
  svl: (spn: string, proto: string): string => `KUBE-SVL-${hash16(spn + proto)}`,
  ext: (spn: string, proto: string): string => `KUBE-EXT-${hash16(spn + proto)}`,
  sep: (spn: string, proto: string, endpoint: string): string => `KUBE-SEP-${hash16(spn + proto + endpoint)}`,
};

/** 1/n with ten decimals, as the statistic match is given it. */
function probability(n: number): string {
  return (1 / n).toFixed(10);
}

const q = (text: string): string => `"${text}"`;

interface Endpoint {
  ip: string;
  /** ip:targetPort */
  hostPort: string;
  chain: string;
}

/** Builds kube-proxy's rules for `services` on the node `node`. */
export function kubeProxyRules(services: KubeService[], node: NodeFacts): KubeProxyRules {
  const mark = `0x${(1 << (node.masqueradeBit ?? 14)).toString(16)}`;
  const localhostNodePorts = node.nodePortAddresses === undefined;
  const filterChains = ['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FORWARD', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL'];
  const natChains = ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ'];
  const filter: string[] = [];
  const nat: string[] = [];

  nat.push(`-A KUBE-POSTROUTING -m mark ! --mark ${mark}/${mark} -j RETURN`);
  nat.push(`-A KUBE-POSTROUTING -j MARK --xor-mark ${mark}`);
  nat.push(`-A KUBE-POSTROUTING -m comment --comment ${q('kubernetes service traffic requiring SNAT')} -j MASQUERADE --random-fully`);
  nat.push(`-A KUBE-MARK-MASQ -j MARK --or-mark ${mark}`);
  if (localhostNodePorts) {
    filterChains.push('KUBE-FIREWALL');
    filter.push(`-A KUBE-FIREWALL -m comment --comment ${q('block incoming localnet connections')} -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`);
  }

  for (const svc of services) {
    const itpLocal = svc.internalTrafficPolicy === 'Local';
    const lbIPs = svc.type === 'LoadBalancer' && svc.loadBalancerIP ? [svc.loadBalancerIP] : [];
    for (const port of svc.ports) {
      const proto = port.protocol.toLowerCase();
      const spn = servicePortName(svc, port.name);
      const nodePort = svc.type !== 'ClusterIP' && port.nodePort !== undefined ? port.nodePort : 0;
      const externallyAccessible = nodePort !== 0 || lbIPs.length > 0 || svc.externalIPs.length > 0;
      const etpLocal = externallyAccessible && svc.externalTrafficPolicy === 'Local';
      const usesCluster = !itpLocal || (externallyAccessible && !etpLocal);
      const usesLocal = itpLocal || etpLocal;
      const targetPort = port.targetPort ?? port.port;
      const ep = (e: KubeService['endpoints'][number]): Endpoint => {
        const hostPort = `${e.ip}:${targetPort}`;
        return { ip: e.ip, hostPort, chain: chainNames.sep(spn, proto, hostPort) };
      };
      const serving = (e: KubeService['endpoints'][number]): boolean => e.serving ?? e.ready;
      const terminating = (e: KubeService['endpoints'][number]): boolean => e.terminating ?? false;
      const isLocal = (e: KubeService['endpoints'][number]): boolean => (e.nodeName ?? node.nodeName) === node.nodeName;

      // Which endpoints each policy uses: ready ones, else serving-but-terminating ones.
      let cluster: Endpoint[] = [];
      let local: Endpoint[] = [];
      let hasEndpoints = false;
      if (usesCluster) {
        let picked = svc.endpoints.filter((e) => e.ready);
        if (picked.length === 0) picked = svc.endpoints.filter((e) => serving(e) && terminating(e));
        cluster = picked.map(ep);
        hasEndpoints = cluster.length > 0;
      }
      if (usesLocal) {
        if (svc.endpoints.some((e) => e.ready || (serving(e) && terminating(e)))) hasEndpoints = true;
        let picked = svc.endpoints.filter((e) => isLocal(e) && e.ready);
        if (picked.length === 0) picked = svc.endpoints.filter((e) => isLocal(e) && serving(e) && terminating(e));
        local = picked.map(ep);
      }
      const reachable = usesLocal ? (usesCluster ? [...new Map([...cluster, ...local].map((e) => [e.chain, e])).values()] : local) : cluster;

      const svcChain = chainNames.svc(spn, proto);
      const svlChain = chainNames.svl(spn, proto);
      const extChain = chainNames.ext(spn, proto);
      const internalChain = itpLocal ? svlChain : svcChain;
      const hasInternal = hasEndpoints && (!itpLocal || local.length > 0);
      const externalPolicyChain = etpLocal ? svlChain : svcChain;
      const hasExternal = hasEndpoints && (!etpLocal || local.length > 0);
      const usesExt = hasEndpoints && externallyAccessible;
      const noEndpoints = q(`${spn} has no endpoints`);
      const noLocal = q(`${spn} has no local endpoints`);
      const internalFilter = !hasEndpoints ? ['REJECT', noEndpoints] : ['DROP', noLocal];
      const externalFilter = !hasEndpoints ? ['REJECT', noEndpoints] : ['DROP', noLocal];
      const match = (dst: string, dport: number): string => `-m ${proto} -p ${proto} -d ${dst} --dport ${dport}`;

      if (hasInternal) {
        nat.push(`-A KUBE-SERVICES -m comment --comment ${q(`${spn} cluster IP`)} ${match(svc.clusterIP, port.port)} -j ${internalChain}`);
      } else {
        filter.push(`-A KUBE-SERVICES -m comment --comment ${internalFilter[1]} ${match(svc.clusterIP, port.port)} -j ${internalFilter[0]}`);
      }
      for (const ip of svc.externalIPs) {
        if (hasEndpoints) nat.push(`-A KUBE-SERVICES -m comment --comment ${q(`${spn} external IP`)} ${match(ip, port.port)} -j ${extChain}`);
        if (!hasExternal) filter.push(`-A KUBE-EXTERNAL-SERVICES -m comment --comment ${externalFilter[1]} ${match(ip, port.port)} -j ${externalFilter[0]}`);
      }
      for (const ip of lbIPs) {
        if (hasEndpoints) nat.push(`-A KUBE-SERVICES -m comment --comment ${q(`${spn} loadbalancer IP`)} ${match(ip, port.port)} -j ${extChain}`);
      }
      if (!hasExternal) {
        for (const ip of lbIPs) filter.push(`-A KUBE-EXTERNAL-SERVICES -m comment --comment ${externalFilter[1]} ${match(ip, port.port)} -j ${externalFilter[0]}`);
      }
      if (nodePort !== 0) {
        if (hasEndpoints) nat.push(`-A KUBE-NODEPORTS -m comment --comment ${spn} -m ${proto} -p ${proto} --dport ${nodePort} -j ${extChain}`);
        if (!hasExternal) {
          filter.push(`-A KUBE-EXTERNAL-SERVICES -m comment --comment ${externalFilter[1]} -m addrtype --dst-type LOCAL -m ${proto} -p ${proto} --dport ${nodePort} -j ${externalFilter[0]}`);
        }
      }

      if (hasInternal) {
        // Traffic to the ClusterIP from outside the pods' network is masqueraded (it may have been routed here from another host).
        nat.push(`-A ${internalChain} -m comment --comment ${q(`${spn} cluster IP`)} ${match(svc.clusterIP, port.port)} ! -s ${node.clusterCIDR} -j KUBE-MARK-MASQ`);
      }
      if (usesExt) {
        natChains.push(extChain);
        if (!etpLocal) {
          nat.push(`-A ${extChain} -m comment --comment ${q(`masquerade traffic for ${spn} external destinations`)} -j KUBE-MARK-MASQ`);
        } else {
          nat.push(`-A ${extChain} -m comment --comment ${q(`pod traffic for ${spn} external destinations`)} -s ${node.clusterCIDR} -j ${svcChain}`);
          nat.push(`-A ${extChain} -m comment --comment ${q(`masquerade LOCAL traffic for ${spn} external destinations`)} -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`);
          nat.push(`-A ${extChain} -m comment --comment ${q(`route LOCAL traffic for ${spn} external destinations`)} -m addrtype --src-type LOCAL -j ${svcChain}`);
        }
        if (hasExternal) nat.push(`-A ${extChain} -j ${externalPolicyChain}`);
      }
      if (usesCluster && cluster.length > 0) {
        natChains.push(svcChain);
        nat.push(...endpointChoice(svc, spn, svcChain, cluster));
      }
      if (usesLocal && local.length > 0) {
        natChains.push(svlChain);
        nat.push(...endpointChoice(svc, spn, svlChain, local));
      }
      for (const e of reachable) {
        natChains.push(e.chain);
        nat.push(`-A ${e.chain} -m comment --comment ${spn} -s ${e.ip} -j KUBE-MARK-MASQ`);
        const affinity = svc.sessionAffinity === 'ClientIP' ? ` -m recent --name ${e.chain} --set` : '';
        nat.push(`-A ${e.chain} -m comment --comment ${spn}${affinity} -m ${proto} -p ${proto} -j DNAT --to-destination ${e.hostPort}`);
      }
    }
  }

  const nodePortsComment = q('kubernetes service nodeports; NOTE: this must be the last rule in this chain');
  if (node.nodePortAddresses === undefined) nat.push(`-A KUBE-SERVICES -m comment --comment ${nodePortsComment} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`);
  else for (const ip of node.nodePortAddresses) nat.push(`-A KUBE-SERVICES -m comment --comment ${nodePortsComment} -d ${ip} -j KUBE-NODEPORTS`);

  filter.push('-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP');
  filter.push(`-A KUBE-FORWARD -m comment --comment ${q('kubernetes forwarding rules')} -m mark --mark ${mark}/${mark} -j ACCEPT`);
  filter.push(`-A KUBE-FORWARD -m comment --comment ${q('kubernetes forwarding conntrack rule')} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);

  const restore = [
    '*filter',
    ...filterChains.map((c) => `:${c} - [0:0]`),
    ...filter,
    'COMMIT',
    '*nat',
    ...natChains.map((c) => `:${c} - [0:0]`),
    ...nat,
    'COMMIT',
    '',
  ].join('\n');

  // kube-proxy's jump rules, each ensured at the top of its built-in chain in this order
  // (so the last one of a chain ends up first), then kubelet's firewall chain.
  const jump = (table: string, from: string, to: string, comment: string, extra: string[] = []): string[] => [
    '-t', table, '-I', from, ...extra, ...(comment ? ['-m', 'comment', '--comment', comment] : []), '-j', to,
  ];
  const isNew = ['-m', 'conntrack', '--ctstate', 'NEW'];
  const jumps = [
    jump('filter', 'INPUT', 'KUBE-EXTERNAL-SERVICES', 'kubernetes externally-visible service portals', isNew),
    jump('filter', 'FORWARD', 'KUBE-EXTERNAL-SERVICES', 'kubernetes externally-visible service portals', isNew),
    jump('filter', 'INPUT', 'KUBE-NODEPORTS', 'kubernetes health check service ports'),
    jump('filter', 'FORWARD', 'KUBE-SERVICES', 'kubernetes service portals', isNew),
    jump('filter', 'OUTPUT', 'KUBE-SERVICES', 'kubernetes service portals', isNew),
    jump('filter', 'FORWARD', 'KUBE-FORWARD', 'kubernetes forwarding rules'),
    jump('filter', 'INPUT', 'KUBE-PROXY-FIREWALL', 'kubernetes load balancer firewall', isNew),
    jump('filter', 'OUTPUT', 'KUBE-PROXY-FIREWALL', 'kubernetes load balancer firewall', isNew),
    jump('filter', 'FORWARD', 'KUBE-PROXY-FIREWALL', 'kubernetes load balancer firewall', isNew),
    jump('nat', 'OUTPUT', 'KUBE-SERVICES', 'kubernetes service portals'),
    jump('nat', 'PREROUTING', 'KUBE-SERVICES', 'kubernetes service portals'),
    jump('nat', 'POSTROUTING', 'KUBE-POSTROUTING', 'kubernetes postrouting rules'),
    ...(localhostNodePorts ? [jump('filter', 'INPUT', 'KUBE-FIREWALL', ''), jump('filter', 'OUTPUT', 'KUBE-FIREWALL', '')] : []),
  ];
  // route_localnet: NodePorts on 127.0.0.1 (kube-proxy's --iptables-localhost-nodeports).
  const sysctls: Record<string, number> = localhostNodePorts ? { 'net.ipv4.conf.all.route_localnet': 1 } : {};
  return { restore, jumps, sysctls };
}

/** A Service chain's rules: affinity first (`recent --rcheck`), then the random choice of an endpoint. */
function endpointChoice(svc: KubeService, spn: string, chain: string, endpoints: Endpoint[]): string[] {
  const rules: string[] = [];
  if (svc.sessionAffinity === 'ClientIP') {
    for (const e of endpoints) {
      rules.push(`-A ${chain} -m comment --comment ${q(`${spn} -> ${e.hostPort}`)} -m recent --name ${e.chain} --rcheck --seconds ${svc.sessionAffinityTimeoutSeconds} --reap -j ${e.chain}`);
    }
  }
  endpoints.forEach((e, i) => {
    const pick = i < endpoints.length - 1 ? ` -m statistic --mode random --probability ${probability(endpoints.length - i)}` : '';
    rules.push(`-A ${chain} -m comment --comment ${q(`${spn} -> ${e.hostPort}`)}${pick} -j ${e.chain}`);
  });
  return rules;
}
