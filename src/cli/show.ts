/**
 * `nodeplane show fdb|neigh|routes|services|conntrack|ports|stats [--admin SOCKET] [--json]`:
 * reads one table of a running dataplane through its admin socket and prints it as the Linux
 * tools print theirs (see src/admin/format.ts), or with `--json` as pretty-printed JSON (the
 * shapes of src/admin/state.ts). Exit 0; an unreachable socket is a UserError (exit 1), and so
 * is `services` or `conntrack`, which the admin server answers as not implemented yet.
 */
import { fetchState } from '../admin/client.ts';
import { formatState, SHOW_WHATS } from '../admin/format.ts';
import { print } from './stdout.ts';
import { UserError } from '../user-error.ts';

export interface ShowOptions {
  admin: string;
  json?: boolean;
}

export async function showCommand(what: string, opts: ShowOptions): Promise<number> {
  if (!(SHOW_WHATS as readonly string[]).includes(what)) {
    throw new UserError(`show: unknown table '${what}' (one of ${SHOW_WHATS.join(', ')})`);
  }
  const state = await fetchState(opts.admin, what);
  print(opts.json ? JSON.stringify(state, null, 2) + '\n' : formatState(what, state));
  return 0;
}
