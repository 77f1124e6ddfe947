/**
 * CaptureRing: capture files written off the packet path. The packet thread lays pcapng
 * blocks straight into a chunk of memory, a batch of frames at a time; full chunks go to a
 * worker thread, which writes each to the file in one large write(2) and hands it back. The
 * chunks (CHUNK_BYTES each, as many as the ring's size holds) circulate between the two threads:
 * forwarding never waits for a disk, and a batch that finds no chunk free is not written, its
 * records counted by the caller (`ringDrops`, shown by `show ports`).
 *
 * Why chunks that move rather than one SharedArrayBuffer both threads see: V8 copies into and
 * fills shared memory with relaxed atomic stores, several times slower than the memcpy it
 * uses for ordinary memory, and the copy of every frame is most of what a capture costs the
 * packet thread. An ArrayBuffer transferred with postMessage changes hands without a copy.
 *
 * The producer `reserve`s room in the current chunk, lays records out in place (`layout`, an
 * EpbLayout over the chunk), then `commit`s them. A chunk is sent once the next batch does
 * not fit in it, or MAX_DELAY_MS after its first batch, so the worker wakes for large writes
 * only. Files are opened and closed by messages in the same stream, in order. Chunks come back
 * on a MessagePort the producer reads synchronously (receiveMessageOnPort) when it needs one,
 * so the event loop plays no part and `close()` can wait for the last write before returning.
 *
 * Whole or nothing under SIGKILL: the caller lays blocks out at the file positions they will
 * have (pagePadding, pcapng-epb.ts), so every 4096-byte page of the file holds only whole
 * blocks, and a write cut at a page boundary leaves whole blocks only. Chunks not yet written
 * when the process is killed are lost whole.
 */
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { EpbLayout } from '../pcap/pcapng-epb.ts';
import type { CaptureSink } from '../pcap/sink.ts';

/**
 * Bytes per chunk: the largest write, and the largest unit a `reserve` can find. Large, because
 * handing a chunk over (postMessage, there and back) costs tens of µs whatever its size.
 */
export const CHUNK_BYTES = 1024 * 1024;
/** A chunk is sent once the next batch does not fit in it, or MAX_DELAY_MS after its first batch. */
const MAX_DELAY_MS = 20;

/** Default ring size: 32 MiB, a quarter of a second of 1 Gbit/s of capture. */
export const DEFAULT_RING_BYTES = 32 * 1024 * 1024;

/** Control word: messages the worker has finished with (it notifies on every change). */
const DONE = 0;

interface ReturnMessage {
  free?: ArrayBuffer;
  error?: string;
}

