/**
 * Admin server: the dataplane's state as JSON over HTTP on a unix socket (`nodeplane show`).
 *
 *   GET /v1/fdb | neigh | routes | ports | stats | graph
 *   GET /v1/trace?count=N&seconds=S[&match=TEXT]   the next N frames hop by hop (answers when done)
 *     → 200, application/json, the object state.ts builds
 *   /v1/conntrack, /v1/conntrack/stats, /v1/conntrack/events → conntrack-endpoints.ts
 *     (listing and events streamed, one JSON object a line; DELETE flushes)
 *   GET /v1/capture?port=NAME|drops=1[&snaplen=N][&filter=EXPR] → a live pcapng stream of one
 *     port's frames or of the dropped ones, until the client goes away (capture-endpoint.ts)
 *   GET /v1/services   each Service port, its frontends and endpoints with their connections
 *     (services-state.ts: the conntrack walk that counts them runs in chunks); 409 when the
 *     dataplane runs without connection tracking, hence without Services
 *   POST /v1/manifests/reload → reads the manifest files again, applies what changed; the
 *     report (files, services, added, removed, updated, errors) — `nodeplane manifests reload`
 *   POST /v1/ports (a JSON PortAddRequest) → adds a TAP port, optionally plugged into a pod's
 *     namespace; DELETE /v1/ports/NAME → removes a port added so, and what belonged to it
 *     (live-ports.ts) — `nodeplane port add|del`, the CNI plugin. 400 for a bad request, 404
 *     for no such port, 409 for a name in use or a port of the config
 *   anything else → 404 (unknown path) or 405 (not GET), `{"error": "..."}`
 *
 * Snapshots are built when a request arrives, on the event loop between packet batches,
 * so the packet path never pays for them; what may be large (the conntrack table) is
 * walked in chunks between batches. The socket file is created mode 0660 (owner and
 * group may read the dataplane's state); a stale file left by a crashed run is replaced, but
 * a socket some live server still answers on is refused, and so is a path that is not a
 * socket. Closing the server removes the file.
 */
import type { CaptureTaps } from '../capture/capture-taps.ts';
import { CAPTURE_PATH, CaptureStreams } from './capture-endpoint.ts';
import { CONNTRACK_PATHS, handleConntrack } from './conntrack-endpoints.ts';
import { traceLive } from './live-trace.ts';
import { NO_SERVICES, servicesState } from './services-state.ts';
import { sendJson as send } from './reply.ts';
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import type { Dataplane } from '../dataplane/dataplane.ts';
import type { ManifestReport } from '../dataplane/live-manifests.ts';
import type { RuntimePortRemoved } from '../dataplane/runtime-ports.ts';
import { parsePortAddRequest, PortRequestError, type PortAdded, type PortAddRequest } from '../ports/live-ports.ts';
import {
  fdbState,
  graphState,
  neighState,
  portsState,
  routesState,
  statsState,
  type CaptureStatus,
  type PortDriverStatus,
} from './state.ts';

export interface AdminExtras {
  /** Per-port status from the port drivers (live runs), merged into `/v1/ports`. */
  portStatus?: () => readonly PortDriverStatus[];
  /** Reads the manifests again (live runs: LiveManifests.reload). */
  reloadManifests?: () => ManifestReport;
  /** Adds and removes TAP ports (live runs: LivePorts). */
  ports?: {
    add(req: PortAddRequest): Promise<PortAdded>;
    remove(name: string): RuntimePortRemoved;
  };
  /** What the captures report (records written, ring drops), for `show ports`. */
  captureStatus?: () => CaptureStatus | null;
  /** Where live capture streams attach (`/v1/capture`); without it they are refused. */
  taps?: CaptureTaps;
}

export interface AdminServer {
  close(): Promise<void>;
}

type Endpoint = (dp: Dataplane, extra: AdminExtras, streams: CaptureStreams) => unknown;

const MANIFESTS_RELOAD = '/v1/manifests/reload';
const PORTS = '/v1/ports';
/** A port request is a few hundred bytes. */
const MAX_BODY = 64 * 1024;

/** The request's body parsed as JSON (400 when it is not). */
function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      text += d;
      if (text.length > MAX_BODY) {
        reject(new PortRequestError(400, 'request body too large'));
        req.destroy();
      }
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new PortRequestError(400, 'the request body is not JSON'));
      }
    });
    req.on('error', reject);
  });
}

function handlePorts(extra: AdminExtras, req: IncomingMessage, res: ServerResponse, path: string): void {
  const ports = extra.ports;
  const fail = (err: unknown): void => {
    if (err instanceof PortRequestError) send(res, err.status, { error: err.message });
    else send(res, 500, { error: `${path}: ${(err as Error).message}` });
  };
  if (path === PORTS) {
    if (ports === undefined) return send(res, 409, { error: 'this dataplane cannot add ports (not a live run)' });
    readJson(req)
      .then((body) => ports.add(parsePortAddRequest(body)))
      .then((r) => send(res, 200, r), fail);
    return;
  }
  if (req.method !== 'DELETE') {
    res.setHeader('allow', 'DELETE');
    return send(res, 405, { error: `method ${req.method} not allowed on ${path}: DELETE removes the port` });
  }
  if (ports === undefined) return send(res, 409, { error: 'this dataplane cannot remove ports (not a live run)' });
  try {
    send(res, 200, ports.remove(decodeURIComponent(path.slice(PORTS.length + 1))));
  } catch (err) {
    fail(err);
  }
}

