/**
 * port-output: the last stage: hands frames to their ports' drivers, one batch per port.
 *
 * in:   frames with outPort set
 * out:  the port driver's transmit(); slots are freed after it returns (drivers copy or
 *       write synchronously)
 * drop: port down; port without a driver.
 *
 * Ports added at run time get their batch array here (`addPort`) before their first frame;
 * the loop over ports runs to the highest number ever used, which only grows.
 */
import { dropReasons } from '../core/drop-reason.ts';
import type { PortObserver, PortTransmitter } from '../core/port-contract.ts';
import { Stage } from '../core/stage.ts';
import type { Context } from './context.ts';

const enum Drop {
  PORT_DOWN,
  NO_DRIVER,
  DRIVER_REFUSED,
}

export class PortOutput extends Stage<never> {
  readonly name = 'port-output';
  readonly nextNames = [] as const;
  readonly dropReasons = dropReasons([
    ['port.tx-down', 'port down'],
    ['port.no-driver', 'port has no driver'],
    ['port.tx-queue-full', 'driver could not send (queue full)'],
  ]);
  readonly drivers: (PortTransmitter | null)[] = [];
  observer: PortObserver | null = null;
  private perPort: Int32Array[] = [];
  private perPortCount = new Int32Array(0);

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
    for (let p = 0; p < ctx.ports.count; p++) this.addPort(p);
  }

  /** Makes room for port `p` (a port added at run time), with no driver yet. Between batches only. */
  addPort(p: number): void {
    while (this.perPort.length <= p) {
      this.drivers.push(null);
      this.perPort.push(new Int32Array(this.ctx.pool.capacity));
    }
    this.drivers[p] = null;
    if (this.perPortCount.length <= p) {
      const counts = new Int32Array(this.perPort.length);
      counts.set(this.perPortCount);
      this.perPortCount = counts;
    }
  }

  protected process(slots: Int32Array, n: number): void {
    const { pool, ports } = this.ctx;
    const counts = this.perPortCount;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const p = pool.outPort[slot];
      if (ports.up[p] === 0) {
        this.drop(slot, Drop.PORT_DOWN);
        continue;
      }
      this.perPort[p][counts[p]++] = slot;
    }
    for (let p = 0; p < counts.length; p++) {
      const k = counts[p];
      if (k === 0) continue;
      counts[p] = 0;
      const batch = this.perPort[p];
      const driver = this.drivers[p];
      if (driver === null) {
        for (let j = 0; j < k; j++) this.drop(batch[j], Drop.NO_DRIVER);
        continue;
      }
      const observer = this.observer;
      let bytes = 0;
      const tracer = this.tracer;
      for (let j = 0; j < k; j++) {
        bytes += pool.len[batch[j]];
        if (observer !== null) observer.onTx(p, pool, batch[j]);
        if (tracer !== null) tracer.sent(p, batch[j]);
      }
      if (observer !== null) observer.flush(pool);
      const sent = driver.transmit(pool, batch, k);
      ports.txFrames[p] += sent;
      ports.txBytes[p] += bytes;
      if (sent < k) {
        ports.txDrops[p] += k - sent;
        this.drops[Drop.DRIVER_REFUSED] += k - sent;
      }
      for (let j = 0; j < k; j++) pool.free(batch[j]);
    }
  }
}
