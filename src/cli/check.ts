/**
 * `nodeplane check --config FILE`: validates a configuration without running anything.
 *
 * Valid: one line on stdout, `FILE: OK (1 bridge, 3 ports, ...)`, then one line per TAP mode
 * `run` may use with it (with offload unless capture.dir is set, and without) saying what its
 * frame pool takes: memory, largest flood, reserve, frames per read round. A pool too small
 * for the config's largest flood is a warning on stderr (`FILE: warning: ...`); the exit is
 * still 0, since such a config runs, losing flood copies and counting what it drops.
 * The manifests the config names are read too: what they hold that is left out is a note on
 * stderr (`MANIFEST: note: ...`), and the summary says how many services came from them.
 * Invalid or unreadable: every problem on stderr, one a line as `FILE: path: message` (a
 * manifest's as `MANIFEST:LINE: Kind namespace/name: field: message`), exit 1.
 */
import { ConfigError, loadConfigParts } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { describePlan, poolPlan } from '../ports/pool-plan.ts';
import { print } from './stdout.ts';

function count(n: number, singular: string, plural = `${singular}s`): string {
  return `${n} ${n === 1 ? singular : plural}`;
}

/** `fromManifests`: how many services the manifests give, when the config names any. */
export function summary(c: Config, fromManifests?: number): string {
  return [
    count(c.bridges.length, 'bridge'),
    count(c.ports.length, 'port'),
    count(c.routes.length, 'route'),
    count(c.neighbors.length, 'neighbor'),
    count(c.services.length + (fromManifests ?? 0), 'service') + (fromManifests === undefined ? '' : ` (${fromManifests} from manifests)`),
    count(c.vxlan.length, 'vxlan device'),
    ...(c.cluster ? [`cluster mode: a /${c.cluster.subnetLen} of ${c.cluster.network} leased from etcd`] : []),
  ].join(', ');
}

export async function checkCommand(opts: { config: string }): Promise<number> {
  let config: Config;
  let fromManifests: number | undefined;
  try {
    const loaded = loadConfigParts(opts.config);
    config = loaded.config;
    if (loaded.manifestPaths.length > 0) fromManifests = loaded.manifests.manifestServices;
    for (const note of loaded.notes) process.stderr.write(`${note}\n`);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return 1;
  }
  print(`${opts.config}: OK (${summary(config, fromManifests)})\n`);
  for (const plan of poolPlan(config)) {
    print(`${opts.config}: ${describePlan(plan)}\n`);
    if (plan.warning) process.stderr.write(`${opts.config}: warning: ${plan.warning}\n`);
  }
  return 0;
}