const ENDPOINTS: Record<string, Endpoint> = {
  '/v1/fdb': (dp) => fdbState(dp),
  '/v1/neigh': (dp) => neighState(dp),
  '/v1/routes': (dp) => routesState(dp),
  '/v1/ports': (dp, extra, streams) => portsState(dp, extra.portStatus?.(), extra.captureStatus?.() ?? null, streams.status()),
  '/v1/stats': (dp) => statsState(dp),
  '/v1/graph': (dp) => graphState(dp),
};

function handle(dp: Dataplane, extra: AdminExtras, streams: CaptureStreams, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://nodeplane');
  const path = url.pathname;
  if (path === CAPTURE_PATH) {
    streams.handle(dp, extra.taps, req, res, url);
    return;
  }
  if (path === '/v1/trace' && (req.method === 'GET' || req.method === 'HEAD')) {
    const count = Number(url.searchParams.get('count') ?? '10');
    const seconds = Number(url.searchParams.get('seconds') ?? '10');
    traceLive(dp, count, seconds, url.searchParams.get('match')).then(
      (r) => send(res, 200, r),
      (err: Error) => send(res, 400, { error: `trace: ${err.message}` }),
    );
    return;
  }
  if (path === MANIFESTS_RELOAD) {
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      send(res, 405, { error: `method ${req.method} not allowed on ${path}: POST reads the manifests again` });
    } else if (extra.reloadManifests === undefined) {
      send(res, 409, { error: 'this dataplane does not read manifests' });
    } else {
      try {
        send(res, 200, extra.reloadManifests());
      } catch (err) {
        send(res, 500, { error: `manifests reload: ${(err as Error).message}` });
      }
    }
    return;
  }
  if ((path === PORTS && req.method === 'POST') || path.startsWith(`${PORTS}/`)) {
    handlePorts(extra, req, res, path);
    return;
  }
  if (CONNTRACK_PATHS.includes(path)) {
    handleConntrack(dp, req, res, url);
    return;
  }
  if (path === '/v1/services' && (req.method === 'GET' || req.method === 'HEAD')) {
    if (dp.conntrackHooks === null) {
      send(res, 409, { error: NO_SERVICES });
      return;
    }
    servicesState(dp).then(
      (r) => send(res, 200, r),
      (err: Error) => send(res, 500, { error: `services: ${err.message}` }),
    );
    return;
  }
  const endpoint = Object.hasOwn(ENDPOINTS, path) ? ENDPOINTS[path] : undefined;
  if (endpoint === undefined) {
    send(res, 404, { error: `no such endpoint: ${path}`, endpoints: [...Object.keys(ENDPOINTS), '/v1/trace', CAPTURE_PATH, '/v1/services', ...CONNTRACK_PATHS, MANIFESTS_RELOAD, `${PORTS}/NAME`] });
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', path === PORTS ? 'GET, HEAD, POST' : 'GET, HEAD');
    send(res, 405, { error: `method ${req.method} not allowed on ${path}` });
    return;
  }
  let body: unknown;
  try {
    body = endpoint(dp, extra, streams);
  } catch (err) {
    send(res, 500, { error: `${path}: ${(err as Error).message}` });
    return;
  }
  send(res, 200, body);
}

/** True when something accepts connections on the unix socket `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ path });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** Clears the way for listening on `path`: removes a stale socket, refuses anything else. */
async function prepare(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket) throw new Error('the path exists and is not a socket; not replacing it');
  if (await answers(path)) throw new Error('another server is already listening on it (is nodeplane already running?)');
  unlinkSync(path);
}

/** Serves `dp`'s state on the unix socket `socketPath` until `close()`. */
export async function startAdminServer(dp: Dataplane, socketPath: string, extra: AdminExtras = {}): Promise<AdminServer> {
  await prepare(socketPath);
  const streams = new CaptureStreams();
  const server = createServer((req, res) => handle(dp, extra, streams, req, res));
  // No keep-alive: `show` makes one request; idle connections must not hold up close().
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  try {
    chmodSync(socketPath, 0o660);
  } catch (err) {
    server.close();
    throw err;
  }
  let closed: Promise<void> | null = null;
  return {
    close(): Promise<void> {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).then(() => {
        // Node unlinks a unix socket it listened on when the server closes; make sure.
        try {
          unlinkSync(socketPath);
        } catch {
          // Already gone.
        }
      });
      return closed;
    },
  };
}
