/**
 * `nodeplane show fdb|neigh|routes|services|conntrack|ports|stats|graph [--admin SOCKET] [--json]`:
 * reads one table of a running dataplane through its admin socket and prints it as the Linux
 * tools print theirs (see src/admin/format.ts), or with `--json` as pretty-printed JSON (the
 * shapes of src/admin/state.ts). `conntrack` is streamed and takes filters and `--stats`
 * (conntrack.ts); `services` lists each Service port with its endpoints and their active
 * connections (src/admin/services-state.ts). Exit 0; an unreachable socket is a UserError
 * (exit 1), and so is `conntrack` on a dataplane without connection tracking.
 */
import { fetchState } from '../admin/client.ts';
import { formatState, SHOW_WHATS } from '../admin/format.ts';
import { showConntrack } from './conntrack.ts';
import { print } from './stdout.ts';
import { UserError } from '../user-error.ts';

export interface ShowOptions {
  admin: string;
  json?: boolean;
  /** conntrack only. */
  stats?: boolean;
  proto?: string;
  src?: string;
  dst?: string;
}

export async function showCommand(what: string, opts: ShowOptions): Promise<number> {
  if (!(SHOW_WHATS as readonly string[]).includes(what)) {
    throw new UserError(`show: unknown table '${what}' (one of ${SHOW_WHATS.join(', ')})`);
  }
  if (what === 'conntrack') return showConntrack(opts);
  for (const flag of ['stats', 'proto', 'src', 'dst'] as const) {
    if (opts[flag] !== undefined) throw new UserError(`show ${what}: --${flag} is for show conntrack only`);
  }
  const state = await fetchState(opts.admin, what);
  print(opts.json ? JSON.stringify(state, null, 2) + '\n' : formatState(what, state));
  return 0;
}
