/**
 * The configuration schema (SPEC §2 plus the project's extensions), written with zod.
 *
 * Input: the plain object a YAML/JSON document parses to. Output: a `Config` with every
 * default filled in, or zod issues (load.ts turns them into `path: message` lines). This file
 * judges each value on its own (is it an IPv4 address, a 24-bit VNI, a known key);
 * whether values agree with each other (does `ports[].bridge` exist) is validate.ts.
 *
 * Every object is strict: a misspelt key is an error, never silently ignored (SPEC §2).
 * Defaults that depend on other fields (endpoint nodeName = node.name, serving = ready,
 * targetPort = port)
 * are filled by the final transform so the output type says they are always present. The
 * transform also derives `conntrackEnabled`: whether the file has `nat`, a `conntrack`
 * section, any service or manifest, i.e. whether connection tracking runs at all.
 *
 * Defaults for the project's extensions, and where they come from:
 *   arp.retries 3              Linux mcast_solicit
 *   arp.retryIntervalMs 1000   Linux retrans_time_ms
 *   arp.queueLen 3             packets held per unresolved neighbour (Linux's old unres_qlen)
 *   arp.reachableMs 30000      Linux base_reachable_time_ms
 *   arp.staleMs 60000          Linux gc_stale_time: an unused STALE entry is dropped after this
 *   arp.failedMs 1000          a FAILED entry answers "host unreachable" this long before a
 *                              new resolution may start (Linux retries at once; 0 does that)
 *   arp.maxEntries 1024        Linux gc_thresh3
 *   fdb.maxEntries 4096        learned MACs per bridge; learning stops when full
 *   icmp.ratePerSec 1000, icmp.burst 50: one token bucket for all ICMP errors we generate,
 *                              like Linux icmp_msgs_per_sec / icmp_msgs_burst
 *   icmp.perHostIntervalMs 1000, icmp.perHostBurst 6: per destination, like icmp_ratelimit
 *   conntrack.timeouts         Linux nf_conntrack_* defaults in seconds, except tcpEstablished
 *                              86400 and tcpCloseWait 3600, which kube-proxy sets
 *   capture.snaplen 262144     tcpdump's default
 *   capture.bufferKiB 32768    the ring the capture writer drains (tcpdump -B, in KiB)
 *   pool.slots 8192            frame slots of 4 KiB (32 MiB) without offload, and in replay
 *   pool.offloadSlots 2048     frame slots of 68 KiB (136 MiB) with TCP segmentation offload;
 *                              the pool is all the frame memory, whatever the number of ports
 *                              (docs/architecture.md, "Memory")
 *   seed 1                     the same default as `replay --seed`
 *   cluster.subnetLen          flannel's: 24, or the network's prefix + 2 below a /22
 *   cluster.leaseTTLSeconds 86400, cluster.subnetFile /run/flannel/subnet.env,
 *   cluster.etcd.endpoints [http://127.0.0.1:2379], cluster.etcd.prefix /coreos.com/network:
 *                              flanneld's defaults
 *   vxlan[].local              cluster.publicIP in cluster mode (required otherwise)
 *   vxlan[].underlay port      outer frames through an L3 port; `socket`: through a kernel
 *                              UDP socket on local:port (the machine's own address)
 */
import { z } from 'zod';
import {
  broadcastOf,
  type Cidr,
  formatCidr,
  isLoopback,
  isMulticast,
  isReserved,
  networkOf,
  parseCidr as wireParseCidr,
  parseIpv4,
} from '../wire/ipv4-address.ts';

// ---- IPv4 and MAC text forms (strings only at the edges; numbers inside) ----

/** The u32 of a dotted quad, or undefined when `text` is not one (wire's parser throws;
 * like it, leading zeros are refused: inet_aton reads them as octal, so "010.0.0.1" means
 * different things to different tools). */
function ipv4OrUndefined(text: string): number | undefined {
  try {
    return parseIpv4(text);
  } catch {
    return undefined;
  }
}

/** `a.b.c.d/len`; undefined when either part is bad or `/len` is missing (wire's parser
 * reads a bare address as a /32; a config must write the prefix length). Wire's parser
 * decides what is bad, so what passes here also compiles. */
