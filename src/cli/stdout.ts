/**
 * Standard output of the commands that print (replay, trace, show, decode, check): when its
 * reader goes away (`nodeplane … | head -1`, a pager quit early), the output just ends.
 *
 * Node ignores SIGPIPE, so a write to a pipe nobody reads fails with EPIPE, and the stream
 * reports it as an 'error' event that — unhandled — ends the process with a stack trace and
 * status 1. `guardStdout()` (installed once by the command line, before any command runs)
 * handles it instead: later output is dropped, the command finishes its own work (a replay
 * still writes its pcaps) and exits 0, as tcpdump's output ends when its reader goes. The
 * same goes for stderr (`2>&1 | head`). Any other write error still fails loudly.
 *
 * `run --capture-stdout` writes its pcap stream to fd 1 itself (capture/live-capture.ts): on
 * EPIPE the stream stops with one log line and the dataplane carries on.
 */

let gone = false;
const guarded = new WeakSet<NodeJS.WriteStream>();

/** Makes EPIPE on stdout (and stderr) the end of the output instead of a crash. Idempotent. */
export function guardStdout(): void {
  for (const stream of [process.stdout, process.stderr]) {
    if (guarded.has(stream)) continue;
    guarded.add(stream);
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
      if (stream === process.stdout) gone = true;
    });
  }
}

/**
 * True once stdout's reader has gone. A failed write marks the stream errored at once; the
 * 'error' event follows a tick later, so both are looked at.
 */
export function stdoutGone(): boolean {
  if (!gone && (process.stdout.errored !== null || process.stdout.destroyed)) gone = true;
  return gone;
}

/** Writes `text` to stdout unless its reader has gone; returns false once it has. */
export function print(text: string): boolean {
  if (stdoutGone()) return false;
  process.stdout.write(text);
  return !stdoutGone();
}

/**
 * Writes `text` to stdout for a producer that can wait: true when stdout takes more at once,
 * false once its reader has gone (stop producing), or a promise that settles when stdout has
 * drained (or closed) — wait for it before writing more.
 */
export function printOrWait(text: string): boolean | Promise<void> {
  const out = process.stdout;
  if (stdoutGone()) return false;
  if (out.write(text)) return true;
  if (stdoutGone()) return false;
  return new Promise<void>((resolve) => {
    const done = (): void => {
      out.off('drain', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('close', done);
  });
}

/**
 * Prints lines in large chunks and waits when stdout is slow, for long outputs produced by an
 * async loop (`decode`): the loop stops when `gone` turns true.
 */
export class LineWriter {
  private parts: string[] = [];
  private size = 0;

  get gone(): boolean {
    return stdoutGone();
  }

  async line(s: string): Promise<void> {
    this.parts.push(s, '\n');
    this.size += s.length + 1;
    if (this.size >= 1 << 16) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.parts.length === 0) return;
    const chunk = this.parts.join('');
    this.parts = [];
    this.size = 0;
    const r = printOrWait(chunk);
    if (r instanceof Promise) await r;
  }
}
