/**
 * Cross-reference checks: the rules that relate one part of a config to another.
 *
 * Input: a `Config` that already passed the schema (every value well-formed on its own).
 * Output: every problem found, each a `path: message` line such as
 * `ports[2].bridge: no bridge named cni1`; an empty list means the config is coherent.
 *
 * The rules mirror what Linux would refuse or what would surely misbehave at run time:
 * bridges, ports and vxlan devices share one interface namespace; `dev` in routes and
 * neighbors must be a router interface (a bridge with an address, an L3 port, a vxlan
 * device); a gateway must be on a connected subnet unless the route says `onlink`;
 * subnets of different interfaces must not overlap; Service IPs and ports are unique.
 * (The Services of `manifests` are checked against these when the manifests are read:
 * manifest-set.ts.)
 *
 * Cluster mode (`cluster:`) adds its own: the device named by cluster.vxlan exists, has no
 * static peers and no address (both come from etcd), publicIP is an L3 port's address (the
 * machine's own with a socket underlay), the
 * subnets fit the network as flannel requires, and `address: lease` appears only in cluster
 * mode, on one bridge. A bridge whose address is `lease` has no address yet: checks that need
 * one skip it here and run again on the config the lease completes (cluster/lease-config.ts).
 */
import { type Cidr, cidrContains, cidrsOverlap, formatCidr, formatIpv4, parseIpv4, subnetOf } from '../wire/ipv4-address.ts';
import { type Config, LEASE_ADDRESS, parseCidr } from './schema.ts';

/** A router interface or a port, as the checks see it. */
interface Iface {
  name: string;
  kind: 'bridge' | 'port' | 'vxlan';
  path: string; // e.g. `bridges[0]`
  /** The interface's own address, when it has one. */
  addr?: Cidr;
  /** True for bridges with an address, L3 ports and vxlan devices. */
  router: boolean;
  /** For an L2 port: its bridge. */
  bridge?: string;
}

/** The subnet an address makes directly reachable; a /32 makes none beyond itself. */
function connectedSubnet(i: Iface): Cidr | undefined {
  return i.addr && i.addr.prefixLen < 32 ? subnetOf(i.addr) : undefined;
}

function describeSubnet(i: Iface): string {
  const s = connectedSubnet(i);
  return s ? formatCidr(s) : i.addr ? `only ${formatCidr(i.addr)}` : 'it has no address';
}

function collectInterfaces(c: Config, errors: string[]): Map<string, Iface> {
  const byName = new Map<string, Iface>();
  const all: Iface[] = [
    ...c.bridges.map((b, i): Iface => ({
      name: b.name,
      kind: 'bridge',
      path: `bridges[${i}]`,
      addr: b.address ? parseCidr(b.address) : undefined,
      router: b.address !== undefined,
    })),
    ...c.ports.map((p, i): Iface => ({
      name: p.name,
      kind: 'port',
      path: `ports[${i}]`,
      addr: p.address ? parseCidr(p.address) : undefined,
      router: p.address !== undefined && p.bridge === undefined,
      bridge: p.bridge,
    })),
    ...c.vxlan.map((v, i): Iface => ({
      name: v.name,
      kind: 'vxlan',
      path: `vxlan[${i}]`,
      addr: v.address ? parseCidr(v.address) : undefined,
      router: true,
    })),
  ];
  for (const iface of all) {
    const first = byName.get(iface.name);
    if (first) errors.push(`${iface.path}.name: ${iface.name} is already the name of ${first.path}`);
    else byName.set(iface.name, iface);
  }
  return byName;
}

function checkPorts(c: Config, errors: string[]): void {
  const bridges = new Set(c.bridges.map((b) => b.name));
  c.ports.forEach((p, i) => {
    if (p.bridge !== undefined && !bridges.has(p.bridge)) errors.push(`ports[${i}].bridge: no bridge named ${p.bridge}`);
    if (p.bridge !== undefined && p.address !== undefined) {
      errors.push(`ports[${i}].address: a port of bridge ${p.bridge} cannot have an address (give it to the bridge)`);
    }
    if (p.type === 'tap' && p.bridge === undefined && p.address === undefined) {
      errors.push(`ports[${i}]: needs bridge (an L2 port) or address (an L3 port)`);
    }
  });
}