// The worker, as plain JavaScript (an eval'd CommonJS worker needs no loader).
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { port, control } = workerData;
const ctl = new Int32Array(control);
let fd = -1;
let failed = false;
function fail(e) {
  if (!failed) port.postMessage({ error: e.message });
  failed = true;
  if (fd >= 0) { try { fs.closeSync(fd); } catch {} }
  fd = -1;
}
parentPort.on('message', (m) => {
  if (m.data !== undefined) {
    if (fd >= 0) {
      try {
        const bytes = new Uint8Array(m.data, 0, m.len);
        for (let off = 0; off < m.len; ) off += fs.writeSync(fd, bytes, off, m.len - off);
      } catch (e) { fail(e); }
    }
    port.postMessage({ free: m.data }, [m.data]);
  } else if (m.open !== undefined) {
    if (fd >= 0) fs.closeSync(fd);
    fd = -1;
    if (!failed) {
      try { fd = fs.openSync(m.open, 'w'); } catch (e) { fail(e); }
    }
  } else if (m.close) {
    if (fd >= 0) fs.closeSync(fd);
    fd = -1;
  }
  Atomics.add(ctl, ${DONE}, 1);
  Atomics.notify(ctl, ${DONE});
});
`;

export class CaptureRing {
  /** Bytes handed to the worker. */
  bytes = 0;
  /** Set when the worker could not open or write a file (the capture then stops). */
  error: string | undefined;
  /** Lays blocks out in the current chunk, at offsets `reserve` returns. */
  layout: EpbLayout;
  /** After `reserve`: the end of the room it found. */
  room = 0;
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly ctl: Int32Array;
  private readonly maxChunks: number;
  private readonly free: ArrayBuffer[] = [];
  private chunks = 0;
  /** The chunk being filled (layout's memory), or null. */
  private cur: ArrayBuffer | null = null;
  private fill = 0;
  /** Messages posted to the worker. */
  private sent = 0;
  private timer: NodeJS.Timeout | null = null;
  private timerArmed = false;
  private closed = false;

  constructor(
    size = DEFAULT_RING_BYTES,
    private readonly onError?: (message: string) => void,
  ) {
    this.maxChunks = Math.max(2, Math.floor(size / CHUNK_BYTES));
    const control = new SharedArrayBuffer(4);
    this.ctl = new Int32Array(control);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { port: port2, control }, transferList: [port2] });
    this.worker.unref();
    this.layout = new EpbLayout(Buffer.alloc(4));
  }

  /** Bytes laid out or queued and not yet written back by the worker. */
  used(): number {
    this.collect();
    return (this.chunks - this.free.length) * CHUNK_BYTES;
  }

  /**
   * Room for at least `min` bytes (at most CHUNK_BYTES): returns the offset in `layout.buf`
   * they start at (sets `room`, the end of the room, which may be larger), or -1 when every
   * chunk is with the worker (or the capture failed). Nothing is sent until `commit`.
   */
  reserve(min: number): number {
    if (this.closed || this.error !== undefined || min > CHUNK_BYTES) return -1;
    if (this.cur !== null && this.fill + min <= CHUNK_BYTES) {
      this.room = CHUNK_BYTES;
      return this.fill;
    }
    if (this.cur !== null) this.send();
    const chunk = this.take();
    if (chunk === null) return -1;
    this.cur = chunk;
    this.fill = 0;
    this.layout = new EpbLayout(Buffer.from(chunk));
    this.room = CHUNK_BYTES;
    return 0;
  }

  /** The `len` bytes laid out from `off` (a `reserve`d offset) are ready for the file. */
  commit(off: number, len: number): void {
    this.fill = off + len;
    this.bytes += len;
    if (!this.timerArmed) {
      this.timerArmed = true;
      if (this.timer === null) this.timer = setTimeout(() => this.timeUp(), MAX_DELAY_MS).unref();
      else this.timer.refresh();
    }
  }

  /** Queues a copy of `bytes`, waiting for a chunk if need be (file headers, not packets). */
  put(bytes: Buffer): boolean {
    let off = this.reserve(bytes.length);
    for (let i = 0; off < 0 && i < 100 && !this.closed && this.error === undefined && bytes.length <= CHUNK_BYTES; i++) {
      this.waitForWorker(50);
      off = this.reserve(bytes.length);
    }
    if (off < 0) return false;
    bytes.copy(this.layout.buf, off);
    this.commit(off, bytes.length);
    return true;
  }

  /** Starts a new file: what is committed from now on goes to it. Returns a sink for its first blocks. */
  open(path: string): RingFile {
    this.send();
    this.post({ open: path });
    return new RingFile(this);
  }

  /** Writes everything committed, closes the file and ends the worker (waits up to `ms`). */
  close(ms = 5000): void {
    if (this.closed) return;
    this.send();
    this.post({ close: true });
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    const deadline = Date.now() + ms;
    while (Atomics.load(this.ctl, DONE) !== this.sent && Date.now() < deadline) this.waitForWorker(deadline - Date.now());
    this.collect();
    this.port.close();
    void this.worker.terminate();
  }

  /** Sends the current chunk, if anything is in it. */
  private send(): void {
    const chunk = this.cur;
    if (chunk === null || this.fill === 0) return;
    this.cur = null;
    this.timerArmed = false;
    this.post({ data: chunk, len: this.fill }, [chunk]);
    this.fill = 0;
  }

  private timeUp(): void {
    this.timerArmed = false;
    if (this.closed) return;
    this.send();
    this.collect();
  }

  private post(message: object, transfer: ArrayBuffer[] = []): void {
    this.sent++;
    this.worker.postMessage(message, transfer);
  }

  /** A free chunk: one the worker gave back, or a new one while the ring has room; else null. */
  private take(): ArrayBuffer | null {
    if (this.free.length === 0) this.collect();
    const chunk = this.free.pop();
    if (chunk !== undefined) return chunk;
    if (this.chunks === this.maxChunks) return null;
    this.chunks++;
    return new ArrayBuffer(CHUNK_BYTES);
  }

  /** Takes what the worker sent back: free chunks, a failure. */
  private collect(): void {
    for (;;) {
      const m = receiveMessageOnPort(this.port) as { message: ReturnMessage } | undefined;
      if (m === undefined) return;
      if (m.message.free !== undefined) this.free.push(m.message.free);
      const error = m.message.error;
      if (error !== undefined && this.error === undefined) {
        this.error = error;
        // Not from inside a caller laying out a batch: the callback closes the capture.
        queueMicrotask(() => this.onError?.(error));
      }
    }
  }

  /** Blocks until the worker finishes a message (at most `ms`): only for headers and close(). */
  private waitForWorker(ms: number): void {
    const done = Atomics.load(this.ctl, DONE);
    if (done !== this.sent) Atomics.wait(this.ctl, DONE, done, Math.max(1, ms));
    this.collect();
  }
}

/** The first blocks of one file (section header, interfaces), copied into the ring whole. */
export class RingFile implements CaptureSink {
  position = 0;
  constructor(private readonly ring: CaptureRing) {}
  write(bytes: Buffer): void {
    if (this.ring.put(bytes)) this.position += bytes.length;
  }
  close(): void {
    // The next open (rotation) or the ring's close closes the file in the worker.
  }
}