export function parseCidr(text: string): Cidr | undefined {
  if (!text.includes('/')) return undefined;
  try {
    return wireParseCidr(text);
  } catch {
    return undefined;
  }
}

const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

// ---- value types ----

/** A string checked by `problem`, which returns the message or undefined when fine. */
export function checkedString(problem: (s: string) => string | undefined) {
  return z.string().superRefine((s, ctx) => {
    const message = problem(s);
    if (message !== undefined) ctx.addIssue({ code: 'custom', message });
  });
}

const ipv4Problem = (s: string) =>
  ipv4OrUndefined(s) === undefined ? `'${s}' is not an IPv4 address (dotted quad, e.g. 10.0.0.1)` : undefined;

const cidrProblem = (s: string) => {
  const slash = s.indexOf('/');
  if (slash < 0) return `'${s}' has no prefix length (e.g. ${s}/24)`;
  if (ipv4OrUndefined(s.slice(0, slash)) === undefined) return ipv4Problem(s.slice(0, slash));
  if (parseCidr(s) === undefined) return `'${s}': the prefix length must be an integer 0..32`;
  return undefined;
};

/** Addresses an interface cannot own: unspecified, loopback, multicast, limited broadcast. */
function hostAddressProblem(s: string, addr: number): string | undefined {
  if (addr === 0) return `'${s}' is the unspecified address`;
  if (isLoopback(addr)) return `'${s}' is a loopback address`;
  if (isMulticast(addr)) return `'${s}' is a multicast address`;
  if (isReserved(addr)) return `'${s}' is a reserved (class E) address`;
  return undefined;
}

export const ipv4 = checkedString(ipv4Problem);

/** What is wrong with `s` as an address some host may own, or undefined. */
export const hostIPv4Problem = (s: string): string | undefined => ipv4Problem(s) ?? hostAddressProblem(s, ipv4OrUndefined(s)!);

/** An address some host may own (a gateway, a VTEP, an endpoint, a Service IP). */
export const hostIPv4 = checkedString(hostIPv4Problem);

/** What is wrong with `s` as an interface's address with its prefix, or undefined. */
function ifaceAddressProblem(s: string): string | undefined {
  const bad = cidrProblem(s);
  if (bad) return bad;
  const c = parseCidr(s)!;
  const host = hostAddressProblem(s, c.addr);
  if (host) return host;
  if (c.prefixLen <= 30) {
    if (networkOf(c.addr, c.prefixLen) === c.addr) return `${s} is the network address of its subnet, not a host address`;
    if (broadcastOf(c.addr, c.prefixLen) === c.addr) return `${s} is the broadcast address of its subnet`;
  }
  return undefined;
}

/** An interface's address with its prefix, e.g. 10.244.1.1/24. */
export const ifaceAddress = checkedString(ifaceAddressProblem);

/** In cluster mode a bridge's address may be `lease`: the first address of the leased subnet. */
export const LEASE_ADDRESS = 'lease';
const bridgeAddress = checkedString((s) => (s === LEASE_ADDRESS ? undefined : ifaceAddressProblem(s)));

/** A destination subnet: host bits must be clear, as `ip route` insists. */
export const subnet = z
  .string()
  .transform((s) => (s === 'default' ? '0.0.0.0/0' : s))
  .pipe(
    checkedString((s) => {
      const bad = cidrProblem(s);
      if (bad) return bad;
      const c = parseCidr(s)!;
      const net = networkOf(c.addr, c.prefixLen);
      if (net !== c.addr) return `${s} has host bits set (did you mean ${formatCidr({ addr: net, prefixLen: c.prefixLen })}?)`;
      return undefined;
    }),
  );

/** Any MAC in colon form; stored lower-case, the way every output prints it. */
export const mac = checkedString((s) =>
  MAC_RE.test(s) ? undefined : `'${s}' is not a MAC address (six colon-separated hex bytes, e.g. 02:00:00:00:00:01)`,
).transform((s) => s.toLowerCase());

/** A MAC an interface can own: unicast and not all zeros. */
export const unicastMac = checkedString((s) => {
  if (!MAC_RE.test(s)) return `'${s}' is not a MAC address (six colon-separated hex bytes, e.g. 02:00:00:00:00:01)`;
  if (parseInt(s.slice(0, 2), 16) & 1) return `'${s}' is a multicast MAC; an interface MAC must be unicast`;
  if (/^(00:){5}00$/.test(s)) return `'${s}' is the all-zero MAC`;
  return undefined;
}).transform((s) => s.toLowerCase());

