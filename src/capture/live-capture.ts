/**
 * LiveCapture: a classic pcap stream (microsecond magic a1b2c3d4, LINKTYPE_ETHERNET) of one
 * port or of all ports, for `nodeplane run --capture-stdout pa | wireshark -k -i -` and for
 * `--capture-fifo PATH`.
 *
 * in:   onRx / onTx of the chosen port (or of every port with 'all')
 * out:  a CaptureSink: stdout (fdSink(1)), a FIFO, or a regular file
 *
 * Classic pcap has no interface or direction fields. For one port, both directions of that
 * port appear in one stream. For 'all', every port's received and transmitted frames appear,
 * like `tcpdump -i any`: a frame bridged from pa to pb shows twice, once as received on pa and
 * once as transmitted on pb (use the pcapng capture when the port and direction matter).
 *
 * A FIFO is opened without blocking the event loop: fs.open(O_WRONLY) waits for a reader in
 * the libuv threadpool; once it returns, the FIFO is opened a second time with
 * O_WRONLY|O_NONBLOCK (which succeeds because a reader now exists), the blocking descriptor is
 * closed, and the pcap header is written. Frames seen before that are not recorded (counted in
 * `missed`). Writes never block: fdSink queues what a slow reader has not taken yet, up to its
 * limit, then drops whole records. When the reader goes away (EPIPE) the capture stops with
 * one log line and the dataplane carries on; a later reader gets nothing (restart the run).
 * Closing while still waiting for a reader opens the FIFO for reading once, non-blocking, so
 * the pending open returns and no threadpool thread is left hanging.
 */
import { closeSync, constants, open as openAsync, openSync, statSync } from 'node:fs';
import type { FramePool } from '../core/frame-pool.ts';
import { PcapWriter } from '../pcap/pcap-writer.ts';
import { type CaptureSink, type FdSinkStats, fdSink, fileSink } from '../pcap/sink.ts';
import type { PortObserver } from '../core/port-contract.ts';
import type { BpfFilter } from './bpf-filter.ts';
import { type CaptureLog, FrameScratch, splitUs } from './frame-scratch.ts';
import { PendingFrames } from './pending-frames.ts';

export interface LiveCaptureOptions {
  /** A port number, or 'all'. */
  port: number | 'all';
  /** Bytes kept of each frame; default 262144. */
  snaplen?: number;
  /** Source of packet timestamps (µs since the epoch). */
  clock: { nowUs(): number };
  /** Where the stream goes, for log lines ("stdout", a path). */
  label: string;
  /** Records only frames this filter matches (tcpdump syntax, compiled by libpcap). */
  filter?: BpfFilter | null;
  /** Frames pending at most between two flushes: the pool's capacity. */
  capacity?: number;
  log?: CaptureLog;
}

export type LiveState = 'waiting' | 'open' | 'stopped';

export class LiveCapture implements PortObserver {
  state: LiveState = 'waiting';
  /** Records handed to the sink. */
  packets = 0;
  /** Frames of the chosen port(s) seen while no reader was attached (waiting or stopped). */
  missed = 0;
  /** Resolves true once the stream is open, false if it was closed or failed first. */
  readonly ready: Promise<boolean>;

  private readonly port: number;
  private readonly snaplen: number;
  private readonly scratch = new FrameScratch();
  private readonly ts = { sec: 0, nsec: 0 };
  private writer: PcapWriter | null = null;
  private sink: CaptureSink | null = null;
  private sinkStats: FdSinkStats | undefined;
  private settle!: (open: boolean) => void;
  private readonly pending: PendingFrames;
  private onClose: (() => void) | undefined;

  constructor(private readonly opts: LiveCaptureOptions) {
    this.port = opts.port === 'all' ? -1 : opts.port;
    this.snaplen = opts.snaplen ?? 262144;
    this.pending = new PendingFrames(opts.capacity ?? 65536);
    this.ready = new Promise((resolve) => (this.settle = resolve));
  }

  /** Starts the stream on an open sink: writes the pcap header, then every frame. */
  attach(sink: CaptureSink & { stats?: FdSinkStats }): void {
    if (this.state !== 'waiting') {
      sink.close();
      return;
    }
    this.sink = sink;
    this.sinkStats = sink.stats;
    this.writer = new PcapWriter(sink, { snaplen: this.snaplen });
    this.state = 'open';
    this.checkBroken();
    this.settle(this.state === 'open');
  }

