/**
 * Tracer: follows frames through the graph, hop by hop, as VPP's packet trace does.
 *
 * When a tracer is set (`Graph.setTracer`), every stage reports each frame it passes on,
 * drops or absorbs, stages that make a frame from another (a flood copy, an ICMP error, a
 * fragment, the ARP request a packet waits on) report the lineage, and the dataplane reports
 * receptions and transmissions. Without a tracer the cost is one null check per hop. Meant
 * for replay (`nodeplane replay --trace`), `nodeplane trace` and debugging; the text tracer
 * allocates freely.
 */
import type { FramePool } from './frame-pool.ts';

export interface Tracer {
  /** A port received the frame in `slot`. */
  received(port: number, slot: number): void;
  /** Stage `at` made the frame in `slot` from the one in `from` (-1: from a timer). */
  derived(at: string, from: number, slot: number): void;
  /** Stage `from` passed the frame on to stage `to`. */
  step(from: string, to: string, slot: number): void;
  /** Stage `at` dropped the frame, for `reason`. */
  dropped(at: string, reason: string, slot: number): void;
  /** Stage `at` absorbed the frame (an ARP packet that ends here, say). */
  consumed(at: string, slot: number): void;
  /** Stage `at` says something about the frame (queued, say). */
  note(at: string, slot: number, text: string): void;
  /** Port `port` transmitted the frame. */
  sent(port: number, slot: number): void;
}

/**
 * Formats trace events as lines; slot numbers tie a frame's hops together. With `match`,
 * only received frames whose one-line summary contains that text are followed (with every
 * frame made from them); the others are passed over silently.
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
    private readonly match: string | null = null,
  ) {}

  /** Forgets which slots were seen: call between independent inputs. */
  reset(): void {
    this.seen.clear();
    this.ignored.clear();
  }

  /** Whether the last `received` frame is followed. */
  received(port: number, slot: number): boolean {
    const text = this.describe(this.pool.view(slot));
    if (this.match !== null && !text.includes(this.match)) {
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

  dropped(at: string, reason: string, slot: number): void {
    if (!this.ignored.has(slot)) this.write(`  s${slot}   ${at}: dropped (${reason})`);
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