/** A Linux interface name: at most IFNAMSIZ-1 = 15 bytes, no '/', ':' or spaces. */
export const ifName = checkedString((s) => {
  if (s.length === 0) return 'must not be empty';
  if (s.length > 15) return `'${s}' is longer than 15 characters (the kernel's IFNAMSIZ limit)`;
  if (!/^[A-Za-z0-9._-]+$/.test(s)) return `'${s}' may contain only A-Z a-z 0-9 . _ -`;
  if (s === '.' || s === '..') return `'${s}' is not a valid interface name`;
  return undefined;
});

/** A Kubernetes DNS-1123 label (namespace, Service and Service port names). */
export const dnsLabel = (max: number) =>
  checkedString((s) =>
    s.length <= max && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s)
      ? undefined
      : `'${s}' must be at most ${max} characters of a-z 0-9 and '-', starting and ending alphanumeric`,
  );

export const int = (min: number, max: number) => z.number().int().min(min).max(max);
export const portNumber = int(1, 65535);
const mtu = int(68, 9000);

// ---- the sections ----

const node = z.strictObject({
  name: checkedString((s) =>
    s.length > 0 && s.length <= 253 && /^[A-Za-z0-9]([-A-Za-z0-9._]*[A-Za-z0-9])?$/.test(s)
      ? undefined
      : `'${s}' is not a valid node name`,
  ),
});

const bridge = z.strictObject({
  name: ifName,
  address: bridgeAddress.optional(),
  mac: unicastMac.optional(),
  ageingSeconds: int(0, 1_000_000).default(300),
  mtu: mtu.default(1500),
});

/** Kinds of port; only TAP devices today (an enum so `vxlan-socket` and others can join). */
export const PORT_TYPES = ['tap'] as const;

const port = z.strictObject({
  name: ifName,
  type: z.enum(PORT_TYPES).default('tap'),
  bridge: ifName.optional(),
  address: ifaceAddress.optional(),
  mac: unicastMac.optional(),
  mtu: mtu.default(1500),
});

const route = z.strictObject({
  dst: subnet,
  via: hostIPv4.optional(),
  dev: ifName.optional(),
  onlink: z.boolean().default(false),
});

const neighbor = z.strictObject({
  ip: hostIPv4,
  mac: unicastMac,
  dev: ifName,
});

export const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer'] as const;

const servicePort = z.strictObject({
  name: dnsLabel(63).optional(),
  protocol: z
    .string()
    .default('TCP')
    .refine((p) => p === 'TCP' || p === 'UDP', {
      error: (i) => (i.input === 'SCTP' ? 'SCTP Services are not supported: nodeplane translates TCP and UDP only' : `'${String(i.input)}' must be TCP or UDP`),
    })
    .transform((p) => p as 'TCP' | 'UDP'),
  port: portNumber,
  targetPort: portNumber.optional(),
  nodePort: portNumber.optional(),
});

/** One port of an endpoint, as an EndpointSlice gives it: the number a Service port's name
 * resolves to on that pod (a named targetPort may differ from pod to pod). */
const endpointPort = z.strictObject({
  name: dnsLabel(63).optional(),
  protocol: z.enum(['TCP', 'UDP']).default('TCP'),
  port: portNumber,
});

const endpoint = z.strictObject({
  ip: hostIPv4,
  ready: z.boolean().default(true),
  // EndpointSlice conditions: serving defaults to ready (filled by the final transform),
  // terminating to false, as Kubernetes reads a slice that leaves them out.
  serving: z.boolean().optional(),
  terminating: z.boolean().default(false),
  nodeName: z.string().min(1).optional(),
  // When present, the endpoint serves only the Service ports named here (by name and
  // protocol), at these numbers; when absent, every Service port at its targetPort.
  ports: z.array(endpointPort).optional(),
});