/** Same address twice, or connected subnets of two interfaces overlapping. */
function checkAddresses(ifaces: Iface[], errors: string[]): void {
  const withAddr = ifaces.filter((i) => i.addr && !(i.kind === 'port' && i.bridge !== undefined));
  for (let j = 0; j < withAddr.length; j++) {
    const b = withAddr[j]!;
    for (let k = 0; k < j; k++) {
      const a = withAddr[k]!;
      if (a.addr!.addr === b.addr!.addr) {
        errors.push(`${b.path}.address: ${formatIpv4(b.addr!.addr)} is already the address of ${a.path} (${a.name})`);
        break;
      }
      const sa = connectedSubnet(a);
      const sb = connectedSubnet(b);
      if (sa && sb && cidrsOverlap(sa, sb)) {
        errors.push(`${b.path}.address: ${formatCidr(b.addr!)} overlaps the subnet of ${a.path} (${a.name}, ${formatCidr(sa)})`);
        break;
      }
    }
  }
}

/** Resolves a `dev` to a router interface, or explains why it is not one. */
function routerDev(byName: Map<string, Iface>, dev: string, path: string, errors: string[]): Iface | undefined {
  const iface = byName.get(dev);
  if (!iface) {
    errors.push(`${path}: no interface named ${dev}`);
    return undefined;
  }
  if (iface.router) return iface;
  if (iface.kind === 'bridge') errors.push(`${path}: bridge ${dev} has no address, so it is not a router interface`);
  else if (iface.bridge !== undefined) errors.push(`${path}: ${dev} is an L2 port of bridge ${iface.bridge}; name the bridge instead`);
  else errors.push(`${path}: ${dev} has no address, so it is not a router interface`);
  return undefined;
}

function ownAddress(ifaces: Iface[], addr: number): Iface | undefined {
  return ifaces.find((i) => i.router && i.addr?.addr === addr);
}

function checkRoutes(c: Config, byName: Map<string, Iface>, ifaces: Iface[], errors: string[]): void {
  // Routes with a dev and no gateway are link-scope: like Linux, gateways may sit on them.
  const linkRoutes: { dev: string; dst: Cidr }[] = c.routes
    .filter((r) => r.dev !== undefined && r.via === undefined)
    .map((r) => ({ dev: r.dev!, dst: parseCidr(r.dst)! }));
  const onLink = (addr: number, dev?: string): boolean =>
    ifaces.some((i) => i.router && (dev === undefined || i.name === dev) && connectedSubnet(i) && cidrContains(connectedSubnet(i)!, addr)) ||
    linkRoutes.some((r) => (dev === undefined || r.dev === dev) && cidrContains(r.dst, addr));

  const seen = new Map<string, number>();
  c.routes.forEach((r, i) => {
    const at = `routes[${i}]`;
    const dst = parseCidr(r.dst)!;
    const key = formatCidr(dst);
    const first = seen.get(key);
    if (first !== undefined) errors.push(`${at}.dst: ${key} is already the destination of routes[${first}]`);
    else seen.set(key, i);
    const connected = ifaces.find((f) => f.router && connectedSubnet(f) && formatCidr(connectedSubnet(f)!) === key);
    if (connected) errors.push(`${at}.dst: ${key} is already the connected subnet of ${connected.name}`);

    if (r.via === undefined && r.dev === undefined) errors.push(`${at}: needs via or dev`);
    if (r.onlink && r.dev === undefined) errors.push(`${at}.onlink: needs dev (the device the gateway is directly reachable on)`);
    const dev = r.dev !== undefined ? routerDev(byName, r.dev, `${at}.dev`, errors) : undefined;
    if (r.via === undefined) return;
    const via = parseIpv4(r.via);
    const own = ownAddress(ifaces, via);
    if (own) {
      errors.push(`${at}.via: ${r.via} is this node's own address (${own.path}, ${own.name})`);
      return;
    }
    if (r.onlink) return;
    if (r.dev !== undefined) {
      if (dev && !onLink(via, dev.name)) {
        errors.push(`${at}.via: ${r.via} is not on a subnet of ${dev.name} (${describeSubnet(dev)}); add onlink: true if it is reachable anyway`);
      }
    } else if (!onLink(via)) {
      errors.push(`${at}.via: ${r.via} is not on any connected subnet`);
    }
  });
}

