/**
 * Stage: one node of the packet graph (VPP's graph node, Click's element, Snabb's app).
 *
 * A stage owns an input queue of slot numbers (its `Inbox`). The dispatcher hands it everything queued so
 * far as one batch; `process` decides per frame and moves each slot onward with
 * `to(this.out.<next>, slot)` or frees it with `drop(slot, reason)`. Next stages are named in
 * `nextNames` and connected by the graph builder, so a reader sees the topology in one place.
 * Each stage counts the frames it processed and its drops by reason (drop-reason.ts: a stable
 * id and a text each), plus whatever events it names in `events` (ICMP errors sent, ARP
 * requests, ...); nothing here allocates per frame.
 *
 * Why `out` holds queues, not stages: the methods of this base class are shared by every
 * stage class, so V8 keeps one inline cache per property access in them for all of them. A
 * per-frame `next.inbox` read in `to` sees some twenty stage shapes and goes megamorphic (a
 * hash probe per frame, ~10% of the routed path); an `Inbox` has one shape.
 */
import { checkDropReasons, type DropReason } from './drop-reason.ts';
import type { FramePool } from './frame-pool.ts';
import type { DropObserver } from './port-contract.ts';
import type { Tracer } from './trace.ts';

/**
 * A stage's input queue. One class for every stage, so the per-frame write in `Stage.to`
 * touches objects of one shape (a monomorphic access), whatever stage it feeds: reading
 * `queue` and `queued` off the many stage classes directly would be megamorphic.
 */
export class Inbox {
  queue: Int32Array;
  spare: Int32Array;
  queued = 0;
  /** The graph's tracer while tracing, as the stages have it (read by the stage that feeds this one). */
  tracer: Tracer | null = null;

  constructor(
    /** The stage this queue feeds (its name is read only while tracing). */
    readonly owner: Stage,
    capacity: number,
  ) {
    this.queue = new Int32Array(capacity);
    this.spare = new Int32Array(capacity);
  }
}

/** What `Stage.counters` reports. */
export interface StageCounters {
  packets: number;
  /** Non-zero drops by reason id. */
  drops: Record<string, number>;
  /** The stage's event counters by name. */
  events: Record<string, number>;
}

export abstract class Stage<N extends string = string> {
  abstract readonly name: string;
  /** Names of the stages this one feeds, connected by the graph builder. */
  abstract readonly nextNames: readonly N[];
  /** Why frames are dropped here, as shown by `show stats` (index = reason code). */
  abstract readonly dropReasons: readonly DropReason[];
  /**
   * Names of this stage's own numeric event counters (fields of the stage, e.g. `ttlExpired`),
   * shown by `show stats` beside its drops.
   */
  readonly events: readonly string[] = [];

  /** Frames processed. */
  packets = 0;
  /** Drops per reason code. */
  drops!: Float64Array;
  readonly next = {} as Record<N, Stage>;
  /** The input queue of each next stage: what `to` and `toAll` write to. */
  protected readonly out = {} as Record<N, Inbox>;

  /** Set while tracing (see trace.ts); null otherwise. */
  tracer: Tracer | null = null;
  /** Set while dropped frames are captured (`--capture-drops`); null otherwise. */
  dropObserver: DropObserver | null = null;

  /** Frames queued for this stage. */
  readonly inbox: Inbox;

  constructor(protected readonly pool: FramePool) {
    this.inbox = new Inbox(this, pool.capacity);
  }

  /** The queued slots (the first `queued` of them). */
  get queue(): Int32Array {
    return this.inbox.queue;
  }
  get queued(): number {
    return this.inbox.queued;
  }
  set queued(n: number) {
    this.inbox.queued = n;
  }

  /** Called once by the graph builder after `dropReasons` is known. */
  initCounters(): void {
    checkDropReasons(this.dropReasons, `stage ${this.name}`);
    this.drops = new Float64Array(this.dropReasons.length);
  }

