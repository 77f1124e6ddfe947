/**
 * Where the peer list from etcd meets the dataplane: the one place that turns "the vxlan
 * device `device` has exactly these peers" into the dataplane's state.
 *
 * `Dataplane.setVxlanPeers` does the work (src/dataplane/vxlan-peers.ts): by difference, it
 * installs for each peer what flanneld adds — the route `<subnet> via <subnet .0> dev
 * flannel.1 onlink`, the permanent neighbour `<subnet .0>` → VtepMAC and the forwarding entry
 * VtepMAC → PublicIP — and refuses a bad set whole. The config lists the peers too (what
 * `show` and a reload see); the dataplane leaves a cluster device's config peers alone and
 * puts the current ones back after a reload.
 */
import type { Config, VxlanPeerConfig } from '../config/types.ts';
import type { Dataplane } from '../dataplane/dataplane.ts';
import type { ReloadResult } from '../dataplane/reload.ts';

/** `base` (the leased config) with `peers` listed on `device`: what the dataplane runs. */
export function peerConfig(base: Config, device: string, peers: readonly VxlanPeerConfig[]): Config {
  return { ...base, vxlan: base.vxlan.map((v) => (v.name === device ? { ...v, peers: [...peers] } : v)) };
}

/** Replaces the peers of `device` on a running dataplane; a refused set leaves it as it was. */
export function setVxlanPeers(dp: Dataplane, device: string, peers: readonly VxlanPeerConfig[]): ReloadResult {
  try {
    const change = dp.setVxlanPeers(device, peers);
    dp.config = peerConfig(dp.config, device, peers);
    return { ok: true, changes: [`peers: ${change.added} added, ${change.removed} removed, ${change.changed} changed`] };
  } catch (err) {
    return { ok: false, errors: [(err as Error).message] };
  }
}
