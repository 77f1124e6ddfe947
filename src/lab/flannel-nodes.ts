/**
 * Flannel nodes for the lab: nodeplane nodes with flannel.1 (static peers, or a lease from
 * etcd), kernel flannel nodes built as flanneld and the CNI bridge plugin build them, and the
 * underlay that joins them. Used by `nodeplane demo --nodes N`, the VXLAN end-to-end tests and
 * the overlay benchmark. Everything lives in namespaces this process creates (src/lab/netns.ts).
 *
 * Node n owns the pod subnet 10.244.n.0/24 (flannel.1 at 10.244.n.0/32, cni0 at 10.244.n.1,
 * its first pod at 10.244.n.2) and the underlay address 192.168.50.(10 + n), VTEP MAC
 * 0e:00:00:00:00:0n — flannel's layout for a /16 cluster network.
 */
import { Lab, type PodSpec } from './lab.ts';
import { createNetns, type Netns } from './netns.ts';

export interface FlannelPeer {
  /** Underlay address. */
  vtep: string;
  mac: string;
  /** Pod subnet, e.g. 10.244.1.0/24 (its network address is the peer's flannel.1 address). */
  subnet: string;
}

/** Node n of a lab cluster: its underlay address, VTEP MAC and pod subnet. */
export interface FlannelNodeId {
  n: number;
  local: string;
  mac: string;
  subnet: string;
}

export function flannelNodeId(n: number): FlannelNodeId {
  if (!Number.isInteger(n) || n < 1 || n > 99) throw new Error(`lab node number ${n}: 1..99`);
  const hex = n.toString(16).padStart(2, '0');
  return { n, local: `192.168.50.${10 + n}`, mac: `0e:00:00:00:00:${hex}`, subnet: `10.244.${n}.0/24` };
}

export const peerOf = (x: FlannelNodeId): FlannelPeer => ({ vtep: x.local, mac: x.mac, subnet: x.subnet });

/**
 * nodeplane's config for flannel node `n`: pod port pa on cni0, underlay port up, flannel.1
 * with `peers`; `extra` is appended (services, nat, ...). With `underlay: 'socket'` there is
 * no port up: flannel.1 sends and receives through a kernel UDP socket on `local`, an address
 * the node's namespace must have before nodeplane starts.
 */
export function nodeplaneFlannelConfig(o: { n: number; local: string; mac: string; peers: FlannelPeer[]; extra?: string; underlay?: 'port' | 'socket' }): string {
  const net = `10.244.${o.n}`;
  const hex = o.n.toString(16).padStart(2, '0');
  const socket = o.underlay === 'socket';
  return `node:
  name: node${o.n}
bridges:
  - { name: cni0, address: ${net}.1/24, mac: "0a:58:0a:f4:${hex}:01" }
ports:
  - { name: pa, type: tap, bridge: cni0 }
${socket ? '' : `  - { name: up, type: tap, address: ${o.local}/24, mac: "02:00:00:00:50:${hex}" }\n`}vxlan:
  - name: flannel.1
    vni: 1
    port: 8472
    local: ${o.local}
    address: ${net}.0/32
    mac: "${o.mac}"
    mtu: 1450${socket ? '\n    underlay: socket' : ''}
    peers:
${o.peers.map((p) => `      - { vtep: ${p.vtep}, mac: "${p.mac}", subnet: ${p.subnet} }`).join('\n')}
${o.extra ?? ''}`;
}

/**
 * Starts `nodeplane run` as flannel node `id` with `peers`: pod pa at 10.244.n.2 (MTU 1450,
 * as flannel gives pods) unless `pods` says otherwise; the underlay TAP `up` stays in the
 * node's namespace for an Underlay to take.
 */
export async function startFlannelNode(o: {
  dir: string;
  id: FlannelNodeId;
  peers: FlannelPeer[];
  extra?: string;
  pods?: PodSpec[];
  runArgs?: string[];
  capture?: boolean;
  startTimeoutMs?: number;
  /** 'socket': flannel.1 on a kernel UDP socket, in `node` (which has the address). */
  underlay?: 'port' | 'socket';
  node?: Netns;
}): Promise<Lab> {
  const net = `10.244.${o.id.n}`;
  const pods = o.pods ?? [{ port: 'pa', address: `${net}.2/24`, gateway: `${net}.1` }];
  const lab = await Lab.start({
    config: nodeplaneFlannelConfig({ n: o.id.n, local: o.id.local, mac: o.id.mac, peers: o.peers, extra: o.extra, underlay: o.underlay }),
    pods,
    dir: o.dir,
    runArgs: o.runArgs,
    capture: o.capture,
    startTimeoutMs: o.startTimeoutMs,
    node: o.node,
  });
  for (const p of pods) if (p.port !== 'up') lab.pod(p.port).ip(['link', 'set', 'eth0', 'mtu', '1450']);
  return lab;
}

