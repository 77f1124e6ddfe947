/**
 * One node built twice for the differential end-to-end test: once with nodeplane (a Lab)
 * and once with the Linux kernel doing the job — a node namespace with Linux bridges and
 * IPv4 forwarding, pods plugged in with veth pairs. Both twins have the same bridges,
 * addresses, MACs and MTUs, so whatever a pod observes should be the same in both.
 *
 * Both nodes also have an L3 uplink (192.168.50.11/24) with a host outside the cluster
 * behind it (192.168.50.1, no route to the pods), and masquerade what the pods send out of
 * the cluster: the kernel with kube-proxy's and the CNI bridge plugin's iptables rules, and
 * kube-proxy's conntrack timeouts; nodeplane with `nat: { clusterCIDR }`. Each twin lists its
 * connection tracking table in one shape (conntrack-listing.ts).
 *
 * Options give both twins the same extras: static routes on the node and the external host,
 * and Services — nodeplane's `services:`, and on the kernel twin kube-proxy's iptables rules
 * for them (kube-proxy-rules.ts) with the bridge settings of a kube-proxy node: bridged
 * traffic through iptables (br_netfilter) and hairpin mode on the pods' ports.
 * `setServices` changes them while the twins run: nodeplane reads its config again on
 * SIGHUP; the kernel twin gets kube-proxy's next sync (ruleset, stale chains deleted, its UDP
 * conntrack cleanup).
 *
 * Everything lives in namespaces from src/lab/netns.ts; nothing touches the root namespace.
 * IPv6 is disabled in every namespace of both twins so that router solicitations, MLD and
 * DAD frames stay out of the captures.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../src/lab/lab.ts';
import { createNetns, type Netns } from '../../src/lab/netns.ts';
import { type ConntrackRow, parseConntrackList, parseNodeplaneConntrack } from './conntrack-listing.ts';
import { type KubeService, kubeProxyRules } from './kube-proxy-rules.ts';

export interface TwinBridge {
  name: string;
  address: string;
  mac: string;
  mtu: number;
}

export interface TwinPod {
  name: string;
  bridge: string;
  address: string;
  gateway: string;
  /** The pod's eth0 MAC; the same in both twins, so frames compare byte for byte. */
  mac: string;
  mtu: number;
}

export const BRIDGES: TwinBridge[] = [
  { name: 'cni0', address: '10.244.1.1/24', mac: '0a:58:0a:f4:01:01', mtu: 1500 },
  { name: 'cni1', address: '10.244.2.1/24', mac: '0a:58:0a:f4:02:01', mtu: 1400 },
];

// MACs as Kubernetes' bridge plugin derives them: 0a:58 and the pod's IPv4 address.
export const PODS: TwinPod[] = [
  { name: 'pa', bridge: 'cni0', address: '10.244.1.2/24', gateway: '10.244.1.1', mac: '0a:58:0a:f4:01:02', mtu: 1500 },
  { name: 'pb', bridge: 'cni0', address: '10.244.1.3/24', gateway: '10.244.1.1', mac: '0a:58:0a:f4:01:03', mtu: 1500 },
  { name: 'pc', bridge: 'cni1', address: '10.244.2.2/24', gateway: '10.244.2.1', mac: '0a:58:0a:f4:02:02', mtu: 1400 },
];

/** The pods' network: what leaves it is masqueraded. */
export const CLUSTER_CIDR = '10.244.0.0/16';

/** The node's L3 port towards the world outside the cluster. */
export const UPLINK = { name: 'up', address: '192.168.50.11/24', mac: '02:00:00:00:50:11', mtu: 1500 };

/** A host outside the cluster behind the uplink. It has no route to the pods: only masqueraded traffic gets answers. */
export const EXTERNAL = { address: '192.168.50.1/24', mac: '02:00:00:00:50:01', mtu: 1500 };

/** The node's name in both twins: Service endpoints with it are local. */
export const NODE_NAME = 'twin-node';

export interface Route {
  dst: string;
  via: string;
}

/** What a twin may have beyond the topology above; both twins get the same. */
export interface TwinOptions {
  /** Services: nodeplane's `services:`, kube-proxy's iptables rules on the kernel twin. */
  services?: KubeService[];
  /** The node's static routes. */
  routes?: Route[];
  /** The external host's routes (e.g. the Service network through the node). */
  externalRoutes?: Route[];
}

