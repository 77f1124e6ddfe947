/**
 * CaptureTaps: every capture of a running dataplane, attached and detached at any time.
 *
 * The dataplane has one slot for what watches its ports (port-output's `observer`) and one for
 * what watches its drops (every stage's `dropObserver`). CaptureTaps fills them from its lists:
 * nothing (null) when a list is empty, so an idle node pays nothing; the observer itself when
 * there is one; a fan-out over a copy of the list otherwise. The run's own captures
 * (create-captures.ts) are added at start; the admin socket's live streams (`/v1/capture`,
 * capture-stream.ts) come and go while it runs. Changes happen on the event loop between
 * batches, never inside one.
 */
import type { FramePool } from '../core/frame-pool.ts';
import type { DropReason } from '../core/drop-reason.ts';
import type { DropObserver, PortObserver } from '../core/port-contract.ts';
import type { Dataplane } from '../dataplane/dataplane.ts';

/** Sends every port event to each observer in turn. */
export class PortFanOut implements PortObserver {
  constructor(private readonly list: readonly PortObserver[]) {}
  onRx(port: number, pool: FramePool, slot: number): void {
    const l = this.list;
    for (let i = 0; i < l.length; i++) l[i]!.onRx(port, pool, slot);
  }
  onTx(port: number, pool: FramePool, slot: number): void {
    const l = this.list;
    for (let i = 0; i < l.length; i++) l[i]!.onTx(port, pool, slot);
  }
  flush(pool: FramePool): void {
    const l = this.list;
    for (let i = 0; i < l.length; i++) l[i]!.flush(pool);
  }
}

/** Sends every drop to each observer in turn. */
class DropFanOut implements DropObserver {
  constructor(private readonly list: readonly DropObserver[]) {}
  onDrop(stage: string, reason: DropReason, pool: FramePool, slot: number): void {
    const l = this.list;
    for (let i = 0; i < l.length; i++) l[i]!.onDrop(stage, reason, pool, slot);
  }
}

export class CaptureTaps {
  private readonly ports: PortObserver[] = [];
  private readonly drops: DropObserver[] = [];

  constructor(private readonly dp: Dataplane) {}

  /** Shows every frame the ports receive and transmit to `o`. */
  addPorts(o: PortObserver): void {
    this.ports.push(o);
    this.apply();
  }

  removePorts(o: PortObserver): void {
    const i = this.ports.indexOf(o);
    if (i >= 0) this.ports.splice(i, 1);
    this.apply();
  }

  /** Shows every frame a stage drops to `o`. */
  addDrops(o: DropObserver): void {
    this.drops.push(o);
    this.apply();
  }

  removeDrops(o: DropObserver): void {
    const i = this.drops.indexOf(o);
    if (i >= 0) this.drops.splice(i, 1);
    this.apply();
  }

  private apply(): void {
    const p = this.ports;
    this.dp.setObserver(p.length === 0 ? null : p.length === 1 ? p[0]! : new PortFanOut([...p]));
    const d = this.drops;
    this.dp.setDropObserver(d.length === 0 ? null : d.length === 1 ? d[0]! : new DropFanOut([...d]));
  }
}
