/**
 * A fake TAP driver for testing TapPort without root: each "device" is an inbox of frames
 * the test queues (what the kernel would hand over, virtio-net header included when the port
 * asked for one) and a list of what the port wrote. `wake(name)` is the readiness callback
 * the addon would make; `fail(name, errno)` makes the device vanish as a deleted one does.
 * Every read round is recorded with the number of slots lent to it and the pool's free
 * slots at that moment, so tests can see what is lent and when.
 */
import type { FramePool } from '../../src/core/frame-pool.ts';
import type { TapDriver, TapHandle, TapOpenOptions, TapStats } from '../../src/ports/tap-native.ts';

export interface ReadRound {
  /** Slots lent to the read. */
  count: number;
  /** Frames read into them. */
  got: number;
  /** Free pool slots while the read ran. */
  free: number;
}

export class FakeTap {
  readonly inbox: Buffer[] = [];
  private head = 0;
  readonly written: Buffer[] = [];
  readonly reads: ReadRound[] = [];
  reading = false;
  onReadable: ((status: number) => void) | null = null;
  pool: Buffer | null = null;
  offsets: Int32Array | null = null;
  lengths: Int32Array | null = null;
  capacity = 0;
  /** errno the next read fails with (the device was deleted), or 0. */
  failWith = 0;
  closed = false;
  rxFrames = 0;
  rxBatches = 0;
  txFrames = 0;

  constructor(
    readonly name: string,
    readonly opts: TapOpenOptions,
  ) {}

  get waiting(): number {
    return this.inbox.length - this.head;
  }

  next(): Buffer | undefined {
    if (this.head === this.inbox.length) return undefined;
    const f = this.inbox[this.head++];
    if (this.head > 4096 && this.head * 2 > this.inbox.length) {
      this.inbox.splice(0, this.head);
      this.head = 0;
    }
    return f;
  }
}

export class FakeTapDriver implements TapDriver {
  readonly taps = new Map<string, FakeTap>();
  /** The dataplane's pool, to record its free slots at each read. */
  framePool: FramePool | null = null;
  /** Keep a copy of every frame written (false: only count them). */
  keepWritten = true;
  /** Record every read round (false: only count them). */
  keepReads = true;
  /** Whether the fake kernel accepts UDP-tunnel GSO (Linux 6.17+) when a port asks for it. */
  tunnelGso = true;

  tap(name: string): FakeTap {
    const t = this.taps.get(name);
    if (!t) throw new Error(`no fake TAP ${name}`);
    return t;
  }

  /** Queues frames for the port to read, as the kernel would. */
  queue(name: string, ...frames: Buffer[]): void {
    this.tap(name).inbox.push(...frames);
  }

  /** The readiness callback: what uv_poll does when the device has frames. */
  wake(name: string): void {
    const t = this.tap(name);
    if (t.reading && t.onReadable) t.onReadable(0);
  }

  /** Wakes every reading device with frames waiting, until none has any (level-triggered). */
  wakeAll(maxTurns = 10_000): void {
    for (let turn = 0; turn < maxTurns; turn++) {
      let woke = false;
      for (const t of this.taps.values()) {
        if (t.reading && t.waiting > 0 && t.onReadable) {
          woke = true;
          t.onReadable(0);
        }
      }
      if (!woke) return;
    }
    throw new Error('devices still readable after the turn limit');
  }

  /** The device vanishes: the addon stops reading and reports -errno once. */
  vanish(name: string, errno: number): void {
    const t = this.tap(name);
    const cb = t.onReadable;
    t.reading = false;
    if (cb) cb(-errno);
  }

  open(name: string, opts: TapOpenOptions): TapHandle {
    const t = new FakeTap(name, opts);
    this.taps.set(name, t);
    const vnetHdrLen = !opts.vnetHdr ? 0 : opts.tunnelGso && this.tunnelGso ? 24 : 10;
    return { fd: 1000 + this.taps.size, name, vnetHdrLen };
  }

  startReading(h: TapHandle, pool: Buffer, slotOffsets: Int32Array, lengths: Int32Array, slotCapacity: number, onReadable: (status: number) => void): void {
    const t = this.tap(h.name);
    if (t.reading) throw new Error(`${h.name} is already reading`);
    Object.assign(t, { reading: true, pool, offsets: slotOffsets, lengths, capacity: slotCapacity, onReadable });
  }

  readBatch(h: TapHandle, count: number): number {
    const t = this.tap(h.name);
    if (!t.reading) return -9; // EBADF, as the addon answers when not reading
    if (t.failWith !== 0) {
      const e = t.failWith;
      t.reading = false;
      return -e;
    }
    const pool = t.pool!;
    const offsets = t.offsets!;
    if (count > offsets.length) throw new RangeError('count exceeds slotOffsets');
    for (let i = 0; i < count; i++) {
      if (offsets[i] < 0 || offsets[i] + t.capacity > pool.length) throw new RangeError(`slot ${i} outside the pool`);
    }
    let got = 0;
    while (got < count) {
      const f = t.next();
      if (f === undefined) break;
      const n = Math.min(f.length, t.capacity);
      f.copy(pool, offsets[got], 0, n);
      t.lengths![got] = n;
      got++;
    }
    if (this.keepReads) t.reads.push({ count, got, free: this.framePool?.available ?? -1 });
    t.rxFrames += got;
    if (got > 0) t.rxBatches++;
    return got;
  }

  stopReading(h: TapHandle): void {
    this.tap(h.name).reading = false;
  }

  writeBatch(h: TapHandle, pool: Buffer, offsets: Int32Array, lengths: Int32Array, count: number): number {
    const t = this.tap(h.name);
    for (let i = 0; i < count; i++) {
      if (offsets[i] < 0 || lengths[i] < 0 || offsets[i] + lengths[i] > pool.length) throw new RangeError(`frame ${i} outside the pool`);
      if (this.keepWritten) t.written.push(Buffer.from(pool.subarray(offsets[i], offsets[i] + lengths[i])));
    }
    t.txFrames += count;
    return count;
  }

  close(h: TapHandle): void {
    const t = this.tap(h.name);
    t.reading = false;
    t.closed = true;
  }

  stats(h: TapHandle): TapStats {
    const t = this.tap(h.name);
    return { rxFrames: t.rxFrames, rxBatches: t.rxBatches, rxTruncated: 0, txFrames: t.txFrames, txEagain: 0, rxUring: 0, txUring: 0 };
  }
}
