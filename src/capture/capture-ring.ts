/**
 * CaptureRing: capture files written off the packet path. The packet thread lays pcapng
 * blocks straight into a ring of shared memory, a batch of frames at a time; a worker thread
 * writes them to their files in large writes. Forwarding never waits for a disk: a
 * batch that finds no room is not written, its records counted by the caller (`ringDrops`,
 * shown by `show ports`).
 *
 * Units in the ring are [u32 kind << 28 | length][bytes, padded to 4]: DATA (file bytes),
 * OPEN (a path: close the current file, create this one), CLOSE (close it), WRAP (go back to
 * offset 0: a unit never straddles the ring's end). The producer reserves room (`reserve`),
 * lays a batch's records out in place (`layout`), then `commit`s them; batches go on into the
 * same DATA unit until it holds UNIT_BYTES or MAX_DELAY_MS have passed, and only then is the
 * unit's header written and the head moved: the worker sees whole units. Head and tail are
 * byte offsets in shared control words, moved with Atomics.
 *
 * The worker writes a regular file with O_DIRECT where its file system takes it: units are
 * copied (the addon's copyRanges) into page-aligned memory and written 4 MiB of whole pages
 * at a time, so the kernel neither copies them into its page cache nor spends the machine's
 * CPUs writing them back (a third less of the worker's CPU a record, and no writeback
 * threads, measured: docs/benchmarks.md). The last bytes of a page wait for the next write,
 * or for 10 ms without a unit, or for the file's close, and then go through the page cache.
 * Otherwise (a FIFO, tmpfs, a file system or device that refuses, NODEPLANE_CAPTURE_DIRECT=0,
 * no addon) each unit is one write(2) through the page cache (many small writes, or a writev
 * of many pieces, cost the kernel several times more per byte).
 *
 * Costs on the packet thread, measured (docs/benchmarks.md): one copy of each record's bytes,
 * made by the addon's copyRanges in one call per batch, because V8 copies into shared memory
 * with relaxed atomic stores, several times slower than memcpy (without the addon, V8 copies);
 * and no signal to the worker per batch: it looks every POLL_MS by itself and is woken only
 * for a file to open or close, or when the ring is half full. (Chunks of ordinary memory
 * handed over by postMessage were tried: tens of µs a message on a busy machine.)
 *
 * Whole or nothing under SIGKILL: the caller lays blocks out at the file positions they will
 * have (pagePadding, pcapng-epb.ts), so every 4096-byte page of the file holds only whole
 * blocks, and a write cut at a page boundary leaves whole blocks only; a direct write is whole
 * pages. Units still in the ring, and bytes the worker holds, are lost when the process is
 * killed, whole blocks at a time.
 */
import { Worker } from 'node:worker_threads';
import { type CopyRanges, EpbLayout, FILE_PAGE_SIZE } from '../pcap/pcapng-epb.ts';
import type { CaptureSink } from '../pcap/sink.ts';
import { nativeAddon, nativeAddonPath } from '../ports/native-addon.ts';

const DATA = 0;
const OPEN = 1;
const CLOSE = 2;
const WRAP = 3;
const LEN_MASK = 0x0fffffff;

/** Control words. */
const HEAD = 0;
const TAIL = 1;
const WAKE = 2;
const CONTROL_WORDS = 3;

/** The worker looks for work this often when nobody wakes it. */
const POLL_MS = 10;
/** A DATA unit is handed over once it holds this much, or MAX_DELAY_MS after its first batch. */
const UNIT_BYTES = 512 * 1024;
const MAX_DELAY_MS = 20;
/**
 * O_DIRECT: the writer gathers this much before a write (one write in flight at a time: the
 * larger, the nearer the disk's own speed), in page-aligned memory of twice that.
 */
const DIRECT_WRITE_BYTES = 4 * 1024 * 1024;
const STAGE_BYTES = 2 * DIRECT_WRITE_BYTES;

/** Default ring size: 32 MiB, a quarter of a second of 1 Gbit/s of capture. */
export const DEFAULT_RING_BYTES = 32 * 1024 * 1024;

