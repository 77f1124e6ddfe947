/**
 * Where capture writers put their bytes. A writer calls write() once per file header, record
 * or block, with the whole unit, and the file sink issues one write(2) per call, so a killed
 * writer never leaves a record interleaved or half-buffered in user space (SPEC section 4).
 *
 * Limit, measured: under SIGKILL even one write(2) is not all-or-nothing. Linux copies it into
 * the page cache a page at a time and stops at a page boundary of the file once a fatal signal
 * is pending, so the last record may be cut at a 4096-byte offset. Every earlier record is
 * whole; read such files with `allowTruncatedTail` (reader.ts), as Wireshark does. A write
 * that lies within one 4096-byte page of the file is copied in one piece, whole or not at all;
 * PcapngWriter's `pageAligned` option uses `position` to keep every write so (pcapng-writer.ts).
 * SIGINT and SIGTERM are caught by `run`, which closes its writers, so only SIGKILL/OOM/power
 * loss cut.
 *
 * Contract: `bytes` is only valid during the call (writers reuse one scratch buffer), so a sink
 * that keeps bytes must copy them. Sinks are synchronous: capture is off the packet path and
 * a synchronous write keeps the order of records without any queueing.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

export interface CaptureSink {
  write(bytes: Buffer): void;
  close(): void;
  /**
   * File offset the next write() lands at, when the sink knows it (fileSink, memorySink).
   * Undefined for descriptors of unknown position (fdSink: stdout, pipes, FIFOs).
   */
  readonly position?: number;
}

/** Writes all of `bytes` to fd, looping on short writes (which regular files rarely do). */
function writeAll(fd: number, bytes: Buffer): void {
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
}

/** Creates (or truncates) a file and writes each unit with a single writeSync. */
export function fileSink(path: string): CaptureSink {
  const fd = openSync(path, 'w');
  let open = true;
  let position = 0;
  return {
    get position() {
      return position;
    },
    write(bytes) {
      if (!open) throw new Error(`${path}: write after close`);
      writeAll(fd, bytes);
      position += bytes.length;
    },
    close() {
      if (!open) return;
      open = false;
      closeSync(fd);
    },
  };
}

/** Collects everything in memory; bytes() returns it as one buffer. For tests and small files. */
export function memorySink(): CaptureSink & { bytes(): Buffer } {
  const parts: Buffer[] = [];
  let position = 0;
  return {
    get position() {
      return position;
    },
    write(bytes) {
      parts.push(Buffer.from(bytes));
      position += bytes.length;
    },
    close() {},
    bytes() {
      return Buffer.concat(parts);
    },
  };
}

export interface FdSinkOptions {
  /** Bytes that may wait for a slow non-blocking reader before whole units are dropped. */
  maxPendingBytes?: number;
  /** Close the descriptor on close() (default false: stdout and caller-owned FIFOs stay open). */
  closeFd?: boolean;
  /** How long close() keeps retrying to flush to a stalled reader, in ms (default 2000). */
  flushTimeoutMs?: number;
}

/** Sink state a caller may want to report (e.g. in `show stats`). */
export interface FdSinkStats {
  /** Units dropped because the reader fell too far behind or went away. */
  droppedUnits: number;
  /** True once the reader closed its end (EPIPE): nothing more is written. */
  broken: boolean;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/**
 * Writes to an already open descriptor: stdout (fd 1), a FIFO, a pipe.
 *
 * A pipe may be non-blocking, so write(2) can fail with EAGAIN or write only part of a unit.
 * Unwritten bytes are queued (copied) and retried on the next write(), from an unref'd timer,
 * and on close(). A unit that has started must be finished or the stream is corrupt, but a
 * unit not yet started may be dropped: when the queue exceeds maxPendingBytes, new units are
 * dropped and counted instead of growing memory without bound. EPIPE (the reader went away,
 * e.g. `| head`) stops all writing quietly; Node ignores SIGPIPE, so this is the only signal.
 */
export function fdSink(fd: number, opts: FdSinkOptions = {}): CaptureSink & { stats: FdSinkStats } {
  const maxPending = opts.maxPendingBytes ?? 8 * 1024 * 1024;
  const stats: FdSinkStats = { droppedUnits: 0, broken: false };
  const queue: Buffer[] = [];
  let head = 0; // bytes of queue[0] already written
  let pending = 0;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  /** Writes as much of the queue as the fd takes now; true when the queue is empty. */
  const flush = (): boolean => {
    while (queue.length > 0 && !stats.broken) {
      const first = queue[0]!;
      let n: number;
      try {
        n = writeSync(fd, first, head, first.length - head);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return false;
        if (code === 'EPIPE') {
          stats.broken = true;
          stats.droppedUnits += queue.length;
          queue.length = 0;
          pending = 0;
          return true;
        }
        throw e;
      }
      head += n;
      pending -= n;
      if (head === first.length) {
        queue.shift();
        head = 0;
      }
    }
    return queue.length === 0;
  };

  const schedule = (): void => {
    if (timer || closed) return;
    timer = setTimeout(() => {
      timer = undefined;
      if (!flush()) schedule();
    }, 5);
    timer.unref();
  };

  return {
    stats,
    write(bytes) {
      if (stats.broken || closed) {
        stats.droppedUnits++;
        return;
      }
      if (queue.length === 0) {
        // Common case: nothing waiting, write straight from the caller's buffer.
        let off = 0;
        try {
          while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
          return;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'EPIPE') {
            stats.broken = true;
            stats.droppedUnits++;
            return;
          }
          if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK') throw e;
        }
        if (off === 0 && pending + bytes.length > maxPending) {
          stats.droppedUnits++;
          return;
        }
        queue.push(Buffer.from(bytes.subarray(off)));
        pending += bytes.length - off;
        schedule();
        return;
      }
      if (flush()) {
        this.write(bytes);
        return;
      }
      if (pending + bytes.length > maxPending) {
        stats.droppedUnits++;
        return;
      }
      queue.push(Buffer.from(bytes));
      pending += bytes.length;
      schedule();
    },
    close() {
      if (closed) return;
      closed = true;
      if (timer) clearTimeout(timer);
      const deadline = Date.now() + (opts.flushTimeoutMs ?? 2000);
      while (!flush() && Date.now() < deadline) sleepMs(2);
      if (queue.length > 0) stats.droppedUnits += queue.length;
      if (opts.closeFd) closeSync(fd);
    },
  };
}
