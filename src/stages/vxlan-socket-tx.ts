/**
 * vxlan-socket-tx: hands VXLAN datagrams of devices with `underlay: socket` to their kernel UDP
 * sockets, one batch per device: the machine's own stack adds the outer IPv4 and UDP headers
 * and routes them, as it does for any socket.
 *
 * in:   frames whose start is their VXLAN header (vxlan-encap wrote it: the inner Ethernet
 *       frame follows), txIf the VXLAN device, nextHop the remote VTEP's underlay address
 * out:  the device's socket driver (`drivers[device]`, a DatagramTransmitter); slots are freed
 *       after it returns (drivers copy or send synchronously)
 * drop: a device without a socket (replay, tests); what the driver did not accept.
 */
import type { DatagramTransmitter } from '../core/port-contract.ts';
import { dropReasons } from '../core/drop-reason.ts';
import { Stage } from '../core/stage.ts';
import { MAX_VXLAN_DEVICES } from '../tables/vxlan-table.ts';
import type { Context } from './context.ts';

const enum Drop {
  NO_SOCKET,
  REFUSED,
}

export class VxlanSocketTx extends Stage<never> {
  readonly name = 'vxlan-socket-tx';
  readonly nextNames = [] as const;
  readonly dropReasons = dropReasons([
    ['vxlan.no-socket', 'vxlan device has no socket'],
    ['vxlan.socket-refused', 'socket could not send'],
  ]);
  /** Per VXLAN device number: its socket driver, or null. */
  readonly drivers: (DatagramTransmitter | null)[] = new Array(MAX_VXLAN_DEVICES).fill(null);
  private readonly perDevice: Int32Array[] = [];
  private readonly perDeviceCount = new Int32Array(MAX_VXLAN_DEVICES);

  constructor(private readonly ctx: Context) {
    super(ctx.pool);
    for (let d = 0; d < MAX_VXLAN_DEVICES; d++) this.perDevice.push(new Int32Array(0));
  }

  protected process(slots: Int32Array, n: number): void {
    const { pool, vxlan } = this.ctx;
    const counts = this.perDeviceCount;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const d = vxlan.deviceOfIf[pool.txIf[slot]];
      if (d < 0 || this.drivers[d] === null) {
        this.drop(slot, Drop.NO_SOCKET);
        continue;
      }
      // Sized on first use: most dataplanes have no socket device.
      if (this.perDevice[d].length === 0) this.perDevice[d] = new Int32Array(pool.capacity);
      this.perDevice[d][counts[d]++] = slot;
    }
    for (let d = 0; d < vxlan.count; d++) {
      const k = counts[d];
      if (k === 0) continue;
      counts[d] = 0;
      const batch = this.perDevice[d];
      const sent = this.drivers[d]!.transmit(pool, batch, k);
      for (let j = 0; j < k; j++) {
        if (j < sent) pool.free(batch[j]);
        else this.drop(batch[j], Drop.REFUSED);
      }
    }
  }
}
