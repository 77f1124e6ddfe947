/**
 * PortCapture: the `run --capture DIR` tee (SPEC section 4). A PortObserver that writes what
 * the chosen ports receive and transmit into pcapng, off the packet path: it only reads the
 * slot it is shown and never changes a frame or a decision.
 *
 * in:   onRx(port, pool, slot) for every received frame, onTx for every transmitted one
 * out:  DIR/<prefix>-<stamp>.pcapng, or with rotation DIR/<prefix>-<stamp>-<k>.pcapng
 *
 * File layout: one Section Header Block, then one Interface Description Block per captured
 * port in port order (if_name = port name, LINKTYPE_ETHERNET, the snaplen, µs timestamps),
 * then one Enhanced Packet Block per frame with the direction in epb_flags: inbound for what
 * the port received, outbound for what it transmitted. A frame longer than the snaplen is cut
 * (caplen = snaplen) and keeps its length on the wire (origLen).
 *
 * Names: <stamp> is the start time in UTC, `YYYYMMDDTHHMMSSZ` (sorts by time, no characters a
 * shell or Windows dislikes). If a file of that name already exists in DIR (two runs in the
 * same second) `_2`, `_3`, … is appended to the stamp, so a run never overwrites another's.
 *
 * Rotation, like `tcpdump -C size -W count`: with maxFileBytes the files are numbered
 * `-0`, `-1`, …; before a packet is written that would take the file past maxFileBytes, the
 * file is closed and the next one started, so a file only exceeds the limit when it holds a
 * single packet. With maxFiles W the number wraps after W files and the oldest is overwritten
 * (tcpdump -W), so at most W files exist. Every file starts with the SHB and all IDBs, so each
 * is readable alone. The CLI's `--capture-max-mb N` means N × 1,000,000 bytes, as tcpdump -C.
 *
 * Off the packet path: frames shown are noted (pending-frames.ts) and recorded when the
 * dataplane flushes them, a batch at a time: the filter (`filter`, tcpdump syntax, run by
 * libpcap over the batch) picks them, the first `snaplen` bytes of each are laid out as an
 * EPB into a shared ring, and a worker thread writes the ring to the file in large writes
 * (capture-ring.ts), pages of whole blocks, so a killed process's file is still readable. A
 * record that finds the ring full is not written and counted (`ringDrops`); forwarding never
 * waits for the disk. A failing write (disk full) stops this capture with one log line; the
 * dataplane carries on.
 *
 * Drops (`drops`): an extra interface named `drop` on which every frame a stage drops is
 * recorded as it was when dropped, with an opt_comment naming the stage and the reason
 * (`ip4-forward: ip4.ttl-expired (ttl expired ...)`; Wireshark's frame.comment).
 *
 * With offload on, frames are recorded as they cross the ports: TCP super-frames of up to
 * 64 KiB, as tcpdump on a veth shows GSO packets. A block larger than a page cannot be kept
 * within one, so under SIGKILL only such a last block can be cut.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DropReason } from '../core/drop-reason.ts';
import type { FramePool } from '../core/frame-pool.ts';
import { PcapngWriter, type PcapngPacketOptions } from '../pcap/pcapng-writer.ts';
import type { CaptureSink } from '../pcap/sink.ts';
import type { DropObserver, PortObserver } from '../core/port-contract.ts';
import type { BpfFilter } from './bpf-filter.ts';
import { CaptureRing } from './capture-ring.ts';
import { type CaptureLog, splitUs } from './frame-scratch.ts';
import { PendingFrames } from './pending-frames.ts';

export interface PortCaptureOptions {
  /** Directory the files go in (must exist). */
  dir: string;
  /** Name of every port, indexed by port number. */
  portNames: readonly string[];
  /** Port numbers to capture; default all. */
  ports?: readonly number[];
  /** Bytes kept of each frame; default 262144. */
  snaplen?: number;
  /** Start a new file before one would grow past this many bytes; default: one file. */
  maxFileBytes?: number;
  /** With maxFileBytes: keep at most this many files, overwriting the oldest. */
  maxFiles?: number;
  /** Source of packet timestamps (µs since the epoch). */
  clock: { nowUs(): number };
  /** Time in the file names; default now. */
  startTime?: Date;
  /** File name prefix; default "nodeplane". */
  prefix?: string;
  /** Opens a file synchronously (tests); default: files written by a ring's worker thread. */
  openSink?: (path: string) => CaptureSink;
  /** Ring bytes for the worker (default capture-ring.ts's). */
  ringBytes?: number;
  /** Records only frames this filter matches (tcpdump syntax, compiled by libpcap). */
  filter?: BpfFilter | null;
  /** Adds the `drop` interface: every dropped frame, with its stage and reason as comment. */
  drops?: boolean;
  /**
   * The ports use TCP segmentation offload: each port's interface then says so in its
   * if_description (OFFLOAD_DESCRIPTION), which replay --from-capture reads to refuse it.
   */
  offload?: boolean;
  /** Frames pending at most between two flushes: the pool's capacity. */
  capacity?: number;
  log?: CaptureLog;
}

