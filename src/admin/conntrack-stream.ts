/**
 * Walking the conntrack table from the admin server without stalling forwarding. The
 * server shares the packet thread, and a table holds up to millions of entries: a listing
 * (`show conntrack`) and a flush are done in chunks, one per turn of the event loop
 * (setImmediate), so the TAP ports' batches run between any two chunks. A chunk ends after
 * CHUNK_MS of work or CHUNK_LINES entries, whichever comes first (the clock is read every
 * 256 ids), so the pause it causes does not grow with the table.
 *
 * A listing is written to the HTTP response chunk by chunk, one entry a line (a JSON object,
 * or the line `conntrack -L` prints: half the bytes; conntrack-lines.ts), in id order; when the socket's buffer is full (a slow reader), the walk waits for 'drain', so a
 * reader that stops reading costs no CPU and holds at most one chunk. A reader that goes
 * away ends the walk. Entries are visited as conntrack-views.ts says: each entry alive
 * during the whole walk exactly once; one created or destroyed meanwhile may be missed.
 */
import type { ServerResponse } from 'node:http';
import type { Conntrack } from '../tables/conntrack.ts';
import { type ConntrackFilter, flushConntrack, forEachConntrackFrom, matchesConntrack } from '../tables/conntrack-views.ts';
import { AsciiWriter } from './ascii-writer.ts';
import { CONNTRACK_LINE_MAX, writeConntrackEntryJsonLine, writeConntrackEntryLine } from './conntrack-lines.ts';

/** One JSON object a line, or conntrack -L's text. */
export type ListingFormat = 'json' | 'text';

export interface ChunkLimits {
  /** Work per turn of the event loop, in ms. */
  ms: number;
  /** Entries formatted per turn at most (listing). */
  lines: number;
}

export const CHUNK_LIMITS: Readonly<ChunkLimits> = { ms: 1, lines: 2048 };

/** Ids looked at between two readings of the clock. */
const IDS_PER_CHECK = 256;
/** Bytes of one buffer (a chunk may fill several). */
const BUFFER_BYTES = 1 << 18;

/**
 * Streams the entries matching `filter` to `res` (status 200, chunked), one a line, a chunk
 * per turn of the event loop. Resolves with the number of entries written when the walk
 * ends, or the reader goes away.
 *
 * Lines are written straight into off-heap buffers (conntrack-lines.ts): a chunk makes no
 * garbage on the JS heap, so the walk does not set off scavenges that would pause
 * forwarding. The buffers are reused once the socket has taken them: fresh ones for a
 * listing of 170 MB would be external memory whose growth makes V8 run full collections.
 */
export function streamConntrack(
  ct: Conntrack,
  filter: ConntrackFilter,
  res: ServerResponse,
  format: ListingFormat = 'json',
  limits: ChunkLimits = CHUNK_LIMITS,
): Promise<number> {
  res.writeHead(200, { 'content-type': format === 'json' ? 'application/x-ndjson' : 'text/plain; charset=utf-8' });
  const writeLine = format === 'json' ? writeConntrackEntryJsonLine : writeConntrackEntryLine;
  let cursor = 0;
  let written = 0;
  let gone = false;
  let waiting: (() => void) | null = null;
  return new Promise((resolve) => {
    const onClose = (): void => {
      gone = true;
      if (waiting !== null) res.off('drain', waiting);
      resolve(written);
    };
    res.once('close', onClose);
    // 'drain' may come in the same tick as the write that filled the buffer (a write the
    // socket took at once): the next chunk still waits for the next turn of the loop, so
    // batches run between any two chunks.
    const next = (): void => {
      waiting = null;
      setImmediate(chunk);
    };
    const spare: Buffer[] = [];
    const take = (): Buffer => spare.pop() ?? Buffer.allocUnsafeSlow(BUFFER_BYTES);
    const send = (buf: Buffer, n: number): boolean => res.write(buf.subarray(0, n), () => spare.push(buf));
    const chunk = (): void => {
      if (gone) return;
      const full: [Buffer, number][] = [];
      const w = new AsciiWriter(take());
      let lines = 0;
      const visit = (id: number): void => {
        if (!matchesConntrack(ct, id, filter)) return;
        if (w.room < CONNTRACK_LINE_MAX) {
          full.push([w.buf, w.pos]);
          w.reset(take());
        }
        writeLine(w, ct, id);
        w.byte(0x0a);
        lines++;
      };
      const t0 = performance.now();
      do cursor = forEachConntrackFrom(ct, cursor, IDS_PER_CHECK, visit);
      while (cursor >= 0 && lines < limits.lines && performance.now() - t0 < limits.ms);
      written += lines;
      if (w.pos > 0) full.push([w.buf, w.pos]);
      else spare.push(w.buf);
      let room = true;
      for (const [buf, n] of full) room = send(buf, n);
      if (cursor < 0) {
        res.off('close', onClose);
        res.end();
        resolve(written);
      } else if (room) {
        setImmediate(chunk);
      } else {
        waiting = next;
        res.once('drain', next);
      }
    };
    setImmediate(chunk);
  });
}

/**
 * Destroys the entries matching `filter`, in chunks of at most `ms` of work per turn of the
 * event loop (each destroyed entry is a DESTROY event for listeners). Resolves with how many
 * live entries it destroyed. Entries created in the part of the table already walked survive,
 * as they would a `conntrack -F` that ran a moment earlier.
 */
export function flushConntrackChunked(ct: Conntrack, filter: ConntrackFilter, ms: number = CHUNK_LIMITS.ms): Promise<number> {
  let from = 0;
  let deleted = 0;
  return new Promise((resolve) => {
    const chunk = (): void => {
      const t0 = performance.now();
      do {
        deleted += flushConntrack(ct, filter, from, from + IDS_PER_CHECK);
        from += IDS_PER_CHECK;
      } while (from < ct.highWater && performance.now() - t0 < ms);
      if (from < ct.highWater) setImmediate(chunk);
      else resolve(deleted);
    };
    chunk();
  });
}