const service = z.strictObject({
  name: dnsLabel(63),
  namespace: dnsLabel(63).default('default'),
  type: z.enum(SERVICE_TYPES).default('ClusterIP'),
  clusterIP: hostIPv4,
  externalIPs: z.array(hostIPv4).default([]),
  // Used only by type LoadBalancer (nodePort only by NodePort/LoadBalancer); accepted on any
  // type because SPEC §2's example puts both on a ClusterIP Service.
  loadBalancerIP: hostIPv4.optional(),
  sessionAffinity: z.enum(['None', 'ClientIP']).default('None'),
  // Kubernetes accepts 1..86400 seconds for ClientIP affinity.
  sessionAffinityTimeoutSeconds: int(1, 86400).default(10800),
  externalTrafficPolicy: z.enum(['Cluster', 'Local']).default('Cluster'),
  internalTrafficPolicy: z.enum(['Cluster', 'Local']).default('Cluster'),
  ports: z.array(servicePort).min(1),
  endpoints: z.array(endpoint).default([]),
});

const nat = z.strictObject({
  clusterCIDR: subnet,
});

const seconds = (d: number) => int(1, 10_000_000).default(d);
const conntrack = z.strictObject({
  max: int(1, 1 << 26).default(262144),
  timeouts: z
    .strictObject({
      // kube-proxy's --conntrack-tcp-timeout-established and -close-wait (Linux: 5 days, 60 s).
      tcpEstablished: seconds(86400),
      tcpSynSent: seconds(120),
      tcpSynRecv: seconds(60),
      tcpFinWait: seconds(120),
      tcpCloseWait: seconds(3600),
      tcpLastAck: seconds(30),
      tcpTimeWait: seconds(120),
      tcpClose: seconds(10),
      udp: seconds(30),
      udpStream: seconds(120),
      icmp: seconds(30),
      generic: seconds(600),
    })
    .prefault({}),
});

const vxlanPeer = z.strictObject({
  vtep: hostIPv4,
  mac: unicastMac,
  subnet: subnet,
});

const vxlan = z.strictObject({
  name: ifName,
  vni: int(0, 0xffffff),
  port: portNumber.default(8472),
  // Defaults to cluster.publicIP (filled by the final transform; required without a cluster).
  local: hostIPv4.optional(),
  address: ifaceAddress.optional(),
  mac: unicastMac.optional(),
  // 1500 minus the 50 bytes of outer Ethernet/IPv4/UDP/VXLAN headers, as Linux picks.
  mtu: mtu.default(1450),
  peers: z.array(vxlanPeer).default([]),
  // Where the outer packets go: 'port', complete frames through the L3 port that routes to the
  // peer (SPEC §2); 'socket', UDP datagrams through a kernel socket bound to local:port, the
  // machine's own address (an extension of §2, to join machines without an interface of ours).
  underlay: z.enum(['port', 'socket']).default('port'),
});

/** An etcd endpoint: http(s)://host:port as flannel's --etcd-endpoints, or unix(s):///path. */
const etcdEndpoint = checkedString((s) =>
  /^https?:\/\/[^/\s]+\/?$/.test(s) || /^unixs?:\/\/\/\S+$/.test(s)
    ? undefined
    : `'${s}' is not an etcd endpoint (http://host:port, https://host:port or unix:///path/to/socket)`,
);

/** flannel's --etcd-* options; empty strings mean "not set", as flannel's flags default. */
const etcd = z.strictObject({
  endpoints: z.array(etcdEndpoint).min(1).default(['http://127.0.0.1:2379']),
  prefix: checkedString((s) =>
    /^\/[^\s]*[^/\s]$/.test(s) ? undefined : `'${s}' must be an absolute key prefix such as /coreos.com/network (no trailing /)`,
  ).default('/coreos.com/network'),
  caFile: z.string().default(''),
  certFile: z.string().default(''),
  keyFile: z.string().default(''),
  username: z.string().default(''),
  password: z.string().default(''),
});

const cluster = z.strictObject({
  network: subnet,
  // flannel's default when absent: /24, or the network's prefix + 2 for networks smaller than /22.
  subnetLen: int(1, 30).optional(),
  vxlan: ifName,
  publicIP: hostIPv4,
  leaseTTLSeconds: int(1, 10_000_000).default(86400),
  /** Where flanneld's subnet.env is written (its --subnet-file). */
  subnetFile: z.string().min(1).default('/run/flannel/subnet.env'),
  etcd: etcd.prefault({}),
});

