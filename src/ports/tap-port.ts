/**
 * TapPort: a dataplane port on a Linux TAP device.
 *
 * Reading is driven by readiness and lends pool slots only for the length of a read: when the
 * device is readable the addon calls `onReadable`, the port takes as many free slots as the
 * shared RxBudget allows for one round (at most `batch`), asks the addon to read into them
 * (one synchronous call, up to a frame per slot), hands the frames read to the dataplane,
 * gives the unused slots straight back and runs the graph; up to MAX_ROUNDS rounds per
 * wake-up. An idle port holds no slot, so receive memory is the pool, whatever the number of
 * ports. When the pool is down to its reserve (stages hold many frames) the port still drains
 * the device, into the budget's drain slot, and counts those drops per port (`rxNoBuffer`,
 * shown by `show ports`), logging the first. Transmission writes a batch per port-output
 * round. If the device disappears (its namespace deleted, say) the addon reports it once; the
 * port is marked down and the others go on.
 *
 * With offload (`vnetHdr`), each frame travels behind a virtio-net header: the port reads it
 * into the slot's headroom, keeps what it says (checksum to complete, TCP super-frame and its
 * segment size) in the pool's metadata, and writes it back in front of the frame on the way
 * out, so a 64 KiB TCP super-frame crosses the dataplane once instead of as 45 frames, and the
 * receiving kernel segments it — as a kernel bridge does between veths. With `tunnelGso` the
 * port asks for UDP-tunnel GSO too; where the kernel has it (6.17+) the header is the 24-byte
 * tunnel form and a VXLAN packet carrying a TCP super-frame crosses whole, its outer UDP and
 * inner IP offsets kept in the metadata beside the rest (`tunnelGso` says what was granted).
 *
 * The device is reached through a TapDriver (the addon, or a fake in tests).
 */
import { HEADROOM, type FramePool } from '../core/frame-pool.ts';
import {
  VIRTIO_CSUM_OFFSET,
  VIRTIO_CSUM_START,
  VIRTIO_GSO_SIZE,
  VIRTIO_GSO_TYPE,
  VIRTIO_HDR_LEN,
  VIRTIO_INNER_NH_OFFSET,
  VIRTIO_NET_HDR_TUNNEL_LEN,
  VIRTIO_OUTER_TH_OFFSET,
  writeVirtioNetHdr,
} from '../wire/virtio-net.ts';
import { rd16le } from '../wire/bytes.ts';
import type { Dataplane } from '../dataplane/dataplane.ts';
import type { Logger } from '../log.ts';
import type { PortTransmitter } from '../core/port-contract.ts';
import { nativeTapDriver, tapErrnoName, type TapDriver, type TapHandle, type TapStats } from './tap-native.ts';
import type { RxBudget } from './rx-budget.ts';
import type { LatencyProbe } from './latency-probe.ts';

export const DEFAULT_RX_BATCH = 64;
/** Read rounds per wake-up before yielding to the event loop (the poll is level-triggered: what is left wakes us again). */
export const MAX_ROUNDS = 8;
/**
 * A port whose last wake-up read at most one frame is quiet: its next wake-up reads one frame,
 * forwards it, and returns without the read that would only say EAGAIN — the poll is
 * level-triggered, so a frame left behind wakes us again at once. A wake-up that comes less
 * than this long after the previous one on the port ends quiet mode (full rounds again).
 */
export const QUIET_GAP_US = 1000;

export interface TapPortOptions {
  log: Logger;
  /** The receive budget every port of the dataplane shares. */
  budget: RxBudget;
  /** Frames per read round, at most. */
  batch?: number;
  /** Open with IFF_VNET_HDR and TCP segmentation offload. */
  vnetHdr?: boolean;
  /** With vnetHdr: ask for UDP-tunnel GSO too (granted by Linux 6.17+; see `tunnelGso`). */
  tunnelGso?: boolean;
  driver?: TapDriver;
  /** Times each wake-up's first round (NODEPLANE_LATENCY_FILE); null or absent: not timed. */
  probe?: LatencyProbe | null;
}

/** Transmit scratch, one pair per pool: ports transmit one at a time. */
const txScratch = new WeakMap<FramePool, { offsets: Int32Array; lengths: Int32Array }>();

function scratchFor(pool: FramePool): { offsets: Int32Array; lengths: Int32Array } {
  let s = txScratch.get(pool);
  if (s === undefined) {
    s = { offsets: new Int32Array(pool.capacity), lengths: new Int32Array(pool.capacity) };
    txScratch.set(pool, s);
  }
  return s;
}

