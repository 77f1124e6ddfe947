/**
 * ReplayedFrame: one frame a port transmitted in a replay (or the live run of a capture), as
 * the library hands it out: its port, position, virtual time and bytes, decoded only when
 * asked (`decoded`, the fields of `decode --json`; `summary`, its one-line text).
 */
import { decodeFrame } from '../decode/decode-frame.ts';
import { frameSummary } from '../decode/text-tracer.ts';
import type { DecodedFrame } from '../decode/types.ts';
import type { TxRecord } from '../replay/replay.ts';

export class ReplayedFrame implements TxRecord {
  private cached: DecodedFrame | undefined;

  constructor(
    /** The port that transmitted it. */
    readonly port: string,
    /** 1-based position among the port's frames. */
    readonly n: number,
    /** Virtual time of transmission, µs since the epoch. */
    readonly tsUs: number,
    readonly bytes: Buffer,
  ) {}

  /** Time of transmission in seconds (a float, as `decode --json` prints it). */
  get ts(): number {
    return this.tsUs / 1e6;
  }

  /** The decoded layers (eth, arp, ip, icmp, udp, tcp, …), computed on first use. */
  get decoded(): DecodedFrame {
    this.cached ??= decodeFrame(this.bytes);
    return this.cached;
  }

  /** One line, as `nodeplane decode` prints it without the time. */
  get summary(): string {
    return frameSummary(this.bytes);
  }
}

export function toReplayedFrames(tx: Record<string, readonly TxRecord[]>): Record<string, ReplayedFrame[]> {
  const out: Record<string, ReplayedFrame[]> = {};
  for (const [port, records] of Object.entries(tx)) out[port] = records.map((r, i) => new ReplayedFrame(port, i + 1, r.tsUs, r.bytes));
  return out;
}
