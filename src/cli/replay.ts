/**
 * `nodeplane replay`: SPEC §3 on the command line. `--trace` and `--stats` print to stdout;
 * if its reader goes away the replay still runs to its end and writes its pcaps (stdout.ts).
 *
 * Inputs: `--in PORT=PCAP` files, and/or `--from-capture FILE`, a live run's pcapng whose
 * received frames are replayed on their ports (replay/from-capture.ts).
 * Checks: `--expect DIR` compares each port's output with DIR/<port>.pcap (`--update`
 * rewrites them instead); `--expect-capture` compares it with what the live run transmitted.
 * Either prints the first differences decoded field by field and exits 1 (replay/golden.ts).
 */
import { loadConfigParts } from '../config/load.ts';
import { CaptureFormatError } from '../pcap/errors.ts';
import { fileInputFrames, mergeInputs, replayFrames, type InputFrame, type TxRecord } from '../replay/replay.ts';
import { readCaptureInput, settleAfter } from '../replay/from-capture.ts';
import { compareWithGoldenDir, formatComparison, writeGoldenDir } from '../replay/golden.ts';
import { compareWithLive, formatLiveComparison } from '../replay/live-compare.ts';
import { formatStats } from '../admin/format.ts';
import { statsState } from '../admin/state.ts';
import { print } from './stdout.ts';
import { UserError } from '../user-error.ts';

export interface ReplayOptions {
  config: string;
  in: string[];
  fromCapture?: string;
  out?: string;
  expect?: string;
  update?: boolean;
  expectCapture?: boolean;
  settle?: string;
  seed?: string;
  stats?: boolean;
  trace?: boolean;
}

function asUserError(err: unknown): unknown {
  if (err instanceof CaptureFormatError) return new UserError(err.message);
  const e = err as NodeJS.ErrnoException;
  if (e.code && e.path) return new UserError(`${e.path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  return err;
}

export async function replayCommand(opts: ReplayOptions): Promise<number> {
  const loaded = loadConfigParts(opts.config);
  const config = loaded.config;
  if (config.cluster) {
    throw new UserError(`${opts.config}: replay runs without etcd, so it cannot take a cluster lease; remove the cluster section (give the bridge an address and ${config.cluster.vxlan} static peers)`);
  }
  if (opts.seed !== undefined && opts.seed !== '1') {
    const seed = Number(opts.seed);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new UserError(`--seed ${opts.seed}: not an integer in 0..4294967295`);
    config.seed = seed;
  }
  let settle = Number(opts.settle ?? 1);
  if (!Number.isFinite(settle) || settle < 0) throw new UserError(`--settle ${opts.settle}: not a number of seconds ≥ 0`);
  if (opts.in.length === 0 && opts.fromCapture === undefined) throw new UserError('replay needs at least one --in PORT=PCAP, or --from-capture FILE');
  if (opts.update && opts.expect === undefined) throw new UserError('--update rewrites the golden files of --expect DIR: give --expect');
  if (opts.expectCapture && opts.fromCapture === undefined) throw new UserError('--expect-capture compares with the live run of --from-capture FILE: give --from-capture');
  const portNames = config.ports.map((p) => p.name);
  const inputs = opts.in.map((spec) => {
    const eq = spec.indexOf('=');
    if (eq <= 0 || eq === spec.length - 1) throw new UserError(`--in ${spec}: expected PORT=PCAP`);
    const port = spec.slice(0, eq);
    if (!portNames.includes(port)) {
      throw new UserError(`--in ${spec}: no port named ${port} in ${opts.config} (ports: ${portNames.join(', ') || 'none'})`);
    }
    return { port, file: spec.slice(eq + 1) };
  });

  const collect = opts.expect !== undefined || opts.expectCapture === true;
  let result;
  let live: Record<string, TxRecord[]> | undefined;
  let skipped = 0;
  try {
    const per: InputFrame[][] = inputs.map((inp) => {
      const r = fileInputFrames(inp);
      skipped += r.skipped;
      return r.frames;
    });
    if (opts.fromCapture !== undefined) {
      let cap;
      try {
        cap = readCaptureInput(opts.fromCapture, portNames);
      } catch (err) {
        if (err instanceof Error && !(err instanceof CaptureFormatError) && !(err as NodeJS.ErrnoException).code) throw new UserError(err.message);
        throw err;
      }
      per.push(cap.rx);
      skipped += cap.skipped;
      live = cap.tx;
      // Run on as long as the live run was seen after its last received frame, unless told otherwise.
      if (opts.settle === undefined) settle = settleAfter(cap);
    }
    result = replayFrames(
      config,
      mergeInputs(per),
      { settleSeconds: settle, outDir: opts.out, collect, ...(loaded.manifestPaths.length > 0 ? { manifestServices: loaded.manifests.list() } : {}), ...(opts.trace ? { trace: (line: string) => void print(`${line}\n`) } : {}) },
      skipped,
    );
  } catch (err) {
    throw asUserError(err);
  }
  const outs = Object.entries(result.framesOut)
    .map(([p, n]) => `${p}=${n}`)
    .join(' ');
  process.stderr.write(`replay: ${result.framesIn} frames in; out: ${outs}${opts.out !== undefined ? `; pcaps in ${opts.out}` : ''}\n`);
  if (result.skippedNonEthernet > 0) process.stderr.write(`replay: skipped ${result.skippedNonEthernet} records that are not Ethernet or have no direction\n`);
  if (opts.stats) print(formatStats(statsState(result.dataplane)));

  let status = 0;
  if (opts.expect !== undefined) {
    if (opts.update) {
      writeGoldenDir(result.tx!, opts.expect);
      process.stderr.write(`replay: golden files written to ${opts.expect}\n`);
    } else {
      let c;
      try {
        c = compareWithGoldenDir(result.tx!, opts.expect);
      } catch (err) {
        throw asUserError(err); // a golden file that is not a capture
      }
      if (c.ok) {
        process.stderr.write(`replay: every port matches ${opts.expect}\n`);
      } else {
        print(`${formatComparison(c, { expectedName: `the golden files in ${opts.expect}`, gotName: 'replay' })}\n`);
        process.stderr.write(`replay: output differs from ${opts.expect} (run with --update to accept it)\n`);
        status = 1;
      }
    }
  }
  if (opts.expectCapture && live !== undefined) {
    const c = compareWithLive(live, result.tx!);
    print(formatLiveComparison(c, opts.fromCapture!));
    if (!c.ok) status = 1;
  }
  return status;
}