export class TapPort implements PortTransmitter {
  private handle: TapHandle | null = null;
  /** Slots of the current read round. */
  private readonly lent: Int32Array;
  /** Where each slot's read lands (registered with the driver once). */
  private readonly offsets: Int32Array;
  private readonly lengths: Int32Array;
  private readonly txOffsets: Int32Array;
  private readonly txLengths: Int32Array;
  private readonly log: Logger;
  private readonly budget: RxBudget;
  private readonly driver: TapDriver;
  private readonly batch: number;
  /** Open with IFF_VNET_HDR and TCP segmentation offload. */
  readonly vnetHdr: boolean;
  private readonly askTunnelGso: boolean;
  /** Bytes of virtio-net header the device was opened with: 0, 10, or 24 (UDP-tunnel GSO). */
  private hdrLen = 0;
  txErrors = 0;
  downReason = '';
  private noBufferLogged = false;
  /** The last wake-up read at most one frame: read one first, and stop there if nothing else is near. */
  private quiet = false;
  /** When the port's last quiet wake-up ran the graph (µs, the dataplane's clock). */
  private quietRunUs = -Infinity;
  private readonly probe: LatencyProbe | null;

  constructor(
    private readonly dp: Dataplane,
    readonly port: number,
    readonly name: string,
    opts: TapPortOptions,
  ) {
    this.log = opts.log;
    this.budget = opts.budget;
    this.driver = opts.driver ?? nativeTapDriver;
    this.batch = opts.batch ?? DEFAULT_RX_BATCH;
    this.vnetHdr = opts.vnetHdr ?? false;
    this.askTunnelGso = this.vnetHdr && (opts.tunnelGso ?? false);
    this.lent = new Int32Array(this.batch);
    this.probe = opts.probe ?? null;
    this.offsets = new Int32Array(this.batch);
    this.lengths = new Int32Array(this.batch);
    const tx = scratchFor(dp.pool);
    this.txOffsets = tx.offsets;
    this.txLengths = tx.lengths;
  }

  /**
   * Creates (or attaches to) the TAP device, with `mac` as the kernel side's address when
   * given. Throws the driver's error, which names the problem.
   */
  open(mtu: number, mac?: string): void {
    const opts = { mtu, up: true, vnetHdr: this.vnetHdr, tunnelGso: this.askTunnelGso };
    const h = this.driver.open(this.name, mac === undefined ? opts : { ...opts, mac });
    this.handle = h;
    this.hdrLen = this.vnetHdr ? h.vnetHdrLen : 0;
  }

  /** Whether the device takes (and gives) UDP-tunnel super-frames: opened with the 24-byte header. */
  get tunnelGso(): boolean {
    return this.hdrLen === VIRTIO_NET_HDR_TUNNEL_LEN;
  }

  /** What the device carries, for `show ports`: plain frames, TCP super-frames, or those and UDP-tunnel ones. */
  get offload(): 'none' | 'tcp' | 'tcp+udp-tunnel' {
    return this.hdrLen === 0 ? 'none' : this.tunnelGso ? 'tcp+udp-tunnel' : 'tcp';
  }

  start(): void {
    const h = this.handle;
    if (!h) throw new Error(`port ${this.name} is not open`);
    const pool = this.dp.pool;
    this.driver.startReading(h, pool.data, this.offsets, this.lengths, pool.maxFrame + this.hdrLen, (status) => this.onReadable(status));
  }

