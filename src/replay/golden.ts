/**
 * Golden pcaps: what a replay transmitted on each port, compared frame by frame with what it
 * should have (DIR/<port>.pcap), the differences decoded field by field.
 *
 * A frame differs when its bytes differ, or (unless time is ignored) its timestamp. Each
 * difference names the frame (1-based, per port), every decoded field whose value changed
 * (`ip.ttl: expected 64, got 63`, the names of `decode --json`), and the first differing
 * byte, so a change in an undecoded payload is still pinpointed. A port that sent more or
 * fewer frames than expected says so and shows the first frame that is missing or extra.
 * Used by `replay --expect` / `--expect-capture` and the library's expectReplay.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { decodeFrame } from '../decode/decode-frame.ts';
import { frameSummary } from '../decode/text-tracer.ts';
import { readCaptureSync } from '../pcap/reader.ts';
import { fileSink } from '../pcap/sink.ts';
import { PcapWriter } from '../pcap/pcap-writer.ts';
import type { TxRecord } from '../ports/replay-port.ts';

export interface FieldDifference {
  /** A decoded field (`ip.ttl`), `time`, `bytes` (first differing offset) or `length`. */
  field: string;
  expected: string;
  got: string;
}

export interface FrameDifference {
  /** 1-based position in the port's output. */
  frame: number;
  expected?: TxRecord;
  got?: TxRecord;
  fields: FieldDifference[];
}

export interface PortComparison {
  port: string;
  expectedFrames: number;
  gotFrames: number;
  /** Frames that differ (compared position by position), extra and missing ones included. */
  differing: number;
  /** The first differences, at most `maxReported`. */
  differences: FrameDifference[];
  /** Set when there was nothing to compare with (no golden file). */
  missing?: string;
}

export interface Comparison {
  ok: boolean;
  ports: PortComparison[];
}

export interface CompareOptions {
  /** Compare timestamps too (default true: a replay's virtual time is deterministic). */
  time?: boolean;
  /** Differences reported per port (default 3). */
  maxReported?: number;
}

/** `{ ip: { ttl: 64 } }` → [['ip.ttl', '64']]; arrays by index. */
function flatten(value: unknown, prefix: string, out: Map<string, string>): void {
  if (value === null || typeof value !== 'object') {
    out.set(prefix, typeof value === 'string' ? value : JSON.stringify(value));
    return;
  }
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (v !== undefined) flatten(v, prefix === '' ? k : `${prefix}.${k}`, out);
  }
}

function fieldsOf(bytes: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  flatten(decodeFrame(bytes), '', out);
  return out;
}

const hex = (b: number | undefined): string => (b === undefined ? 'nothing' : `0x${b.toString(16).padStart(2, '0')}`);

function formatTime(us: number): string {
  return `${Math.floor(us / 1e6)}.${String(us % 1e6).padStart(6, '0')}`;
}

/** Every decoded field that differs between two frames, then the first differing byte. */
export function fieldDifferences(expected: Buffer, got: Buffer): FieldDifference[] {
  const a = fieldsOf(expected);
  const b = fieldsOf(got);
  const diffs: FieldDifference[] = [];
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(key);
    const y = b.get(key);
    if (x !== y) diffs.push({ field: key, expected: x ?? '(absent)', got: y ?? '(absent)' });
  }
  const n = Math.min(expected.length, got.length);
  let off = 0;
  while (off < n && expected[off] === got[off]) off++;
  if (off < n || expected.length !== got.length) {
    diffs.push({ field: `bytes[${off}]`, expected: hex(expected[off]), got: hex(got[off]) });
  }
  return diffs;
}

/** Compares one port's output with what was expected, position by position. */
export function comparePort(port: string, expected: readonly TxRecord[], got: readonly TxRecord[], opts: CompareOptions = {}): PortComparison {
  const time = opts.time ?? true;
  const max = opts.maxReported ?? 3;
  const differences: FrameDifference[] = [];
  let differing = 0;
  const n = Math.max(expected.length, got.length);
  for (let i = 0; i < n; i++) {
    const e = expected[i];
    const g = got[i];
    let fields: FieldDifference[];
    if (e === undefined || g === undefined) {
      fields = [];
    } else {
      const sameBytes = e.bytes.equals(g.bytes);
      const sameTime = !time || e.tsUs === g.tsUs;
      if (sameBytes && sameTime) continue;
      fields = sameBytes ? [] : fieldDifferences(e.bytes, g.bytes);
      if (!sameTime) fields.unshift({ field: 'time', expected: formatTime(e.tsUs), got: formatTime(g.tsUs) });
    }
    differing++;
    if (differences.length < max) differences.push({ frame: i + 1, ...(e ? { expected: e } : {}), ...(g ? { got: g } : {}), fields });
  }
  return { port, expectedFrames: expected.length, gotFrames: got.length, differing, differences };
}

