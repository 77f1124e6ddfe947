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
 * Cost per packet: one copy into a reused scratch buffer (frame-scratch.ts), the writer's
 * block assembly in its own reused buffer, and one write(2) per block through fileSink, which
 * is what keeps a killed process's file readable. A failing write (disk full) stops this
 * capture with one log line; the dataplane carries on.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { FramePool } from '../core/frame-pool.ts';
import { PcapngWriter, type PcapngPacketOptions } from '../pcap/pcapng-writer.ts';
import { fileSink, type CaptureSink } from '../pcap/sink.ts';
import type { PortObserver } from '../core/port-contract.ts';
import { type CaptureLog, FrameScratch, splitUs } from './frame-scratch.ts';

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
  /** Opens a file; default fileSink. */
  openSink?: (path: string) => CaptureSink;
  log?: CaptureLog;
}

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

export class PortCapture implements PortObserver {
  /** Packets written, over all files. */
  packets = 0;
  /** Files started so far (rotations + 1). */
  fileCount = 0;
  /** Set when a write failed and the capture stopped. */
  error: Error | undefined;

  private readonly ifIds: Int32Array;
  private readonly captured: number[];
  private readonly snaplen: number;
  private readonly base: string;
  private readonly scratch = new FrameScratch();
  private readonly ts = { sec: 0, nsec: 0 };
  private readonly rxOpts: PcapngPacketOptions = { direction: 'in', origLen: 0 };
  private readonly txOpts: PcapngPacketOptions = { direction: 'out', origLen: 0 };
  private readonly open: (path: string) => CaptureSink;
  private readonly written: string[] = [];
  private writer: PcapngWriter | null = null;
  private sink: CountingSink | null = null;
  private packetsInFile = 0;

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
    this.open = opts.openSink ?? fileSink;
    this.base = this.pickBase(opts.startTime ?? new Date());
    this.startFile();
  }

  /** Paths of the files that exist now, oldest first. */
  files(): string[] {
    return [...this.written];
  }

  onRx(port: number, pool: FramePool, slot: number): void {
    // Ports added at run time have numbers beyond the file's interfaces: not captured.
    if (port >= this.ifIds.length || this.ifIds[port] < 0 || this.writer === null) return;
    this.write(port, pool, slot, this.rxOpts);
  }

  onTx(port: number, pool: FramePool, slot: number): void {
    if (port >= this.ifIds.length || this.ifIds[port] < 0 || this.writer === null) return;
    this.write(port, pool, slot, this.txOpts);
  }

  /** Closes the current file; later frames are ignored. */
  close(): void {
    const s = this.sink;
    this.writer = null;
    this.sink = null;
    this.ifIds.fill(-1);
    s?.close();
  }

  private write(port: number, pool: FramePool, slot: number, o: PcapngPacketOptions): void {
    const data = this.scratch.take(pool, slot, this.snaplen);
    o.origLen = pool.len[slot];
    splitUs(this.opts.clock.nowUs(), this.ts);
    try {
      const max = this.opts.maxFileBytes;
      if (max !== undefined && this.packetsInFile > 0 && this.sink!.bytes + epbSize(data.length) > max) {
        this.sink!.close();
        this.startFile();
      }
      this.writer!.writePacket(this.ifIds[port], this.ts.sec, this.ts.nsec, data, o);
      this.packets++;
      this.packetsInFile++;
    } catch (e) {
      this.fail(e as Error);
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
      this.ifIds[p] = this.writer.addInterface({ name: this.opts.portNames[p]!, snaplen: this.snaplen });
    }
    // The section header and every interface in one write, now: the file is readable from the start.
    this.writer.flush();
    this.packetsInFile = 0;
  }
}
