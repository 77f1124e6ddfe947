/**
 * compileTopology: turns a validated config into the dataplane's tables — ports and bridges,
 * router interfaces, the FIB (local, broadcast, connected and static routes) and static
 * neighbours. Everything is built into fresh tables first; a config that compiles is applied
 * whole, so a running dataplane never holds half of one.
 */
import type { Config } from '../config/load.ts';
import { LEASE_ADDRESS } from '../config/schema.ts';
import { Fib, RouteKind } from '../tables/fib.ts';
import { IfKind, InterfaceTable, MAX_INTERFACES } from '../tables/interface-table.ts';
import { PortRole, PortTable } from '../tables/port-table.ts';
import { VxlanTable } from '../tables/vxlan-table.ts';
import { macHi, macLo, parseMac } from '../wire/mac.ts';
import { broadcastOf, networkOf, parseCidr, parseIpv4 } from '../wire/ipv4-address.ts';

export interface StaticNeighbour {
  ifIndex: number;
  ip: number;
  macHi: number;
  macLo: number;
}

export interface Topology {
  ports: PortTable;
  ifs: InterfaceTable;
  fib: Fib;
  neighbours: StaticNeighbour[];
  /** The VXLAN devices, their FDBs empty (peers are applied by VxlanPeers). */
  vxlan: VxlanTable;
}

/** The MAC a router interface gets when the config names none: 0a:58 + its IPv4 address, as Kubernetes' CNI plugins derive it. */
export function derivedMac(addr: number): number {
  return 0x0a58 * 2 ** 32 + (addr >>> 0);
}

export function compileTopology(config: Config): Topology {
  const ports = new PortTable();
  const ifs = new InterfaceTable();
  const fib = new Fib(Math.max(1024, config.routes.length * 2 + 64));

  const addIf = (name: string, kind: IfKind, address: string | undefined, mac: string | undefined, mtu: number, target: number, fallbackMac: number): number => {
    const cidr = address ? parseCidr(address) : undefined;
    const m = mac ? parseMac(mac) : cidr ? derivedMac(cidr.addr) : fallbackMac;
    return ifs.add(name, kind, macHi(m), macLo(m), cidr ? cidr.addr : 0, cidr ? cidr.prefixLen : -1, mtu, target);
  };

  for (const b of config.bridges) {
    // A bug, not a user's mistake: cluster mode completes the config before a dataplane is built.
    if (b.address === LEASE_ADDRESS) throw new Error(`bridge ${b.name}: address 'lease' was not resolved from the cluster lease`);
    const bi = ports.addBridge(b.name, b.ageingSeconds);
    if (b.address) ports.bridges[bi].ifIndex = addIf(b.name, IfKind.BRIDGE, b.address, b.mac, b.mtu, bi, 0);
  }
  const bridgeOf: number[] = [];
  const ifOf: number[] = [];
  for (const p of config.ports) {
    const pi = ports.addPort(p.name, p.bridge ? PortRole.BRIDGED : PortRole.ROUTED);
    bridgeOf.push(p.bridge ? ports.bridgeIndexOf(p.bridge) : -1);
    // An L3 port without an address still gets an interface (and a stable locally administered MAC).
    ifOf.push(p.bridge ? -1 : addIf(p.name, IfKind.PORT, p.address, p.mac, p.mtu, pi, 0x0200_0000_0000 + pi + 1));
  }
  ports.seal(bridgeOf, ifOf);
  const vxlan = new VxlanTable(MAX_INTERFACES, config.fdb.maxEntries);
  for (const v of config.vxlan) {
    const ifIndex = addIf(v.name, IfKind.VXLAN, v.address, v.mac, v.mtu, -1, 0x0e00_0000_0000 + vxlan.count + 1);
    vxlan.addDevice(ifIndex, v.vni, v.port, parseIpv4(v.local), v.underlay === 'socket');
  }

  // Local, broadcast and connected routes, as the kernel's local and main tables hold them.
  fib.add(0xffffffff, 32, RouteKind.BROADCAST, 0);
  for (let i = 0; i < ifs.count; i++) {
    if (!ifs.hasAddress(i)) continue;
    const addr = ifs.addr[i];
    const len = ifs.prefixLen[i];
    fib.add(addr, 32, RouteKind.LOCAL, i);
    if (len < 31) fib.add(broadcastOf(addr, len), 32, RouteKind.BROADCAST, i);
    if (len < 32) fib.add(networkOf(addr, len), len, RouteKind.CONNECTED, i);
  }
  for (const r of config.routes) {
    const dst = parseCidr(r.dst);
    const via = r.via ? parseIpv4(r.via) : 0;
    const dev = r.dev ? ifs.indexOf(r.dev) : r.via ? ifs.connectedTo(via) : -1;
    if (dev < 0) throw new Error(`route ${r.dst}: no interface to reach it (validation should have caught this)`);
    fib.add(dst.addr, dst.prefixLen, r.via ? RouteKind.GATEWAY : RouteKind.CONNECTED, dev, via, r.onlink);
  }
  const neighbours: StaticNeighbour[] = config.neighbors.map((n) => {
    const m = parseMac(n.mac);
    return { ifIndex: ifs.indexOf(n.dev), ip: parseIpv4(n.ip), macHi: macHi(m), macLo: macLo(m) };
  });
  return { ports, ifs, fib, neighbours, vxlan };
}
