/**
 * `nodeplane trace`: the next frames a running dataplane receives, followed hop by hop
 * through its stages (VPP's `trace add`), read through the admin socket.
 */
import { fetchTrace } from '../admin/client.ts';
import type { LiveTraceResult } from '../admin/live-trace.ts';
import { print } from './stdout.ts';
import { UserError } from '../user-error.ts';

export async function traceCommand(opts: { admin: string; count: string; seconds: string; match?: string; json?: boolean }): Promise<number> {
  const count = Number(opts.count);
  const seconds = Number(opts.seconds);
  if (!Number.isInteger(count) || count < 1) throw new UserError(`--count ${opts.count}: expected a whole number ≥ 1`);
  if (!(seconds > 0)) throw new UserError(`--seconds ${opts.seconds}: expected a number of seconds > 0`);
  const r = (await fetchTrace(opts.admin, count, seconds, opts.match)) as LiveTraceResult;
  if (opts.json) {
    print(`${JSON.stringify(r, null, 2)}\n`);
    return 0;
  }
  for (const line of r.lines) if (!print(`${line}\n`)) break;
  if (!r.complete) process.stderr.write(`trace: ${r.frames} of ${count} frames seen in ${seconds} s\n`);
  return 0;
}
