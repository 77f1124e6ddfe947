/**
 * applyConfig: puts the live parts of a compiled config into a dataplane's tables — the one
 * way a config becomes running state, at start and on every reload.
 *
 * Live parts: the FIB, static neighbours, the neighbour timers, bridge ageing, the ICMP
 * error limits, the conntrack timeouts and the `services` (through Services.apply, the path
 * the manifest loader takes too: services.ts). The rest — ports, bridges, interfaces and table sizes — is fixed when the
 * dataplane is built (see reload.ts for why), so the tables it changes must already exist,
 * sized by the same config.
 */
import type { Config } from '../config/load.ts';
import type { Context } from '../stages/context.ts';
import { NeighState } from '../tables/neighbour-table.ts';
import type { Topology } from './compile-topology.ts';
import type { Services } from './services.ts';

/**
 * Applies `config`, compiled to `topo`, to the tables of `ctx`, at time ctx.nowUs;
 * `services` is null when connection tracking is off (then the config has none).
 */
export function applyConfig(ctx: Context, config: Config, topo: Topology, services: Services | null): void {
  ctx.fib = topo.fib;

  // Static neighbours: the old permanent entries go, the new ones come.
  const neigh = ctx.neigh;
  for (const id of [...neigh.ids()]) if (neigh.state[id] === NeighState.PERMANENT) neigh.remove(id);
  for (const n of topo.neighbours) {
    const id = neigh.create(n.ifIndex, n.ip, ctx.nowUs);
    if (id >= 0) neigh.update(id, n.macHi, n.macLo, NeighState.PERMANENT, ctx.nowUs);
  }
  const a = config.arp;
  const t = neigh.timers;
  t.probes = a.retries;
  t.retransUs = a.retryIntervalMs * 1000;
  t.reachableUs = a.reachableMs * 1000;
  t.gcStaleUs = a.staleMs * 1000;
  t.failedHoldUs = a.failedMs * 1000;

  // Bridge ageing: the FDB ages by it, `show fdb` prints the port table's.
  topo.ports.bridges.forEach((b, i) => {
    ctx.ports.bridges[i].ageingSeconds = b.ageingSeconds;
    ctx.fdb.setAgeing(i, b.ageingSeconds);
  });

  // Conntrack timeouts: each entry takes the new ones at its next packet, as Linux's sysctls.
  ctx.conntrack?.setTimeouts(config.conntrack.timeouts);
  if (services !== null) services.apply(config.services, 'config');
  else if (config.services.length > 0) throw new Error('applyConfig: services without connection tracking');

  const icmp = config.icmp;
  ctx.icmpLimiter.configure(icmp.ratePerSec, icmp.burst);
  ctx.icmpPerHost.configure(icmp.perHostIntervalMs * 1000, icmp.perHostBurst);
}