/** A port interface's if_description when the ports use offload (replay refuses such files). */
export const OFFLOAD_DESCRIPTION = 'TCP segmentation offload on: TCP super-frames recorded whole, as they cross the port';

/** EPB size for caplen bytes with an epb_flags option: 28 fixed + data + 8 flags + 4 end + 4. */
function epbSize(caplen: number): number {
  return 44 + ((caplen + 3) & ~3);
}

/** `YYYYMMDDTHHMMSSZ` in UTC. */
export function captureStamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Counts the bytes a writer hands to the file. */
class CountingSink implements CaptureSink {
  bytes = 0;
  constructor(private readonly inner: CaptureSink) {}
  get position(): number {
    return this.bytes;
  }
  write(b: Buffer): void {
    this.inner.write(b);
    this.bytes += b.length;
  }
  close(): void {
    this.inner.close();
  }
}

export class PortCapture implements PortObserver, DropObserver {
  /** Packets written, over all files. */
  packets = 0;
  /** Frames not written because the ring was full (never blocks forwarding). */
  ringDrops = 0;
  /** Dropped frames recorded on the `drop` interface. */
  dropsRecorded = 0;
  /** Files started so far (rotations + 1). */
  fileCount = 0;
  /** Set when a write failed and the capture stopped. */
  error: Error | undefined;

  private readonly ifIds: Int32Array;
  private readonly captured: number[];
  private readonly snaplen: number;
  private readonly base: string;
  private readonly ts = { sec: 0, nsec: 0 };
  private readonly rxOpts: PcapngPacketOptions = { direction: 'in', origLen: 0 };
  private readonly txOpts: PcapngPacketOptions = { direction: 'out', origLen: 0 };
  private readonly open: (path: string) => CaptureSink;
  private readonly written: string[] = [];
  private writer: PcapngWriter | null = null;
  private sink: CountingSink | null = null;
  private packetsInFile = 0;
  private readonly ring: CaptureRing | null;
  private readonly pending: PendingFrames;
  private readonly filter: BpfFilter | null;
  /** The `drop` interface's id in the current file, or -1. */
  private dropIf = -1;
  private readonly dropOpts: PcapngPacketOptions = { origLen: 0, comment: '' };
  /** Drop comments by stage and reason id, made once each. */
  private readonly comments = new Map<string, string>();

  constructor(private readonly opts: PortCaptureOptions) {
    const n = opts.portNames.length;
    this.captured = opts.ports ? [...new Set(opts.ports)].sort((a, b) => a - b) : [...Array(n).keys()];
    for (const p of this.captured) {
      if (!Number.isInteger(p) || p < 0 || p >= n) throw new RangeError(`capture: no port ${p}`);
    }
    this.snaplen = opts.snaplen ?? 262144;
    if (!Number.isInteger(this.snaplen) || this.snaplen < 1) {
      throw new RangeError(`capture: snaplen must be a positive integer, got ${this.snaplen}`);
    }
    const m = opts.maxFileBytes;
    if (m !== undefined && !(m > 0)) throw new RangeError(`capture: maxFileBytes must be positive, got ${m}`);
    const w = opts.maxFiles;
    if (w !== undefined && (!Number.isInteger(w) || w < 1)) {
      throw new RangeError(`capture: maxFiles must be a positive integer, got ${w}`);
    }
    if (w !== undefined && m === undefined) throw new RangeError('capture: maxFiles needs maxFileBytes');
    this.ifIds = new Int32Array(n).fill(-1);
    this.filter = opts.filter ?? null;
    this.pending = new PendingFrames(opts.capacity ?? 65536);
    this.ring = opts.openSink ? null : new CaptureRing(opts.ringBytes, (err) => this.fail(new Error(err)));
    const ring = this.ring;
    this.open = opts.openSink ?? ((path) => ring!.open(path));
    this.base = this.pickBase(opts.startTime ?? new Date());
    this.startFile();
  }

  /** Paths of the files that exist now, oldest first. */
  files(): string[] {
    return [...this.written];
  }

  onRx(port: number, _pool: FramePool, slot: number): void {
    // Ports added at run time have numbers beyond the file's interfaces: not captured.
    if (port >= this.ifIds.length || this.ifIds[port] < 0 || this.writer === null) return;
    this.pending.add(port, slot, 0);
  }

  onTx(port: number, _pool: FramePool, slot: number): void {
    if (port >= this.ifIds.length || this.ifIds[port] < 0 || this.writer === null) return;
    this.pending.add(port, slot, 1);
  }

