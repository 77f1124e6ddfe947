/**
 * VxlanPeers: the remote VTEPs of each VXLAN device, and what flanneld installs for each —
 * the one way peers enter the tables, whether they come from the config (static `peers`) or
 * from a cluster's leases at run time.
 *
 * For a peer { vtep: underlay address, mac: its VTEP MAC, subnet: its pod subnet } on
 * flannel.1, with the peer's overlay address being the subnet's network address (10.244.2.0
 * for 10.244.2.0/24, as flannel gives each node's flannel.1), it installs what flanneld does:
 *
 *   route      10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink
 *   neighbour  10.244.2.0 dev flannel.1 lladdr <mac> PERMANENT
 *   fdb        <mac> dev flannel.1 dst <vtep> self permanent
 *
 * API (what cluster mode calls, on the dataplane: `Dataplane.setVxlanPeers`):
 *
 *   set(device, peers) → { added, removed, changed } | throws VxlanPeerError
 *     Replaces the device's whole peer set. The change is applied by difference, keyed by
 *     subnet: entries of peers that stay the same are not touched (traffic to them never
 *     misses), peers that left lose their route, neighbour and FDB entry, new ones get them,
 *     and a peer whose MAC or VTEP changed is updated in place. The new set is validated
 *     whole before anything changes (bad address, overlapping subnets, a subnet that is a
 *     local one, a VTEP that is our own address, table full) and refused whole.
 *   reinstall()
 *     Puts every current peer's route and neighbour back after a reload replaced the FIB
 *     and the static neighbours (the FDB is this module's alone and survives reloads).
 *
 * Run it on the packet thread (between batches): it writes the tables the stages read.
 */
import type { Context } from '../stages/context.ts';
import { RouteKind } from '../tables/fib.ts';
import { NeighState } from '../tables/neighbour-table.ts';
import { type Cidr, cidrsOverlap, formatCidr, formatIpv4, networkOf, parseCidr, parseIpv4 } from '../wire/ipv4-address.ts';
import { formatMac, macHi, macLo, parseMac } from '../wire/mac.ts';

/** One remote VTEP as config and cluster mode give it (strings, as SPEC §2 `vxlan[].peers`). */
export interface VxlanPeerConfig {
  /** The peer's underlay address (its lease's PublicIP). */
  vtep: string;
  /** The peer's VTEP MAC (its lease's BackendData.VtepMAC). */
  mac: string;
  /** The peer's pod subnet (its lease); its network address is the peer's overlay address. */
  subnet: string;
}

export interface VxlanPeersChange {
  added: number;
  removed: number;
  changed: number;
}

export class VxlanPeerError extends Error {}

interface Peer {
  vtep: number;
  macHi: number;
  macLo: number;
  prefix: number;
  prefixLen: number;
  /** The overlay address: the subnet's network address. */
  overlay: number;
}

const key = (p: Peer): string => `${p.prefix >>> 0}/${p.prefixLen}`;

export class VxlanPeers {
  /** Per device name: its peers keyed by subnet. */
  private readonly peers = new Map<string, Map<string, Peer>>();

  constructor(private readonly ctx: Context) {}

  /** The device's current peers, as given (for display and tests). */
  list(device: string): VxlanPeerConfig[] {
    const m = this.peers.get(device);
    if (!m) return [];
    return [...m.values()].map((p) => ({ vtep: formatIpv4(p.vtep), mac: formatMac(p.macHi * 2 ** 32 + (p.macLo >>> 0)), subnet: formatCidr({ addr: p.prefix, prefixLen: p.prefixLen }) }));
  }

  set(device: string, peers: readonly VxlanPeerConfig[]): VxlanPeersChange {
    const ifIndex = this.deviceIf(device);
    const next = this.parse(device, ifIndex, peers);
    const cur = this.peers.get(device) ?? new Map<string, Peer>();
    const change: VxlanPeersChange = { added: 0, removed: 0, changed: 0 };
    for (const [k, p] of cur) {
      if (next.has(k)) continue;
      this.uninstall(ifIndex, p);
      change.removed++;
    }
    // Everything that goes first, then everything that comes: a MAC may move between peers.
    const toInstall: Peer[] = [];
    for (const [k, p] of next) {
      const old = cur.get(k);
      if (old && old.vtep === p.vtep && old.macHi === p.macHi && old.macLo === p.macLo) continue;
      if (old) {
        this.uninstall(ifIndex, old);
        change.changed++;
      } else {
        change.added++;
      }
      toInstall.push(p);
    }
    for (const p of toInstall) this.install(ifIndex, p);
    this.peers.set(device, next);
    return change;
  }

  reinstall(): void {
    for (const [device, m] of this.peers) {
      const ifIndex = this.ctx.ifs.indexOf(device);
      for (const p of m.values()) this.installRouteAndNeighbour(ifIndex, p);
    }
  }

