/**
 * replay: runs a dataplane offline on recorded frames (SPEC §3).
 *
 * Frames from all inputs are merged by timestamp (ties: the order of the inputs, then their
 * own order) and received on their ports one at a time. The clock is virtual: before each
 * frame, every timer due by its timestamp fires at its own instant; after the last frame the
 * clock runs on for `settleSeconds`. Changes to the running node (a config reloaded, Services
 * applied) can be scheduled between frames at times of the same clock (`changes`).
 * Randomness comes from the config's seed, so the same inputs give byte-identical outputs.
 *
 * ReplayRun is the engine, in steps, so a caller can yield between them (the library API runs
 * several replays in one process, also concurrently); `replay()` is the whole run at once,
 * writing one pcap per port, as the command line does. Each run owns its dataplane, clock and
 * ports: nothing is shared between runs.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/load.ts';
import type { ServiceConfig } from '../config/types.ts';
import { applyManifestServices } from '../dataplane/apply-services.ts';
import { VirtualClock } from '../core/clock.ts';
import { Dataplane } from '../dataplane/dataplane.ts';
import { readCaptureSync, type CaptureFile } from '../pcap/reader.ts';
import { frameSummary, TextTracer } from '../decode/text-tracer.ts';
import { fileSink } from '../pcap/sink.ts';
import { ReplayPort, type TxRecord } from '../ports/replay-port.ts';

export type { TxRecord } from '../ports/replay-port.ts';

export interface ReplayInput {
  port: string;
  file: string;
}

/** One frame to receive: on which port, when (µs of the virtual clock), and where it came from. */
export interface InputFrame {
  port: string;
  tsUs: number;
  bytes: Buffer;
  /** Where the frame came from, for the trace: `a.pcap record 3`. */
  origin: string;
}

export interface ReplayResult {
  dataplane: Dataplane;
  framesIn: number;
  framesOut: Record<string, number>;
  /** Input records not on Ethernet links (skipped and counted). */
  skippedNonEthernet: number;
  /** Per port (config order), what it transmitted, when the run collected it. */
  tx?: Record<string, TxRecord[]>;
}

/** The Ethernet records of a capture as input frames for `port`, in file order. */
export function captureInputFrames(port: string, file: CaptureFile): { frames: InputFrame[]; skipped: number } {
  const frames: InputFrame[] = [];
  let skipped = 0;
  let k = 0;
  for (const r of file.records()) {
    k++;
    if (file.interfaces[r.interfaceId]?.linkType !== 1) {
      skipped++;
      continue;
    }
    const tsUs = r.tsSec * 1e6 + Math.floor(r.tsNsec / 1000);
    frames.push({ port, tsUs, bytes: Buffer.from(r.data), origin: `${file.name} record ${k}` });
  }
  return { frames, skipped };
}

/** The Ethernet records of a capture file as input frames for its port. */
export function fileInputFrames(inp: ReplayInput): { frames: InputFrame[]; skipped: number } {
  return captureInputFrames(inp.port, readCaptureSync(inp.file));
}

/**
 * Merges inputs into the order they are received: by timestamp, ties by the order of the
 * inputs, then by each input's own order (a stable sort over the concatenation).
 */
export function mergeInputs(inputs: readonly InputFrame[][]): InputFrame[] {
  return inputs.flat().sort((a, b) => a.tsUs - b.tsUs);
}

export interface ReplayRunOptions {
  /** Virtual seconds to run on after the last input frame (or change, if later). */
  settleSeconds: number;
  /** Receives the hop-by-hop trace of every frame, one line at a time. */
  trace?: (line: string) => void;
  /** Write DIR/<port>.pcap for every port. */
  outDir?: string;
  /** Keep what every port transmits in memory (ReplayResult.tx). */
  collect?: boolean;
  /** The Services the config's manifests give (loadConfigParts), applied before the first frame. */
  manifestServices?: readonly ServiceConfig[];
  /** Changes to the running dataplane between input frames (a reload, Services applied). */
  changes?: readonly ReplayRunChange[];
}

/**
 * Something done to the running dataplane at `atUs` of the virtual clock: after every input
 * frame before that time and every timer due by it, before any frame at or after it (in the
 * order given when two share a time). Changes after the last frame run before the settling.
 */
export interface ReplayRunChange {
  atUs: number;
  /** Does it (between two batches, as a SIGHUP or the admin socket would); returns a line for the trace. */
  apply(dp: Dataplane): string;
}

/** One offline run over merged input frames (mergeInputs), advanced by step(). */
export class ReplayRun {
  readonly clock = new VirtualClock();
  readonly dataplane: Dataplane;
  private readonly ports: ReplayPort[] = [];
  private readonly frames: readonly InputFrame[];
  private readonly portOf: Int32Array;
  /** Sets the header of the next trace section (printed with its first event). */
  private readonly trace?: (line: string) => void;
  /** Writes a trace line at once. */
  private readonly traceLine?: (line: string) => void;
  private next = 0;
  private readonly changes: readonly ReplayRunChange[];
  private nextChange = 0;
  private done = false;