  /** Stops waiting or writing, with a reason in the log (not logged for a plain close). */
  stop(reason?: string, detail: object = {}): void {
    if (this.state === 'stopped') return;
    const wasOpen = this.state === 'open';
    this.state = 'stopped';
    const s = this.sink;
    this.writer = null;
    this.sink = null;
    if (reason !== undefined) this.opts.log?.warn({ capture: this.opts.label, packets: this.packets, ...detail }, reason);
    try {
      s?.close();
    } finally {
      if (!wasOpen) this.onClose?.();
      this.settle(false);
    }
  }

  close(): void {
    this.stop();
  }

  /** Set by the FIFO opener: how to release a pending open when closed early. */
  setCancel(fn: () => void): void {
    this.onClose = fn;
  }

  onRx(port: number, _pool: FramePool, slot: number): void {
    if (this.port >= 0 && port !== this.port) return;
    this.pending.add(port, slot, 1);
  }

  onTx(port: number, _pool: FramePool, slot: number): void {
    if (this.port >= 0 && port !== this.port) return;
    this.pending.add(port, slot, 2);
  }

  /** Writes the frames shown since the last flush that the filter matches. */
  flush(pool: FramePool): void {
    const p = this.pending;
    const n = p.n;
    if (n === 0) return;
    p.n = 0;
    if (this.writer === null) {
      this.missed += n;
      return;
    }
    p.select(pool, this.opts.filter ?? null, n);
    splitUs(this.opts.clock.nowUs(), this.ts);
    for (let i = 0; i < n && this.writer !== null; i++) if (p.verdicts[i] === 1) this.write(pool, p.slots[i]);
  }

  private write(pool: FramePool, slot: number): void {
    const w = this.writer!;
    const data = this.scratch.take(pool, slot, this.snaplen);
    try {
      w.writeRecord(this.ts.sec, this.ts.nsec, data, pool.len[slot]);
    } catch (e) {
      this.stop('live capture stopped: write failed', { err: (e as Error).message });
      return;
    }
    this.packets++;
    this.checkBroken();
  }

  private checkBroken(): void {
    if (this.sinkStats?.broken) this.stop('live capture reader went away (EPIPE); capture stopped, dataplane continues');
  }
}

/** A live capture to stdout (fd 1, left open on close). */
export function liveToStdout(opts: Omit<LiveCaptureOptions, 'label'>): LiveCapture {
  const c = new LiveCapture({ ...opts, label: 'stdout' });
  c.attach(fdSink(1));
  return c;
}

function isFifo(path: string): boolean {
  try {
    return statSync(path).isFIFO();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/**
 * A live capture to a path. A FIFO starts streaming when a reader opens it (see the header);
 * anything else is created or truncated as a regular file and written at once. Errors opening
 * a regular file are thrown; errors opening a FIFO later are logged and stop the capture.
 */
export function liveToPath(path: string, opts: Omit<LiveCaptureOptions, 'label'>): LiveCapture {
  const c = new LiveCapture({ ...opts, label: path });
  if (!isFifo(path)) {
    c.attach(fileSink(path));
    return c;
  }
  let pending = true;
  let cancelled = false;
  let releaseFd = -1;
  c.setCancel(() => {
    if (!pending) return;
    cancelled = true;
    // A reader that appears and leaves at once still wakes the writer blocked in open(2).
    try {
      releaseFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch {
      // the FIFO is gone; the pending open fails on its own (or waits for a reader)
    }
  });
  openAsync(path, constants.O_WRONLY, (err, blockingFd) => {
    pending = false;
    if (releaseFd >= 0) closeSync(releaseFd);
    if (err) {
      c.stop('live capture stopped: cannot open FIFO', { err: err.message });
      return;
    }
    if (cancelled) {
      closeSync(blockingFd);
      return;
    }
    let fd: number;
    try {
      fd = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (e) {
      closeSync(blockingFd);
      // ENXIO: the reader left between the two opens.
      c.stop('live capture stopped: FIFO reader went away', { err: (e as Error).message });
      return;
    }
    closeSync(blockingFd);
    c.attach(fdSink(fd, { closeFd: true }));
  });
  return c;
}
