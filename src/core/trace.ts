/**
 * Tracer: follows frames through the graph, hop by hop, as VPP's packet trace does.
 *
 * When a tracer is set (`Graph.setTracer`), every stage reports each frame it passes on,
 * drops or absorbs, stages that make a frame from another (a flood copy, an ICMP error, a
 * fragment, the ARP request a packet waits on) report the lineage, and the dataplane reports
 * receptions and transmissions. Without a tracer the cost is one null check per hop. Meant
 * for replay (`nodeplane replay --trace`), `nodeplane trace` and debugging. This is the
 * mechanism only; its text form, which allocates freely, is decode/text-tracer.ts.
 */
import type { DropReason } from './drop-reason.ts';

export interface Tracer {
  /** A port received the frame in `slot`. */
  received(port: number, slot: number): void;
  /** Stage `at` made the frame in `slot` from the one in `from` (-1: from a timer). */
  derived(at: string, from: number, slot: number): void;
  /** Stage `from` passed the frame on to stage `to`. */
  step(from: string, to: string, slot: number): void;
  /** Stage `at` dropped the frame, for `reason`. */
  dropped(at: string, reason: DropReason, slot: number): void;
  /** Stage `at` absorbed the frame (an ARP packet that ends here, say). */
  consumed(at: string, slot: number): void;
  /** Stage `at` says something about the frame (queued, say). */
  note(at: string, slot: number, text: string): void;
  /** Port `port` transmitted the frame. */
  sent(port: number, slot: number): void;
}
