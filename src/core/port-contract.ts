/**
 * The contract between the graph and the things at its edges: what a port driver (TAP,
 * replay, test sink) implements to send frames, what a VXLAN device's socket implements to
 * send datagrams, and what a capture tap implements to see them. port-output calls the first
 * and the last, vxlan-socket-tx the second. All take the pool and slot numbers, never copies,
 * so the packet path allocates nothing.
 */
import type { DropReason } from './drop-reason.ts';
import type { FramePool } from './frame-pool.ts';

/** What a port driver implements. */
export interface PortTransmitter {
  /** Sends `n` frames (slot numbers in `slots`); returns how many were accepted. */
  transmit(pool: FramePool, slots: Int32Array, n: number): number;
}

/**
 * What a VXLAN device's socket driver implements (`underlay: socket`): sends `n` datagrams,
 * each a frame's bytes from its VXLAN header on, to the underlay address in
 * `pool.nextHop[slot]` (int32) at the device's UDP port; returns how many were accepted.
 */
export interface DatagramTransmitter {
  transmit(pool: FramePool, slots: Int32Array, n: number): number;
}

/**
 * Observes frames a port receives or transmits (capture taps). The frames shown since the
 * last `flush` are intact until it is called (the dataplane calls it before a dispatch, for
 * what ports received, and port-output before a driver sends, for what it transmits), so an
 * observer may note slots and read them all at once there.
 */
export interface PortObserver {
  onRx(port: number, pool: FramePool, slot: number): void;
  onTx(port: number, pool: FramePool, slot: number): void;
  flush(pool: FramePool): void;
}

/**
 * Observes frames a stage drops, as they are when dropped, before their slot is freed
 * (`--capture-drops`). Set on every stage by `Graph.setDropObserver`.
 */
export interface DropObserver {
  onDrop(stage: string, reason: DropReason, pool: FramePool, slot: number): void;
}
