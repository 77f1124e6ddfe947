/**
 * Graph: the ordered set of stages and the dispatch loop that drains their queues.
 *
 * Stages are listed in a topological-ish order (input first, output last). A dispatch runs
 * every stage that has frames queued, in that order, and repeats until all queues are empty:
 * paths that loop back (an echo reply re-entering route lookup, an ICMP error being routed,
 * queued packets released by an ARP reply) simply take another round.
 *
 * Rounds are bounded (MAX_ROUNDS): a path that keeps feeding itself must not hold the event
 * loop. When the bound is reached, every frame still queued is dropped there and then —
 * freed, traced as dropped for ROUND_LIMIT_REASON at the stage it waited in, and counted in
 * `roundLimitDrops` (`show stats`) — so no frame is ever left in a queue unseen.
 */
import { ROUND_LIMIT } from './drop-reason.ts';
import type { DropObserver } from './port-contract.ts';
import type { Inbox, Stage } from './stage.ts';
import type { Tracer } from './trace.ts';

/** Dispatch rounds before the frames still queued are dropped. */
export const MAX_ROUNDS = 64;
/** Why frames left queued after MAX_ROUNDS were dropped. */
export const ROUND_LIMIT_REASON = ROUND_LIMIT;

export class Graph {
  readonly stages: Stage[] = [];
  /**
   * Each stage's queue, in the same order: dispatch reads how many frames wait here (one
   * object shape) rather than asking each stage (a shape per stage class, so a megamorphic
   * access for every stage of every round, idle or not).
   */
  private readonly inboxes: Inbox[] = [];
  /** Frames dropped because a dispatch reached MAX_ROUNDS with them still queued. */
  roundLimitDrops = 0;
  private readonly byName = new Map<string, Stage>();

  add<S extends Stage>(stage: S): S {
    if (this.byName.has(stage.name)) throw new Error(`duplicate stage ${stage.name}`);
    stage.initCounters();
    this.stages.push(stage);
    this.inboxes.push(stage.inbox);
    this.byName.set(stage.name, stage);
    return stage;
  }

  get(name: string): Stage {
    const s = this.byName.get(name);
    if (!s) throw new Error(`no stage ${name}`);
    return s;
  }

  /** Throws unless every declared next of every stage is connected to a stage of this graph. */
  verify(): void {
    for (const s of this.stages) {
      for (const n of s.nextNames) {
        const t = (s.next as Record<string, Stage | undefined>)[n];
        if (!t) throw new Error(`stage ${s.name}: next '${n}' is not connected`);
        if (this.byName.get(t.name) !== t) throw new Error(`stage ${s.name}: next '${n}' is not in the graph`);
      }
    }
  }

  /** Starts (or with null, stops) tracing every stage. */
  setTracer(tracer: Tracer | null): void {
    for (const s of this.stages) s.setTracer(tracer);
  }

  /** Starts (or with null, stops) showing every stage's dropped frames to `observer`. */
  setDropObserver(observer: DropObserver | null): void {
    for (const s of this.stages) s.dropObserver = observer;
  }

  /**
   * Runs stages until no frame is queued anywhere, or drops what is still queued after
   * MAX_ROUNDS rounds. Returns frames processed (all stages).
   */
  dispatch(): number {
    const stages = this.stages;
    const inboxes = this.inboxes;
    let total = 0;
    for (let r = 0; r < MAX_ROUNDS; r++) {
      let round = 0;
      for (let i = 0; i < stages.length; i++) if (inboxes[i].queued !== 0) round += stages[i].run();
      if (round === 0) return total;
      total += round;
    }
    for (let i = 0; i < stages.length; i++) this.roundLimitDrops += stages[i].discardQueued(ROUND_LIMIT_REASON);
    return total;
  }

  /** Edges as text lines (`a -> next:b`), for docs and `show graph`. */
  describe(): string[] {
    const lines: string[] = [];
    for (const s of this.stages) {
      for (const n of s.nextNames) lines.push(`${s.name} -${n}-> ${(s.next as Record<string, Stage>)[n].name}`);
    }
    return lines;
  }
}
