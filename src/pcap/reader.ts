/**
 * Capture file readers: the whole-file reader (replay, decode) and a push parser for pipes and
 * FIFOs. Both drive the same CaptureDecoder, so there is exactly one block/record parser.
 *
 * Why not the npm package `pcap-parser` (0.2.1, checked against its published source): it
 * recognises only the microsecond magic (no a1b23c4d nanosecond files, no pcapng at all), its
 * errors carry no byte offset and a truncated file just ends without an error, it does no
 * caplen checks, it copies the whole pending buffer on every chunk (quadratic on a slow
 * pipe), uses the deprecated `new Buffer`, and is CommonJS built on EventEmitter. Wrapping it
 * would leave us writing most of this file anyway.
 */
import { readFileSync } from 'node:fs';
import { CaptureDecoder } from './decoder.ts';
import type { CaptureFormatError } from './errors.ts';
import type { CaptureInterface, CaptureRecord } from './record.ts';

export interface CaptureFile {
  format: 'pcap' | 'pcapng';
  /** All interfaces of the file (pcapng: every IDB of every section, in file order). */
  interfaces: CaptureInterface[];
  /** Iterates the records again from the start each time it is called. */
  records(): Generator<CaptureRecord>;
  /** Number of records (known because the file was validated when it was opened). */
  count: number;
  /** The name used in error messages (the path for readCaptureSync). */
  name: string;
  /** With allowTruncatedTail: what was cut off at the end (the error it would have been). */
  truncatedTail?: CaptureFormatError;
}

export interface ReadOptions {
  /**
   * Treat a header or record cut off at the very end as the end of the capture instead of an
   * error (reported in `truncatedTail`). This is how Wireshark reads a capture whose writer was
   * killed: one write(2) per record is not enough under SIGKILL, because Linux copies a write
   * into the page cache a page at a time and stops at a page boundary once a fatal signal is
   * pending, so the last record can be cut at a 4096-byte file offset. Default false: strict.
   */
  allowTruncatedTail?: boolean;
}

/** Reads a whole capture file; see parseCapture. File-system errors are thrown unchanged. */
export function readCaptureSync(path: string, opts: ReadOptions = {}): CaptureFile {
  return parseCapture(readFileSync(path), path, opts);
}

/**
 * Parses a capture held in memory. The whole file is validated first (one pass over the
 * headers, no copies), so a malformed file fails here, before a replay has done any work,
 * and `interfaces` is complete even when a pcapng file declares interfaces late. records()
 * then decodes lazily; each record's data aliases `bytes`.
 */
export function parseCapture(bytes: Buffer, name: string, opts: ReadOptions = {}): CaptureFile {
  const check = new CaptureDecoder(name);
  let end = bytes.length;
  let pos = 0;
  for (;;) {
    const n = check.step(bytes, pos, end, pos);
    if (n === 0) break;
    pos += n;
  }
  let truncatedTail: CaptureFormatError | undefined;
  if (pos < end || check.format === undefined) {
    const err = check.truncation(bytes, pos, end, pos);
    if (!opts.allowTruncatedTail || check.format === undefined) throw err;
    truncatedTail = err;
    end = pos;
  }
  return {
    format: check.format,
    interfaces: check.interfaces,
    count: check.count,
    name,
    ...(truncatedTail ? { truncatedTail } : {}),
    *records() {
      const d = new CaptureDecoder(name);
      let p = 0;
      for (;;) {
        const n = d.step(bytes, p, end, p);
        if (n === 0) return;
        p += n;
        if (d.record) yield d.record;
      }
    },
  };
}

const EMPTY = Buffer.alloc(0);

/**
 * A push parser for captures arriving in pieces (a FIFO, stdin, a socket):
 *
 *   const r = new CaptureStreamReader('stdin');
 *   for await (const chunk of process.stdin) for (const rec of r.feed(chunk)) handle(rec);
 *   r.end();
 *
 * feed() queues the chunk immediately and returns a generator over the records that are now
 * complete; records left undrained are yielded by the next feed() or returned by end().
 * Chunks are only joined once enough bytes for the next unit have arrived, so a large block
 * delivered in small pieces costs one copy, not one per piece. A record's data aliases either
 * the caller's chunk or a joined buffer that is never reused, so it stays valid.
 */
export class CaptureStreamReader {
  private readonly decoder: CaptureDecoder;
  private buf: Buffer = EMPTY;
  private pos = 0;
  /** Absolute offset of buf[pos]. */
  private abs = 0;
  private chunks: Buffer[] = [];
  private queued = 0;
  private error: Error | undefined;
  private ended = false;
  /** Set by end() when allowTruncatedTail let a cut-off tail pass. */
  truncatedTail: CaptureFormatError | undefined;

  constructor(
    readonly name: string,
    private readonly opts: ReadOptions = {},
  ) {
    this.decoder = new CaptureDecoder(name);
  }

  /** Known once the first bytes have been decoded. */
  get format(): 'pcap' | 'pcapng' | undefined {
    return this.decoder.format;
  }

  /** Interfaces seen so far (pcapng may add more later in the stream). */
  get interfaces(): CaptureInterface[] {
    return this.decoder.interfaces;
  }

  /** Bytes decoded so far (the offset of the next unit). */
  get offset(): number {
    return this.abs;
  }

  feed(chunk: Buffer): Generator<CaptureRecord> {
    if (this.ended) throw new Error(`${this.name}: feed() after end()`);
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.queued += chunk.length;
    }
    return this.drain();
  }

  /**
   * Declares the input complete. Returns any records fed but not yet taken (empty when every
   * feed() generator was run to the end) and throws a CaptureFormatError if the input stopped
   * inside a header or record (unless allowTruncatedTail), or was empty.
   */
  end(): CaptureRecord[] {
    const rest = [...this.drain()];
    this.ended = true;
    if (this.queued > 0) this.join();
    if (this.pos < this.buf.length || this.decoder.format === undefined) {
      const err = this.decoder.truncation(this.buf, this.pos, this.buf.length, this.abs);
      if (this.opts.allowTruncatedTail && this.decoder.format !== undefined) {
        this.truncatedTail = err;
        return rest;
      }
      this.error = err;
      throw err;
    }
    return rest;
  }

  private *drain(): Generator<CaptureRecord> {
    if (this.error) throw this.error;
    const d = this.decoder;
    for (;;) {
      let n: number;
      try {
        n = d.step(this.buf, this.pos, this.buf.length, this.abs);
      } catch (e) {
        this.error = e as Error;
        throw e;
      }
      if (n === 0) {
        if (this.queued === 0 || this.buf.length - this.pos + this.queued < d.needed) return;
        this.join();
        continue;
      }
      this.pos += n;
      this.abs += n;
      if (d.record) yield d.record;
    }
  }

  /** Makes buf[pos..] plus every queued chunk one contiguous buffer. */
  private join(): void {
    const left = this.buf.length - this.pos;
    if (left === 0 && this.chunks.length === 1) {
      this.buf = this.chunks[0]!;
    } else {
      const parts = left > 0 ? [this.buf.subarray(this.pos), ...this.chunks] : this.chunks;
      this.buf = Buffer.concat(parts, left + this.queued);
    }
    this.pos = 0;
    this.chunks = [];
    this.queued = 0;
  }
}
