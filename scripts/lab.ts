/**
 * The lab by hand: the same namespaces, TAPs and addresses `nodeplane demo` and the
 * end-to-end tests build (src/lab/), for exploring with your own tools. Needs root.
 *
 *   npx tsx scripts/lab.ts up [--config FILE] [--dir DIR] [--capture]
 *       builds the demo node (or FILE's, with pods pa/pb/pc as in the demo), prints the
 *       namespace names and the admin socket, and tears everything down on Ctrl-C
 *   npx tsx scripts/lab.ts clean
 *       removes namespaces left by a lab whose process was killed outright
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { DEMO_CONFIG, DEMO_PODS } from '../src/lab/demo-topology.ts';
import { Lab } from '../src/lab/lab.ts';
import { netnsSupport, removeStaleNetns } from '../src/lab/netns.ts';

const [command, ...rest] = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = rest.indexOf(name);
  return i >= 0 ? rest[i + 1] : undefined;
};

async function up(): Promise<void> {
  const support = netnsSupport({ tun: true });
  if (!support.ok) throw new Error(support.reason);
  const configFile = flag('--config');
  const dir = resolve(flag('--dir') ?? 'nodeplane-lab');
  const lab = await Lab.start({
    config: configFile ? readFileSync(configFile, 'utf8') : DEMO_CONFIG,
    pods: DEMO_PODS,
    dir,
    capture: rest.includes('--capture'),
  });
  process.stdout.write(`node namespace: ${lab.node.name} (nodeplane runs here)\n`);
  for (const [port, ns] of lab.pods) process.stdout.write(`pod on ${port}: ip netns exec ${ns.name} bash\n`);
  process.stdout.write(`admin socket: ${lab.adminSocket}   (nodeplane show stats --admin ${lab.adminSocket})\n`);
  process.stdout.write('Ctrl-C tears the lab down.\n');
  await new Promise<void>((r) => process.once('SIGINT', () => r()));
  await lab.stopNodeplane('SIGTERM').catch(() => undefined);
  lab.destroy();
}

if (command === 'up') {
  await up();
} else if (command === 'clean') {
  removeStaleNetns();
} else {
  process.stderr.write('usage: npx tsx scripts/lab.ts up [--config FILE] [--dir DIR] [--capture] | clean\n');
  process.exitCode = 2;
}