/** The nodeplane config for the topology above. */
export function nodeplaneConfig(opts: TwinOptions = {}): string {
  const lines = ['node:', `  name: ${NODE_NAME}`, 'bridges:'];
  for (const b of BRIDGES) lines.push(`  - { name: ${b.name}, address: ${b.address}, mac: "${b.mac}", mtu: ${b.mtu} }`);
  lines.push('ports:');
  for (const p of PODS) lines.push(`  - { name: ${p.name}, type: tap, bridge: ${p.bridge}, mtu: ${p.mtu} }`);
  lines.push(`  - { name: ${UPLINK.name}, type: tap, address: ${UPLINK.address}, mac: "${UPLINK.mac}", mtu: ${UPLINK.mtu} }`);
  if (opts.routes?.length) lines.push('routes:', ...opts.routes.map((r) => `  - { dst: ${r.dst}, via: ${r.via} }`));
  // YAML takes JSON: the Services as the test wrote them.
  if (opts.services?.length) lines.push(`services: ${JSON.stringify(opts.services)}`);
  lines.push('nat:', `  clusterCIDR: ${CLUSTER_CIDR}`);
  return lines.join('\n') + '\n';
}

export interface Twin {
  readonly kind: 'nodeplane' | 'kernel';
  readonly node: Netns;
  /** The host outside the cluster, behind the uplink; its interface is eth0. */
  readonly external: Netns;
  pod(name: string): Netns;
  /** The node's connection tracking table, as `conntrack -L` shows it. */
  conntrack(): Promise<ConntrackRow[]>;
  /**
   * Replaces the node's Services while it runs: nodeplane reads its config again (SIGHUP);
   * the kernel twin gets kube-proxy's next ruleset and its UDP conntrack cleanup.
   */
  setServices(services: KubeService[]): Promise<void>;
  destroy(): void;
}

/**
 * IPv4 interface settings as the kernel compiles them in (net/ipv4/devinet.c: ipv4_devconf
 * and ipv4_devconf_dflt). A new namespace copies conf/all and conf/default from the root
 * namespace (net.core.devconf_inherit_init_net=0), so a host with, say, rp_filter=2 would leak
 * it into the twin; these are written before any device is created.
 */
const IPV4_CONF_DEFAULTS: Record<string, number> = {
  accept_local: 0,
  accept_redirects: 1,
  arp_accept: 0,
  arp_announce: 0,
  arp_filter: 0,
  arp_ignore: 0,
  arp_notify: 0,
  bc_forwarding: 0,
  bootp_relay: 0,
  drop_gratuitous_arp: 0,
  drop_unicast_in_l2_multicast: 0,
  forwarding: 0,
  log_martians: 0,
  proxy_arp: 0,
  proxy_arp_pvlan: 0,
  route_localnet: 0,
  rp_filter: 0,
  secure_redirects: 1,
  send_redirects: 1,
  shared_media: 1,
  src_valid_mark: 0,
};

/**
 * Neighbour (ARP) parameters as the kernel compiles them in (net/ipv4/arp.c: arp_tbl). New
 * devices clone the root namespace's neigh/default, so they are written per device.
 */
const NEIGH_DEFAULTS: Record<string, number> = {
  mcast_solicit: 3,
  ucast_solicit: 3,
  app_solicit: 0,
  mcast_resolicit: 0,
  retrans_time_ms: 1000,
  base_reachable_time_ms: 30000,
  delay_first_probe_time: 5,
  gc_stale_time: 60,
};

/** Writes sysctls inside `ns` (one `sh` for all: keys whose file is missing are skipped). */
function sysctls(ns: Netns, values: Record<string, number | string>): void {
  const script = Object.entries(values)
    .map(([k, v]) => `f=/proc/sys/${k.replaceAll('.', '/')}; [ -e "$f" ] && echo ${v} > "$f" || true`)
    .join('\n');
  ns.runSync('sh', ['-ec', script], { check: true });
}

/** Reads sysctls inside `ns`; missing keys are left out. */
export function readSysctls(ns: Netns, keys: string[]): Record<string, string> {
  const r = ns.runSync('sh', ['-c', keys.map((k) => `f=/proc/sys/${k.replaceAll('.', '/')}; [ -e "$f" ] && echo "${k}=$(cat "$f")"`).join('\n') + '\ntrue']);
  const out: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1).trim();
  }
  return out;
}

