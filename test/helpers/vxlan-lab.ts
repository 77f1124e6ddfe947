/**
 * A node with flannel.1 for the VXLAN tests: pods on cni0 (10.244.1.0/24), an uplink
 * 192.168.50.11 whose neighbours are two peer nodes' underlay addresses, and flannel.1 with
 * one static peer (node 2: 10.244.2.0/24 at 192.168.50.12). Frame builders for what a peer
 * node sends (VXLAN in UDP in IPv4) and a reader for what this node sends.
 */
import * as F from './frames.ts';

export const VXLAN_LAB = `
node: { name: node1 }
bridges:
  - { name: cni0, address: 10.244.1.1/24, mac: 0a:58:0a:f4:01:01 }
ports:
  - { name: pa, bridge: cni0 }
  - { name: pb, bridge: cni0 }
  - { name: up, address: 192.168.50.11/24, mac: 02:00:00:00:50:11 }
neighbors:
  - { ip: 192.168.50.12, mac: 02:00:00:00:50:12, dev: up }
  - { ip: 192.168.50.13, mac: 02:00:00:00:50:13, dev: up }
  - { ip: 10.244.9.0, mac: 0e:00:00:00:00:09, dev: flannel.1 }
routes:
  - { dst: 10.244.9.0/24, via: 10.244.9.0, dev: flannel.1, onlink: true }
vxlan:
  - name: flannel.1
    vni: 1
    local: 192.168.50.11
    address: 10.244.1.0/32
    mac: 0e:00:00:00:00:01
    peers:
      - { vtep: 192.168.50.12, mac: 0e:00:00:00:00:02, subnet: 10.244.2.0/24 }
`;

export const UP = { mac: '02:00:00:00:50:11', ip: '192.168.50.11' };
export const NODE2 = { mac: '02:00:00:00:50:12', ip: '192.168.50.12', vtepMac: '0e:00:00:00:00:02', overlay: '10.244.2.0' };
export const NODE3 = { mac: '02:00:00:00:50:13', ip: '192.168.50.13' };
export const FLANNEL = { mac: '0e:00:00:00:00:01', ip: '10.244.1.0' };
export const POD2 = '10.244.2.5';

export interface VxlanOpts {
  /** Underlay source (node 2 by default). */
  from?: { mac: string; ip: string };
  vni?: number;
  dport?: number;
  sport?: number;
  /** The 8 VXLAN header bytes, when not the well-formed ones. */
  header?: number[];
  innerDstMac?: string;
  innerSrcMac?: string;
}

/** What node 2 sends to this node: `inner` (an IPv4 datagram) in Ethernet in VXLAN in UDP. */
export function vxlanFrame(inner: number[], o: VxlanOpts = {}): Buffer {
  const from = o.from ?? NODE2;
  const vni = o.vni ?? 1;
  const hdr = o.header ?? [0x08, 0, 0, 0, (vni >> 16) & 255, (vni >> 8) & 255, vni & 255, 0];
  const innerEth = [...F.mac(o.innerDstMac ?? FLANNEL.mac), ...F.mac(o.innerSrcMac ?? NODE2.vtepMac), 0x08, 0x00, ...inner];
  const udp = F.udp(from.ip, UP.ip, o.sport ?? 45678, o.dport ?? 8472, [...hdr, ...innerEth]);
  udp[6] = 0;
  udp[7] = 0;
  return F.ethernet(UP.mac, from.mac, 0x0800, F.ipv4({ src: from.ip, dst: UP.ip, proto: 17, ttl: 64 }, udp));
}

export interface Encapsulated {
  sport: number;
  dport: number;
  udpLen: number;
  udpChecksum: number;
  vxlan: Buffer;
  vni: number;
  /** The inner Ethernet frame. */
  inner: Buffer;
}

/** The UDP/VXLAN layers of an encapsulated frame this node sent (20-byte outer IPv4 header). */
export function encapOf(f: Buffer): Encapsulated {
  const u = 34;
  const v = u + 8;
  return {
    sport: f.readUInt16BE(u),
    dport: f.readUInt16BE(u + 2),
    udpLen: f.readUInt16BE(u + 4),
    udpChecksum: f.readUInt16BE(u + 6),
    vxlan: Buffer.from(f.subarray(v, v + 8)),
    vni: (f[v + 4] << 16) | (f[v + 5] << 8) | f[v + 6],
    inner: Buffer.from(f.subarray(v + 8)),
  };
}
