/**
 * The conntrack commands, against a running dataplane's admin socket (conntrack-tools'
 * `conntrack -L`, `-S`, `-D`/`-F` and `-E`):
 *
 *   show conntrack [--proto P] [--src IP] [--dst IP] [--json]   every entry, as `conntrack -L`
 *       prints them (or a JSON array, one entry a line), read as the server streams them,
 *       then on stderr "nodeplane: N flow entries have been shown."
 *   show conntrack --stats [--json]                             the counters of `conntrack -S`
 *   conntrack flush [--proto P] [--src IP] [--dst IP]          deletes entries; prints how many
 *   conntrack events [--proto P] [--src IP] [--dst IP] [--count N] [--seconds S] [--json]
 *       NEW, UPDATE and DESTROY events as `conntrack -E` prints them (or one JSON object a
 *       line), each as it arrives, until N events, S seconds, Ctrl-C or the reader of stdout
 *       goes away; then on stderr "nodeplane: N flow events have been shown."
 *
 * Filters select on the original tuple, as conntrack's `-p`, `-s` and `-d`. Output waits for
 * stdout (a slow pager slows the server's walk instead of filling memory) and ends quietly
 * when its reader goes away (stdout.ts).
 */
import { requestJson, streamLines } from '../admin/client.ts';
import { conntrackFilterQuery, parseProto, type ConntrackEventJson, type ConntrackLostJson, type ConntrackStatsJson } from '../admin/conntrack-json.ts';
import { conntrackDeletedSummary, conntrackEventsSummary, conntrackSummary, formatConntrackEvent, formatConntrackStats } from '../admin/conntrack-format.ts';
import { UserError } from '../user-error.ts';
import { parseIpv4 } from '../wire/ipv4-address.ts';
import { print, printOrWait, stdoutGone } from './stdout.ts';

export interface ConntrackFilterOptions {
  admin: string;
  proto?: string;
  src?: string;
  dst?: string;
}

/** The filter's query string, checked here so a mistake names the flag. */
function filterQuery(opts: ConntrackFilterOptions): URLSearchParams {
  if (opts.proto !== undefined) {
    try {
      parseProto(opts.proto);
    } catch (err) {
      throw new UserError(`--proto ${opts.proto}: ${(err as Error).message}`);
    }
  }
  for (const key of ['src', 'dst'] as const) {
    const v = opts[key];
    if (v === undefined) continue;
    try {
      parseIpv4(v);
    } catch {
      throw new UserError(`--${key} ${v}: expected an IPv4 address`);
    }
  }
  return conntrackFilterQuery(opts);
}

function withQuery(path: string, q: URLSearchParams): string {
  const s = q.toString();
  return s === '' ? path : `${path}?${s}`;
}

export interface ShowConntrackOptions extends ConntrackFilterOptions {
  json?: boolean;
  stats?: boolean;
}

export async function showConntrack(opts: ShowConntrackOptions): Promise<number> {
  if (opts.stats) {
    if (opts.proto !== undefined || opts.src !== undefined || opts.dst !== undefined) throw new UserError('--stats counts the whole table: it takes no --proto, --src or --dst');
    const stats = (await requestJson(opts.admin, 'GET', '/v1/conntrack/stats')) as ConntrackStatsJson;
    print(opts.json ? JSON.stringify(stats, null, 2) + '\n' : formatConntrackStats(stats));
    return 0;
  }
  const q = filterQuery(opts);
  // The server formats the text itself: cheaper for it than JSON, and half the bytes.
  q.set('format', opts.json ? 'json' : 'text');
  let shown = 0;
  await streamLines(opts.admin, withQuery('/v1/conntrack', q), {
    onLines: (lines) => {
      const out: string[] = [];
      for (const line of lines) {
        if (line === '') continue;
        out.push(!opts.json ? `${line}\n` : shown === 0 ? `[\n${line}` : `,\n${line}`);
        shown++;
      }
      return out.length === 0 || printOrWait(out.join(''));
    },
  });
  if (stdoutGone()) return 0;
  if (opts.json) print(shown === 0 ? '[]\n' : '\n]\n');
  process.stderr.write(conntrackSummary(shown) + '\n');
  return 0;
}

export async function conntrackFlush(opts: ConntrackFilterOptions): Promise<number> {
  const path = withQuery('/v1/conntrack', filterQuery(opts));
  const { deleted } = (await requestJson(opts.admin, 'DELETE', path, 60_000)) as { deleted: number };
  print(conntrackDeletedSummary(deleted) + '\n');
  return 0;
}

export interface ConntrackEventsOptions extends ConntrackFilterOptions {
  count?: string;
  seconds?: string;
  json?: boolean;
}

export async function conntrackEvents(opts: ConntrackEventsOptions): Promise<number> {
  const q = filterQuery(opts);
  if (opts.count !== undefined) {
    const n = Number(opts.count);
    if (!Number.isInteger(n) || n < 1) throw new UserError(`--count ${opts.count}: expected a whole number ≥ 1`);
    q.set('count', String(n));
  }
  if (opts.seconds !== undefined) {
    const s = Number(opts.seconds);
    if (!(s > 0)) throw new UserError(`--seconds ${opts.seconds}: expected a number of seconds > 0`);
    q.set('seconds', String(s));
  }
  let shown = 0;
  const summary = (): void => {
    process.stderr.write(conntrackEventsSummary(shown) + '\n');
  };
  // conntrack -E says how many it showed when interrupted; so do we.
  const onInterrupt = (): void => {
    summary();
    process.exit(0);
  };
  process.once('SIGINT', onInterrupt);
  try {
    await streamLines(opts.admin, withQuery('/v1/conntrack/events', q), {
      // Events come when they come: no idle limit.
      idleTimeoutMs: 0,
      onLines: (lines) => {
        const out: string[] = [];
        for (const line of lines) {
          if (line === '') continue;
          const e = JSON.parse(line) as ConntrackEventJson | ConntrackLostJson;
          if (e.event === 'LOST') {
            process.stderr.write(`nodeplane: ${e.count} conntrack events were lost (the dataplane's buffer was full, or this reader too slow)\n`);
            continue;
          }
          out.push(opts.json ? `${line}\n` : `${formatConntrackEvent(e)}\n`);
          shown++;
        }
        return out.length === 0 || printOrWait(out.join(''));
      },
    });
  } finally {
    process.off('SIGINT', onInterrupt);
  }
  if (!stdoutGone()) summary();
  return 0;
}
