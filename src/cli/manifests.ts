/**
 * `nodeplane manifests reload [--admin SOCKET] [--json]`: makes a running dataplane read its
 * manifest files again now and apply what changed — what the file watcher and SIGHUP do,
 * on demand (after editing files on a filesystem inotify does not see, such as NFS).
 *
 * Prints one line: files read, Services from manifests, and how many were added, removed and
 * updated by this reload; then every problem of a refused file on stderr, as `check` prints
 * them. Exit 0 when every file is good, 1 when some file is refused (its last good contents
 * stay in force).
 */
import { requestJson } from '../admin/client.ts';
import type { ManifestReport } from '../dataplane/live-manifests.ts';
import { print } from './stdout.ts';

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

export async function manifestsReload(opts: { admin: string; json?: boolean }): Promise<number> {
  const r = (await requestJson(opts.admin, 'POST', '/v1/manifests/reload')) as ManifestReport;
  if (opts.json) {
    print(`${JSON.stringify(r, null, 2)}\n`);
  } else {
    print(
      `manifests: ${plural(r.files, 'file')}, ${plural(r.services, 'service')}; ` +
        `this reload: ${r.added} added, ${r.removed} removed, ${r.updated} updated\n`,
    );
    for (const e of r.errors) process.stderr.write(`${e}\n`);
  }
  return r.errors.length > 0 ? 1 : 0;
}
