/**
 * The library's `replay()`: the offline dataplane of `nodeplane replay` for a test runner.
 *
 *   const r = await replay({ config: 'node.yaml', inputs: { pa: 'a.pcap', pb: [frame1, frame2] } });
 *   r.ports.pb[0].decoded.ip?.ttl
 *
 * Inputs per port are a capture file (pcap or pcapng) or frames in memory; `fromCapture`
 * replays the received frames of a `run --capture` pcapng. Each call builds its own
 * dataplane, virtual clock and ports: nothing is global, no root is needed, and several
 * replays can run in one process, also concurrently — a long run yields to the event loop
 * every few hundred frames, so concurrent replays interleave and none blocks the others.
 * A config file's manifests give their Services, as `nodeplane replay` reads them; `changes`
 * reload a config at given times of the run (Services edited between two parts of a replay).
 */
import { readFile } from 'node:fs/promises';
import { statsState, type StatsState } from '../admin/state.ts';
import { type Config, loadConfigParts } from '../config/load.ts';
import type { ServiceConfig } from '../config/types.ts';
import { applyManifestServices } from '../dataplane/apply-services.ts';
import { parseCapture } from '../pcap/reader.ts';
import { readCaptureInput, settleAfter } from '../replay/from-capture.ts';
import { captureInputFrames, mergeInputs, ReplayRun, type InputFrame, type ReplayRunChange } from '../replay/replay.ts';
import { writeGoldenDir } from '../replay/golden.ts';
import { ReplayedFrame, toReplayedFrames } from './replayed-frame.ts';

/** A frame in memory: bare bytes, or bytes with a time (µs since the epoch). */
export type FrameInput = Uint8Array | { bytes: Uint8Array; tsUs?: number };

export interface ReplayOptions {
  /** A configuration file (YAML or JSON), or a config from loadConfig/parseConfig. */
  config: string | Config;
  /** Per port: a capture file, or frames. Frames without a time come 1 ms after the one before (the first at 0). */
  inputs?: Record<string, string | readonly FrameInput[]>;
  /** A pcapng written by `nodeplane run --capture`: its received frames, on their ports at their times. */
  fromCapture?: string;
  /** Virtual seconds to run on after the last input frame (default 1; with fromCapture: until the capture ends). */
  settle?: number;
  /** Seed of the random generator (default: the config's). */
  seed?: number;
  /** Keep the hop-by-hop trace of every frame (`replay --trace`) in the result. */
  trace?: boolean;
  /** Changes to the running node while the frames play (see ReplayChange). */
  changes?: readonly ReplayChange[];
}

/**
 * A config reloaded while the replay runs, as SIGHUP reloads it on a running node: routes,
 * neighbours, nat, timeouts and Services change by diff (flows to endpoints that stay are
 * untouched), interfaces and table sizes may not (a refused reload rejects the replay). It
 * takes effect at `atUs` of the virtual clock: after every input frame before that time and
 * every timer due by it, before any frame at or after it.
 */
export interface ReplayChange {
  /** When: µs of the virtual clock, the time scale of the inputs. */
  atUs: number;
  /** A configuration file (its manifests read again), or a config from loadConfig/parseConfig (without its manifests' Services). */
  config: string | Config;
}

export interface ReplayResult {
  /** Per port of the config: the frames it transmitted, in order. */
  ports: Record<string, ReplayedFrame[]>;
  /** Frames received. */
  framesIn: number;
  /** Input records skipped (not Ethernet; in a capture: no direction). */
  skipped: number;
  /** Per stage packets and drops by reason, table counters (`show stats --json`). */
  counters: StatsState;
  /** With `trace`: its lines. */
  trace?: string[];
  /** With `fromCapture`: per port, what the live run transmitted. */
  live?: Record<string, ReplayedFrame[]>;
  /** With `changes`: what each reload changed (`config reloaded` log's `changes`), in time order. */
  reloads?: { atUs: number; changes: string[] }[];
  /** Writes DIR/<port>.pcap for every port, as `replay --out DIR` does. */
  writePcaps(dir: string): void;
}

/** Frames between two yields to the event loop. */
const FRAMES_PER_SLICE = 256;

async function fileFrames(port: string, file: string): Promise<{ frames: InputFrame[]; skipped: number }> {
  return captureInputFrames(port, parseCapture(await readFile(file), file));
}

