/**
 * The admin server's conntrack endpoints (`conntrack -L`, `-S`, `-F`/`-D`, `-E`):
 *
 *   GET    /v1/conntrack[?proto=P&src=IP&dst=IP&format=json|text]   every entry (filtered on
 *          the original tuple), one a line: a JSON object (conntrack-json.ts) or, with
 *          format=text, conntrack -L's line (conntrack-format.ts); streamed in chunks between
 *          batches (conntrack-stream.ts)
 *   GET    /v1/conntrack/stats                      the counters of `conntrack -S`, as JSON
 *   DELETE /v1/conntrack[?proto=P&src=IP&dst=IP]   destroys the matching entries, in chunks
 *          between batches → `{"deleted": N}`
 *   GET    /v1/conntrack/events[?proto&src&dst&count=N&seconds=S]   NEW, UPDATE and DESTROY
 *          events as they happen, one JSON object a line, until N events, S seconds or the
 *          reader goes away (conntrack-events.ts); several readers at once each get every
 *          event
 *
 * A dataplane whose config asks for no connection tracking (no `nat`, `conntrack` or
 * services) has no table: 409 says so, rather than an empty list that would mislead.
 * Bad parameters: 400; a method a path does not take: 405.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dataplane } from '../dataplane/dataplane.ts';
import { ConntrackEventHub } from './conntrack-events.ts';
import { conntrackStatsJson, parseConntrackFilter } from './conntrack-json.ts';
import { flushConntrackChunked, streamConntrack, type ListingFormat } from './conntrack-stream.ts';
import { sendJson } from './reply.ts';

export const CONNTRACK_PATHS = ['/v1/conntrack', '/v1/conntrack/stats', '/v1/conntrack/events'];

export const NO_CONNTRACK = 'connection tracking is off in this dataplane: its config has no nat, conntrack or services section';

const METHODS: Record<string, string[]> = {
  '/v1/conntrack': ['GET', 'DELETE'],
  '/v1/conntrack/stats': ['GET'],
  '/v1/conntrack/events': ['GET'],
};

/** A whole number ≥ 1, or Infinity when absent. */
function countParam(q: URLSearchParams): number {
  const v = q.get('count');
  if (v === null) return Infinity;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`count: expected a whole number ≥ 1, got '${v}'`);
  return n;
}

/** Seconds > 0, or Infinity when absent. */
function secondsParam(q: URLSearchParams): number {
  const v = q.get('seconds');
  if (v === null) return Infinity;
  const s = Number(v);
  if (!(s > 0 && s <= 2 ** 31 / 1000)) throw new Error(`seconds: expected a number of seconds > 0, got '${v}'`);
  return s;
}

/** Answers a request for one of CONNTRACK_PATHS. */
export function handleConntrack(dp: Dataplane, req: IncomingMessage, res: ServerResponse, url: URL): void {
  const path = url.pathname;
  const method = req.method ?? 'GET';
  if (!METHODS[path].includes(method)) {
    res.setHeader('allow', METHODS[path].join(', '));
    sendJson(res, 405, { error: `method ${method} not allowed on ${path}` });
    return;
  }
  const ct = dp.ctx.conntrack;
  if (ct === null) {
    sendJson(res, 409, { error: NO_CONNTRACK });
    return;
  }
  if (path === '/v1/conntrack/stats') {
    sendJson(res, 200, conntrackStatsJson(ct));
    return;
  }
  let filter;
  let format: ListingFormat = 'json';
  let count = Infinity;
  let seconds = Infinity;
  try {
    filter = parseConntrackFilter(url.searchParams);
    if (path === '/v1/conntrack/events') {
      count = countParam(url.searchParams);
      seconds = secondsParam(url.searchParams);
    } else {
      const f = url.searchParams.get('format') ?? 'json';
      if (f !== 'json' && f !== 'text') throw new Error(`format: json or text, not '${f}'`);
      format = f;
    }
  } catch (err) {
    sendJson(res, 400, { error: `${path}: ${(err as Error).message}` });
    return;
  }
  if (path === '/v1/conntrack/events') {
    try {
      ConntrackEventHub.of(ct, dp).subscribe(res, { filter, count, seconds });
    } catch (err) {
      sendJson(res, 409, { error: `conntrack events: ${(err as Error).message}` });
    }
    return;
  }
  if (method === 'DELETE') {
    void flushConntrackChunked(ct, filter).then((deleted) => sendJson(res, 200, { deleted }));
    return;
  }
  void streamConntrack(ct, filter, res, format);
}
