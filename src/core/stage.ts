/**
 * Stage: one node of the packet graph (VPP's graph node, Click's element, Snabb's app).
 *
 * A stage owns an input queue of slot numbers. The dispatcher hands it everything queued so
 * far as one batch; `process` decides per frame and moves each slot onward with `to(next, slot)`
 * or frees it with `drop(slot, reason)`. Next stages are named in `nextNames` and connected by
 * the graph builder, so a reader sees the topology in one place. Each stage counts the frames
 * it processed and its drops by reason; nothing here allocates per frame.
 */
import type { FramePool } from './frame-pool.ts';
import type { Tracer } from './trace.ts';

export abstract class Stage<N extends string = string> {
  abstract readonly name: string;
  /** Names of the stages this one feeds, connected by the graph builder. */
  abstract readonly nextNames: readonly N[];
  /** Why frames are dropped here, as shown by `show stats` (index = reason code). */
  abstract readonly dropReasons: readonly string[];

  /** Frames processed. */
  packets = 0;
  /** Drops per reason code. */
  drops!: Float64Array;
  readonly next = {} as Record<N, Stage>;

  /** Set while tracing (see trace.ts); null otherwise. */
  tracer: Tracer | null = null;

  queue: Int32Array;
  queued = 0;
  private spare: Int32Array;

  constructor(protected readonly pool: FramePool) {
    this.queue = new Int32Array(pool.capacity);
    this.spare = new Int32Array(pool.capacity);
  }

  /** Called once by the graph builder after `dropReasons` is known. */
  initCounters(): void {
    this.drops = new Float64Array(this.dropReasons.length);
  }

  connect(targets: Record<N, Stage>): this {
    for (const name of this.nextNames) {
      const t = targets[name];
      if (!t) throw new Error(`stage ${this.name}: next '${name}' is not connected`);
      this.next[name] = t;
    }
    return this;
  }

  /** Queues a frame for this stage. Capacity equals the pool's, so this cannot overflow. */
  enqueue(slot: number): void {
    this.queue[this.queued++] = slot;
  }

  /** Hands the queued batch to `process`; frames queued meanwhile wait for the next round. */
  run(): number {
    const n = this.queued;
    if (n === 0) return 0;
    const batch = this.queue;
    this.queue = this.spare;
    this.spare = batch;
    this.queued = 0;
    this.packets += n;
    this.process(batch, n);
    return n;
  }

  protected abstract process(slots: Int32Array, n: number): void;

  protected to(next: Stage, slot: number): void {
    if (this.tracer !== null) this.tracer.step(this.name, next.name, slot);
    next.queue[next.queued++] = slot;
  }

  /** Passes the first `n` frames of `slots` on to `next`, in order: a whole batch, no decision. */
  protected toAll(next: Stage, slots: Int32Array, n: number): void {
    const tracer = this.tracer;
    if (tracer !== null) for (let i = 0; i < n; i++) tracer.step(this.name, next.name, slots[i]);
    const q = next.queue;
    let k = next.queued;
    for (let i = 0; i < n; i++) q[k++] = slots[i];
    next.queued = k;
  }

  protected drop(slot: number, reason: number): void {
    if (this.tracer !== null) this.tracer.dropped(this.name, this.dropReasons[reason], slot);
    this.drops[reason]++;
    this.pool.free(slot);
  }

  /** Frees a frame that reached its end here (an ARP packet absorbed, say): not a drop. */
  protected consume(slot: number): void {
    if (this.tracer !== null) this.tracer.consumed(this.name, slot);
    this.pool.free(slot);
  }

  /**
   * Frees every frame still queued here, tracing each as dropped for `reason` (the graph's
   * round limit: see graph.ts, which counts them). Returns how many there were.
   */
  discardQueued(reason: string): number {
    const n = this.queued;
    for (let i = 0; i < n; i++) {
      const slot = this.queue[i];
      if (this.tracer !== null) this.tracer.dropped(this.name, reason, slot);
      this.pool.free(slot);
    }
    this.queued = 0;
    return n;
  }

  /** Drops a frame the stage itself could not obtain a slot for (nothing to free). */
  protected countDrop(reason: number): void {
    this.drops[reason]++;
  }

  counters(): { packets: number; drops: Record<string, number> } {
    const drops: Record<string, number> = {};
    for (let i = 0; i < this.dropReasons.length; i++) if (this.drops[i] > 0) drops[this.dropReasons[i]] = this.drops[i];
    return { packets: this.packets, drops };
  }

  resetCounters(): void {
    this.packets = 0;
    this.drops.fill(0);
  }
}
