/**
 * RuntimePorts: ports added and removed while the dataplane runs (`nodeplane port add|del`,
 * the CNI plugin's pods), as a kernel bridge gets a veth per pod without a restart.
 *
 * Adding: a port on a bridge (a pod's interface on cni0) or an L3 port with an address (a
 * router interface of its own, with its local, broadcast and connected routes). It takes the
 * lowest free port number above the config's (port-table.ts), starts up with counters at
 * zero, and gets its batch array in port-output; its driver is the caller's (a TAP).
 *
 * Removing: what belonged to the port goes with it, and nothing else is touched —
 *   - FDB entries learned on it (as Linux's br_fdb_delete_by_port when a veth leaves cni0);
 *   - neighbour entries reached through it: on an L3 port every entry of its interface; on a
 *     bridge, the entries of the bridge's interface whose MAC the FDB puts behind this port or
 *     whose address is one of the port's host addresses (the frames they queued are freed);
 *   - connection tracking entries with one of its addresses in either tuple (the host
 *     addresses given at add, those of the neighbours removed, and an L3 port's own address:
 *     flows masqueraded to it), as kubelet's CNI teardown and kube-proxy clear a pod's flows;
 *   - fragments being reassembled that came in on it;
 *   - an L3 port's routes and its router interface.
 * Its number then is free: down, no bridge, counters at zero, so the next port to take it
 * starts clean and a frame naming it (there is none between batches) would be dropped.
 *
 * The config's ports cannot be removed here (a reload compares configs, and the config would
 * still name them). A reload replaces the FIB with the config's: `reinstall` puts the L3
 * runtime ports' routes back. Everything runs between batches, off the packet path; the
 * conntrack sweep is one walk of the table's ids (a few ms at 1,000,000 entries).
 */
import { CT_LIVE } from '../tables/conntrack.ts';
import { RouteKind } from '../tables/fib.ts';
import { IfKind } from '../tables/interface-table.ts';
import { PortRole } from '../tables/port-table.ts';
import { broadcastOf, formatIpv4, networkOf, parseCidr, parseIpv4 } from '../wire/ipv4-address.ts';
import { isMulticastMac, macHi, macLo, parseMac } from '../wire/mac.ts';
import type { Context } from '../stages/context.ts';
import type { Stages } from './build-graph.ts';
import { derivedMac } from './compile-topology.ts';

/** What `port add` asks for. Exactly one of `bridge` and `address`. */
export interface RuntimePortSpec {
  name: string;
  /** An L2 port: member of this bridge. */
  bridge?: string;
  /** An L3 port: the router's address on it, with prefix (10.9.0.1/24). */
  address?: string;
  /** An L3 port's MAC; derived from the address (0a:58 + address) when absent. */
  mac?: string;
  /** Default 1500. */
  mtu?: number;
  /** Addresses of the host behind the port (a pod's): its flows and neighbour entries go with the port. */
  hostAddresses?: string[];
  /** Who asked for it (free text: the CNI plugin puts network/container/ifname), shown by `show ports`. */
  owner?: string;
}

export interface RuntimePortInfo {
  name: string;
  port: number;
  /** The L3 port's router interface, else -1. */
  ifIndex: number;
  spec: RuntimePortSpec;
  /** spec.hostAddresses as int32 addresses. */
  hosts: number[];
}

/** What a removal flushed, for the admin's answer and the log. */
export interface RuntimePortRemoved {
  name: string;
  port: number;
  fdbEntries: number;
  neighbours: number;
  /** Frames that waited in those neighbours' queues, freed. */
  queuedFrames: number;
  conntrackEntries: number;
  reassemblies: number;
}

/** A request that cannot be carried out (bad name, unknown bridge, clashing address...): nothing changed. */
export class RuntimePortError extends Error {}

const MAX_NAME_BYTES = 15;

export class RuntimePorts {
  private readonly byName = new Map<string, RuntimePortInfo>();

  constructor(
    private readonly ctx: Context,
    private readonly stages: Stages,
  ) {}

  get(name: string): RuntimePortInfo | undefined {
    return this.byName.get(name);
  }

  list(): RuntimePortInfo[] {
    return [...this.byName.values()];
  }

