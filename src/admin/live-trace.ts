/**
 * Live trace: follows the next frames a running dataplane receives through its stages, hop
 * by hop (what `replay --trace` prints), for `nodeplane trace`. Tracing starts on request and
 * stops by itself after `count` received frames or `seconds`, whichever comes first; the
 * frames of the batch that reached the count are followed to the end of that dispatch.
 */
import type { Tracer } from '../core/trace.ts';
import type { Dataplane } from '../dataplane/dataplane.ts';
import { frameSummary, TextTracer } from '../decode/text-tracer.ts';
import { BpfFilter, filtersAvailable } from '../capture/bpf-filter.ts';

export interface LiveTraceResult {
  /** Frames received while tracing. */
  frames: number;
  /** Whether `count` frames were seen before the time ran out. */
  complete: boolean;
  lines: string[];
}

export const MAX_TRACE_FRAMES = 10_000;
export const MAX_TRACE_SECONDS = 300;

let active = false;

/**
 * Follows the next `count` received frames for at most `seconds`; with `match`, only those
 * that tcpdump filter matches (compiled by libpcap), or, when libpcap cannot compile it
 * (`ICMP`, say), those whose one-line summary contains it as text.
 */
export function traceLive(dp: Dataplane, count: number, seconds: number, match: string | null = null): Promise<LiveTraceResult> {
  if (active) return Promise.reject(new Error('a trace is already running'));
  if (!(count >= 1 && count <= MAX_TRACE_FRAMES)) return Promise.reject(new Error(`count must be 1..${MAX_TRACE_FRAMES}`));
  if (!(seconds > 0 && seconds <= MAX_TRACE_SECONDS)) return Promise.reject(new Error(`seconds must be in (0, ${MAX_TRACE_SECONDS}]`));
  active = true;
  const lines: string[] = [];
  let matcher: string | ((slot: number) => boolean) | null = match;
  if (match !== null && filtersAvailable()) {
    try {
      const filter = new BpfFilter(match);
      matcher = (slot) => filter.matches(dp.pool, slot);
    } catch {
      // not a filter expression: matched as text
    }
  }
  const text = new TextTracer(dp.pool, dp.ctx.ports.names, frameSummary, (l) => lines.push(l), matcher);
  let frames = 0;
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = (complete: boolean): void => {
      if (!active) return;
      active = false;
      clearTimeout(timer);
      dp.graph.setTracer(null);
      resolve({ frames, complete, lines });
    };
    const tracer: Tracer = {
      received(port, slot) {
        if (frames >= count) return;
        lines.push(`#${frames + 1} at ${(dp.clock.nowUs() / 1e6).toFixed(6)} on ${dp.ctx.ports.names[port]}`);
        if (!text.received(port, slot)) {
          lines.pop();
          return;
        }
        frames++;
        // Stop once the dispatch that carries this frame is over.
        if (frames === count) setImmediate(() => finish(true));
      },
      derived: (at, from, slot) => text.derived(at, from, slot),
      step: (from, to, slot) => text.step(from, to, slot),
      dropped: (at, reason, slot) => text.dropped(at, reason, slot),
      consumed: (at, slot) => text.consumed(at, slot),
      note: (at, slot, t) => text.note(at, slot, t),
      sent: (port, slot) => text.sent(port, slot),
    };
    timer = setTimeout(() => finish(false), seconds * 1000);
    dp.graph.setTracer(tracer);
  });
}
