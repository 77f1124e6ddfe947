/**
 * `nodeplane replay`: SPEC §3 on the command line. `--trace` and `--stats` print to stdout;
 * if its reader goes away the replay still runs to its end and writes its pcaps (stdout.ts).
 */
import { loadConfigParts } from '../config/load.ts';
import { CaptureFormatError } from '../pcap/errors.ts';
import { replay, type ReplayInput } from '../replay/replay.ts';
import { formatStats } from '../admin/format.ts';
import { statsState } from '../admin/state.ts';
import { print } from './stdout.ts';
import { UserError } from '../user-error.ts';

export interface ReplayOptions {
  config: string;
  in: string[];
  out: string;
  settle: string;
  seed?: string;
  stats?: boolean;
  trace?: boolean;
}

export async function replayCommand(opts: ReplayOptions): Promise<number> {
  const loaded = loadConfigParts(opts.config);
  const config = loaded.config;
  if (opts.seed !== undefined && opts.seed !== '1') {
    const seed = Number(opts.seed);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new UserError(`--seed ${opts.seed}: not an integer in 0..4294967295`);
    config.seed = seed;
  }
  const settle = Number(opts.settle);
  if (!Number.isFinite(settle) || settle < 0) throw new UserError(`--settle ${opts.settle}: not a number of seconds ≥ 0`);
  if (opts.in.length === 0) throw new UserError('replay needs at least one --in PORT=PCAP');
  const inputs: ReplayInput[] = opts.in.map((spec) => {
    const eq = spec.indexOf('=');
    if (eq <= 0 || eq === spec.length - 1) throw new UserError(`--in ${spec}: expected PORT=PCAP`);
    const port = spec.slice(0, eq);
    if (!config.ports.some((p) => p.name === port)) {
      throw new UserError(`--in ${spec}: no port named ${port} in ${opts.config} (ports: ${config.ports.map((p) => p.name).join(', ') || 'none'})`);
    }
    return { port, file: spec.slice(eq + 1) };
  });
  let result;
  try {
    result = replay(config, inputs, opts.out, settle, {
      ...(opts.trace ? { trace: (line: string) => print(`${line}\n`) } : {}),
      ...(loaded.manifestPaths.length > 0 ? { manifestServices: loaded.manifests.list() } : {}),
    });
  } catch (err) {
    if (err instanceof CaptureFormatError) throw new UserError(err.message);
    const e = err as NodeJS.ErrnoException;
    if (e.code && e.path) throw new UserError(`${e.path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
    throw err;
  }
  const outs = Object.entries(result.framesOut)
    .map(([p, n]) => `${p}=${n}`)
    .join(' ');
  process.stderr.write(`replay: ${result.framesIn} frames in; out: ${outs}; pcaps in ${opts.out}\n`);
  if (result.skippedNonEthernet > 0) process.stderr.write(`replay: skipped ${result.skippedNonEthernet} records that are not Ethernet\n`);
  if (opts.stats) print(formatStats(statsState(result.dataplane)));
  return 0;
}