/**
 * nodeplane's config for flannel node `n` in cluster mode: cni0 takes the leased subnet's
 * first address, flannel.1 its network address, the peers come from the other leases in etcd
 * at `endpoint`; `subnetFile` (flanneld's subnet.env) naming 10.244.n.0/24 beforehand makes
 * the node lease that subnet, as flanneld reuses FLANNEL_SUBNET.
 */
export function clusterFlannelConfig(o: { n: number; endpoint: string; subnetFile: string; leaseTTLSeconds?: number }): string {
  const id = flannelNodeId(o.n);
  const hex = o.n.toString(16).padStart(2, '0');
  return `node:
  name: node${o.n}
bridges:
  - { name: cni0, address: lease }
ports:
  - { name: pa, type: tap, bridge: cni0 }
  - { name: up, type: tap, address: ${id.local}/24, mac: "02:00:00:00:50:${hex}" }
vxlan:
  - { name: flannel.1, vni: 1 }
cluster:
  network: 10.244.0.0/16
  vxlan: flannel.1
  publicIP: ${id.local}
  leaseTTLSeconds: ${o.leaseTTLSeconds ?? 3600}
  subnetFile: ${o.subnetFile}
  etcd:
    endpoints: [${o.endpoint}]
`;
}

/** flanneld's subnet.env for node `n` of the lab cluster (10.244.n.0/24 of 10.244.0.0/16). */
export function subnetEnv(n: number): string {
  return `FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.${n}.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n`;
}

export interface KernelFlannelNode {
  node: Netns;
  pod: Netns;
  podIp: string;
}

/**
 * Makes `node` (with `underlayDev` up and addressed `local`) a kernel flannel node for subnet
 * `10.244.<n>.0/24`, VTEP MAC `mac`, with one pod at 10.244.<n>.5 in a new namespace: flannel.1
 * (`type vxlan id 1 dstport 8472 nolearning`, MTU 1450, the subnet's network address /32),
 * cni0 with the subnet's first address, the pod on a veth with MTU 1450, and per peer the
 * route, permanent neighbour and FDB entry flanneld adds.
 */
