/**
 * createCaptures: builds the captures `nodeplane run` asks for and attaches them to the
 * dataplane through its CaptureTaps (capture-taps.ts; one of its own when none is given).
 *
 *   dir          pcapng of every port, or of `ports` (port-capture.ts), rotated with
 *                maxFileMB (× 1,000,000 bytes, as tcpdump -C) and maxFiles (tcpdump -W);
 *                created if missing. `ports` applies to this capture only.
 *   stdoutPort   classic pcap of one port or 'all' to stdout (live-capture.ts)
 *   fifo         the same to a FIFO (streams once a reader opens it) or a regular file
 *   snaplen      bytes kept per frame, for every capture (default 262144)
 *   filter       tcpdump filter syntax, for every capture, compiled by libpcap (bpf-filter.ts)
 *   drops        the pcapng gets an interface `drop` with every dropped frame (needs dir)
 *   bufferKiB    the ring between the packet thread and the pcapng writer (default 32 MiB)
 *
 * Timestamps come from the dataplane's clock when the tee sees the frame (received: as the
 * port hands it in; transmitted: as port-output sends it), so a replayed run records virtual
 * time. Each capture is its own observer; `close()` detaches them all.
 * Mistakes (unknown port, maxFiles without maxFileMB, a directory that cannot be written,
 * binary to a terminal) throw a UserError naming the problem.
 */
import { mkdirSync } from 'node:fs';
import { isatty } from 'node:tty';
import { UserError } from '../user-error.ts';
import type { Dataplane } from '../dataplane/dataplane.ts';
import type { PortObserver } from '../core/port-contract.ts';
import type { CaptureLog } from './frame-scratch.ts';
import { BpfFilter } from './bpf-filter.ts';
import { CaptureTaps, PortFanOut } from './capture-taps.ts';
import { LiveCapture, liveToPath, liveToStdout } from './live-capture.ts';
import { PortCapture } from './port-capture.ts';

export interface CaptureOptions {
  dir?: string;
  ports?: string[];
  snaplen?: number;
  maxFileMB?: number;
  maxFiles?: number;
  stdoutPort?: string;
  fifo?: { path: string; port: string };
  /** tcpdump filter syntax; empty or absent: every frame. */
  filter?: string;
  /** Record dropped frames on a `drop` interface of the pcapng (needs `dir`). */
  drops?: boolean;
  /** The ports use TCP segmentation offload (said in the pcapng's port interfaces). */
  offload?: boolean;
  /** KiB of records the pcapng's ring holds for its writer (tcpdump -B); default capture-ring.ts's. */
  bufferKiB?: number;
  log?: CaptureLog;
  /** Time in the pcapng file names; default now. */
  startTime?: Date;
}

export interface Captures {
  /** Every capture's port observer in one (already attached through the taps). */
  observer: PortObserver;
  /** pcapng files that exist now, oldest first. */
  files(): string[];
  /** Nothing is buffered in user space for files (one write(2) per block); kept for callers. */
  flush(): void;
  /** Closes every capture; live streams get up to 2 s to drain to a slow reader. */
  close(): void;
  /** The pcapng capture's counters (`show ports`), or null without one. */
  status(): { packets: number; ringDrops: number; ringBytes: number; drops: number; filter: { expression: string; matched: number; unmatched: number } | null } | null;
  /** The parts, for status output and tests. */
  pcapng: PortCapture | null;
  live: LiveCapture[];
}

const NOTHING: PortObserver = { onRx() {}, onTx() {}, flush() {} };

