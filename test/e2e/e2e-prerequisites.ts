/**
 * What the end-to-end tests need from the machine. Without it they skip with the reason
 * printed, except under CI=true, where a missing prerequisite fails the run.
 */
import { spawnSync } from 'node:child_process';
import { tapAvailable } from '../../src/ports/tap-native.ts';
import { netnsSupport } from '../../src/lab/netns.ts';

export const REQUIRED = process.env.CI === 'true';

export function missingPrerequisite(tools: string[]): string | null {
  const ns = netnsSupport({ tun: true });
  if (!ns.ok) return ns.reason;
  const tap = tapAvailable();
  if (!tap.ok) return tap.reason;
  for (const t of tools) {
    if (spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0) return `\`${t}\` is not installed`;
  }
  return null;
}

/** Prints why a suite is skipped; returns whether to skip it. */
export function skipUnlessReady(suite: string, problem: string | null): boolean {
  if (problem === null) return false;
  if (REQUIRED) return false;
  process.stdout.write(`skipping ${suite}: ${problem}\n`);
  return true;
}
