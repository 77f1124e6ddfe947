/**
 * The etcd v3 client of cluster mode, from `cluster.etcd` (flannel's --etcd-endpoints,
 * --etcd-cafile, --etcd-certfile, --etcd-keyfile, --etcd-username, --etcd-password).
 *
 * Endpoints: http://host:port and https://host:port as flannel takes them, and
 * unix:///path (unixs:///path with TLS) for an etcd listening on a unix socket, which is
 * how the tests reach an etcd from inside a node's network namespace. TLS is on when an
 * endpoint says https/unixs or a CA, certificate or key file is given; without a CA file the
 * system's roots verify the server, as Go's client does. Files are read once, here: a file
 * that cannot be read is the user's mistake, named in the error.
 *
 * Call deadlines and the watch stream's reconnection: every unary call gives up after
 * CALL_TIMEOUT_MS (a request to an unreachable etcd fails rather than hangs, and the caller
 * retries on its own schedule); a broken watch stream is re-established after 100 ms,
 * doubling to 5 s, as flannel's registry watch backs off.
 */
import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';
import type { Config } from '../config/load.ts';
import { UserError } from '../user-error.ts';

export type EtcdConfig = NonNullable<Config['cluster']>['etcd'];

export const CALL_TIMEOUT_MS = 5000;
const WATCH_BACKOFF_FIRST_MS = 100;
const WATCH_BACKOFF_MAX_MS = 5000;

/** What etcd3's watch manager asks for (cockatiel's IBackoff): a duration and the next step. */
type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>;

function doubling(ms: number): WatchBackoff {
  return { duration: ms, next: () => doubling(Math.min(ms * 2, WATCH_BACKOFF_MAX_MS)) };
}

function readFile(what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UserError(`cluster.etcd.${what} ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

/** Whether the endpoints ask for TLS; refuses a mix, as etcd's clients do. */
export function endpointsUseTls(endpoints: readonly string[]): boolean {
  const secure = endpoints.filter((e) => e.startsWith('https://') || e.startsWith('unixs://'));
  if (secure.length > 0 && secure.length < endpoints.length) {
    throw new UserError('cluster.etcd.endpoints: mixes TLS (https, unixs) and plain endpoints');
  }
  return secure.length > 0;
}

/** The gRPC target of an endpoint: host:port, or unix:///path. */
export function grpcTarget(endpoint: string): string {
  if (endpoint.startsWith('unixs://')) return `unix://${endpoint.slice('unixs://'.length)}`;
  if (endpoint.startsWith('unix://')) return endpoint;
  return endpoint.replace(/^https?:\/\//, '').replace(/\/$/, '');
}

/** The etcd3 options for `cfg` (exported for tests; files are read here). */
export function etcdOptions(cfg: EtcdConfig): IOptions {
  const tls = endpointsUseTls(cfg.endpoints) || cfg.caFile !== '' || cfg.certFile !== '';
  const options: IOptions = {
    hosts: cfg.endpoints.map(grpcTarget),
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_TIMEOUT_MS }),
    faultHandling: { watchBackoff: doubling(WATCH_BACKOFF_FIRST_MS) },
    // Keepalive pings find a dead TCP connection to etcd (etcd allows pings every 5 s).
    grpcOptions: { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5000, 'grpc.keepalive_permit_without_calls': 1 },
  };
  if (tls) {
    options.credentials = {
      // null: the system's roots (grpc-js's createSsl reads null as "default roots").
      rootCertificate: cfg.caFile !== '' ? readFile('caFile', cfg.caFile) : (null as unknown as Buffer),
      ...(cfg.certFile !== '' ? { certChain: readFile('certFile', cfg.certFile), privateKey: readFile('keyFile', cfg.keyFile) } : {}),
    };
  }
  if (cfg.username !== '') options.auth = { username: cfg.username, password: cfg.password };
  return options;
}

export function createEtcdClient(cfg: EtcdConfig): Etcd3 {
  return new Etcd3(etcdOptions(cfg));
}
