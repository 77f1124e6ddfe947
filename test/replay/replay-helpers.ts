/**
 * Runs a replay case from captures/replay/<case>/ in process and reads back its outputs; or
 * (runFrames) frames a test builds, written to temporary pcaps first.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, parseConfigParts } from '../../src/config/load.ts';
import { decodeFrame } from '../../src/decode/decode-frame.ts';
import type { DecodedFrame } from '../../src/decode/types.ts';
import { readCaptureSync } from '../../src/pcap/reader.ts';
import { replay, type ReplayResult } from '../../src/replay/replay.ts';
import { pcapFile } from '../helpers/frames.ts';

export const fixtures = fileURLToPath(new URL('../../captures/replay/', import.meta.url));

export interface OutFrame extends DecodedFrame {
  tsUs: number;
  bytes: Buffer;
}

export interface CaseRun {
  result: ReplayResult;
  out: Record<string, OutFrame[]>;
  raw: Record<string, Buffer>;
  input(port: string): Buffer[];
  counters: ReturnType<ReplayResult['dataplane']['stageCounters']>;
}

export function runCase(name: string, settle = 1, configFile = 'lab.yaml'): CaseRun {
  const config = loadConfig(join(fixtures, configFile));
  const dir = join(fixtures, name);
  const inputs = readdirSync(dir)
    .filter((f) => f.endsWith('.pcap'))
    .sort()
    .map((f) => ({ port: f.replace(/\.pcap$/, ''), file: join(dir, f) }));
  const outDir = mkdtempSync(join(tmpdir(), `nodeplane-replay-${name}-`));
  try {
    const result = replay(config, inputs, outDir, settle);
    const out: Record<string, OutFrame[]> = {};
    const raw: Record<string, Buffer> = {};
    for (const p of config.ports) {
      const file = join(outDir, `${p.name}.pcap`);
      raw[p.name] = readFileSync(file);
      out[p.name] = [...readCaptureSync(file).records()].map((r) => ({
        ...decodeFrame(r.data, r.caplen, r.origLen),
        tsUs: r.tsSec * 1e6 + Math.round(r.tsNsec / 1000),
        bytes: Buffer.from(r.data),
      }));
    }
    return {
      result,
      out,
      raw,
      counters: result.dataplane.stageCounters(),
      input: (port) => [...readCaptureSync(join(dir, `${port}.pcap`)).records()].map((r) => Buffer.from(r.data)),
    };
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
}

/** Recomputes an Internet checksum independently (true when the bytes sum to 0xffff). */
export function checksumValid(b: Buffer, off: number, len: number): boolean {
  let sum = 0;
  for (let i = 0; i < len; i += 2) sum += (b[off + i] << 8) + (i + 1 < len ? b[off + i + 1] : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

/** A frame received on `port` at `tsUs` (µs of the virtual clock). */
export interface FrameIn {
  port: string;
  tsUs: number;
  frame: Buffer;
}

export interface FramesRun extends Omit<CaseRun, 'input'> {
  /** The hop-by-hop trace (replay --trace), one line each. */
  trace: string[];
}

/** The text of captures/replay/lab.yaml with `extraRoutes` (flow-style entries) added to its routes and `extraYaml` appended. */
export function labConfigText(extraYaml: string, extraRoutes: string[] = []): string {
  const lab = readFileSync(join(fixtures, 'lab.yaml'), 'utf8');
  if (extraRoutes.length > 0 && !lab.includes('\nroutes:\n')) throw new Error('lab.yaml has no routes: list to add to');
  return lab.replace('\nroutes:\n', `\nroutes:\n${extraRoutes.map((r) => `  - ${r}\n`).join('')}`) + extraYaml;
}

/**
 * Replays frames built in the test: writes one input pcap per port (test/helpers/frames.ts's
 * own pcap writer) into a temporary folder, runs `replay` on the lab node with `extraYaml`
 * appended to captures/replay/lab.yaml (and `extraRoutes`, flow-style route entries, added to
 * its routes; with the Services of its `manifests`, given as absolute paths), and reads the
 * output pcaps back. `inspect` gets the output folder before it is removed (to run tshark on
 * the outputs).
 */
export function runFrames(extraYaml: string, frames: FrameIn[], settle = 1, inspect?: (outDir: string) => void, extraRoutes: string[] = []): FramesRun {
  const loaded = parseConfigParts(labConfigText(extraYaml, extraRoutes), 'lab.yaml');
  const config = loaded.config;
  const dir = mkdtempSync(join(tmpdir(), 'nodeplane-replay-frames-'));
  try {
    const byPort = new Map<string, FrameIn[]>();
    for (const f of frames) byPort.set(f.port, [...(byPort.get(f.port) ?? []), f]);
    const inputs = [...byPort].map(([port, fs]) => {
      const file = join(dir, `in-${port}.pcap`);
      writeFileSync(file, pcapFile(fs.map((f) => ({ tsUs: f.tsUs, frame: f.frame }))));
      return { port, file };
    });
    const outDir = join(dir, 'out');
    const trace: string[] = [];
    const manifests = loaded.manifestPaths.length > 0 ? { manifestServices: loaded.manifests.list() } : {};
    const result = replay(config, inputs, outDir, settle, { trace: (l) => trace.push(l), ...manifests });
    const out: Record<string, OutFrame[]> = {};
    const raw: Record<string, Buffer> = {};
    for (const p of config.ports) {
      const file = join(outDir, `${p.name}.pcap`);
      raw[p.name] = readFileSync(file);
      out[p.name] = [...readCaptureSync(file).records()].map((r) => ({
        ...decodeFrame(r.data, r.caplen, r.origLen),
        tsUs: r.tsSec * 1e6 + Math.round(r.tsNsec / 1000),
        bytes: Buffer.from(r.data),
      }));
    }
    inspect?.(outDir);
    return { result, out, raw, counters: result.dataplane.stageCounters(), trace };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
