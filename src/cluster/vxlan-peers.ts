/**
 * Where the peer list from etcd meets the dataplane: the one place that turns "the vxlan
 * device `device` has exactly these peers" into the dataplane's state.
 *
 * SEAM. The VXLAN dataplane's `Dataplane.setVxlanPeers(device, peers)` installs, by
 * difference, what flanneld adds for each peer — the route `<subnet> via <subnet .0> dev
 * flannel.1 onlink`, the permanent neighbour `<subnet .0>` → VtepMAC and the forwarding entry
 * VtepMAC → PublicIP — and refuses a bad set whole; it leaves a cluster device's config
 * peers alone and puts the current ones back after a reload. When the dataplane has it,
 * it is used. A dataplane without it (before the VXLAN dataplane is in) gets the route and
 * the neighbour as config entries applied by a live reload (routes, neighbours and peers
 * change live; nothing else does), so that `show routes` and `show neigh` are a flannel
 * node's either way. Once every dataplane has the method, the `INTERIM` branches go.
 */
import type { Config, VxlanPeerConfig } from '../config/types.ts';
import { Dataplane } from '../dataplane/dataplane.ts';
import type { ReloadResult } from '../dataplane/reload.ts';

interface PeerApi {
  setVxlanPeers(device: string, peers: readonly VxlanPeerConfig[]): { added: number; removed: number; changed: number };
}

/** Whether this dataplane installs peers itself (the VXLAN dataplane's API). */
export const NATIVE_PEERS = typeof (Dataplane.prototype as unknown as Partial<PeerApi>).setVxlanPeers === 'function';

/** The address flanneld gives a peer's VTEP on the overlay: its subnet's network address. */
function vtepOverlayAddress(peer: VxlanPeerConfig): string {
  return peer.subnet.slice(0, peer.subnet.indexOf('/'));
}

/** `base` (the leased config) with `peers` listed on `device`: what the dataplane runs. */
export function peerConfig(base: Config, device: string, peers: readonly VxlanPeerConfig[]): Config {
  const listed = { ...base, vxlan: base.vxlan.map((v) => (v.name === device ? { ...v, peers: [...peers] } : v)) };
  if (NATIVE_PEERS) return listed;
  // INTERIM: flanneld's route and neighbour per peer, as config.
  return {
    ...listed,
    routes: [...base.routes, ...peers.map((p) => ({ dst: p.subnet, via: vtepOverlayAddress(p), dev: device, onlink: true }))],
    neighbors: [...base.neighbors, ...peers.map((p) => ({ ip: vtepOverlayAddress(p), mac: p.mac, dev: device }))],
  };
}

/** Replaces the peers of `device` on a running dataplane; a refused set leaves it as it was. */
export function setVxlanPeers(dp: Dataplane, base: Config, device: string, peers: readonly VxlanPeerConfig[]): ReloadResult {
  if (!NATIVE_PEERS) return dp.reload(peerConfig(base, device, peers)); // INTERIM
  try {
    const change = (dp as unknown as PeerApi).setVxlanPeers(device, peers);
    dp.config = peerConfig(dp.config, device, peers);
    return { ok: true, changes: [`peers: ${change.added} added, ${change.removed} removed, ${change.changed} changed`] };
  } catch (err) {
    return { ok: false, errors: [(err as Error).message] };
  }
}
