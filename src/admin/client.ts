/**
 * Admin client: fetches one state snapshot from a running nodeplane's admin socket.
 *
 * `fetchState(socket, 'fdb')` is `GET /v1/fdb` over the unix socket, parsed from JSON.
 * `streamLines` reads a streamed answer (the conntrack listing and events: one JSON object
 * a line) as it arrives, pausing the socket while its consumer catches up, so a slow
 * reader slows the server instead of filling memory.
 * `sendJson` sends a JSON body (`nodeplane port add`).
 * A socket nobody serves (missing file, refused connection, no permission) is the user's
 * situation to fix and becomes an AdminUnreachable (a UserError) naming the socket; an error
 * answer becomes an AdminRefused (a UserError too) with the status and the server's reason.
 */
import { request, type IncomingMessage } from 'node:http';
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

/** Nobody answered on the socket (the CNI plugin's "try again later"). */
export class AdminUnreachable extends UserError {}

/** The server answered with an error: its status and reason (kept private: the error compares as the plain UserError it prints as). */
export class AdminRefused extends UserError {
  readonly #status: number | undefined;
  readonly #reason: string;
  constructor(message: string, status: number | undefined, reason: string) {
    super(message);
    this.#status = status;
    this.#reason = reason;
  }
  get status(): number | undefined {
    return this.#status;
  }
  get reason(): string {
    return this.#reason;
  }
}

function unreachable(socketPath: string, reason: string): UserError {
  return new AdminUnreachable(`cannot reach a running nodeplane at ${socketPath}: ${reason} (is \`nodeplane run --admin ${socketPath}\` running?)`);
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

/** `method path` (a path with its query), the parsed JSON body of a 200 answer. */
export function requestJson(socketPath: string, method: string, path: string, timeoutMs = TIMEOUT_MS): Promise<unknown> {
  return get(socketPath, path, timeoutMs, method);
}

/** `method path` with `body` sent as JSON; the parsed JSON body of a 200 answer. */
export function sendJson(socketPath: string, method: string, path: string, body: unknown, timeoutMs = TIMEOUT_MS): Promise<unknown> {
  return get(socketPath, path, timeoutMs, method, JSON.stringify(body));
}

/** Error text of a non-200 answer whose body was `text`. */
function errorOf(socketPath: string, status: number | undefined, text: string): UserError {
  let msg: unknown;
  try {
    msg = (JSON.parse(text) as { error?: unknown } | null)?.error;
  } catch {
    // Not JSON: the status says it.
  }
  return new UserError(`${socketPath}: ${typeof msg === 'string' ? msg : `status ${status}`}`);
}

export interface StreamOptions {
  /** Give up when nothing arrives for this long (0: wait as long as it takes; the default is 10 s). */
  idleTimeoutMs?: number;
  /**
   * Called with each run of whole lines as they arrive. Return a promise to hold the stream
   * until it settles (backpressure), or `false` to stop reading (the connection is closed and
   * the stream ends as if complete).
   */
  onLines: (lines: string[]) => Promise<void> | boolean | void;
  /** Stops reading when aborted, as `false` from onLines does. */
  signal?: AbortSignal;
}

/** GETs (or `method`s) a streamed answer line by line; resolves when it ends, or the consumer stops. */
export function streamLines(socketPath: string, path: string, opts: StreamOptions, method = 'GET'): Promise<void> {
  return new Promise((resolve, reject) => {
    let stopped = false;
    const req = request({ socketPath, path, method, timeout: opts.idleTimeoutMs ?? TIMEOUT_MS }, (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => reject(errorOf(socketPath, res.statusCode, text)));
        return;
      }
      let partial = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        if (stopped) return;
        const parts = (partial + d).split('\n');
        partial = parts.pop() ?? '';
        if (parts.length === 0) return;
        const r = opts.onLines(parts);
        if (r === false) {
          stop();
        } else if (r instanceof Promise) {
          res.pause();
          r.then(
            () => res.resume(),
            (err: unknown) => {
              stopped = true;
              req.destroy();
              reject(err);
            },
          );
        }
      });
      res.on('end', () => {
        if (stopped) return;
        if (partial !== '') opts.onLines([partial]);
        resolve();
      });
      // A connection that breaks mid-answer: 'close' below says so; the error itself adds nothing.
      res.on('error', () => undefined);
      res.on('close', () => {
        if (!stopped && !res.complete) reject(new UserError(`${socketPath}: the answer to ${path} broke off before its end`));
      });
    });
    const stop = (): void => {
      stopped = true;
      req.destroy();
      resolve();
    };
    if (opts.signal?.aborted) stop();
    opts.signal?.addEventListener('abort', stop, { once: true });
    req.on('close', () => opts.signal?.removeEventListener('abort', stop));
    req.on('timeout', () => req.destroy(Object.assign(new Error('no answer in time'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (stopped) return;
      const reason = (err.code && UNREACHABLE[err.code]) ?? err.message;
      reject(unreachable(socketPath, reason));
    });
    req.end();
  });
}

function get(socketPath: string, path: string, timeoutMs: number, method = 'GET', body?: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    const req = request({ socketPath, path, method, timeout: timeoutMs, headers }, (res) => {
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
          const reason = typeof msg === 'string' ? msg : `status ${res.statusCode}`;
          reject(new AdminRefused(`${socketPath}: ${reason}`, res.statusCode, reason));
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
    req.end(body);
  });
}
