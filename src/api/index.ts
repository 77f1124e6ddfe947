/**
 * nodeplane as a library (the package's entry point): replay pcaps or frames through the
 * dataplane offline, compare with golden pcaps, decode captures, read configs. No root, no
 * global state. README "Library API" shows each in use.
 */
export { replay, type ReplayOptions, type ReplayResult, type ReplayChange, type FrameInput } from './replay.ts';
export { ReplayedFrame } from './replayed-frame.ts';
export { expectReplay, expectLiveMatch, ReplayMismatchError, type ExpectOptions } from './expect.ts';
export { decodeFile, type DecodedRecord } from './decode-file.ts';
export { loadConfig, parseConfig, ConfigError, type Config } from '../config/load.ts';
export type { DecodedFrame } from '../decode/types.ts';
export type { StatsState } from '../admin/state.ts';
export type { Comparison, PortComparison, FrameDifference, FieldDifference } from '../replay/golden.ts';
