/**
 * A flannel node built from the Linux kernel, for the VXLAN end-to-end tests: in a namespace
 * that already has its underlay interface with an address, the devices and entries flanneld
 * and the CNI bridge plugin make — flannel.1 (`type vxlan id 1 dstport 8472 nolearning`,
 * MTU 1450, the subnet's network address /32), cni0 with the subnet's first address, a pod
 * namespace on a veth with MTU 1450 — and, per peer, the route, permanent neighbour and FDB
 * entry flanneld adds. Everything lives in namespaces the caller created (src/lab).
 */
import { createNetns, type Netns } from '../../src/lab/netns.ts';

export interface FlannelPeer {
  /** Underlay address. */
  vtep: string;
  mac: string;
  /** Pod subnet, e.g. 10.244.1.0/24 (its network address is the peer's flannel.1 address). */
  subnet: string;
}

export interface KernelFlannelNode {
  node: Netns;
  pod: Netns;
  podIp: string;
}

/**
 * Makes `node` (with `underlayDev` up and addressed `local`) a flannel node for subnet
 * `10.244.<n>.0/24`, VTEP MAC `mac`, with one pod at 10.244.<n>.5 in a new namespace.
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

/** nodeplane's config for a flannel node: pod port pa on cni0, underlay port up, flannel.1 with `peers`. */
export function nodeplaneFlannelConfig(o: { n: number; local: string; mac: string; peers: FlannelPeer[] }): string {
  const net = `10.244.${o.n}`;
  return `node:
  name: node${o.n}
bridges:
  - { name: cni0, address: ${net}.1/24, mac: "0a:58:0a:f4:0${o.n}:01" }
ports:
  - { name: pa, type: tap, bridge: cni0 }
  - { name: up, type: tap, address: ${o.local}/24, mac: "02:00:00:00:50:1${o.n}" }
vxlan:
  - name: flannel.1
    vni: 1
    port: 8472
    local: ${o.local}
    address: ${net}.0/32
    mac: "${o.mac}"
    mtu: 1450
    peers:
${o.peers.map((p) => `      - { vtep: ${p.vtep}, mac: "${p.mac}", subnet: ${p.subnet} }`).join('\n')}
`;
}
