/**
 * expectReplay: golden pcaps for a test runner. Compares every port's output of a replay
 * with DIR/<port>.pcap frame by frame (bytes and virtual time) and throws a
 * ReplayMismatchError whose message names each port, frame and decoded field that differs,
 * as `replay --expect DIR` prints it. With `update` (or NODEPLANE_UPDATE_GOLDEN=1 in the
 * environment) it writes the golden files instead, as `--update` does.
 */
import { compareWithGoldenDir, formatComparison, type Comparison } from '../replay/golden.ts';
import { compareWithLive } from '../replay/live-compare.ts';
import type { ReplayResult } from './replay.ts';

export class ReplayMismatchError extends Error {
  constructor(
    message: string,
    /** Every port's comparison, for a test that wants to look closer. */
    readonly comparison: Comparison,
  ) {
    super(message);
    this.name = 'ReplayMismatchError';
  }
}

export interface ExpectOptions {
  /** Write the golden files instead of comparing. */
  update?: boolean;
  /** Compare virtual timestamps too (default true). */
  time?: boolean;
  /** Differing frames described per port (default 3). */
  maxReported?: number;
}

export function expectReplay(result: ReplayResult, dir: string, opts: ExpectOptions = {}): void {
  if (opts.update || process.env.NODEPLANE_UPDATE_GOLDEN === '1') {
    result.writePcaps(dir);
    return;
  }
  const c = compareWithGoldenDir(result.ports, dir, { time: opts.time ?? true, maxReported: opts.maxReported });
  if (!c.ok) throw new ReplayMismatchError(formatComparison(c, { expectedName: `the golden files in ${dir}`, gotName: 'replay' }), c);
}

/** For a replay of `fromCapture`: what it transmitted against what the live run transmitted, times aside. */
export function expectLiveMatch(result: ReplayResult): void {
  if (result.live === undefined) throw new Error('expectLiveMatch needs a replay of fromCapture');
  const c = compareWithLive(result.live, result.ports);
  if (!c.ok) throw new ReplayMismatchError(formatComparison(c, { expectedName: 'the live run', gotName: 'replay' }), c);
}