  private deviceIf(device: string): number {
    const ifIndex = this.ctx.ifs.indexOf(device);
    if (ifIndex < 0 || this.ctx.vxlan.deviceOfIf[ifIndex] < 0) throw new VxlanPeerError(`${device}: no such vxlan device`);
    return ifIndex;
  }

  private parse(device: string, ifIndex: number, peers: readonly VxlanPeerConfig[]): Map<string, Peer> {
    const { ifs } = this.ctx;
    const out = new Map<string, Peer>();
    const subnets: { at: string; c: Cidr }[] = [];
    const macs = new Map<number, string>();
    const cur = this.peers.get(device);
    let newMacs = 0;
    peers.forEach((pc, i) => {
      const at = `${device} peer ${i} (${pc.subnet} at ${pc.vtep})`;
      let c: Cidr, vtep: number, mac: number;
      try {
        c = parseCidr(pc.subnet);
        vtep = parseIpv4(pc.vtep);
        mac = parseMac(pc.mac);
      } catch (e) {
        throw new VxlanPeerError(`${at}: ${(e as Error).message}`);
      }
      if ((mac / 2 ** 40) & 1) throw new VxlanPeerError(`${at}: ${pc.mac} is not a unicast MAC`);
      const sameMac = macs.get(mac);
      if (sameMac) throw new VxlanPeerError(`${at}: MAC ${pc.mac} is also ${sameMac}'s`);
      macs.set(mac, at);
      const prefix = networkOf(c.addr, c.prefixLen);
      const clash = subnets.find((o) => cidrsOverlap(o.c, c));
      if (clash) throw new VxlanPeerError(`${at}: subnet overlaps ${clash.at}`);
      for (let f = 0; f < ifs.count; f++) {
        if (ifs.addr[f] === vtep >>> 0 && ifs.hasAddress(f)) throw new VxlanPeerError(`${at}: ${pc.vtep} is this node's own address (${ifs.names[f]})`);
        if (f !== ifIndex && ifs.hasAddress(f) && ifs.prefixLen[f] < 32 && cidrsOverlap({ addr: ifs.addr[f], prefixLen: ifs.prefixLen[f] }, c)) {
          throw new VxlanPeerError(`${at}: subnet overlaps the subnet of ${ifs.names[f]}`);
        }
      }
      subnets.push({ at, c });
      const p: Peer = { vtep: vtep >>> 0, macHi: macHi(mac), macLo: macLo(mac), prefix, prefixLen: c.prefixLen, overlay: prefix };
      if (out.has(key(p))) throw new VxlanPeerError(`${at}: subnet given twice`);
      if (!cur?.has(key(p))) newMacs++;
      out.set(key(p), p);
    });
    const vx = this.ctx.vxlan;
    if (vx.fdbSize + newMacs > vx.fdbCapacity) throw new VxlanPeerError(`${device}: ${peers.length} peers do not fit the vxlan fdb (${vx.fdbCapacity} entries)`);
    return out;
  }

  private install(ifIndex: number, p: Peer): void {
    if (!this.ctx.vxlan.setFdb(ifIndex, p.macHi, p.macLo, p.vtep)) throw new VxlanPeerError(`vxlan fdb full`);
    this.installRouteAndNeighbour(ifIndex, p);
  }

  private installRouteAndNeighbour(ifIndex: number, p: Peer): void {
    const { fib, neigh } = this.ctx;
    fib.remove(p.prefix, p.prefixLen);
    fib.add(p.prefix, p.prefixLen, RouteKind.GATEWAY, ifIndex, p.overlay, true);
    const id = neigh.create(ifIndex, p.overlay, this.ctx.nowUs);
    if (id < 0) throw new VxlanPeerError(`neighbour table full`);
    neigh.update(id, p.macHi, p.macLo, NeighState.PERMANENT, this.ctx.nowUs);
  }

  private uninstall(ifIndex: number, p: Peer): void {
    const { fib, neigh, vxlan } = this.ctx;
    // Only what is still ours: a route or neighbour replaced since (by a reload) stays.
    const r = fib.get(p.prefix, p.prefixLen);
    if (r >= 0 && fib.kind[r] === RouteKind.GATEWAY && fib.ifIndex[r] === ifIndex && fib.gateway[r] === p.overlay) fib.remove(p.prefix, p.prefixLen);
    const id = neigh.find(ifIndex, p.overlay);
    if (id >= 0 && neigh.state[id] === NeighState.PERMANENT && neigh.macHi[id] === p.macHi && neigh.macLo[id] === (p.macLo | 0)) neigh.remove(id);
    vxlan.deleteFdb(ifIndex, p.macHi, p.macLo);
  }
}