function noIpv6(ns: Netns): void {
  sysctls(ns, { 'net.ipv6.conf.all.disable_ipv6': 1, 'net.ipv6.conf.default.disable_ipv6': 1 });
}

/** The sysctls the kernel twin's node namespace must have: Linux defaults, plus forwarding. */
export function expectedNodeSysctls(): Record<string, string> {
  const out: Record<string, string> = { 'net.ipv4.ip_forward': '1' };
  for (const scope of ['all', 'default', ...BRIDGES.map((b) => b.name), UPLINK.name]) {
    for (const [k, v] of Object.entries(IPV4_CONF_DEFAULTS)) out[`net.ipv4.conf.${scope}.${k}`] = String(k === 'forwarding' ? 1 : v);
  }
  // Turning forwarding on turns accepting redirects off (devinet.c: inet_forward_change).
  out['net.ipv4.conf.all.accept_redirects'] = '0';
  for (const dev of [...BRIDGES.map((b) => b.name), UPLINK.name]) for (const [k, v] of Object.entries(NEIGH_DEFAULTS)) out[`net.ipv4.neigh.${dev}.${k}`] = String(v);
  Object.assign(out, {
    'net.ipv4.icmp_echo_ignore_broadcasts': '1',
    'net.ipv4.icmp_echo_ignore_all': '0',
    'net.ipv4.icmp_ignore_bogus_error_responses': '1',
    'net.ipv4.icmp_ratelimit': '1000',
    'net.ipv4.icmp_ratemask': '6168',
    'net.ipv4.icmp_errors_use_inbound_ifaddr': '0',
    'net.ipv4.ip_default_ttl': '64',
    'net.ipv4.ip_no_pmtu_disc': '0',
  });
  for (const [k, v] of Object.entries(CONNTRACK_SYSCTLS)) out[k] = String(v);
  return out;
}

/** Points the pod's eth0 at the twin's settings: MAC, MTU, no IPv6. */
function shapePod(ns: Netns, p: { mac: string; mtu: number }): void {
  noIpv6(ns);
  ns.ip(['link', 'set', 'eth0', 'address', p.mac, 'mtu', String(p.mtu)]);
}