/** flannel's SubnetLen when its config names none (pkg/subnet CheckNetworkConfig). */
export function defaultSubnetLen(networkPrefixLen: number): number {
  return networkPrefixLen <= 22 ? 24 : networkPrefixLen + 2;
}

const capture = z.strictObject({
  dir: z.string().min(1).optional(),
  snaplen: int(64, 262144).default(262144),
  /** Bytes (KiB) of records waiting for the writer thread before new ones are dropped and counted. */
  bufferKiB: int(1024, 4_194_304).default(32768),
  /** Ports to record; all when absent. */
  ports: z.array(ifName).optional(),
  /** tcpdump filter syntax, compiled by libpcap when the run starts; empty: every frame. */
  filter: z.string().default(''),
  /** Records dropped frames on an interface named "drop", stage and reason as comment. */
  drops: z.boolean().default(false),
});

const arp = z.strictObject({
  retries: int(1, 100).default(3),
  retryIntervalMs: int(1, 3_600_000).default(1000),
  queueLen: int(0, 1000).default(3),
  reachableMs: int(1, 86_400_000).default(30000),
  staleMs: int(1, 86_400_000).default(60000),
  failedMs: int(0, 3_600_000).default(1000),
  maxEntries: int(1, 1 << 20).default(1024),
});

const fdb = z.strictObject({ maxEntries: int(1, 1 << 22).default(4096) });

// Slot offsets are int32: the pool stays under 2 GiB (4 KiB and 68 KiB slots).
const pool = z.strictObject({
  slots: int(256, 1 << 19).default(8192),
  offloadSlots: int(256, 30_000).default(2048),
});

const icmp = z.strictObject({
  ratePerSec: int(0, 1_000_000).default(1000),
  burst: int(1, 1_000_000).default(50),
  // Per destination, as Linux's icmp_ratelimit (ms per error; 0: no limit) with its burst of 6.
  perHostIntervalMs: int(0, 3_600_000).default(1000),
  perHostBurst: int(1, 1000).default(6),
});

const rawConfig = z.strictObject({
  node,
  bridges: z.array(bridge).default([]),
  ports: z.array(port).default([]),
  routes: z.array(route).default([]),
  neighbors: z.array(neighbor).default([]),
  services: z.array(service).default([]),
  manifests: z.array(z.string().min(1)).default([]),
  nat: nat.optional(),
  conntrack: conntrack.optional(),
  vxlan: z.array(vxlan).default([]),
  cluster: cluster.optional(),
  capture: capture.prefault({}),
  arp: arp.prefault({}),
  fdb: fdb.prefault({}),
  icmp: icmp.prefault({}),
  pool: pool.prefault({}),
  seed: int(0, 0xffffffff).default(1),
});

/** The whole file; the transform fills the defaults that depend on other fields. */
export const configSchema = rawConfig.transform((c, ctx) => ({
  ...c,
  cluster: c.cluster && { ...c.cluster, subnetLen: c.cluster.subnetLen ?? defaultSubnetLen(parseCidr(c.cluster.network)!.prefixLen) },
  vxlan: c.vxlan.map((v, i) => {
    const local = v.local ?? c.cluster?.publicIP;
    if (local === undefined) {
      ctx.addIssue({ code: 'custom', path: ['vxlan', i, 'local'], message: 'required (the underlay source address; in cluster mode it defaults to cluster.publicIP)' });
    }
    return { ...v, local: local ?? '' };
  }),
  conntrack: c.conntrack ?? conntrack.parse({}),
  // Connection tracking is on when something needs it: NAT, Services, or a conntrack section.
  conntrackEnabled: c.nat !== undefined || c.conntrack !== undefined || c.services.length > 0 || c.manifests.length > 0,
  services: c.services.map((s) => ({
    ...s,
    ports: s.ports.map((p) => ({ ...p, targetPort: p.targetPort ?? p.port })),
    endpoints: s.endpoints.map((e) => ({ ...e, serving: e.serving ?? e.ready, nodeName: e.nodeName ?? c.node.name })),
  })),
}));

export type Config = z.output<typeof configSchema>;
/** What a config file may say (defaulted fields optional). */
export type ConfigInput = z.input<typeof configSchema>;
