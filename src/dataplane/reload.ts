/**
 * Reload: applies a new, already validated config to a running dataplane — or refuses it
 * whole, leaving the running state as it was.
 *
 * What changes live: routes, static neighbours, VXLAN peers, bridge ageing, the ARP timers, the ICMP
 * rate limit, nat.clusterCIDR, conntrack timeouts and Services (by diff: flows to endpoints
 * that stay are untouched). What needs a restart: the interfaces themselves (ports, bridges, VXLAN devices,
 * their addresses, MACs and MTUs) and the sizes of tables (arp.queueLen, arp.maxEntries,
 * fdb.maxEntries, pool), because TAP devices and preallocated tables hang on them. A config
 * that changes any of those is refused with one line per difference. This file only judges a
 * new config; applyConfig (apply-config.ts) applies it, as it applied the first one at start.
 */
import type { Config } from '../config/load.ts';

export type ReloadResult = { ok: true; changes: string[] } | { ok: false; errors: string[] };

const RESTART = 'needs a restart of nodeplane to change';

/** Everything of an interface that live reload cannot change, keyed by its config path. */
function fixedParts(c: Config): Map<string, string> {
  const m = new Map<string, string>();
  c.bridges.forEach((b) => m.set(`bridges[${b.name}]`, JSON.stringify([b.address, b.mac, b.mtu])));
  c.ports.forEach((p) => m.set(`ports[${p.name}]`, JSON.stringify([p.type, p.bridge, p.address, p.mac, p.mtu])));
  c.vxlan.forEach((v) => m.set(`vxlan[${v.name}]`, JSON.stringify([v.vni, v.port, v.local, v.address, v.mac, v.mtu, v.underlay])));
  m.set('arp.queueLen', String(c.arp.queueLen));
  m.set('arp.maxEntries', String(c.arp.maxEntries));
  m.set('fdb.maxEntries', String(c.fdb.maxEntries));
  m.set('conntrack.max', String(c.conntrack.max));
  m.set('connection tracking (nat, conntrack or services present)', String(c.conntrackEnabled));
  m.set('pool', JSON.stringify(c.pool));
  return m;
}

/**
 * Whether `next` may replace `current` on a running dataplane: the reasons it may not, or
 * the changes it brings. Applying it is applyConfig's work (Dataplane.reload).
 */
export function checkReload(current: Config, next: Config): ReloadResult {
  const before = fixedParts(current);
  const after = fixedParts(next);
  const errors: string[] = [];
  for (const [k, v] of before) {
    if (!after.has(k)) errors.push(`${k}: removed; ${RESTART} interfaces and table sizes`);
    else if (after.get(k) !== v) errors.push(`${k}: changed; ${RESTART} interfaces and table sizes`);
  }
  for (const k of after.keys()) if (!before.has(k)) errors.push(`${k}: added; ${RESTART} interfaces and table sizes`);
  // Interface order fixes port and interface numbers: the same set in another order is a change too.
  const order = (c: Config): string => JSON.stringify([c.bridges.map((b) => b.name), c.ports.map((p) => p.name), c.vxlan.map((v) => v.name)]);
  if (errors.length === 0 && order(current) !== order(next)) errors.push(`ports: reordered; ${RESTART} the order of interfaces`);
  if (errors.length > 0) return { ok: false, errors };

  const changes: string[] = [];
  const differ = (f: (c: Config) => unknown): boolean => JSON.stringify(f(current)) !== JSON.stringify(f(next));
  if (differ((c) => c.vxlan.map((v) => v.peers))) changes.push('vxlan peers: updated');
  if (differ((c) => c.routes)) changes.push(`routes: ${current.routes.length} → ${next.routes.length}`);
  if (differ((c) => c.neighbors)) changes.push(`neighbors: ${current.neighbors.length} → ${next.neighbors.length}`);
  for (const key of ['arp', 'icmp'] as const) if (differ((c) => c[key])) changes.push(`${key}: updated`);
  if (differ((c) => c.bridges.map((b) => b.ageingSeconds))) changes.push('bridge ageing: updated');
  if (differ((c) => c.nat)) changes.push(`nat: ${next.nat === undefined ? 'off' : `clusterCIDR ${next.nat.clusterCIDR}`}`);
  if (differ((c) => c.conntrack.timeouts)) changes.push('conntrack timeouts: updated');
  if (differ((c) => c.services)) changes.push(`services: ${current.services.length} → ${next.services.length}`);
  return { ok: true, changes };
}
