/**
 * HookStage: a stage at one of Linux's netfilter hook points (PREROUTING, LOCAL_OUT,
 * POSTROUTING, the bridge's IPv4 hook), where features that judge or rewrite packets —
 * connection tracking, NAT — attach without changing the graph.
 *
 * A feature implements HookHandler and registers it with the hook stage; the stage runs its
 * handlers over each batch in priority order (lowest first, as netfilter orders its hook
 * functions: conntrack -200, DNAT -100, SNAT 100, conntrack confirm last), then routes the
 * frames every handler accepted to its outputs. A handler sees the whole batch in one call
 * (one call per batch, its own loop inside: no per-frame call through an interface) and
 * answers per frame in `verdicts`, pre-filled with ACCEPT:
 *
 *   ACCEPT  pass the frame on (the handler may have rewritten it in place);
 *   STOLEN  the handler has taken the frame (queued it, freed it, or will enqueue it into
 *           this hook again later, say once a datagram is whole) and answers for it;
 *   r >= 0  drop it for the handler's reason r: counted under this stage by the reason's
 *           id (its text prefixed "<handler>: ") and traced like any drop.
 *
 * A handler may return how many frames it did not accept; when it says 0, the stage skips
 * sorting the batch after it (the common case, a few ns a frame per handler).
 *
 * With no handler registered the hook moves its batch straight on in one loop, which is all
 * a disabled feature costs.
 */
import { checkDropReasons, type DropReason } from './drop-reason.ts';
import type { FramePool } from './frame-pool.ts';
import { Stage } from './stage.ts';
import type { Tracer } from './trace.ts';

export const ACCEPT = -1;
export const STOLEN = -2;

/** What a feature (conntrack, NAT) implements to run at a hook: netfilter's nf_hook_ops. */
export interface HookHandler {
  /** Short name, prefixed to the text of its drop reasons. */
  readonly name: string;
  /** Lower runs first (netfilter's NF_IP_PRI_* values suit). */
  readonly priority: number;
  /** Why this handler drops frames (index = the verdict it answers). */
  readonly dropReasons: readonly DropReason[];
  /**
   * Decides for each of the `n` frames in `slots` (read only): `verdicts[i]` is ACCEPT
   * unless the handler writes STOLEN or a drop reason. `tracer` is the hook's (null unless
   * tracing): a handler may `note` what it did to a frame. Returns how many verdicts it wrote
   * (or nothing: the stage then reads every verdict).
   */
  process(slots: Int32Array, n: number, verdicts: Int32Array, tracer: Tracer | null): number | void;
}

export abstract class HookStage<N extends string> extends Stage<N> {
  dropReasons: readonly DropReason[] = [];
  /** Registered handlers in the order they run. */
  private running: HookHandler[] = [];
  /** Each running handler's reason codes: its verdict v is counted under the stage's code [v]. */
  private runningCodes: Int32Array[] = [];
  /** Every handler ever registered, with its reason codes (codes are never reused). */
  private readonly codes = new Map<HookHandler, Int32Array>();
  private readonly verdicts: Int32Array;

  constructor(pool: FramePool) {
    super(pool);
    this.verdicts = new Int32Array(pool.capacity);
  }

  /** The handlers that run, in order. */
  get handlers(): readonly HookHandler[] {
    return this.running;
  }

  /** Adds a handler (after those of equal priority already there). */
  register(h: HookHandler): void {
    if (this.running.includes(h)) throw new Error(`hook ${this.name}: handler ${h.name} is registered already`);
    if (!this.codes.has(h)) {
      // A reason id the hook counts already (two NAT manips' entry gone in flight) shares its
      // code; new ids go after every reason seen so far, so existing counters keep their codes.
      checkDropReasons(h.dropReasons, `hook ${this.name}, handler ${h.name}`);
      const list = [...this.dropReasons];
      const codes = new Int32Array(h.dropReasons.length);
      h.dropReasons.forEach((r, v) => {
        let code = list.findIndex((x) => x.id === r.id);
        if (code < 0) {
          code = list.length;
          list.push({ id: r.id, text: `${h.name}: ${r.text}` });
        }
        codes[v] = code;
      });
      this.codes.set(h, codes);
      this.dropReasons = list;
      const drops = new Float64Array(list.length);
      if (this.drops !== undefined) drops.set(this.drops);
      this.drops = drops;
    }
    let at = this.running.length;
    while (at > 0 && this.running[at - 1].priority > h.priority) at--;
    this.running = [...this.running.slice(0, at), h, ...this.running.slice(at)];
    this.runningCodes = this.running.map((r) => this.codes.get(r)!);
  }

  /** Removes a handler; its drop counters stay. */
  unregister(h: HookHandler): void {
    this.running = this.running.filter((r) => r !== h);
    this.runningCodes = this.running.map((r) => this.codes.get(r)!);
  }

  /**
   * Runs every handler over the batch, keeping in `slots` (in order) the frames all of them
   * accepted; returns how many. Without handlers: `n`, nothing touched.
   */
  protected runHandlers(slots: Int32Array, n: number): number {
    const running = this.running;
    if (running.length === 0) return n;
    const verdicts = this.verdicts;
    let m = n;
    let dirty = true;
    for (let h = 0; h < running.length && m > 0; h++) {
      if (dirty) verdicts.fill(ACCEPT, 0, m);
      const refused = running[h].process(slots, m, verdicts, this.tracer);
      dirty = refused !== 0;
      if (!dirty) continue;
      const codes = this.runningCodes[h];
      let k = 0;
      for (let i = 0; i < m; i++) {
        const v = verdicts[i];
        if (v === ACCEPT) slots[k++] = slots[i];
        else if (v >= 0) this.drop(slots[i], codes[v]);
      }
      m = k;
    }
    return m;
  }
}