/** The node run by nodeplane: `nodeplane run` in a namespace, pods on its TAP devices. */
export async function startNodeplaneTwin(dir: string, opts: TwinOptions = {}): Promise<Twin> {
  const lab = await Lab.start({
    config: nodeplaneConfig(opts),
    pods: [...PODS.map((p) => ({ port: p.name, address: p.address, gateway: p.gateway })), { port: UPLINK.name, address: EXTERNAL.address, routes: opts.externalRoutes }],
    dir,
  });
  try {
    noIpv6(lab.node);
    for (const p of PODS) shapePod(lab.pod(p.name), p);
    shapePod(lab.pod(UPLINK.name), EXTERNAL);
  } catch (err) {
    lab.destroy();
    throw err;
  }
  return {
    kind: 'nodeplane',
    node: lab.node,
    external: lab.pod(UPLINK.name),
    pod: (name) => lab.pod(name),
    setServices: async (services) => {
      const reloads = (): number => lab.nodeplaneStderr.split('\n').filter((l) => l.includes('"config reloaded"') || l.includes('reload refused')).length;
      const before = reloads();
      writeFileSync(join(dir, 'nodeplane.yaml'), nodeplaneConfig({ ...opts, services }));
      lab.nodeplane!.kill('SIGHUP');
      for (let i = 0; reloads() === before; i++) {
        if (i === 100) throw new Error(`nodeplane did not reload its config within 10 s of SIGHUP: ${lab.nodeplaneStderr.slice(-1000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const last = lab.nodeplaneStderr.trimEnd().split('\n').filter((l) => l.includes('"config reloaded"') || l.includes('reload refused')).at(-1) ?? '';
      if (!last.includes('"config reloaded"')) throw new Error(`nodeplane refused the new Services: ${last}`);
    },
    conntrack: async () => {
      const r = await runCommand(process.execPath, [NODEPLANE, 'show', 'conntrack', '--json', '--admin', lab.adminSocket]);
      if (r.code !== 0) throw new Error(`nodeplane show conntrack --json failed (${r.code}): ${r.stderr.trim()}`);
      return parseNodeplaneConntrack(r.stdout);
    },
    destroy: () => lab.destroy(),
  };
}

const NODEPLANE = fileURLToPath(new URL('../../bin/nodeplane.js', import.meta.url));

/** Runs a command in this (the test's) namespace, bounded in time. */
function runCommand(cmd: string, args: string[], timeoutMs = 10_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * The node's iptables as kube-proxy and the CNI bridge plugin (ipMasq) leave them for this
 * topology: masquerade what leaves the cluster network, drop forwarded INVALID packets.
 */
const IPTABLES_RULES = [
  ['-t', 'nat', '-A', 'POSTROUTING', '-s', CLUSTER_CIDR, '!', '-d', CLUSTER_CIDR, '-j', 'MASQUERADE'],
  ['-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP'],
];

/**
 * Conntrack settings: kube-proxy's TCP timeouts (--conntrack-tcp-timeout-established and
 * -close-wait), and per-flow packet and byte counters, which `show conntrack` always keeps.
 * These are per namespace and exist once the rules above have loaded nf_conntrack.
 */
const CONNTRACK_SYSCTLS: Record<string, number> = {
  'net.netfilter.nf_conntrack_tcp_timeout_established': 86400,
  'net.netfilter.nf_conntrack_tcp_timeout_close_wait': 3600,
  'net.netfilter.nf_conntrack_acct': 1,
};

/**
 * The bridge settings a node with kube-proxy and the CNI bridge plugin (hairpinMode) has:
 * bridged IPv4 goes through iptables (br_netfilter's bridge-nf-call-iptables, which
 * kube-proxy sets), and each pod's port may send a frame back where it came from (hairpin),
 * so that a pod reaching itself through a Service gets its packets.
 */
function kubeBridgeSettings(node: Netns): void {
  sysctls(node, { 'net.bridge.bridge-nf-call-iptables': 1 });
  const got = readSysctls(node, ['net.bridge.bridge-nf-call-iptables'])['net.bridge.bridge-nf-call-iptables'];
  if (got !== '1') throw new Error(`net.bridge.bridge-nf-call-iptables is ${got ?? 'missing'} in ${node.name}: the kernel twin needs br_netfilter (modprobe br_netfilter)`);
  for (const p of PODS) node.ip(['link', 'set', 'dev', `v${p.name}`, 'type', 'bridge_slave', 'hairpin', 'on']);
}

/** Whether this kernel can give bridged traffic to iptables (br_netfilter); why not otherwise. */
export function brNetfilterProblem(): string | null {
  const ns = createNetns('kbrnf');
  try {
    const r = ns.runSync('cat', ['/proc/sys/net/bridge/bridge-nf-call-iptables']);
    return r.code === 0 ? null : 'br_netfilter is not available (no net.bridge.bridge-nf-call-iptables; modprobe br_netfilter)';
  } finally {
    ns.remove();
  }
}

/** Loads kube-proxy's rules for `services` into the kernel twin's node. */
function loadKubeProxy(node: Netns, services: KubeService[]): void {
  const rules = kubeProxyRules(services, { nodeName: NODE_NAME, clusterCIDR: CLUSTER_CIDR });
  sysctls(node, rules.sysctls);
  const r = node.runSync('iptables-restore', ['-w', '5', '--noflush'], { input: rules.restore });
  if (r.code !== 0) throw new Error(`iptables-restore of kube-proxy's rules failed: ${r.stderr.trim()}\n${rules.restore}`);
  for (const jump of rules.jumps) node.runSync('iptables', ['-w', '5', ...jump], { check: true });
}

/**
 * kube-proxy's next sync: the new ruleset restored over the old (each chain it lists is
 * flushed first), the Service and endpoint chains no longer used deleted, then its conntrack
 * cleanup for UDP — entries to an endpoint that is gone, and entries to a Service port that
 * had no endpoint and now has one (they were made without DNAT).
 */
function syncKubeProxy(node: Netns, before: KubeService[], after: KubeService[]): void {
  const rules = kubeProxyRules(after, { nodeName: NODE_NAME, clusterCIDR: CLUSTER_CIDR });
  const wanted = new Set([...rules.restore.matchAll(/^:(KUBE-\S+)/gm)].map((m) => m[1]));
  const saved = node.runSync('iptables-save', ['-t', 'nat'], { check: true }).stdout;
  const stale = [...saved.matchAll(/^:(KUBE-(?:SVC|SVL|EXT|SEP|FW)-\S+)/gm)].map((m) => m[1]).filter((c) => !wanted.has(c));
  const restore = rules.restore.replace(/\*nat\n/, `*nat\n${stale.map((c) => `:${c} - [0:0]\n`).join('')}`).replace(/COMMIT\n$/, `${stale.map((c) => `-X ${c}\n`).join('')}COMMIT\n`);
  const r = node.runSync('iptables-restore', ['-w', '5', '--noflush'], { input: restore });
  if (r.code !== 0) throw new Error(`iptables-restore of kube-proxy's next rules failed: ${r.stderr.trim()}\n${restore}`);
  const ready = (s: KubeService | undefined): string[] => s?.endpoints.filter((e) => e.ready).map((e) => e.ip) ?? [];
  for (const svc of after) {
    const old = before.find((b) => b.namespace === svc.namespace && b.name === svc.name);
    for (const port of svc.ports.filter((p) => p.protocol === 'UDP')) {
      const where = ['-p', 'udp', '--orig-dst', svc.clusterIP, '--orig-port-dst', String(port.port)];
      // `conntrack -D` exits 1 when it deleted nothing: not an error here.
      if (ready(old).length === 0 && ready(svc).length > 0) node.runSync('conntrack', ['-D', ...where]);
      for (const ip of ready(old).filter((ip) => !ready(svc).includes(ip))) node.runSync('conntrack', ['-D', ...where, '--reply-src', ip]);
    }
  }
}

/** The same node done by the Linux kernel: bridges, forwarding, veth pairs. */
export function startKernelTwin(opts: TwinOptions = {}): Twin {
  const node = createNetns('knode');
  let services: KubeService[] = [];
  const pods = new Map<string, Netns>();
  let external: Netns | undefined;
  const destroy = (): void => {
    for (const ns of pods.values()) ns.remove();
    external?.remove();
    node.remove();
  };
  try {
    noIpv6(node);
    const conf: Record<string, number> = {};
    for (const scope of ['all', 'default', 'lo']) for (const [k, v] of Object.entries(IPV4_CONF_DEFAULTS)) conf[`net.ipv4.conf.${scope}.${k}`] = v;
    conf['net.ipv4.conf.all.accept_source_route'] = 0;
    conf['net.ipv4.conf.default.accept_source_route'] = 1;
    sysctls(node, conf);
    for (const b of BRIDGES) {
      // STP is off by default, so ports forward at once, as nodeplane's do.
      node.ip(['link', 'add', b.name, 'address', b.mac, 'mtu', String(b.mtu), 'type', 'bridge']);
    }
    for (const p of PODS) {
      const ns = createNetns(`k${p.name}`);
      pods.set(p.name, ns);
      noIpv6(ns);
      const host = `v${p.name}`;
      node.ip(['link', 'add', host, 'mtu', String(p.mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'address', p.mac, 'mtu', String(p.mtu), 'netns', ns.name]);
      node.ip(['link', 'set', host, 'master', p.bridge, 'up']);
      ns.ip(['addr', 'add', p.address, 'dev', 'eth0']);
      ns.ip(['link', 'set', 'eth0', 'up']);
      ns.ip(['route', 'add', 'default', 'via', p.gateway]);
    }
    const neigh: Record<string, number> = {};
    for (const b of BRIDGES) {
      // A bridge's MTU follows its smallest port unless set; set it again to pin it.
      node.ip(['link', 'set', b.name, 'mtu', String(b.mtu)]);
      node.ip(['addr', 'add', b.address, 'dev', b.name]);
      node.ip(['link', 'set', b.name, 'up']);
      for (const [k, v] of Object.entries(NEIGH_DEFAULTS)) neigh[`net.ipv4.neigh.${b.name}.${k}`] = v;
    }
    // The uplink: a veth whose other end is the external host's eth0.
    external = createNetns('kext');
    noIpv6(external);
    node.ip(['link', 'add', 'name', UPLINK.name, 'address', UPLINK.mac, 'mtu', String(UPLINK.mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'address', EXTERNAL.mac, 'mtu', String(EXTERNAL.mtu), 'netns', external.name]);
    node.ip(['addr', 'add', UPLINK.address, 'dev', UPLINK.name]);
    node.ip(['link', 'set', 'dev', UPLINK.name, 'up']);
    for (const [k, v] of Object.entries(NEIGH_DEFAULTS)) neigh[`net.ipv4.neigh.${UPLINK.name}.${k}`] = v;
    external.ip(['addr', 'add', EXTERNAL.address, 'dev', 'eth0']);
    external.ip(['link', 'set', 'eth0', 'up']);
    for (const r of opts.externalRoutes ?? []) external.ip(['route', 'add', r.dst, 'via', r.via]);
    for (const r of opts.routes ?? []) node.ip(['route', 'add', r.dst, 'via', r.via]);
    sysctls(node, neigh);
    for (const rule of IPTABLES_RULES) node.runSync('iptables', ['-w', '5', ...rule], { check: true });
    if (opts.services) {
      kubeBridgeSettings(node);
      loadKubeProxy(node, opts.services);
    }
    services = opts.services ?? [];
    sysctls(node, CONNTRACK_SYSCTLS);
    sysctls(node, { 'net.ipv4.ip_forward': 1 });
  } catch (err) {
    destroy();
    throw err;
  }
  const ext = external;
  return {
    kind: 'kernel',
    node,
    external: ext,
    setServices: async (next) => {
      if (services.length === 0) throw new Error('the kernel twin was started without Services (kube-proxy, br_netfilter and hairpin are set up at start)');
      syncKubeProxy(node, services, next);
      services = next;
    },
    conntrack: async () => {
      const r = await node.run('conntrack', ['-L'], { timeoutMs: 10_000 });
      if (r.code !== 0) throw new Error(`conntrack -L in ${node.name} failed (${r.code}): ${r.stderr.trim()}`);
      return parseConntrackList(r.stdout);
    },
    pod: (name) => {
      const ns = pods.get(name);
      if (!ns) throw new Error(`no pod ${name}`);
      return ns;
    },
    destroy,
  };
}

/** A packet capture running in a namespace (tcpdump writing pcap to a pipe). */
export interface Capture {
  /** Stops the capture and returns the pcap bytes. */
  stop(): Promise<Buffer>;
}

/** Starts tcpdump on eth0 in `ns`; resolves once it is listening. */
export async function startCapture(ns: Netns, filter: string, timeoutMs = 30_000): Promise<Capture> {
  const child = ns.spawn('tcpdump', ['-i', 'eth0', '-n', '-U', '--immediate-mode', '-s', '0', '-w', '-', filter], { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => chunks.push(d));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  // A hard limit whatever happens to the test.
  const limit = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  limit.unref();
  await new Promise<void>((resolve, reject) => {
    const onData = (d: string): void => {
      stderr += d;
      if (stderr.includes('listening on')) resolve();
    };
    child.stderr!.setEncoding('utf8').on('data', onData);
    child.on('close', (code) => reject(new Error(`tcpdump in ${ns.name} exited (${code}): ${stderr.trim()}`)));
    setTimeout(() => reject(new Error(`tcpdump in ${ns.name} did not start: ${stderr.trim()}`)), 5000).unref();
  });
  return {
    async stop(): Promise<Buffer> {
      child.kill('SIGINT');
      const kill = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(kill);
      clearTimeout(limit);
      return Buffer.concat(chunks);
    },
  };
}

/**
 * Dissects pcap bytes with tshark: one row per frame, one column per field; a field that
 * occurs more than once in a frame (an ICMP error's quoted header) lists its values joined
 * with ','. `prefs` are tshark preferences (`-o`), e.g. 'ip.check_checksum:TRUE'.
 */
export function dissect(pcap: Buffer, fields: string[], prefs: string[] = []): Promise<string[][]> {
  // tshark reads pcap from a regular file only.
  const dir = mkdtempSync(join(tmpdir(), 'nodeplane-dissect-'));
  const file = join(dir, 'capture.pcap');
  writeFileSync(file, pcap);
  return new Promise<string[][]>((resolve, reject) => {
    const args = ['-r', file, ...prefs.flatMap((p) => ['-o', p]), '-T', 'fields', '-E', 'occurrence=a', ...fields.flatMap((f) => ['-e', f])];
    const child = spawn('tshark', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`tshark failed (${code}): ${err.trim()}`));
      else resolve(out.split('\n').filter((l) => l.length > 0).map((l) => l.split('\t')));
    });
  }).finally(() => rmSync(dir, { recursive: true, force: true }));
}