export function createCaptures(dp: Dataplane, opts: CaptureOptions, taps: CaptureTaps = new CaptureTaps(dp)): Captures {
  const names = dp.ctx.ports.names;
  const portOf = (what: string, name: string, allowAll: boolean): number | 'all' => {
    if (allowAll && name === 'all') return 'all';
    const i = names.indexOf(name);
    if (i < 0) {
      throw new UserError(`${what}: unknown port "${name}" (ports: ${names.join(', ')}${allowAll ? ', or all' : ''})`);
    }
    return i;
  };
  const snaplen = opts.snaplen ?? 262144;
  if (!Number.isInteger(snaplen) || snaplen < 1) throw new UserError(`capture snaplen ${snaplen}: expected a positive whole number`);
  if (opts.maxFileMB !== undefined && !(opts.maxFileMB > 0)) {
    throw new UserError(`capture max file size ${opts.maxFileMB} MB: expected a positive number`);
  }
  if (opts.maxFiles !== undefined && (!Number.isInteger(opts.maxFiles) || opts.maxFiles < 1)) {
    throw new UserError(`capture file count ${opts.maxFiles}: expected a positive whole number`);
  }
  if (opts.maxFiles !== undefined && opts.maxFileMB === undefined) {
    throw new UserError('capture file count needs a maximum file size (as tcpdump -W needs -C)');
  }
  const ports = opts.ports?.map((n) => portOf('capture.ports', n, false) as number);
  const stdoutPort = opts.stdoutPort === undefined ? undefined : portOf('--capture-stdout', opts.stdoutPort, true);
  const fifoPort = opts.fifo === undefined ? undefined : portOf('--capture-fifo', opts.fifo.port, true);
  if (opts.drops && opts.dir === undefined) throw new UserError('--capture-drops needs a capture directory (--capture DIR or capture.dir)');
  const filter = opts.filter ? new BpfFilter(opts.filter, snaplen) : null;
  const capacity = dp.pool.capacity;
  if (stdoutPort !== undefined && isatty(1)) {
    throw new UserError('--capture-stdout: stdout is a terminal; pipe it, e.g. | wireshark -k -i -');
  }

  const clock = dp.clock;
  const observers: PortObserver[] = [];
  const live: LiveCapture[] = [];
  let pcapng: PortCapture | null = null;
  const closeAll = (): void => {
    for (const o of observers) taps.removePorts(o);
    if (pcapng !== null) taps.removeDrops(pcapng);
    pcapng?.close();
    for (const l of live) l.close();
  };
  try {
    if (opts.dir !== undefined) {
      mkdirSync(opts.dir, { recursive: true });
      pcapng = new PortCapture({
        dir: opts.dir,
        portNames: names,
        ports,
        snaplen,
        maxFileBytes: opts.maxFileMB === undefined ? undefined : Math.round(opts.maxFileMB * 1_000_000),
        maxFiles: opts.maxFiles,
        clock,
        startTime: opts.startTime,
        filter,
        drops: opts.drops,
        offload: opts.offload,
        ringBytes: opts.bufferKiB === undefined ? undefined : opts.bufferKiB * 1024,
        capacity,
        log: opts.log,
      });
      observers.push(pcapng);
    }
    if (stdoutPort !== undefined) live.push(liveToStdout({ port: stdoutPort, snaplen, clock, filter, capacity, log: opts.log }));
    if (opts.fifo !== undefined && fifoPort !== undefined) {
      live.push(liveToPath(opts.fifo.path, { port: fifoPort, snaplen, clock, filter, capacity, log: opts.log }));
    }
  } catch (e) {
    closeAll();
    const err = e as NodeJS.ErrnoException;
    if (err.code !== undefined) throw new UserError(`capture: ${err.message}`);
    throw e;
  }
  observers.push(...live);
  for (const o of observers) taps.addPorts(o);
  if (pcapng !== null && opts.drops) taps.addDrops(pcapng);

  return {
    observer: observers.length === 0 ? NOTHING : observers.length === 1 ? observers[0]! : new PortFanOut(observers),
    files: () => pcapng?.files() ?? [],
    flush() {},
    close: closeAll,
    status: () =>
      pcapng === null
        ? null
        : {
            packets: pcapng.packets,
            ringDrops: pcapng.ringDrops,
            ringBytes: pcapng.ringBytes,
            drops: pcapng.dropsRecorded,
            filter: filter === null ? null : { expression: filter.expression, matched: filter.accepted, unmatched: filter.rejected },
          },
    pcapng,
    live,
  };
}