function memoryFrames(port: string, list: readonly FrameInput[]): InputFrame[] {
  let last = -1000;
  return list.map((f, i) => {
    const bytes = f instanceof Uint8Array ? f : f.bytes;
    const given = f instanceof Uint8Array ? undefined : f.tsUs;
    const tsUs = given ?? last + 1000;
    if (!Number.isSafeInteger(tsUs) || tsUs < 0) throw new RangeError(`inputs.${port}[${i}].tsUs: expected whole microseconds ≥ 0, got ${given}`);
    last = tsUs;
    return { port, tsUs, bytes: Buffer.from(bytes), origin: `inputs.${port}[${i}]` };
  });
}

/** A config and, for a file, the Services its manifests give (null: none named). */
function readConfig(c: string | Config): { config: Config; manifestServices: readonly ServiceConfig[] | null } {
  if (typeof c !== 'string') return { config: structuredClone(c), manifestServices: null };
  const loaded = loadConfigParts(c);
  return { config: loaded.config, manifestServices: loaded.manifestPaths.length > 0 ? loaded.manifests.list() : null };
}

/** The run's changes: each reload, checked before the run starts, recorded in `reloads`. */
function reloadChanges(list: readonly ReplayChange[], reloads: { atUs: number; changes: string[] }[]): ReplayRunChange[] {
  return list.map((c, i) => {
    if (!Number.isSafeInteger(c.atUs) || c.atUs < 0) throw new RangeError(`changes[${i}].atUs: expected whole microseconds ≥ 0, got ${c.atUs}`);
    const next = readConfig(c.config);
    return {
      atUs: c.atUs,
      apply: (dp) => {
        const r = dp.reload(next.config);
        if (!r.ok) throw new Error(`changes[${i}]: reload refused: ${r.errors.join('; ')}`);
        // The manifests' Services are a source of their own: a config without manifests leaves none.
        if (dp.conntrackHooks !== null) applyManifestServices(dp, next.manifestServices ?? []);
        reloads.push({ atUs: c.atUs, changes: r.changes });
        return `config reloaded${r.changes.length > 0 ? `: ${r.changes.join(', ')}` : ' (no change)'}`;
      },
    };
  });
}

export async function replay(opts: ReplayOptions): Promise<ReplayResult> {
  const { config, manifestServices } = readConfig(opts.config);
  if (opts.seed !== undefined) {
    if (!Number.isInteger(opts.seed) || opts.seed < 0 || opts.seed > 0xffffffff) throw new RangeError(`seed ${opts.seed}: not an integer in 0..4294967295`);
    config.seed = opts.seed;
  }
  let settle = opts.settle ?? 1;
  if (!Number.isFinite(settle) || settle < 0) throw new RangeError(`settle ${settle}: not a number of seconds ≥ 0`);
  const names = config.ports.map((p) => p.name);
  const per: InputFrame[][] = [];
  let skipped = 0;
  for (const [port, input] of Object.entries(opts.inputs ?? {})) {
    if (!names.includes(port)) throw new Error(`inputs.${port}: no port named ${port} (ports: ${names.join(', ')})`);
    if (typeof input === 'string') {
      const r = await fileFrames(port, input);
      per.push(r.frames);
      skipped += r.skipped;
    } else {
      per.push(memoryFrames(port, input));
    }
  }
  let live: Record<string, ReplayedFrame[]> | undefined;
  if (opts.fromCapture !== undefined) {
    const cap = readCaptureInput(opts.fromCapture, names);
    per.push(cap.rx);
    skipped += cap.skipped;
    live = toReplayedFrames(cap.tx);
    if (opts.settle === undefined) settle = settleAfter(cap);
  }
  const trace: string[] | undefined = opts.trace ? [] : undefined;
  const reloads: { atUs: number; changes: string[] }[] = [];
  const run = new ReplayRun(config, mergeInputs(per), {
    settleSeconds: settle,
    collect: true,
    ...(trace ? { trace: (l: string) => trace.push(l) } : {}),
    ...(manifestServices !== null ? { manifestServices } : {}),
    ...(opts.changes !== undefined ? { changes: reloadChanges(opts.changes, reloads) } : {}),
  });
  while (!run.step(FRAMES_PER_SLICE)) await new Promise<void>((res) => setImmediate(res));
  const r = run.result(skipped);
  const tx = r.tx!;
  return {
    ports: toReplayedFrames(tx),
    framesIn: r.framesIn,
    skipped,
    counters: statsState(r.dataplane),
    ...(trace ? { trace } : {}),
    ...(live ? { live } : {}),
    ...(opts.changes !== undefined ? { reloads } : {}),
    writePcaps: (dir) => writeGoldenDir(tx, dir),
  };
}
