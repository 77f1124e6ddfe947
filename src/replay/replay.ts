/**
 * replay: runs a dataplane offline on pcap inputs (SPEC §3).
 *
 * Records from all inputs are merged by timestamp (ties: the order of the inputs, then file
 * order) and received on their ports one at a time. The clock is virtual: before each frame,
 * every timer due by its timestamp fires at its own instant; after the last frame the clock
 * runs on for `settleSeconds`. Randomness comes from the config's seed, so the same inputs
 * give byte-identical outputs.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/load.ts';
import type { ServiceConfig } from '../config/types.ts';
import { applyManifestServices } from '../dataplane/apply-services.ts';
import { VirtualClock } from '../core/clock.ts';
import { Dataplane } from '../dataplane/dataplane.ts';
import { readCaptureSync } from '../pcap/reader.ts';
import { frameSummary, TextTracer } from '../decode/text-tracer.ts';
import { fileSink } from '../pcap/sink.ts';
import { ReplayPort } from '../ports/replay-port.ts';

export interface ReplayInput {
  port: string;
  file: string;
}

export interface ReplayResult {
  dataplane: Dataplane;
  framesIn: number;
  framesOut: Record<string, number>;
  /** Input records not on Ethernet links (skipped and counted). */
  skippedNonEthernet: number;
}

interface InputFrame {
  tsUs: number;
  input: number;
  seq: number;
  port: number;
  bytes: Buffer;
}

export function loadReplayInputs(dp: Dataplane, inputs: ReplayInput[]): { frames: InputFrame[]; skipped: number } {
  const frames: InputFrame[] = [];
  let skipped = 0;
  inputs.forEach((inp, input) => {
    const port = dp.portIndex(inp.port);
    if (port < 0) throw new Error(`--in ${inp.port}=${inp.file}: no port named ${inp.port}`);
    const file = readCaptureSync(inp.file);
    let seq = 0;
    for (const r of file.records()) {
      if (file.interfaces[r.interfaceId]?.linkType !== 1) {
        skipped++;
        continue;
      }
      const tsUs = r.tsSec * 1e6 + Math.floor(r.tsNsec / 1000);
      frames.push({ tsUs, input, seq: seq++, port, bytes: Buffer.from(r.data) });
    }
  });
  frames.sort((a, b) => a.tsUs - b.tsUs || a.input - b.input || a.seq - b.seq);
  return { frames, skipped };
}

/** Runs timers due up to and including `untilUs`, each at its own time. */
function runTimersUntil(dp: Dataplane, clock: VirtualClock, untilUs: number, trace?: (line: string) => void): void {
  for (let guard = 0; guard < 1_000_000; guard++) {
    const t = dp.nextTimerUs();
    if (t > untilUs) return;
    clock.set(t);
    trace?.(`timers at ${(t / 1e6).toFixed(6)}`);
    dp.run();
  }
}

export interface ReplayOptions {
  /** Receives the hop-by-hop trace of every frame, one line at a time. */
  trace?: (line: string) => void;
  /** The Services the config's manifests give (loadConfigParts), applied before the first frame. */
  manifestServices?: readonly ServiceConfig[];
}

export function replay(config: Config, inputs: ReplayInput[], outDir: string, settleSeconds: number, opts: ReplayOptions = {}): ReplayResult {
  const clock = new VirtualClock();
  const dp = new Dataplane(config, { clock });
  if (opts.manifestServices !== undefined) applyManifestServices(dp, opts.manifestServices);
  let tracer: TextTracer | null = null;
  let trace: ((line: string) => void) | undefined;
  if (opts.trace) {
    const write = opts.trace;
    // A section header (an input frame, a timer instant) is printed with its first event,
    // so timer instants where nothing happened stay silent.
    let header: string | null = null;
    const t = new TextTracer(dp.pool, dp.ctx.ports.names, frameSummary, (line) => {
      if (header !== null) write(header);
      header = null;
      write(line);
    });
    trace = (line) => {
      t.reset();
      header = line;
    };
    tracer = t;
    dp.graph.setTracer(tracer);
  }
  const { frames, skipped } = loadReplayInputs(dp, inputs);
  mkdirSync(outDir, { recursive: true });
  const ports: ReplayPort[] = [];
  const names = dp.ctx.ports.names;
  for (let p = 0; p < names.length; p++) {
    const port = new ReplayPort(fileSink(join(outDir, `${names[p]}.pcap`)), clock);
    ports.push(port);
    dp.setDriver(p, port);
  }
  if (frames.length > 0) clock.set(frames[0].tsUs);
  let n = 0;
  for (const f of frames) {
    runTimersUntil(dp, clock, f.tsUs, trace);
    clock.set(f.tsUs);
    trace?.(`#${++n} at ${(f.tsUs / 1e6).toFixed(6)} on ${inputs[f.input].port} (${inputs[f.input].file} record ${f.seq + 1})`);
    dp.receive(f.port, f.bytes);
    dp.run();
  }
  const endUs = clock.nowUs() + Math.round(settleSeconds * 1e6);
  runTimersUntil(dp, clock, endUs, trace);
  clock.set(endUs);
  dp.run();
  const framesOut: Record<string, number> = {};
  ports.forEach((p, i) => {
    p.close();
    framesOut[names[i]] = p.frames;
  });
  return { dataplane: dp, framesIn: frames.length, framesOut, skippedNonEthernet: skipped };
}