  /** Checks `spec` against the running tables and adds the port; its number. Throws RuntimePortError with nothing changed. */
  add(spec: RuntimePortSpec): number {
    const { ports, ifs, fib } = this.ctx;
    const { name } = spec;
    if (typeof name !== 'string' || name === '' || Buffer.byteLength(name) > MAX_NAME_BYTES || /[/:\s]/.test(name) || name === '.' || name === '..') {
      throw new RuntimePortError(`port name "${name}": 1 to ${MAX_NAME_BYTES} bytes, no '/', ':' or whitespace`);
    }
    if (ports.indexOf(name) >= 0) throw new RuntimePortError(`port ${name} exists`);
    if (ifs.indexOf(name) >= 0 || ports.bridgeIndexOf(name) >= 0) throw new RuntimePortError(`${name} is the name of an interface of the router`);
    if ((spec.bridge === undefined) === (spec.address === undefined)) throw new RuntimePortError(`port ${name}: give either a bridge or an address`);
    const mtu = spec.mtu ?? 1500;
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new RuntimePortError(`port ${name}: mtu ${spec.mtu} is not in 68..65535`);
    const hosts = this.hostAddresses(spec);

    if (spec.bridge !== undefined) {
      const b = ports.bridgeIndexOf(spec.bridge);
      if (b < 0) throw new RuntimePortError(`port ${name}: no bridge ${spec.bridge} (bridges: ${ports.bridges.map((x) => x.name).join(', ') || 'none'})`);
      if (spec.mac !== undefined) throw new RuntimePortError(`port ${name}: a MAC is for an L3 port (a bridge port has none of its own)`);
      const p = ports.addRuntime(name, PortRole.BRIDGED, b, -1);
      this.stages.portOutput.addPort(p);
      this.byName.set(name, { name, port: p, ifIndex: -1, spec: { ...spec, mtu, hostAddresses: [...(spec.hostAddresses ?? [])] }, hosts });
      return p;
    }

    let cidr: { addr: number; prefixLen: number };
    try {
      cidr = parseCidr(spec.address!);
    } catch (err) {
      throw new RuntimePortError(`port ${name}: address ${spec.address}: ${(err as Error).message}`);
    }
    if (cidr.prefixLen < 1) throw new RuntimePortError(`port ${name}: address ${spec.address}: prefix length 0 would take every route`);
    let mac = derivedMac(cidr.addr);
    if (spec.mac !== undefined) {
      try {
        mac = parseMac(spec.mac);
      } catch (err) {
        throw new RuntimePortError(`port ${name}: mac ${spec.mac}: ${(err as Error).message}`);
      }
      if (isMulticastMac(mac) || mac === 0) throw new RuntimePortError(`port ${name}: mac ${spec.mac} is not a unicast address`);
    }
    for (const [prefix, len] of this.routesOf(cidr.addr, cidr.prefixLen)) {
      if (fib.get(prefix, len) >= 0) throw new RuntimePortError(`port ${name}: address ${spec.address}: a route to ${formatIpv4(prefix)}/${len} exists`);
    }
    const p = ports.addRuntime(name, PortRole.ROUTED, -1, -1);
    const ifIndex = ifs.add(name, IfKind.PORT, macHi(mac), macLo(mac), cidr.addr, cidr.prefixLen, mtu, p);
    ports.ifOf[p] = ifIndex;
    this.stages.portOutput.addPort(p);
    const info: RuntimePortInfo = { name, port: p, ifIndex, spec: { ...spec, mtu, hostAddresses: [...(spec.hostAddresses ?? [])] }, hosts };
    this.byName.set(name, info);
    this.installRoutes(info);
    return p;
  }