export function kernelFlannelNode(node: Netns, o: { n: number; local: string; underlayDev: string; mac: string; peers: FlannelPeer[] }): KernelFlannelNode {
  const net = `10.244.${o.n}`;
  const sh = (args: string[]): string => node.ip(args);
  node.runSync('sysctl', ['-qw', 'net.ipv4.ip_forward=1'], { check: true });
  sh(['link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'dstport', '8472', 'local', o.local, 'dev', o.underlayDev, 'nolearning']);
  sh(['link', 'set', 'flannel.1', 'address', o.mac, 'mtu', '1450']);
  sh(['addr', 'add', `${net}.0/32`, 'dev', 'flannel.1']);
  sh(['link', 'set', 'flannel.1', 'up']);
  sh(['link', 'add', 'cni0', 'type', 'bridge']);
  sh(['addr', 'add', `${net}.1/24`, 'dev', 'cni0']);
  sh(['link', 'set', 'cni0', 'mtu', '1450', 'up']);
  const pod = createNetns(`pod${o.n}`);
  sh(['link', 'add', `veth${o.n}`, 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.name]);
  sh(['link', 'set', `veth${o.n}`, 'master', 'cni0', 'up']);
  pod.ip(['addr', 'add', `${net}.5/24`, 'dev', 'eth0']);
  pod.ip(['link', 'set', 'eth0', 'mtu', '1450', 'up']);
  pod.ip(['link', 'set', 'lo', 'up']);
  pod.ip(['route', 'add', 'default', 'via', `${net}.1`]);
  for (const p of o.peers) {
    const overlay = p.subnet.split('/')[0];
    sh(['route', 'add', p.subnet, 'via', overlay, 'dev', 'flannel.1', 'onlink']);
    sh(['neigh', 'add', overlay, 'lladdr', p.mac, 'dev', 'flannel.1', 'nud', 'permanent']);
    node.runSync('bridge', ['fdb', 'add', p.mac, 'dev', 'flannel.1', 'dst', p.vtep, 'self', 'permanent'], { check: true });
  }
  return { node, pod, podIp: `${net}.5` };
}

/** Two kernel flannel nodes (nodes 1 and 2) on a veth underlay, each with a pod at 10.244.n.5. */
export function kernelFlannelPair(): { nodes: [KernelFlannelNode, KernelFlannelNode]; remove(): void } {
  const made: Netns[] = [];
  const remove = (): void => {
    for (const ns of made.reverse()) ns.remove();
  };
  try {
    const ids = [flannelNodeId(1), flannelNodeId(2)];
    const [n1, n2] = ids.map((id) => {
      const ns = createNetns(`k${id.n}`);
      made.push(ns);
      return ns;
    });
    n1.ip(['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n2.name]);
    const nodes = ([n1, n2] as const).map((ns, i) => {
      const id = ids[i];
      ns.ip(['addr', 'add', `${id.local}/24`, 'dev', 'eth0']);
      ns.ip(['link', 'set', 'eth0', 'up']);
      const k = kernelFlannelNode(ns, { n: id.n, local: id.local, underlayDev: 'eth0', mac: id.mac, peers: [peerOf(ids[1 - i])] });
      made.push(k.pod);
      return k;
    });
    return { nodes: [nodes[0], nodes[1]], remove };
  } catch (err) {
    remove();
    throw err;
  }
}

/**
 * The underlay: a namespace whose bridge br0 joins the nodes' underlay TAPs (192.168.50.0/24),
 * as a switch joins machines. With `wire`, each node hangs off br0 through a veth pair whose
 * ends have checksum offload and segmentation turned off (ethtool), so that what crosses it
 * is what a real wire carries: super-frames cut into segments, every checksum complete. A
 * capture on br0 (promiscuous: a bridge then passes every frame it forwards up to itself too)
 * or on a node's `wN` end then shows the wire format. `address` gives br0 an address on the
 * underlay, a host outside the cluster.
 */
export class Underlay {
  readonly ns: Netns;

  private constructor(readonly wire: boolean) {
    this.ns = createNetns('underlay');
    this.ns.runSync('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    this.ns.ip(['link', 'add', 'br0', 'type', 'bridge']);
    this.ns.ip(['link', 'set', 'br0', 'up']);
  }

  static create(opts: { wire?: boolean; address?: string } = {}): Underlay {
    const u = new Underlay(opts.wire ?? false);
    try {
      if (opts.address) u.ns.ip(['addr', 'add', opts.address, 'dev', 'br0']);
    } catch (err) {
      u.remove();
      throw err;
    }
    return u;
  }

  /** Moves node `n`'s underlay TAP (`port` in the lab's node namespace) onto the underlay. */
  attach(lab: Lab, n: number, port = 'up'): void {
    const tap = `tap${n}`;
    lab.node.ip(['link', 'set', 'dev', port, 'name', tap]);
    lab.node.ip(['link', 'set', 'dev', tap, 'netns', this.ns.name]);
    if (!this.wire) {
      this.ns.ip(['link', 'set', 'dev', tap, 'master', 'br0', 'up']);
      return;
    }
    // tapN → bN → (veth vN … wN) → br0: the veth does the cutting and checksumming.
    const br = `b${n}`;
    this.ns.ip(['link', 'add', br, 'type', 'bridge']);
    this.ns.ip(['link', 'add', `v${n}`, 'type', 'veth', 'peer', 'name', `w${n}`]);
    for (const end of [`v${n}`, `w${n}`]) {
      this.ns.runSync('ethtool', ['-K', end, 'tx', 'off', 'tso', 'off', 'gso', 'off', 'gro', 'off'], { check: true });
    }
    this.ns.ip(['link', 'set', 'dev', tap, 'master', br, 'up']);
    this.ns.ip(['link', 'set', 'dev', `v${n}`, 'master', br, 'up']);
    this.ns.ip(['link', 'set', 'dev', `w${n}`, 'master', 'br0', 'up']);
    this.ns.ip(['link', 'set', br, 'up']);
  }

  remove(): void {
    this.ns.remove();
  }
}