function checkNeighbors(c: Config, byName: Map<string, Iface>, ifaces: Iface[], errors: string[]): void {
  const onlinkDevs = new Set(c.routes.filter((r) => r.onlink && r.dev !== undefined).map((r) => r.dev!));
  const seen = new Map<string, number>();
  c.neighbors.forEach((n, i) => {
    const at = `neighbors[${i}]`;
    const key = `${n.dev} ${n.ip}`;
    const first = seen.get(key);
    if (first !== undefined) errors.push(`${at}.ip: ${n.ip} on ${n.dev} is already in neighbors[${first}]`);
    else seen.set(key, i);
    const dev = routerDev(byName, n.dev, `${at}.dev`, errors);
    const ip = parseIpv4(n.ip);
    const own = ownAddress(ifaces, ip);
    if (own) {
      errors.push(`${at}.ip: ${n.ip} is this node's own address (${own.path}, ${own.name})`);
      return;
    }
    if (!dev || dev.kind === 'vxlan' || onlinkDevs.has(dev.name)) return;
    const sub = connectedSubnet(dev);
    if (!sub || !cidrContains(sub, ip)) errors.push(`${at}.ip: ${n.ip} is not on a subnet of ${dev.name} (${describeSubnet(dev)})`);
  });
}

function checkVxlan(c: Config, ifaces: Iface[], errors: string[]): void {
  const l3Ports = ifaces.filter((i) => i.kind === 'port' && i.router);
  const ids = new Map<string, number>();
  const peerSubnets: { path: string; subnet: Cidr }[] = [];
  c.vxlan.forEach((v, i) => {
    const at = `vxlan[${i}]`;
    const local = parseIpv4(v.local);
    if (v.underlay === 'socket') {
      // The machine's own address, where the kernel's socket binds: none of ours.
      const other = ownAddress(ifaces, local);
      if (other) errors.push(`${at}.local: ${v.local} is the address of ${other.kind === 'bridge' ? 'bridge' : other.kind} ${other.name}; with underlay: socket it must be the machine's own address, where a kernel UDP socket binds`);
    } else if (!l3Ports.some((p) => p.addr!.addr === local)) {
      const other = ownAddress(ifaces, local);
      const hint = other ? ` (it is the address of ${other.kind === 'bridge' ? 'bridge' : other.kind} ${other.name})` : '';
      errors.push(`${at}.local: ${v.local} is not the address of an L3 port${hint}`);
    }
    const id = `${v.vni}/${v.port}/${v.local}`;
    const first = ids.get(id);
    if (first !== undefined) errors.push(`${at}.vni: VNI ${v.vni} on ${v.local} port ${v.port} is already used by vxlan[${first}] (${c.vxlan[first]!.name})`);
    else ids.set(id, i);

    const vteps = new Map<string, number>();
    v.peers.forEach((p, k) => {
      const pat = `${at}.peers[${k}]`;
      const seen = vteps.get(p.vtep);
      if (seen !== undefined) errors.push(`${pat}.vtep: ${p.vtep} is already ${at}.peers[${seen}]`);
      else vteps.set(p.vtep, k);
      const own = ownAddress(ifaces, parseIpv4(p.vtep));
      if (own) errors.push(`${pat}.vtep: ${p.vtep} is this node's own address (${own.path}, ${own.name})`);

      const subnet = parseCidr(p.subnet)!;
      const clash = peerSubnets.find((o) => cidrsOverlap(o.subnet, subnet));
      if (clash) errors.push(`${pat}.subnet: ${p.subnet} overlaps ${clash.path}.subnet (${formatCidr(clash.subnet)})`);
      const local = ifaces.find((f) => f.router && connectedSubnet(f) && cidrsOverlap(connectedSubnet(f)!, subnet));
      if (local) errors.push(`${pat}.subnet: ${p.subnet} overlaps the subnet of ${local.path} (${local.name}, ${formatCidr(connectedSubnet(local)!)})`);
      peerSubnets.push({ path: pat, subnet });
    });
  });
}