  constructor(
    config: Config,
    frames: readonly InputFrame[],
    private readonly opts: ReplayRunOptions,
  ) {
    const dp = new Dataplane(config, { clock: this.clock });
    if (opts.manifestServices !== undefined) applyManifestServices(dp, opts.manifestServices);
    this.dataplane = dp;
    this.frames = frames;
    this.portOf = new Int32Array(frames.length);
    frames.forEach((f, i) => {
      const p = dp.portIndex(f.port);
      if (p < 0) throw new Error(`${f.origin}: no port named ${f.port}`);
      this.portOf[i] = p;
    });
    if (opts.trace) {
      this.trace = this.attachTracer(opts.trace);
      this.traceLine = opts.trace;
    }
    if (opts.outDir !== undefined) mkdirSync(opts.outDir, { recursive: true });
    const names = dp.ctx.ports.names;
    for (let p = 0; p < names.length; p++) {
      const sink = opts.outDir === undefined ? null : fileSink(join(opts.outDir, `${names[p]}.pcap`));
      const port = new ReplayPort(sink, this.clock, { collect: opts.collect === true });
      this.ports.push(port);
      dp.setDriver(p, port);
    }
    this.changes = [...(opts.changes ?? [])].sort((a, b) => a.atUs - b.atUs);
    const first = Math.min(frames.length > 0 ? frames[0].tsUs : Infinity, this.changes.length > 0 ? this.changes[0].atUs : Infinity);
    if (first !== Infinity) this.clock.set(first);
  }

  /** A section header (an input frame, a timer instant) is printed with its first event,
   * so timer instants where nothing happened stay silent. */
  private attachTracer(write: (line: string) => void): (line: string) => void {
    let header: string | null = null;
    const dp = this.dataplane;
    const t = new TextTracer(dp.pool, dp.ctx.ports.names, frameSummary, (line) => {
      if (header !== null) write(header);
      header = null;
      write(line);
    });
    dp.graph.setTracer(t);
    return (line) => {
      t.reset();
      header = line;
    };
  }

  /** Runs timers due up to and including `untilUs`, each at its own time. */
  private runTimersUntil(untilUs: number): void {
    const dp = this.dataplane;
    for (let guard = 0; guard < 1_000_000; guard++) {
      const t = dp.nextTimerUs();
      if (t > untilUs) return;
      this.clock.set(t);
      this.trace?.(`timers at ${(t / 1e6).toFixed(6)}`);
      dp.run();
    }
  }

  /** Applies the changes due by `untilUs` (all of them: Infinity), each at its own time. */
  private applyChangesUntil(untilUs: number): void {
    const dp = this.dataplane;
    for (; this.nextChange < this.changes.length && this.changes[this.nextChange].atUs <= untilUs; this.nextChange++) {
      const c = this.changes[this.nextChange];
      this.runTimersUntil(c.atUs);
      this.clock.set(Math.max(this.clock.nowUs(), c.atUs));
      const what = c.apply(dp);
      this.traceLine?.(`change at ${(this.clock.nowUs() / 1e6).toFixed(6)}: ${what}`);
      this.trace?.(`after the change at ${(this.clock.nowUs() / 1e6).toFixed(6)}`);
      dp.run();
    }
  }

  /** Receives up to `maxFrames` more input frames; at the end, settles and closes. True when finished. */
  step(maxFrames = Infinity): boolean {
    if (this.done) return true;
    const dp = this.dataplane;
    const end = Math.min(this.frames.length, this.next + maxFrames);
    for (; this.next < end; this.next++) {
      const f = this.frames[this.next];
      this.applyChangesUntil(f.tsUs);
      this.runTimersUntil(f.tsUs);
      this.clock.set(f.tsUs);
      this.trace?.(`#${this.next + 1} at ${(f.tsUs / 1e6).toFixed(6)} on ${f.port} (${f.origin})`);
      dp.receive(this.portOf[this.next], f.bytes);
      dp.run();
    }
    if (this.next < this.frames.length) return false;
    this.applyChangesUntil(Infinity);
    const endUs = this.clock.nowUs() + Math.round(this.opts.settleSeconds * 1e6);
    this.runTimersUntil(endUs);
    this.clock.set(endUs);
    dp.run();
    for (const p of this.ports) p.close();
    this.done = true;
    return true;
  }

  result(skippedNonEthernet = 0): ReplayResult {
    const names = this.dataplane.ctx.ports.names;
    const framesOut: Record<string, number> = {};
    const tx: Record<string, TxRecord[]> = {};
    this.ports.forEach((p, i) => {
      framesOut[names[i]] = p.frames;
      tx[names[i]] = p.records;
    });
    return {
      dataplane: this.dataplane,
      framesIn: this.frames.length,
      framesOut,
      skippedNonEthernet,
      ...(this.opts.collect ? { tx } : {}),
    };
  }
}

export interface ReplayOptions {
  /** Receives the hop-by-hop trace of every frame, one line at a time. */
  trace?: (line: string) => void;
  /** Keep what every port transmits in memory as well (ReplayResult.tx). */
  collect?: boolean;
  /** The Services the config's manifests give (loadConfigParts), applied before the first frame. */
  manifestServices?: readonly ServiceConfig[];
}

/** A whole replay of pcap files, one output pcap per port in `outDir` (SPEC §3). */
export function replay(config: Config, inputs: ReplayInput[], outDir: string, settleSeconds: number, opts: ReplayOptions = {}): ReplayResult {
  let skipped = 0;
  const per = inputs.map((inp) => {
    const r = fileInputFrames(inp);
    skipped += r.skipped;
    return r.frames;
  });
  return replayFrames(config, mergeInputs(per), { settleSeconds, outDir, ...opts }, skipped);
}

/** A whole replay of merged input frames. */
export function replayFrames(config: Config, frames: readonly InputFrame[], opts: ReplayRunOptions, skipped = 0): ReplayResult {
  const run = new ReplayRun(config, frames, opts);
  run.step();
  return run.result(skipped);
}
