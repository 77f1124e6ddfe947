/**
 * Tracer: follows frames through the graph, hop by hop, as VPP's packet trace does.
 *
 * When a tracer is set (`Graph.setTracer`), every stage reports each frame it passes on,
 * drops or absorbs, and the dataplane reports receptions and transmissions. Without one the
 * cost is one null check per hop. Meant for replay (`nodeplane replay --trace`) and for
 * debugging; the text tracer allocates freely.
 */
import type { FramePool } from './frame-pool.ts';

export interface Tracer {
  /** A port received the frame in `slot`. */
  received(port: number, slot: number): void;
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

/** Formats trace events as lines: slot numbers tie a frame's hops together. */
export class TextTracer implements Tracer {
  private readonly seen = new Set<number>();

  constructor(
    private readonly pool: FramePool,
    private readonly portNames: readonly string[],
    private readonly describe: (frame: Buffer) => string,
    private readonly write: (line: string) => void,
  ) {}

  /** Forgets which slots were seen: call between independent inputs. */
  reset(): void {
    this.seen.clear();
  }

  received(port: number, slot: number): void {
    this.seen.add(slot);
    this.write(`  s${slot} rx ${this.portNames[port]}: ${this.describe(this.pool.view(slot))}`);
  }

  step(from: string, to: string, slot: number): void {
    if (!this.seen.has(slot)) {
      this.seen.add(slot);
      this.write(`  s${slot} at ${from}: ${this.describe(this.pool.view(slot))}`);
    }
    this.write(`  s${slot}   ${from} → ${to}`);
  }

  dropped(at: string, reason: string, slot: number): void {
    this.write(`  s${slot}   ${at}: dropped (${reason})`);
  }

  consumed(at: string, slot: number): void {
    this.write(`  s${slot}   ${at}: done`);
  }

  note(at: string, slot: number, text: string): void {
    this.write(`  s${slot}   ${at}: ${text}`);
  }

  sent(port: number, slot: number): void {
    this.write(`  s${slot} tx ${this.portNames[port]}: ${this.describe(this.pool.view(slot))}`);
  }
}
