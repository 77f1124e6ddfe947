/**
 * Where the peer list from etcd meets the dataplane: the one place that turns "the vxlan
 * device `device` has exactly these peers" into the dataplane's state.
 *
 * SEAM. The VXLAN dataplane (encapsulation, the FDB of VTEPs and its
 * `Dataplane.setVxlanPeers(device, peers)`) is being built at the same time. Until it is
 * there, peers are installed as what flanneld adds for each of them, written as config:
 *
 *   route      <subnet> via <subnet's .0> dev <device> onlink   (ip route)
 *   neighbour  <subnet's .0> lladdr <VtepMAC> dev <device>      (ip neigh, permanent)
 *
 * together with the device's `peers` list, and applied by a live reload (routes, neighbours
 * and peers change live; nothing else does). When `Dataplane.setVxlanPeers` exists,
 * `peerConfig` keeps only the `peers` line and `setVxlanPeers` calls the dataplane's method,
 * which installs the route, neighbour and forwarding entries itself.
 */
import type { Config, VxlanPeerConfig } from '../config/types.ts';
import type { Dataplane } from '../dataplane/dataplane.ts';
import type { ReloadResult } from '../dataplane/reload.ts';

/** The address flanneld gives a peer's VTEP on the overlay: its subnet's network address. */
function vtepOverlayAddress(peer: VxlanPeerConfig): string {
  return peer.subnet.slice(0, peer.subnet.indexOf('/'));
}

/** `base` (the leased config, no peers) with `peers` on `device`. */
export function peerConfig(base: Config, device: string, peers: readonly VxlanPeerConfig[]): Config {
  return {
    ...base,
    vxlan: base.vxlan.map((v) => (v.name === device ? { ...v, peers: [...peers] } : v)),
    // Interim, until the dataplane derives these from `peers` (see the header).
    routes: [...base.routes, ...peers.map((p) => ({ dst: p.subnet, via: vtepOverlayAddress(p), dev: device, onlink: true }))],
    neighbors: [...base.neighbors, ...peers.map((p) => ({ ip: vtepOverlayAddress(p), mac: p.mac, dev: device }))],
  };
}

/** Replaces the peers of `device` on a running dataplane (see the header: the seam). */
export function setVxlanPeers(dp: Dataplane, base: Config, device: string, peers: readonly VxlanPeerConfig[]): ReloadResult {
  return dp.reload(peerConfig(base, device, peers));
}
