/**
 * TextTracer: the text form of a trace (core/trace.ts), what `replay --trace` and
 * `nodeplane trace` print: one line per event, each frame described the way `decode` prints
 * it, slot numbers tying a frame's hops together. Allocates freely: it runs only while
 * someone traces.
 */
import type { DropReason } from '../core/drop-reason.ts';
import type { FramePool } from '../core/frame-pool.ts';
import type { Tracer } from '../core/trace.ts';
import { decodeFrame } from './decode-frame.ts';
import { formatFrameText, formatTimestamp } from './format-text.ts';

/** A frame's one-line summary as `decode` prints it, without the timestamp column. */
export function frameSummary(frame: Buffer): string {
  return formatFrameText(decodeFrame(frame), 0, 0).slice(formatTimestamp(0, 0, false).length + 1);
}

/**
 * Formats trace events as lines; slot numbers tie a frame's hops together. With `match`,
 * only received frames whose one-line summary contains that text (or, given a function, that
 * it accepts: a libpcap filter, say) are followed (with every frame made from them); the
 * others are passed over silently.
 */
export class TextTracer implements Tracer {
  private readonly seen = new Set<number>();
  private readonly ignored = new Set<number>();
  /** Frames received that matched (all of them without `match`). */
  followed = 0;

  constructor(
    private readonly pool: FramePool,
    private readonly portNames: readonly string[],
    private readonly describe: (frame: Buffer) => string,
    private readonly write: (line: string) => void,
    private readonly match: string | ((slot: number) => boolean) | null = null,
  ) {}

  /** Forgets which slots were seen: call between independent inputs. */
  reset(): void {
    this.seen.clear();
    this.ignored.clear();
  }

  /** Whether the last `received` frame is followed. */
  received(port: number, slot: number): boolean {
    const m = this.match;
    if (typeof m === 'function' && !m(slot)) {
      this.ignored.add(slot);
      return false;
    }
    const text = this.describe(this.pool.view(slot));
    if (typeof m === 'string' && !text.includes(m)) {
      this.ignored.add(slot);
      return false;
    }
    this.ignored.delete(slot);
    this.seen.add(slot);
    this.followed++;
    this.write(`  s${slot} rx ${this.portNames[port]}: ${text}`);
    return true;
  }

  derived(at: string, from: number, slot: number): void {
    if (from >= 0 && this.ignored.has(from)) {
      this.ignored.add(slot);
      return;
    }
    this.ignored.delete(slot);
    this.seen.add(slot);
    const origin = from >= 0 ? ` from s${from}` : ' on a timer';
    this.write(`  s${slot} made at ${at}${origin}: ${this.describe(this.pool.view(slot))}`);
  }

  step(from: string, to: string, slot: number): void {
    if (this.ignored.has(slot)) return;
    if (!this.seen.has(slot)) {
      this.seen.add(slot);
      this.write(`  s${slot} at ${from}: ${this.describe(this.pool.view(slot))}`);
    }
    this.write(`  s${slot}   ${from} → ${to}`);
  }

  dropped(at: string, reason: DropReason, slot: number): void {
    if (!this.ignored.has(slot)) this.write(`  s${slot}   ${at}: dropped ${reason.id} (${reason.text})`);
  }

  consumed(at: string, slot: number): void {
    if (!this.ignored.has(slot)) this.write(`  s${slot}   ${at}: done`);
  }

  note(at: string, slot: number, text: string): void {
    if (!this.ignored.has(slot)) this.write(`  s${slot}   ${at}: ${text}`);
  }

  sent(port: number, slot: number): void {
    if (!this.ignored.has(slot)) this.write(`  s${slot} tx ${this.portNames[port]}: ${this.describe(this.pool.view(slot))}`);
  }
}