/** Reads a classic pcap or pcapng of Ethernet frames as records. */
export function readRecords(file: string): TxRecord[] {
  const cap = readCaptureSync(file);
  return [...cap.records()].map((r) => ({ tsUs: r.tsSec * 1e6 + Math.floor(r.tsNsec / 1000), bytes: Buffer.from(r.data) }));
}

/**
 * Compares every port's output with DIR/<port>.pcap. A port without a golden file is a
 * difference; so is a golden file for a port the run does not have.
 */
export function compareWithGoldenDir(tx: Record<string, readonly TxRecord[]>, dir: string, opts: CompareOptions = {}): Comparison {
  const ports: PortComparison[] = [];
  for (const [port, got] of Object.entries(tx)) {
    const file = join(dir, `${port}.pcap`);
    if (!existsSync(file)) {
      ports.push({ port, expectedFrames: 0, gotFrames: got.length, differing: Math.max(1, got.length), differences: [], missing: `${file} is missing` });
      continue;
    }
    ports.push(comparePort(port, readRecords(file), got, opts));
  }
  if (existsSync(dir)) {
    for (const f of readdirSync(dir).sort()) {
      const port = f.replace(/\.pcap$/, '');
      if (f.endsWith('.pcap') && !(port in tx)) {
        ports.push({ port, expectedFrames: 0, gotFrames: 0, differing: 1, differences: [], missing: `${join(dir, f)} names no port of this config` });
      }
    }
  }
  return { ok: ports.every((p) => p.differing === 0), ports };
}

/** Writes DIR/<port>.pcap for every port (the golden files), replacing what was there. */
export function writeGoldenDir(tx: Record<string, readonly TxRecord[]>, dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const [port, records] of Object.entries(tx)) {
    const sink = fileSink(join(dir, `${port}.pcap`));
    const w = new PcapWriter(sink, { nanosecond: false });
    for (const r of records) {
      const sec = Math.floor(r.tsUs / 1e6);
      w.writeRecord(sec, (r.tsUs - sec * 1e6) * 1000, r.bytes);
    }
    sink.close();
  }
}

export interface FormatOptions {
  /** What the expected frames are called, e.g. the golden folder. */
  expectedName: string;
  /** What the frames compared with them are called, e.g. "replay". */
  gotName: string;
}

/** The differences as text, one block per port that differs; '' when all match. */
export function formatComparison(c: Comparison, o: FormatOptions): string {
  const lines: string[] = [];
  for (const p of c.ports) {
    if (p.differing === 0) continue;
    if (p.missing !== undefined) {
      lines.push(`${p.port}: ${p.missing}${p.gotFrames > 0 ? ` (${o.gotName} transmitted ${p.gotFrames} frames)` : ''}`);
      continue;
    }
    const count = p.expectedFrames === p.gotFrames ? `${p.gotFrames} frames` : `${p.expectedFrames} frames expected, ${p.gotFrames} transmitted`;
    lines.push(`${p.port}: ${p.differing} of ${Math.max(p.expectedFrames, p.gotFrames)} frames differ (${count})`);
    for (const d of p.differences) {
      if (d.got === undefined) {
        lines.push(`  frame ${d.frame}: missing; expected ${frameSummary(d.expected!.bytes)}`);
      } else if (d.expected === undefined) {
        lines.push(`  frame ${d.frame}: extra; got ${frameSummary(d.got.bytes)}`);
      } else {
        lines.push(`  frame ${d.frame} at ${formatTime(d.got.tsUs)}: ${frameSummary(d.got.bytes)}`);
        for (const f of d.fields) lines.push(`    ${f.field}: expected ${f.expected}, got ${f.got}`);
      }
    }
    if (p.differing > p.differences.length) lines.push(`  … and ${p.differing - p.differences.length} more`);
  }
  return lines.length === 0 ? '' : `${o.gotName} differs from ${o.expectedName}:\n${lines.join('\n')}`;
}
