/**
 * Test helper for the Wireshark command-line tools (tshark, capinfos, editcap): find them,
 * run them, and declare test suites that need them.
 *
 * Policy: a suite whose tools are missing is skipped with a printed reason on a developer
 * machine, but fails when CI=true, so CI can never go green by silently testing nothing.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { describe, it } from 'vitest';

export type WiresharkTool = 'tshark' | 'capinfos' | 'editcap' | 'mergecap' | 'text2pcap';

const found = new Map<string, string | null>();

/** Absolute path of a tool on PATH (or /usr/bin, /usr/local/bin), or null. */
export function findTool(name: WiresharkTool | string): string | null {
  const cached = found.get(name);
  if (cached !== undefined) return cached;
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/local/bin'];
  let path: string | null = null;
  for (const d of dirs) {
    if (!d) continue;
    try {
      accessSync(join(d, name), constants.X_OK);
      path = join(d, name);
      break;
    } catch {
      // not here
    }
  }
  found.set(name, path);
  return path;
}

/** Tools from `names` that are not installed. */
export function missingTools(names: readonly string[]): string[] {
  return names.filter((n) => findTool(n) === null);
}

/**
 * Runs a tool and returns its stdout. Throws with stderr in the message on a non-zero exit.
 * tshark warns on stderr when run as root; that is not an error.
 */
export function runTool(name: WiresharkTool | string, args: readonly string[]): string {
  const path = findTool(name);
  if (!path) throw new Error(`${name} is not installed`);
  try {
    return execFileSync(path, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${name} ${args.join(' ')} failed: ${err.stderr?.trim() || err.message}`);
  }
}

/**
 * `tshark -r FILE -T fields -e ...` as rows of strings (one per frame, one column per field).
 * Empty fields are ''. Extra tshark arguments (e.g. a display filter) go in `extra`.
 */
export function tsharkFields(file: string, fields: readonly string[], extra: readonly string[] = []): string[][] {
  const args = ['-r', file, '-T', 'fields', '-E', 'separator=/t', '-E', 'occurrence=f'];
  for (const f of fields) args.push('-e', f);
  const out = runTool('tshark', [...args, ...extra]);
  return out
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => l.split('\t'));
}

/** What `capinfos -M -c -I` reports about a file. */
export interface CapinfosInfo {
  packets: number;
  interfaces: {
    name: string;
    /** e.g. "Ethernet (1 - ether)" */
    encapsulation: string;
    snaplen: number;
    /** "Time resolution", e.g. "0x06" or "0x09". */
    tsResolution: string;
    packets: number;
  }[];
}

/** Runs `capinfos -M -c -I FILE` and parses the long report. */
export function capinfosInfo(file: string): CapinfosInfo {
  const out = runTool('capinfos', ['-M', '-c', '-I', file]);
  const info: CapinfosInfo = { packets: NaN, interfaces: [] };
  let cur: CapinfosInfo['interfaces'][number] | undefined;
  for (const line of out.split('\n')) {
    const top = /^Number of packets:\s+(\d+)/.exec(line);
    if (top) info.packets = Number(top[1]);
    if (/^Interface #\d+ info:/.test(line)) {
      cur = { name: '', encapsulation: '', snaplen: NaN, tsResolution: '', packets: NaN };
      info.interfaces.push(cur);
      continue;
    }
    const kv = /^\s+([^=]+?) = (.*)$/.exec(line);
    if (!cur || !kv) continue;
    const [, key, value] = kv as unknown as [string, string, string];
    if (key === 'Name') cur.name = value;
    else if (key === 'Encapsulation') cur.encapsulation = value;
    else if (key === 'Capture length') cur.snaplen = Number(value);
    else if (key === 'Time resolution') cur.tsResolution = value;
    else if (key === 'Number of packets') cur.packets = Number(value);
  }
  return info;
}

/**
 * Splits tshark's frame.time_epoch ("1439753725.701607000") into [seconds, nanoseconds]
 * exactly; going through a float would lose the last digits of nanosecond timestamps.
 */
export function parseEpoch(s: string): [number, number] {
  const [sec, frac = ''] = s.split('.');
  return [Number(sec), Number(frac.padEnd(9, '0').slice(0, 9))];
}

/** True when tests must not skip for missing tools. */
export function inCI(): boolean {
  return process.env.CI === 'true';
}

/**
 * describe() for a suite that needs some tools: runs it when they are installed; otherwise
 * prints why it is skipped, or under CI=true registers one failing test naming what is missing.
 */
export function describeWithTools(tools: readonly WiresharkTool[], name: string, body: () => void): void {
  const missing = missingTools(tools);
  if (missing.length === 0) {
    describe(name, body);
    return;
  }
  const reason = `${name}: needs ${missing.join(', ')} (not found on PATH)`;
  if (inCI()) {
    describe(name, () => {
      it('has the tools it needs', () => {
        throw new Error(`${reason}; CI=true, so this is a failure, not a skip`);
      });
    });
    return;
  }
  console.warn(`skipping ${reason}`);
  describe.skip(name, body);
}
