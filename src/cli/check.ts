/**
 * `nodeplane check --config FILE`: validates a configuration without running anything.
 *
 * Valid: one line on stdout, `FILE: OK (1 bridge, 3 ports, ...)`, exit 0.
 * Invalid or unreadable: every problem on stderr, one a line as `FILE: path: message`, exit 1.
 */
import { ConfigError, loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { print } from './stdout.ts';

function count(n: number, singular: string, plural = `${singular}s`): string {
  return `${n} ${n === 1 ? singular : plural}`;
}

export function summary(c: Config): string {
  return [
    count(c.bridges.length, 'bridge'),
    count(c.ports.length, 'port'),
    count(c.routes.length, 'route'),
    count(c.neighbors.length, 'neighbor'),
    count(c.services.length, 'service'),
    count(c.vxlan.length, 'vxlan device'),
  ].join(', ');
}

export async function checkCommand(opts: { config: string }): Promise<number> {
  try {
    const config = loadConfig(opts.config);
    print(`${opts.config}: OK (${summary(config)})\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return 1;
  }
}
