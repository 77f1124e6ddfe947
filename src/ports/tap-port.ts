/**
 * TapPort: a dataplane port on a Linux TAP device.
 *
 * Reading is batched in the addon: on each readiness wake-up it reads up to `batch` frames
 * straight into free pool slots this port lent it, and calls back once. The callback hands
 * the filled slots to the dataplane, lends fresh ones, and runs the graph. Transmission
 * writes a batch per port-output round. If the device disappears (its namespace deleted,
 * say) the addon reports it once; the port is marked down and the others go on.
 *
 * With offload (`vnetHdr`), each frame travels behind a 10-byte virtio-net header: the port
 * reads it into the slot's headroom, keeps what it says (checksum to complete, TCP super-frame
 * and its segment size) in the pool's metadata, and writes it back in front of the frame on
 * the way out, so a 64 KiB TCP super-frame crosses the dataplane once instead of as 45
 * frames, and the receiving kernel segments it — as a kernel bridge does between veths.
 */
import type { FramePool } from '../core/frame-pool.ts';
import { VIRTIO_CSUM_OFFSET, VIRTIO_CSUM_START, VIRTIO_GSO_SIZE, VIRTIO_GSO_TYPE, VIRTIO_HDR_LEN, VIRTIO_NET_HDR_LEN } from '../wire/virtio-net.ts';
import { rd16le, wr16le } from '../wire/bytes.ts';
import type { Dataplane } from '../dataplane/dataplane.ts';
import type { Logger } from '../log.ts';
import type { PortTransmitter } from '../core/port-contract.ts';
import { tapClose, tapErrnoName, tapOpen, tapStartReading, tapStats, tapStopReading, tapWriteBatch, type TapHandle } from './tap-native.ts';

export const DEFAULT_RX_BATCH = 64;

export class TapPort implements PortTransmitter {
  private handle: TapHandle | null = null;
  private readonly lent: Int32Array;
  private readonly offsets: Int32Array;
  private readonly lengths: Int32Array;
  private readonly txOffsets: Int32Array;
  private readonly txLengths: Int32Array;
  /** A slot kept aside to read into when the pool is exhausted, so the device still drains. */
  private readonly spare: number;
  rxDiscarded = 0;
  txErrors = 0;
  downReason = '';

  constructor(
    private readonly dp: Dataplane,
    readonly port: number,
    readonly name: string,
    private readonly log: Logger,
    private readonly batch = DEFAULT_RX_BATCH,
    /** Open with IFF_VNET_HDR and TCP segmentation offload. */
    readonly vnetHdr = false,
  ) {
    this.lent = new Int32Array(batch);
    this.offsets = new Int32Array(batch);
    this.lengths = new Int32Array(batch);
    this.txOffsets = new Int32Array(dp.pool.capacity);
    this.txLengths = new Int32Array(dp.pool.capacity);
    const spare = dp.pool.alloc();
    if (spare < 0) throw new Error('frame pool exhausted while opening ports');
    this.spare = spare;
  }

  /** Creates (or attaches to) the TAP device. Throws the addon's error, which names the problem. */
  open(mtu: number): void {
    this.handle = tapOpen(this.name, { mtu, up: true, vnetHdr: this.vnetHdr });
  }

  start(): void {
    const h = this.handle;
    if (!h) throw new Error(`port ${this.name} is not open`);
    const pool = this.dp.pool;
    for (let i = 0; i < this.batch; i++) this.lend(i);
    const hdr = this.vnetHdr ? VIRTIO_NET_HDR_LEN : 0;
    tapStartReading(h, pool.data, this.offsets, pool.maxFrame + hdr, this.lengths, this.batch, (count) => this.onBatch(count));
  }

  private lend(i: number): void {
    const pool = this.dp.pool;
    const slot = pool.alloc();
    this.lent[i] = slot;
    // With a virtio-net header, read it into the headroom just in front of the frame.
    this.offsets[i] = pool.start[slot < 0 ? this.spare : slot] - (this.vnetHdr ? VIRTIO_NET_HDR_LEN : 0);
  }

  private onBatch(count: number): void {
    const dp = this.dp;
    if (count < 0) {
      this.downReason = tapErrnoName(-count);
      this.log.warn({ port: this.name, reason: this.downReason }, 'port down: device is gone');
      dp.setPortUp(this.port, false);
      for (let i = 0; i < this.batch; i++) if (this.lent[i] >= 0) dp.pool.free(this.lent[i]);
      this.lent.fill(-1);
      return;
    }
    const pool = dp.pool;
    const data = pool.data;
    const vnet = this.vnetHdr;
    for (let i = 0; i < count; i++) {
      const slot = this.lent[i];
      if (slot < 0) {
        this.rxDiscarded++;
      } else if (vnet) {
        const h = pool.start[slot] - VIRTIO_NET_HDR_LEN;
        pool.len[slot] = this.lengths[i] - VIRTIO_NET_HDR_LEN;
        pool.vnetFlags[slot] = data[h];
        pool.gsoType[slot] = data[h + VIRTIO_GSO_TYPE];
        pool.gsoHdrLen[slot] = rd16le(data, h + VIRTIO_HDR_LEN);
        pool.gsoSize[slot] = rd16le(data, h + VIRTIO_GSO_SIZE);
        pool.csumStart[slot] = rd16le(data, h + VIRTIO_CSUM_START);
        pool.csumOffset[slot] = rd16le(data, h + VIRTIO_CSUM_OFFSET);
        dp.receiveSlot(this.port, slot);
      } else {
        pool.len[slot] = this.lengths[i];
        dp.receiveSlot(this.port, slot);
      }
      this.lend(i);
    }
    dp.run();
  }

  transmit(pool: FramePool, slots: Int32Array, n: number): number {
    const h = this.handle;
    if (h === null) return 0;
    if (this.vnetHdr) {
      const data = pool.data;
      for (let i = 0; i < n; i++) {
        const s = slots[i];
        const h = pool.start[s] - VIRTIO_NET_HDR_LEN;
        data[h] = pool.vnetFlags[s];
        data[h + VIRTIO_GSO_TYPE] = pool.gsoType[s];
        wr16le(data, h + VIRTIO_HDR_LEN, pool.gsoHdrLen[s]);
        wr16le(data, h + VIRTIO_GSO_SIZE, pool.gsoSize[s]);
        wr16le(data, h + VIRTIO_CSUM_START, pool.csumStart[s]);
        wr16le(data, h + VIRTIO_CSUM_OFFSET, pool.csumOffset[s]);
        this.txOffsets[i] = h;
        this.txLengths[i] = pool.len[s] + VIRTIO_NET_HDR_LEN;
      }
    } else {
      for (let i = 0; i < n; i++) {
        const s = slots[i];
        this.txOffsets[i] = pool.start[s];
        this.txLengths[i] = pool.len[s];
      }
    }
    const sent = tapWriteBatch(h, pool.data, this.txOffsets, this.txLengths, n);
    if (sent < 0) {
      this.txErrors++;
      return 0;
    }
    return sent;
  }

  stats(): ReturnType<typeof tapStats> | null {
    return this.handle ? tapStats(this.handle) : null;
  }

  close(): void {
    if (!this.handle) return;
    try {
      tapStopReading(this.handle);
    } catch {
      // Already stopped by a vanished device.
    }
    tapClose(this.handle);
    this.handle = null;
  }
}