  private onReadable(status: number): void {
    if (status < 0) {
      this.down(status);
      return;
    }
    const h = this.handle;
    if (h === null) return;
    const dp = this.dp;
    const pool = dp.pool;
    const lent = this.lent;
    const offsets = this.offsets;
    const slotSize = pool.slotSize;
    // With a virtio-net header, read it into the headroom just in front of the frame.
    const at = HEADROOM - this.hdrLen;
    const probe = this.probe;
    if (probe !== null) probe.wake();
    let total = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      let k = this.budget.roundSize(this.batch);
      if (k === 0) {
        this.drain(h);
        return;
      }
      if (round === 0 && this.quiet) k = 1;
      pool.take(lent, k);
      for (let i = 0; i < k; i++) offsets[i] = lent[i] * slotSize + at;
      const n = this.driver.readBatch(h, k);
      if (n < 0) {
        pool.untake(lent, 0, k);
        this.down(n);
        return;
      }
      if (probe !== null && round === 0) probe.read(n);
      this.receive(n);
      pool.untake(lent, n, k);
      total += n;
      if (n === 0) break;
      if (probe !== null && round === 0) probe.runStart();
      dp.run();
      if (probe !== null && round === 0) probe.runEnd();
      if (round === 0 && this.quiet) {
        const now = dp.ctx.nowUs;
        const gap = now - this.quietRunUs;
        this.quietRunUs = now;
        if (gap >= QUIET_GAP_US) return;
        this.quiet = false;
        continue;
      }
      if (n < k) break;
    }
    if (total <= 1 && !this.quiet) {
      this.quiet = true;
      this.quietRunUs = dp.ctx.nowUs;
    }
  }

  /** Hands the first `n` slots of the round, just read, to the dataplane. */
  private receive(n: number): void {
    const dp = this.dp;
    const pool = dp.pool;
    const data = pool.data;
    const lent = this.lent;
    const lengths = this.lengths;
    const hdrLen = this.hdrLen;
    for (let i = 0; i < n; i++) {
      const slot = lent[i];
      pool.reset(slot);
      if (hdrLen !== 0) {
        const h = pool.start[slot] - hdrLen;
        pool.len[slot] = lengths[i] - hdrLen;
        pool.vnetFlags[slot] = data[h];
        pool.gsoType[slot] = data[h + VIRTIO_GSO_TYPE];
        pool.gsoHdrLen[slot] = rd16le(data, h + VIRTIO_HDR_LEN);
        pool.gsoSize[slot] = rd16le(data, h + VIRTIO_GSO_SIZE);
        pool.csumStart[slot] = rd16le(data, h + VIRTIO_CSUM_START);
        pool.csumOffset[slot] = rd16le(data, h + VIRTIO_CSUM_OFFSET);
        if (hdrLen === VIRTIO_NET_HDR_TUNNEL_LEN) {
          pool.outerThOffset[slot] = rd16le(data, h + VIRTIO_OUTER_TH_OFFSET);
          pool.innerNhOffset[slot] = rd16le(data, h + VIRTIO_INNER_NH_OFFSET);
        }
      } else {
        pool.len[slot] = lengths[i];
      }
      dp.receiveSlot(this.port, slot);
    }
  }

  /** No slot to lend: reads what the device holds into the drain slot, and counts it as dropped. */
  private drain(h: TapHandle): void {
    const pool = this.dp.pool;
    const offset = pool.slotSize * this.budget.drainSlot + HEADROOM - this.hdrLen;
    this.offsets.fill(offset);
    const n = this.driver.readBatch(h, this.batch);
    if (n < 0) {
      this.down(n);
      return;
    }
    if (n === 0) return;
    this.dp.ctx.ports.rxNoBuffer[this.port] += n;
    if (!this.noBufferLogged) {
      this.noBufferLogged = true;
      this.log.warn(
        { port: this.name, dropped: n, poolSlots: pool.capacity, free: pool.available, reserve: this.budget.reserve },
        'receive: no free frame slot, dropping what the device holds (counted as rx noBuffer; logged once per port)',
      );
    }
  }

  /** The device is gone: the port goes down (no slot is lent between rounds, so none is lost). */
  private down(status: number): void {
    this.downReason = tapErrnoName(-status);
    this.log.warn({ port: this.name, reason: this.downReason }, 'port down: device is gone');
    this.dp.setPortUp(this.port, false);
  }

  transmit(pool: FramePool, slots: Int32Array, n: number): number {
    const h = this.handle;
    if (h === null) return 0;
    const hdrLen = this.hdrLen;
    if (hdrLen !== 0) {
      const data = pool.data;
      for (let i = 0; i < n; i++) {
        const s = slots[i];
        const h = pool.start[s] - hdrLen;
        writeVirtioNetHdr(data, h, hdrLen, pool.vnetFlags[s], pool.gsoType[s], pool.gsoHdrLen[s], pool.gsoSize[s], pool.csumStart[s], pool.csumOffset[s], pool.outerThOffset[s], pool.innerNhOffset[s]);
        this.txOffsets[i] = h;
        this.txLengths[i] = pool.len[s] + hdrLen;
      }
    } else {
      for (let i = 0; i < n; i++) {
        const s = slots[i];
        this.txOffsets[i] = pool.start[s];
        this.txLengths[i] = pool.len[s];
      }
    }
    const probe = this.probe;
    if (probe !== null) probe.writeStart();
    const sent = this.driver.writeBatch(h, pool.data, this.txOffsets, this.txLengths, n);
    if (probe !== null) probe.writeEnd();
    if (sent < 0) {
      this.txErrors++;
      return 0;
    }
    return sent;
  }

  stats(): TapStats | null {
    return this.handle ? this.driver.stats(this.handle) : null;
  }

  close(): void {
    if (!this.handle) return;
    try {
      this.driver.stopReading(this.handle);
    } catch {
      // Already stopped by a vanished device.
    }
    this.driver.close(this.handle);
    this.handle = null;
  }
}