// The worker, as plain JavaScript (an eval'd CommonJS worker needs no loader).
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { dirname } = require('node:path');
const { ring, control, addonPath } = workerData;
const words = new Int32Array(ring);
const ctl = new Int32Array(control);
const size = ring.byteLength;
const bytes = Buffer.from(ring);
const PAGE = ${FILE_PAGE_SIZE};
// O_DIRECT needs page-aligned memory and the addon's memcpy (V8 reads shared memory byte by
// byte): without the addon, or with NODEPLANE_CAPTURE_DIRECT=0, files go through the page cache.
let stage = null;
let copyRanges = null;
if (addonPath && fs.constants.O_DIRECT && process.env.NODEPLANE_CAPTURE_DIRECT !== '0') {
  try {
    const addon = require(addonPath);
    stage = addon.alignedBuffer(${STAGE_BYTES});
    copyRanges = addon.copyRanges;
  } catch { stage = null; }
}
const op = new Int32Array(3);
function copyToStage(dst, src, from, len) {
  op[0] = dst; op[1] = from; op[2] = len;
  copyRanges(stage, src, op, 1);
}
let fd = -1;
let path = '';
let direct = false;
// With O_DIRECT: bytes of the file written (whole pages), and those after them, held in
// stage[0..held) until a write's worth has gathered.
let written = 0;
let held = 0;
let failed = false;
function fail(e) {
  if (!failed) parentPort.postMessage({ error: e.message });
  failed = true;
  if (fd >= 0) { try { fs.closeSync(fd); } catch {} }
  fd = -1;
}
// Files kept in memory: O_DIRECT would only add a copy.
const MEMORY_FS = [0x01021994 /* tmpfs */, 0x858458f6 /* ramfs */];
// Whether O_DIRECT is worth a try for the file at p: not a FIFO or device (a live capture's
// pipe, written as it is), not on a file system in memory.
function directSuits(p) {
  try {
    if (!fs.statSync(p).isFile()) return false;
  } catch {} // not there yet: created by the open
  try {
    return !MEMORY_FS.includes(fs.statfsSync(dirname(p)).type);
  } catch {
    return false;
  }
}
function openFile(p) {
  path = p;
  written = held = 0;
  direct = false;
  if (stage !== null && directSuits(p)) {
    try {
      fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_DIRECT, 0o666);
      direct = true;
      return;
    } catch (e) {
      if (e.code !== 'EINVAL') throw e; // a file system without O_DIRECT: the page cache
    }
  }
  fd = fs.openSync(p, 'w');
}
function writeData(off, len) {
  if (!direct) {
    for (let done = 0; done < len; ) done += fs.writeSync(fd, bytes, off + done, len - done);
    return;
  }
  while (len > 0) {
    const n = Math.min(len, ${STAGE_BYTES} - held);
    copyToStage(held, bytes, off, n);
    held += n;
    off += n;
    len -= n;
    if (held >= ${DIRECT_WRITE_BYTES}) writePages();
  }
}
// The held whole pages, in one O_DIRECT write: no kill cuts it, and the file then ends on a
// page boundary, after a whole block (pagePadding).
function writePages() {
  const whole = held - (held % PAGE);
  if (whole === 0) return;
  try {
    for (let done = 0; done < whole; ) done += fs.writeSync(fd, stage, done, whole - done, written + done);
  } catch (e) {
    if (e.code !== 'EINVAL') throw e;
    toPageCache(); // a device that wants more alignment than a page
    return;
  }
  written += whole;
  held -= whole;
  if (held > 0) copyToStage(0, stage, whole, held);
}
// The file from here on through the page cache: what is held is written after the last
// direct write, over anything an idle flush put there.
function toPageCache() {
  fs.closeSync(fd);
  fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_APPEND);
  direct = false;
  fs.ftruncateSync(fd, written);
  for (let done = 0; done < held; ) done += fs.writeSync(fd, stage, done, held - done);
  held = 0;
}
// Everything held reaches the file: whole pages directly, the rest (under a page, in one page
// of the file, so no kill cuts it either) through the page cache; the next direct write
// starts at that page again and rewrites it with what follows.
function flushHeld() {
  if (!direct) return;
  writePages();
  if (held === 0) return;
  const t = fs.openSync(path, fs.constants.O_WRONLY);
  try {
    fs.writeSync(t, stage, 0, held, written);
  } finally {
    fs.closeSync(t);
  }
}
function closeFile() {
  if (fd < 0) return;
  try { flushHeld(); } catch (e) { fail(e); }
  if (fd >= 0) { try { fs.closeSync(fd); } catch {} }
  fd = -1;
}
let tail = 0;
let flushed = true;
for (;;) {
  const wake = Atomics.load(ctl, ${WAKE});
  const head = Atomics.load(ctl, ${HEAD});
  if (head === tail) {
    // Nothing new for POLL_MS: what is held goes to the file, for whoever reads it meanwhile.
    const r = Atomics.wait(ctl, ${WAKE}, wake, ${POLL_MS});
    if (r === 'timed-out' && !flushed && fd >= 0 && Atomics.load(ctl, ${HEAD}) === tail) {
      flushed = true;
      try { flushHeld(); } catch (e) { fail(e); }
    }
    continue;
  }
  flushed = false;
  let stop = false;
  while (tail !== head && !stop) {
    const word = words[tail >> 2];
    const kind = word >>> 28;
    const len = word & ${LEN_MASK};
    if (kind === ${WRAP}) { tail = 0; continue; }
    if (kind === ${DATA}) {
      if (fd >= 0) {
        try { writeData(tail + 4, len); } catch (e) { fail(e); }
      }
    } else {
      closeFile();
      if (kind === ${OPEN} && !failed) {
        try { openFile(bytes.toString('utf8', tail + 4, tail + 4 + len)); } catch (e) { fail(e); }
      } else if (kind === ${CLOSE}) stop = true;
    }
    tail = tail + 4 + ((len + 3) & ~3);
    if (tail >= size) tail = 0;
    Atomics.store(ctl, ${TAIL}, tail);
  }
  Atomics.notify(ctl, ${TAIL});
  if (stop) break;
}
`;

/** The addon's copyRanges, or the same in JavaScript when the addon is not there. */
function copier(): CopyRanges {
  const r = nativeAddon();
  const native = 'addon' in r ? (r.addon as { copyRanges?: CopyRanges }).copyRanges : undefined;
  if (native !== undefined) return native;
  return (dst, src, ops, n) => {
    const d = Buffer.from(dst.buffer, dst.byteOffset, dst.length);
    const s = Buffer.from(src.buffer, src.byteOffset, src.length);
    for (let i = 0; i < n * 3; i += 3) {
      if (ops[i + 1]! < 0) d.fill(0, ops[i]!, ops[i]! + ops[i + 2]!);
      else s.copy(d, ops[i]!, ops[i + 1]!, ops[i + 1]! + ops[i + 2]!);
    }
  };
}

export class CaptureRing {
  /** Bytes handed to the worker. */
  bytes = 0;
  /** Set when the worker could not open or write a file (the capture then stops). */
  error: string | undefined;
  /** Lays blocks out in the ring's memory, at offsets `reserve` returns. */
  readonly layout: EpbLayout;
  /** After `reserve`: the end (exclusive) of the room it found. */
  room = 0;
  private readonly buf: Buffer;
  private readonly words: Int32Array;
  private readonly ctl: Int32Array;
  /** Bytes of the ring (a whole number of pages). */
  readonly size: number;
  private readonly worker: Worker;
  /** Where the next byte goes: the open unit's end, or the head. */
  private pos = 0;
  /** The open DATA unit's header offset, or -1. */
  private unit = -1;
  /** The open unit's last byte + 1 (pos, but for a last piece whose length is not a multiple of 4). */
  private end = 0;
  private timer: NodeJS.Timeout | null = null;
  private timerArmed = false;
  private closed = false;

  constructor(
    size = DEFAULT_RING_BYTES,
    private readonly onError?: (message: string) => void,
  ) {
    this.size = size & ~4095;
    if (this.size < 65536) throw new RangeError(`capture ring of ${size} bytes is too small`);
    const ring = new SharedArrayBuffer(this.size);
    const control = new SharedArrayBuffer(CONTROL_WORDS * 4);
    this.buf = Buffer.from(ring);
    this.words = new Int32Array(ring);
    this.layout = new EpbLayout(this.buf, copier());
    this.ctl = new Int32Array(control);
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ring, control, addonPath: nativeAddonPath() } });
    this.worker.on('message', (m: { error?: string }) => {
      if (m.error !== undefined && this.error === undefined) {
        this.error = m.error;
        this.onError?.(m.error);
      }
    });
    this.worker.unref();
  }

  /** Bytes laid out and not yet written by the worker. */
  used(): number {
    const tail = Atomics.load(this.ctl, TAIL);
    return this.pos >= tail ? this.pos - tail : this.size - tail + this.pos;
  }

  /**
   * Room for at least `min` bytes: returns the offset they start at (sets `room`, the end of
   * the room, which may be larger), or -1 when the ring is that full (or the capture failed).
   * What is laid out there reaches the worker after `commit`, when its unit is handed over.
   */
  reserve(min: number): number {
    if (this.closed || this.error !== undefined) return -1;
    const tail = Atomics.load(this.ctl, TAIL);
    if (this.unit >= 0) {
      const room = this.roomAt(this.pos, tail);
      if (room >= min) {
        this.room = this.pos + room;
        return this.pos;
      }
      this.handOver();
    }
    const room = this.roomAt(this.pos, tail);
    if (room >= 4 + min) {
      this.unit = this.pos;
      this.pos = this.end = this.unit + 4;
      this.room = this.unit + room;
      return this.pos;
    }
    if (this.pos >= tail && tail - 4 >= 4 + min) {
      this.words[this.pos >> 2] = WRAP << 28;
      this.unit = 0;
      this.pos = this.end = 4;
      this.room = tail - 4;
      return 4;
    }
    return -1;
  }

  /** The `len` bytes laid out from `off` (within a `reserve`d room) are done. */
  commit(off: number, len: number): void {
    this.layout.flushCopies();
    this.end = off + len;
    this.pos = off + ((len + 3) & ~3);
    if (this.pos - this.unit - 4 >= UNIT_BYTES) this.handOver();
    else if (!this.timerArmed) {
      this.timerArmed = true;
      if (this.timer === null) this.timer = setTimeout(() => this.handOver(), MAX_DELAY_MS).unref();
      else this.timer.refresh();
    }
  }

  /** Queues a copy of `bytes`, waiting for room if need be (file headers and paths, not packets). */
  put(bytes: Buffer, kind = DATA): boolean {
    if (kind !== DATA) this.handOver();
    let off = this.reserve(bytes.length);
    for (let i = 0; off < 0 && i < 100 && !this.closed && this.error === undefined; i++) {
      this.wait();
      off = this.reserve(bytes.length);
    }
    if (off < 0) return false;
    bytes.copy(this.buf, off);
    this.commit(off, bytes.length);
    if (kind !== DATA) this.handOver(kind);
    return true;
  }

  /** Contiguous bytes free at `p`, the tail being at `tail`. */
  private roomAt(p: number, tail: number): number {
    // A full ring must not look empty: with the tail at 0, stop 4 short of the end.
    if (p >= tail) return (tail === 0 ? this.size - 4 : this.size) - p;
    return tail - 4 - p;
  }

  /** Writes the open unit's header (as `kind`) and moves the head past it: the worker's now. */
  private handOver(kind = DATA): void {
    this.timerArmed = false;
    if (this.unit < 0) return;
    const len = this.end - this.unit - 4;
    this.words[this.unit >> 2] = (kind << 28) | len;
    this.unit = -1;
    if (this.pos >= this.size) this.pos = 0;
    Atomics.store(this.ctl, HEAD, this.pos);
    this.bytes += len;
    // The worker looks every POLL_MS anyway: woken only when it matters.
    if (kind !== DATA || this.used() > this.size >> 1) this.wake();
  }

  /** Starts a new file: later DATA goes to it. Returns a sink for its first blocks. */
  open(path: string): RingFile {
    this.put(Buffer.from(path, 'utf8'), OPEN);
    return new RingFile(this);
  }

  /** Writes everything queued, closes the file and ends the worker (waits up to `ms`). */
  close(ms = 5000): void {
    if (this.closed) return;
    this.put(Buffer.alloc(0), CLOSE);
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    const deadline = Date.now() + ms;
    while (Atomics.load(this.ctl, TAIL) !== this.pos && Date.now() < deadline && this.error === undefined) this.wait();
    void this.worker.terminate();
  }

  private wake(): void {
    Atomics.add(this.ctl, WAKE, 1);
    Atomics.notify(this.ctl, WAKE);
  }

  /** Blocks until the worker moves its tail (at most 50 ms): only for headers and close(). */
  private wait(): void {
    this.wake();
    Atomics.wait(this.ctl, TAIL, Atomics.load(this.ctl, TAIL), 50);
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
    // The next OPEN (rotation) or the ring's CLOSE closes the file in the worker.
  }
}