  /** Records the frames shown since the last flush (still intact now), filtered as a batch. */
  flush(pool: FramePool): void {
    const p = this.pending;
    const n = p.n;
    if (n === 0) return;
    p.n = 0;
    if (this.writer === null) return;
    p.select(pool, this.filter, n);
    splitUs(this.opts.clock.nowUs(), this.ts);
    const verdicts = p.verdicts;
    for (let i = 0; i < n; i++) {
      if (verdicts[i] === 0) continue;
      this.write(this.ifIds[p.ports[i]], pool, p.slots[i], p.out[i] === 1 ? this.txOpts : this.rxOpts);
    }
  }

  /** A stage dropped the frame in `slot`: recorded on `drop` with its stage and reason. */
  onDrop(stage: string, reason: DropReason, pool: FramePool, slot: number): void {
    if (this.dropIf < 0 || this.writer === null) return;
    if (this.filter !== null && !this.filter.matches(pool, slot)) return;
    const key = `${stage}\0${reason.id}`;
    let comment = this.comments.get(key);
    if (comment === undefined) {
      comment = `${stage}: ${reason.id} (${reason.text})`;
      this.comments.set(key, comment);
    }
    this.dropOpts.comment = comment;
    splitUs(this.opts.clock.nowUs(), this.ts);
    if (this.write(this.dropIf, pool, slot, this.dropOpts)) this.dropsRecorded++;
  }

  /** Closes the current file; later frames are ignored. */
  close(): void {
    const s = this.sink;
    this.writer = null;
    this.sink = null;
    this.ifIds.fill(-1);
    this.dropIf = -1;
    s?.close();
    this.ring?.close();
  }

  /** Writes one record (timestamp in this.ts); false when it was not written. */
  private write(ifId: number, pool: FramePool, slot: number, o: PcapngPacketOptions): boolean {
    const len = pool.len[slot];
    const caplen = len > this.snaplen ? this.snaplen : len;
    if (this.ring !== null && !this.ring.fits(epbSize(caplen) + (o.comment === undefined ? 0 : 4 + o.comment.length * 3), 2)) {
      this.ringDrops++;
      return false;
    }
    o.origLen = len;
    try {
      const max = this.opts.maxFileBytes;
      if (max !== undefined && this.packetsInFile > 0 && this.sink!.bytes + epbSize(caplen) > max) {
        this.sink!.close();
        this.startFile();
      }
      this.writer!.writePacketFrom(ifId, this.ts.sec, this.ts.nsec, pool.data, pool.start[slot], caplen, o);
      this.packets++;
      this.packetsInFile++;
      return true;
    } catch (e) {
      this.fail(e as Error);
      return false;
    }
  }

  private fail(e: Error): void {
    this.error = e;
    try {
      this.close();
    } catch {
      // already failing; the first error is the one reported
    }
    this.opts.log?.warn({ err: e.message, files: this.files() }, 'capture stopped: write failed');
  }

  private pathOf(k: number): string {
    const suffix = this.opts.maxFileBytes === undefined ? '' : `-${k}`;
    return join(this.opts.dir, `${this.base}${suffix}.pcapng`);
  }

  private pickBase(start: Date): string {
    const stem = `${this.opts.prefix ?? 'nodeplane'}-${captureStamp(start)}`;
    for (let i = 1; ; i++) {
      const base = i === 1 ? stem : `${stem}_${i}`;
      const first = join(this.opts.dir, `${base}${this.opts.maxFileBytes === undefined ? '' : '-0'}.pcapng`);
      if (!existsSync(first)) return base;
    }
  }

  /** Opens the next file and writes the SHB and one IDB per captured port. */
  private startFile(): void {
    const w = this.opts.maxFiles;
    const k = w === undefined ? this.fileCount : this.fileCount % w;
    const path = this.pathOf(k);
    this.fileCount++;
    const i = this.written.indexOf(path);
    if (i >= 0) this.written.splice(i, 1);
    this.sink = new CountingSink(this.open(path));
    this.written.push(path);
    // Page-aligned blocks: a SIGKILL can then cut no record in half (see PcapngWriter).
    this.writer = new PcapngWriter(this.sink, { pageAligned: true });
    for (const p of this.captured) {
      this.ifIds[p] = this.writer.addInterface({
        name: this.opts.portNames[p]!,
        snaplen: this.snaplen,
        description: this.opts.offload ? OFFLOAD_DESCRIPTION : undefined,
      });
    }
    if (this.opts.drops) this.dropIf = this.writer.addInterface({ name: 'drop', snaplen: this.snaplen, description: 'frames the dataplane dropped, reason as comment' });
    // The section header and every interface in one write, now: the file is readable from the start.
    this.writer.flush();
    this.packetsInFile = 0;
  }
}