function checkCluster(c: Config, ifaces: Iface[], errors: string[]): void {
  const leased = c.bridges.flatMap((b, i) => (b.address === LEASE_ADDRESS ? [i] : []));
  const cl = c.cluster;
  if (!cl) {
    for (const i of leased) errors.push(`bridges[${i}].address: 'lease' needs a cluster section (the address comes from the node's leased subnet)`);
    return;
  }
  for (const i of leased.slice(1)) errors.push(`bridges[${i}].address: 'lease' is already the address of bridges[${leased[0]}]; one bridge takes the leased subnet`);
  const network = parseCidr(cl.network)!;
  if (cl.subnetLen < network.prefixLen + 2) {
    errors.push(`cluster.subnetLen: /${cl.subnetLen} must be at least /${network.prefixLen + 2} so that ${cl.network} holds four subnets (flannel's rule)`);
  }
  const v = c.vxlan.findIndex((d) => d.name === cl.vxlan);
  if (v < 0) errors.push(`cluster.vxlan: no vxlan device named ${cl.vxlan}`);
  else {
    const dev = c.vxlan[v]!;
    if (dev.peers.length > 0) errors.push(`vxlan[${v}].peers: not allowed on ${dev.name} in cluster mode; its peers come from the other nodes' leases in etcd`);
    if (dev.address !== undefined) errors.push(`vxlan[${v}].address: not allowed on ${dev.name} in cluster mode; it takes the leased subnet's network address (a.b.c.0/32)`);
    if (dev.local !== cl.publicIP) errors.push(`vxlan[${v}].local: ${dev.local} is not cluster.publicIP (${cl.publicIP}), the address the other nodes send to`);
  }
  const publicIP = parseIpv4(cl.publicIP);
  // With a socket underlay the public address is the machine's (the kernel's), not a port's.
  const socketUnderlay = v >= 0 && c.vxlan[v]!.underlay === 'socket';
  if (!socketUnderlay && !ifaces.some((i) => i.kind === 'port' && i.router && i.addr?.addr === publicIP)) {
    errors.push(`cluster.publicIP: ${cl.publicIP} is not the address of an L3 port`);
  }
  const e = cl.etcd;
  if ((e.certFile === '') !== (e.keyFile === '')) errors.push('cluster.etcd: certFile and keyFile go together (a client certificate and its key)');
  if (e.password !== '' && e.username === '') errors.push('cluster.etcd.password: needs username');
}

function checkServices(c: Config, errors: string[]): void {
  const names = new Map<string, number>();
  const clusterIPs = new Map<string, number>();
  const nodePorts = new Map<string, string>();
  c.services.forEach((s, i) => {
    const at = `services[${i}]`;
    const id = `${s.namespace}/${s.name}`;
    const dupName = names.get(id);
    if (dupName !== undefined) errors.push(`${at}.name: ${id} is already defined by services[${dupName}]`);
    else names.set(id, i);
    const dupIP = clusterIPs.get(s.clusterIP);
    if (dupIP !== undefined) {
      const o = c.services[dupIP]!;
      errors.push(`${at}.clusterIP: ${s.clusterIP} is already used by services[${dupIP}] (${o.namespace}/${o.name})`);
    } else clusterIPs.set(s.clusterIP, i);

    const portKeys = new Map<string, number>();
    const portNames = new Map<string, number>();
    s.ports.forEach((p, k) => {
      const pat = `${at}.ports[${k}]`;
      const key = `${p.port}/${p.protocol}`;
      const dup = portKeys.get(key);
      if (dup !== undefined) errors.push(`${pat}.port: ${key} is already used by ${at}.ports[${dup}]`);
      else portKeys.set(key, k);
      if (p.name === undefined) {
        if (s.ports.length > 1) errors.push(`${pat}.name: required when a Service has more than one port`);
      } else {
        const dupN = portNames.get(p.name);
        if (dupN !== undefined) errors.push(`${pat}.name: ${p.name} is already used by ${at}.ports[${dupN}]`);
        else portNames.set(p.name, k);
      }
      // SPEC §2's own example gives a ClusterIP Service a nodePort (and a loadBalancerIP):
      // such fields are accepted and take effect only for the types that use them.
      if (p.nodePort === undefined || s.type === 'ClusterIP') return;
      const nkey = `${p.nodePort}/${p.protocol}`;
      const dupNP = nodePorts.get(nkey);
      if (dupNP !== undefined) errors.push(`${pat}.nodePort: ${nkey} is already used by ${dupNP}`);
      else nodePorts.set(nkey, pat);
    });

    const eps = new Map<string, number>();
    s.endpoints.forEach((e, k) => {
      const dup = eps.get(e.ip);
      if (dup !== undefined) errors.push(`${at}.endpoints[${k}].ip: ${e.ip} is already ${at}.endpoints[${dup}]`);
      else eps.set(e.ip, k);
    });
  });
}

function checkCapture(c: Config, errors: string[]): void {
  const ports = new Set(c.ports.map((p) => p.name));
  c.capture.ports?.forEach((name, k) => {
    if (!ports.has(name)) errors.push(`capture.ports[${k}]: no port named ${name}`);
  });
}

/** Every cross-reference problem of a schema-valid config, in file order per section. */
export function crossCheck(c: Config): string[] {
  const errors: string[] = [];
  const byName = collectInterfaces(c, errors);
  const ifaces = [...byName.values()];
  checkPorts(c, errors);
  checkAddresses(ifaces, errors);
  checkRoutes(c, byName, ifaces, errors);
  checkNeighbors(c, byName, ifaces, errors);
  checkVxlan(c, ifaces, errors);
  checkCluster(c, ifaces, errors);
  checkServices(c, errors);
  checkCapture(c, errors);
  return errors;
}
