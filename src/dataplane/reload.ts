/**
 * Reload: applies a new, already validated config to a running dataplane — or refuses it
 * whole, leaving the running state as it was.
 *
 * What changes live: routes, static neighbours, bridge ageing, the ARP timers and the ICMP
 * rate limit. What needs a restart: the interfaces themselves (ports, bridges, VXLAN devices,
 * their addresses, MACs and MTUs) and the sizes of tables (arp.queueLen, arp.maxEntries,
 * fdb.maxEntries), because TAP devices and preallocated tables hang on them. A config that
 * changes any of those is refused with one line per difference.
 */
import type { Config } from '../config/load.ts';
import { TokenBucket } from '../core/token-bucket.ts';
import { IcmpRateLimits } from '../tables/icmp-rate-limits.ts';
import { NeighState } from '../tables/neighbour-table.ts';
import { compileTopology } from './compile-topology.ts';
import type { Dataplane } from './dataplane.ts';

export type ReloadResult = { ok: true; changes: string[] } | { ok: false; errors: string[] };

const RESTART = 'needs a restart of nodeplane to change';

/** Everything of an interface that live reload cannot change, keyed by its config path. */
function fixedParts(c: Config): Map<string, string> {
  const m = new Map<string, string>();
  c.bridges.forEach((b) => m.set(`bridges[${b.name}]`, JSON.stringify([b.address, b.mac, b.mtu])));
  c.ports.forEach((p) => m.set(`ports[${p.name}]`, JSON.stringify([p.type, p.bridge, p.address, p.mac, p.mtu])));
  c.vxlan.forEach((v) => m.set(`vxlan[${v.name}]`, JSON.stringify([v.vni, v.port, v.local, v.address, v.mac, v.mtu])));
  m.set('arp.queueLen', String(c.arp.queueLen));
  m.set('arp.maxEntries', String(c.arp.maxEntries));
  m.set('fdb.maxEntries', String(c.fdb.maxEntries));
  return m;
}

export function reloadDataplane(dp: Dataplane, next: Config): ReloadResult {
  const before = fixedParts(dp.config);
  const after = fixedParts(next);
  const errors: string[] = [];
  for (const [k, v] of before) {
    if (!after.has(k)) errors.push(`${k}: removed; ${RESTART} interfaces and table sizes`);
    else if (after.get(k) !== v) errors.push(`${k}: changed; ${RESTART} interfaces and table sizes`);
  }
  for (const k of after.keys()) if (!before.has(k)) errors.push(`${k}: added; ${RESTART} interfaces and table sizes`);
  // Interface order fixes port and interface numbers: the same set in another order is a change too.
  const order = (c: Config): string => JSON.stringify([c.bridges.map((b) => b.name), c.ports.map((p) => p.name), c.vxlan.map((v) => v.name)]);
  if (errors.length === 0 && order(dp.config) !== order(next)) errors.push(`ports: reordered; ${RESTART} the order of interfaces`);
  if (errors.length > 0) return { ok: false, errors };

  const topo = compileTopology(next);
  const ctx = dp.ctx;
  const changes: string[] = [];
  const describeRoutes = (c: Config): string => JSON.stringify(c.routes);
  if (describeRoutes(dp.config) !== describeRoutes(next)) changes.push(`routes: ${dp.config.routes.length} → ${next.routes.length}`);
  ctx.fib = topo.fib;

  // Static neighbours: drop the old permanent entries, then install the new ones.
  const neigh = ctx.neigh;
  for (const id of [...neigh.ids()]) if (neigh.state[id] === NeighState.PERMANENT) neigh.remove(id);
  for (const n of topo.neighbours) {
    const id = neigh.create(n.ifIndex, n.ip, ctx.nowUs);
    if (id >= 0) neigh.update(id, n.macHi, n.macLo, NeighState.PERMANENT, ctx.nowUs);
  }
  if (JSON.stringify(dp.config.neighbors) !== JSON.stringify(next.neighbors)) changes.push(`neighbors: ${dp.config.neighbors.length} → ${next.neighbors.length}`);

  next.bridges.forEach((b, i) => ctx.fdb.setAgeing(i, b.ageingSeconds));
  const a = next.arp;
  Object.assign(neigh.timers, {
    probes: a.retries,
    retransUs: a.retryIntervalMs * 1000,
    reachableUs: a.reachableMs * 1000,
    gcStaleUs: a.staleMs * 1000,
    failedHoldUs: a.failedMs * 1000,
  });
  ctx.icmpLimiter = new TokenBucket(next.icmp.ratePerSec, next.icmp.burst);
  ctx.icmpPerHost = new IcmpRateLimits(next.icmp.perHostIntervalMs * 1000, next.icmp.perHostBurst);
  for (const key of ['arp', 'icmp'] as const) {
    if (JSON.stringify(dp.config[key]) !== JSON.stringify(next[key])) changes.push(`${key}: updated`);
  }
  if (JSON.stringify(dp.config.bridges.map((b) => b.ageingSeconds)) !== JSON.stringify(next.bridges.map((b) => b.ageingSeconds))) changes.push('bridge ageing: updated');
  dp.config = next;
  return { ok: true, changes };
}
