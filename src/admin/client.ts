/**
 * Admin client: fetches one state snapshot from a running nodeplane's admin socket.
 *
 * `fetchState(socket, 'fdb')` is `GET /v1/fdb` over the unix socket, parsed from JSON.
 * A socket nobody serves (missing file, refused connection, no permission) is the user's
 * situation to fix and becomes a UserError naming the socket; so does an error answer.
 */
import { request } from 'node:http';
import { UserError } from '../user-error.ts';

/** How long to wait for an answer before giving up (the server answers from memory). */
const TIMEOUT_MS = 10_000;

const UNREACHABLE: Record<string, string> = {
  ENOENT: 'no such socket',
  ECONNREFUSED: 'connection refused',
  EACCES: 'permission denied',
  ENOTSOCK: 'not a socket',
  ECONNRESET: 'connection reset',
};

function unreachable(socketPath: string, reason: string): UserError {
  return new UserError(`cannot reach a running nodeplane at ${socketPath}: ${reason} (is \`nodeplane run --admin ${socketPath}\` running?)`);
}

/** GET `/v1/<what>` from the admin server on `socketPath`; the parsed JSON body. */
export function fetchState(socketPath: string, what: string): Promise<unknown> {
  return get(socketPath, `/v1/${encodeURIComponent(what)}`, TIMEOUT_MS);
}

/**
 * Traces the next `count` frames (at most `seconds`; only frames whose summary contains
 * `match`, when given) of the dataplane on `socketPath`.
 */
export function fetchTrace(socketPath: string, count: number, seconds: number, match?: string): Promise<unknown> {
  const q = new URLSearchParams({ count: String(count), seconds: String(seconds) });
  if (match !== undefined) q.set('match', match);
  return get(socketPath, `/v1/trace?${q}`, seconds * 1000 + TIMEOUT_MS);
}

function get(socketPath: string, path: string, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => reject(unreachable(socketPath, err.message)));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          reject(new UserError(`${socketPath}: the admin server sent a reply that is not JSON (status ${res.statusCode})`));
          return;
        }
        if (res.statusCode !== 200) {
          const msg = (body as { error?: unknown } | null)?.error;
          reject(new UserError(`${socketPath}: ${typeof msg === 'string' ? msg : `status ${res.statusCode}`}`));
          return;
        }
        resolve(body);
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('no answer in time'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const reason = (err.code && UNREACHABLE[err.code]) ?? err.message;
      reject(unreachable(socketPath, reason));
    });
    req.end();
  });
}