  connect(targets: Record<N, Stage>): this {
    for (const name of this.nextNames) {
      const t = targets[name];
      if (!t) throw new Error(`stage ${this.name}: next '${name}' is not connected`);
      this.next[name] = t;
      this.out[name] = t.inbox;
    }
    return this;
  }

  /** Sets (or with null, clears) the tracer of this stage and of its queue. */
  setTracer(tracer: Tracer | null): void {
    this.tracer = tracer;
    this.inbox.tracer = tracer;
  }

  /** Queues a frame for this stage. Capacity equals the pool's, so this cannot overflow. */
  enqueue(slot: number): void {
    const box = this.inbox;
    box.queue[box.queued++] = slot;
  }

  /** Hands the queued batch to `process`; frames queued meanwhile wait for the next round. */
  run(): number {
    const box = this.inbox;
    const n = box.queued;
    if (n === 0) return 0;
    const batch = box.queue;
    box.queue = box.spare;
    box.spare = batch;
    box.queued = 0;
    this.packets += n;
    this.process(batch, n);
    return n;
  }

  protected abstract process(slots: Int32Array, n: number): void;

  /** Queues `slot` for the next stage whose queue is `box` (one of `this.out`). */
  protected to(box: Inbox, slot: number): void {
    if (box.tracer !== null) box.tracer.step(this.name, box.owner.name, slot);
    box.queue[box.queued++] = slot;
  }

  /**
   * Passes the first `n` frames of `slots` on to `box`, in order. A stage decides per frame,
   * keeps the frames for its main output at the front of its batch (`slots[k++] = slot`) and
   * hands them on with one call: a hop then costs a store per frame, not `to`'s. When `slots`
   * is the batch `process` was given and `box` is empty, which is the usual case, the arrays
   * are swapped rather than copied: the caller must not use `slots` afterwards.
   */
  protected toAll(box: Inbox, slots: Int32Array, n: number): void {
    const tracer = box.tracer;
    if (tracer !== null) for (let i = 0; i < n; i++) tracer.step(this.name, box.owner.name, slots[i]);
    if (n === 0) return;
    const own = this.inbox;
    if (box.queued === 0 && slots === own.spare) {
      own.spare = box.queue;
      box.queue = slots;
      box.queued = n;
      return;
    }
    const q = box.queue;
    let k = box.queued;
    for (let i = 0; i < n; i++) q[k++] = slots[i];
    box.queued = k;
  }

  protected drop(slot: number, reason: number): void {
    if (this.tracer !== null) this.tracer.dropped(this.name, this.dropReasons[reason], slot);
    if (this.dropObserver !== null) this.dropObserver.onDrop(this.name, this.dropReasons[reason], this.pool, slot);
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
  discardQueued(reason: DropReason): number {
    const n = this.queued;
    for (let i = 0; i < n; i++) {
      const slot = this.queue[i];
      if (this.tracer !== null) this.tracer.dropped(this.name, reason, slot);
      if (this.dropObserver !== null) this.dropObserver.onDrop(this.name, reason, this.pool, slot);
      this.pool.free(slot);
    }
    this.queued = 0;
    return n;
  }

  /** Drops a frame the stage itself could not obtain a slot for (nothing to free). */
  protected countDrop(reason: number): void {
    this.drops[reason]++;
  }

  /** Packets, non-zero drops by reason id, and the named event counters. */
  counters(): StageCounters {
    const drops: Record<string, number> = {};
    for (let i = 0; i < this.dropReasons.length; i++) if (this.drops[i] > 0) drops[this.dropReasons[i].id] = this.drops[i];
    return { packets: this.packets, drops, events: this.eventCounts() };
  }

  /** The counters named in `events`, by name. */
  eventCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    const self = this as unknown as Record<string, unknown>;
    for (const name of this.events) {
      const v = self[name];
      if (typeof v !== 'number') throw new Error(`stage ${this.name}: event counter '${name}' is not a number field`);
      out[name] = v;
    }
    return out;
  }

  resetCounters(): void {
    this.packets = 0;
    this.drops.fill(0);
  }
}