  /** Removes a runtime port and everything that belonged to it (see the header). Throws RuntimePortError for a config port or an unknown name. */
  remove(name: string): RuntimePortRemoved {
    const info = this.byName.get(name);
    const { ports, ifs, fdb, neigh, fib, pool } = this.ctx;
    if (info === undefined) {
      if (ports.indexOf(name) >= 0) throw new RuntimePortError(`port ${name} is a port of the config: remove it from the config and restart nodeplane`);
      throw new RuntimePortError(`no port ${name}`);
    }
    const p = info.port;
    const addrs = new Set<number>(info.hosts);
    if (info.ifIndex >= 0) addrs.add(ifs.addr[info.ifIndex] | 0);

    // Neighbours reached through the port, found before the FDB forgets where MACs live.
    const bridge = ports.bridgeOf[p];
    const bridgeIf = bridge >= 0 ? ports.bridges[bridge].ifIndex : -1;
    const gone: number[] = [];
    for (const id of neigh.ids()) {
      const at = neigh.ifIndexOf(id);
      if (info.ifIndex >= 0 && at === info.ifIndex) gone.push(id);
      else if (bridgeIf >= 0 && at === bridgeIf) {
        const ip = neigh.ipOf(id) | 0;
        if (addrs.has(ip) || (neigh.macHi[id] !== 0 || neigh.macLo[id] !== 0 ? fdb.lookup(bridge, neigh.macHi[id], neigh.macLo[id]) === p : false)) {
          gone.push(id);
          addrs.add(ip);
        }
      }
    }
    let queuedFrames = 0;
    for (const id of gone) {
      neigh.drain(id, (slot) => {
        pool.free(slot);
        queuedFrames++;
      });
      neigh.remove(id);
    }
    const fdbBefore = fdb.size;
    fdb.flushPort(p);
    const fdbEntries = fdbBefore - fdb.size;
    const reassemblies = this.stages.ip4Reassemble.discardFrom(p, info.ifIndex);
    const conntrackEntries = this.flushConntrack(addrs);

    if (info.ifIndex >= 0) {
      for (const [prefix, len] of this.routesOf(ifs.addr[info.ifIndex], ifs.prefixLen[info.ifIndex])) fib.remove(prefix, len);
      ifs.remove(info.ifIndex);
    }
    this.stages.portOutput.drivers[p] = null;
    ports.removeRuntime(p);
    this.byName.delete(name);
    return { name, port: p, fdbEntries, neighbours: gone.length, queuedFrames, conntrackEntries, reassemblies };
  }

  /** Puts the L3 runtime ports' routes into the FIB again (a reload replaced it with the config's). */
  reinstall(): void {
    for (const info of this.byName.values()) if (info.ifIndex >= 0) this.installRoutes(info);
  }

  private installRoutes(info: RuntimePortInfo): void {
    const { ifs, fib } = this.ctx;
    const addr = ifs.addr[info.ifIndex];
    const len = ifs.prefixLen[info.ifIndex];
    fib.add(addr, 32, RouteKind.LOCAL, info.ifIndex);
    if (len < 31) fib.add(broadcastOf(addr, len), 32, RouteKind.BROADCAST, info.ifIndex);
    if (len < 32) fib.add(networkOf(addr, len), len, RouteKind.CONNECTED, info.ifIndex);
  }

  /** The local, broadcast and connected prefixes an address brings, as compileTopology adds them. */
  private routesOf(addr: number, len: number): Array<[number, number]> {
    const out: Array<[number, number]> = [[addr, 32]];
    if (len < 31) out.push([broadcastOf(addr, len), 32]);
    if (len < 32) out.push([networkOf(addr, len), len]);
    return out;
  }

  private hostAddresses(spec: RuntimePortSpec): number[] {
    return (spec.hostAddresses ?? []).map((a) => {
      try {
        // A CIDR's address or a bare address; kept as int32, as conntrack stores addresses.
        return (a.includes('/') ? parseCidr(a).addr : parseIpv4(a)) | 0;
      } catch (err) {
        throw new RuntimePortError(`port ${spec.name}: host address ${a}: ${(err as Error).message}`);
      }
    });
  }

  /** Destroys every conntrack entry with one of `addrs` in either tuple; how many. */
  private flushConntrack(addrs: Set<number>): number {
    const ct = this.ctx.conntrack;
    if (ct === null || addrs.size === 0) return 0;
    let n = 0;
    const high = ct.highWater;
    for (let id = 0; id < high; id++) {
      if ((ct.statusOf(id) & CT_LIVE) === 0) continue;
      const o = id << 1;
      if (addrs.has(ct.srcOf(o) | 0) || addrs.has(ct.dstOf(o) | 0) || addrs.has(ct.srcOf(o | 1) | 0) || addrs.has(ct.dstOf(o | 1) | 0)) {
        ct.remove(id);
        n++;
      }
    }
    return n;
  }
}
