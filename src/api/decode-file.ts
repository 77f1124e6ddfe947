/**
 * decodeFile: a pcap or pcapng file decoded frame by frame, as `nodeplane decode --json`
 * prints it (SPEC §5 fields), with each frame's bytes, time, and for a pcapng its interface
 * name and direction (what `run --capture` records: the port, in or out).
 */
import { readFile } from 'node:fs/promises';
import { decodeFrame } from '../decode/decode-frame.ts';
import type { DecodedFrame } from '../decode/types.ts';
import { parseCapture } from '../pcap/reader.ts';
import { directionOf } from '../pcap/record.ts';

export interface DecodedRecord extends DecodedFrame {
  /** 1-based position in the file. */
  n: number;
  /** Seconds since the epoch (a float). */
  ts: number;
  /** Microseconds since the epoch. */
  tsUs: number;
  /** The pcapng interface's name (a port, for a `run --capture` file). */
  interface?: string;
  /** pcapng direction: 'in' received, 'out' transmitted. */
  direction?: 'in' | 'out';
  bytes: Buffer;
}

export async function decodeFile(path: string): Promise<DecodedRecord[]> {
  const cap = parseCapture(await readFile(path), path);
  const out: DecodedRecord[] = [];
  let n = 0;
  for (const r of cap.records()) {
    const iface = cap.interfaces[r.interfaceId];
    const bytes = Buffer.from(r.data);
    const dir = directionOf(r.flags);
    out.push({
      n: ++n,
      ts: r.tsSec + r.tsNsec / 1e9,
      tsUs: r.tsSec * 1e6 + Math.floor(r.tsNsec / 1000),
      ...decodeFrame(bytes, r.caplen, r.origLen, iface ? iface.linkType : 1),
      ...(iface?.name !== undefined ? { interface: iface.name } : {}),
      ...(dir !== undefined ? { direction: dir } : {}),
      bytes,
    });
  }
  return out;
}
