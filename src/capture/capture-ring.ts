/**
 * CaptureRing: capture files written off the packet path. The packet thread lays whole
 * pcapng blocks into a ring of shared memory; a worker thread writes them to their files in
 * large writev(2) calls. Forwarding never waits for a disk: a block that finds the ring full
 * is not written and is counted (`drops`, shown by `show ports`).
 *
 * Units in the ring are [u32 kind << 28 | length][bytes, padded to 4]: DATA (file bytes),
 * OPEN (a path: close the current file, create this one), CLOSE (close it), WRAP (go back to
 * offset 0: a unit never straddles the ring's end). Head and tail are byte offsets in an
 * Int32Array of shared control words, moved with Atomics; the producer wakes the worker once
 * 256 KiB are waiting, and the worker also writes what waits 20 ms after its last write.
 *
 * Whole or nothing under SIGKILL: `RingFile` reports its file position, so PcapngWriter's
 * pageAligned layout (pcapng-writer.ts) is decided on the packet thread as if writing
 * directly; the worker writes the same bytes in order, so every 4096-byte page of the file
 * holds only whole blocks, and a write cut at a page boundary leaves whole blocks only.
 * Blocks still in the ring when the process is killed are lost whole.
 */
import { Worker } from 'node:worker_threads';
import type { CaptureSink } from '../pcap/sink.ts';

const DATA = 0;
const OPEN = 1;
const CLOSE = 2;
const WRAP = 3;
const LEN_MASK = 0x0fffffff;

/** Control words. */
const HEAD = 0;
const TAIL = 1;
const WAKE = 2;
const FAILED = 3;
const CONTROL_WORDS = 4;

/** The worker writes once this much is waiting, or MAX_DELAY_MS after its last write. */
const BATCH_BYTES = 256 * 1024;
const MAX_DELAY_MS = 20;

/** Default ring size: 32 MiB, a quarter of a second of 1 Gbit/s of capture. */
export const DEFAULT_RING_BYTES = 32 * 1024 * 1024;

// The worker, as plain JavaScript (an eval'd CommonJS worker needs no loader).
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { ring, control } = workerData;
const bytes = new Uint8Array(ring);
const ctl = new Int32Array(control);
const size = bytes.length;
let fd = -1;
let iov = [];
let iovBytes = 0;
function flushIov() {
  if (iov.length === 0) return;
  if (fd >= 0) {
    try {
      let list = iov;
      let left = iovBytes;
      while (left > 0) {
        const n = fs.writevSync(fd, list);
        left -= n;
        if (left === 0) break;
        let skip = n;
        while (skip >= list[0].length) { skip -= list[0].length; list = list.slice(1); }
        list = [list[0].subarray(skip), ...list.slice(1)];
      }
    } catch (e) {
      Atomics.store(ctl, ${FAILED}, 1);
      parentPort.postMessage({ error: e.message });
      try { fs.closeSync(fd); } catch {}
      fd = -1;
    }
  }
  iov = [];
  iovBytes = 0;
}
let lastWrite = Date.now();
for (;;) {
  const wake = Atomics.load(ctl, ${WAKE});
  const head = Atomics.load(ctl, ${HEAD});
  let tail = Atomics.load(ctl, ${TAIL});
  const pending = head >= tail ? head - tail : size - tail + head;
  // Large writes: wait for ${BATCH_BYTES >> 10} KiB or ${MAX_DELAY_MS} ms, unless woken (a file opened or closed, a full quarter).
  const waited = Date.now() - lastWrite;
  if (pending === 0 || (pending < ${BATCH_BYTES} && waited < ${MAX_DELAY_MS})) {
    if (Atomics.wait(ctl, ${WAKE}, wake, pending === 0 ? ${MAX_DELAY_MS} : ${MAX_DELAY_MS} - waited) !== 'ok' || pending === 0) continue;
  }
  lastWrite = Date.now();
  let stop = false;
  while (tail !== head) {
    const word = bytes[tail] | (bytes[tail + 1] << 8) | (bytes[tail + 2] << 16) | (bytes[tail + 3] << 24);
    const kind = word >>> 28;
    const len = word & ${LEN_MASK};
    if (kind === ${WRAP}) { tail = 0; continue; }
    const body = bytes.subarray(tail + 4, tail + 4 + len);
    if (kind === ${DATA}) {
      iov.push(Buffer.from(body.buffer, body.byteOffset, body.length));
      iovBytes += len;
      if (iov.length >= 1024) flushIov();
    } else {
      flushIov();
      if (fd >= 0) { fs.closeSync(fd); fd = -1; }
      if (kind === ${OPEN}) {
        try { fd = fs.openSync(Buffer.from(body).toString('utf8'), 'w'); }
        catch (e) { Atomics.store(ctl, ${FAILED}, 1); parentPort.postMessage({ error: e.message }); }
      } else stop = true;
    }
    tail = tail + 4 + ((len + 3) & ~3);
    if (tail >= size) tail = 0;
  }
  flushIov();
  Atomics.store(ctl, ${TAIL}, tail);
  Atomics.notify(ctl, ${TAIL});
  if (stop) break;
}
`;

export class CaptureRing {
  /** Blocks not written because the ring was full. */
  drops = 0;
  /** Bytes handed to the worker. */
  bytes = 0;
  /** Set when the worker could not open or write a file (the capture then stops). */
  error: string | undefined;
  private readonly buf: Buffer;
  private readonly ctl: Int32Array;
  private readonly size: number;
  private readonly worker: Worker;
  private head = 0;
  private sinceWake = 0;
  private closed = false;

  constructor(size = DEFAULT_RING_BYTES, onError?: (message: string) => void) {
    this.size = size & ~3;
    const ring = new SharedArrayBuffer(this.size);
    const control = new SharedArrayBuffer(CONTROL_WORDS * 4);
    this.buf = Buffer.from(ring);
    this.ctl = new Int32Array(control);
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ring, control } });
    this.worker.on('message', (m: { error?: string }) => {
      if (m.error !== undefined && this.error === undefined) {
        this.error = m.error;
        onError?.(m.error);
      }
    });
    this.worker.unref();
  }

  /** Bytes free for units now. */
  free(): number {
    const tail = Atomics.load(this.ctl, TAIL);
    const used = this.head >= tail ? this.head - tail : this.size - tail + this.head;
    return this.size - used - 8;
  }

  /** Whether `n` bytes of DATA (in any number of units of at most `n`) fit now, with room to wrap. */
  fits(n: number, units = 1): boolean {
    return this.error === undefined && this.free() >= n + 8 * units + 4096;
  }

  /** Starts a new file: later DATA goes to it. */
  open(path: string): RingFile {
    const p = Buffer.from(path, 'utf8');
    this.put(OPEN, p, 0, p.length, true);
    return new RingFile(this);
  }

  /** Queues `len` bytes of `src` from `off` as one unit; false (counted) when the ring is full. */
  put(kind: number, src: Uint8Array, off: number, len: number, force = false): boolean {
    if (this.closed) return false;
    const need = 4 + ((len + 3) & ~3);
    if (!force && this.free() < need + 4) {
      this.drops++;
      return false;
    }
    if (force) while (this.free() < need + 4 && this.error === undefined) this.wait();
    let h = this.head;
    if (h + need > this.size) {
      this.buf.writeUInt32LE((WRAP << 28) >>> 0, h);
      h = 0;
    }
    this.buf.writeUInt32LE(((kind << 28) | len) >>> 0, h);
    if (src instanceof Buffer) src.copy(this.buf, h + 4, off, off + len);
    else this.buf.set(src.subarray(off, off + len), h + 4);
    h += need;
    if (h >= this.size) h = 0;
    this.head = h;
    Atomics.store(this.ctl, HEAD, h);
    this.bytes += len;
    this.sinceWake += need;
    if (this.sinceWake >= BATCH_BYTES || kind !== DATA) this.wake();
    return true;
  }

  /** Wakes the worker now (it also looks every 10 ms). */
  wake(): void {
    this.sinceWake = 0;
    Atomics.add(this.ctl, WAKE, 1);
    Atomics.notify(this.ctl, WAKE);
  }

  /** Writes everything queued, closes the file and ends the worker (waits up to `ms`). */
  close(ms = 5000): void {
    if (this.closed) return;
    this.put(CLOSE, Buffer.alloc(0), 0, 0, true);
    this.closed = true;
    const deadline = Date.now() + ms;
    while (Atomics.load(this.ctl, TAIL) !== this.head && Date.now() < deadline && this.error === undefined) this.wait();
    void this.worker.terminate();
  }

  /** Blocks until the worker moves its tail (at most 50 ms): only for OPEN/CLOSE and close(). */
  private wait(): void {
    this.wake();
    Atomics.wait(this.ctl, TAIL, Atomics.load(this.ctl, TAIL), 50);
  }
}

/** One file of a ring: a CaptureSink whose `position` is the file offset the next write lands at. */
export class RingFile implements CaptureSink {
  position = 0;
  constructor(private readonly ring: CaptureRing) {}
  write(bytes: Buffer): void {
    // The caller checked `fits` for the record it is writing; a unit that still does not fit is
    // dropped whole and the position stays, so the page layout stays true to the file.
    if (this.ring.put(DATA, bytes, 0, bytes.length)) this.position += bytes.length;
  }
  close(): void {
    // The next OPEN (rotation) or the ring's CLOSE closes the file in the worker.
  }
}
