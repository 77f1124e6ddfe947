/**
 * FramePool: every frame the dataplane holds lives in one slot of one large Buffer.
 *
 * A slot is SLOT_SIZE bytes (or `slotSize`: 68 KiB when TAPs hand over 64 KiB offload
 * frames); a frame starts HEADROOM bytes in, so encapsulation (VXLAN adds 50 bytes) or a
 * virtio-net header moves the start back instead of copying. Per-frame metadata sits in
 * typed arrays indexed by slot number, one per row of FRAME_META (frame-meta.ts), which also
 * says how alloc resets each and how clones, shared copies, fragments and reassembled
 * datagrams inherit it; stages pass slot numbers, never objects. Free slots are a stack.
 *
 * Shared bytes (flood copies): `share(slot)` makes a frame whose metadata is its own but
 * whose bytes are the original's — `start` points into the original slot, `owner` names it —
 * so flooding a 64 KiB super-frame to N ports copies no payload. The owner slot goes back on
 * the free stack only when it and every frame sharing its bytes have been freed. Shared bytes
 * are read-only: a stage that writes into a frame must not get a shared one (bridge-forward
 * sends shared copies only to port-output, whose drivers read them). `owner` and `sharers`
 * are the pool's own bookkeeping, kept by share and free, not frame metadata: no derivation
 * inherits them.
 */
import { Derivation, type FrameMeta, carryMeta, makeMetaArrays, resetMeta } from './frame-meta.ts';

// 4 KiB: a full-size frame, or a datagram of up to ~3.9 KB reassembled for the router.
export const SLOT_SIZE = 4096;
export const HEADROOM = 128;
/** Largest frame a default slot holds with full headroom in front of it. */
export const MAX_FRAME = SLOT_SIZE - HEADROOM;
/** Slot size for TCP segmentation offload frames (64 KiB plus headers and headroom). */
export const OFFLOAD_SLOT_SIZE = 68 * 1024;
export { NO_PORT } from './frame-meta.ts';

export class FramePool implements FrameMeta {
  readonly capacity: number;
  readonly slotSize: number;
  /** Largest frame a slot holds with full headroom in front of it. */
  readonly maxFrame: number;
  /** The bytes of every slot. */
  readonly data: Buffer;
  /** The same bytes as a DataView: 16- and 32-bit reads and writes at any offset, big-endian. */
  readonly dataView: DataView;

  // The metadata arrays, one per row of FRAME_META (frame-meta.ts), where each is described;
  // `implements FrameMeta` makes a row without its field here a type error. Each is assigned
  // by name in the constructor, not copied in a loop, so that V8 keeps them in-object with
  // their array type known: the stages read them many times per frame.
  declare readonly start: Int32Array;
  declare readonly len: Int32Array;
  declare readonly inPort: Int32Array;
  declare readonly rxIf: Int32Array;
  declare readonly l3: Int32Array;
  declare readonly l4: Int32Array;
  declare readonly txIf: Int32Array;
  declare readonly nextHop: Int32Array;
  declare readonly outPort: Int32Array;
  declare readonly icmpError: Uint32Array;
  declare readonly ct: Int32Array;
  declare readonly ctDir: Uint8Array;
  declare readonly ctState: Uint8Array;
  declare readonly vnetFlags: Uint8Array;
  declare readonly gsoType: Uint8Array;
  declare readonly gsoSize: Uint16Array;
  declare readonly gsoHdrLen: Uint16Array;
  declare readonly csumStart: Uint16Array;
  declare readonly csumOffset: Uint16Array;
  declare readonly outerThOffset: Uint16Array;
  declare readonly innerNhOffset: Uint16Array;

  /** The slot whose bytes this frame uses (a shared copy), or -1: its own. */
  readonly owner: Int32Array;
  /** Per owner slot: frames holding its bytes beyond the first (0 unless shared). */
  private readonly sharers: Int32Array;

  private readonly freeStack: Int32Array;
  private freeTop: number;

  constructor(capacity = 8192, slotSize = SLOT_SIZE) {
    this.capacity = capacity;
    this.slotSize = slotSize;
    this.maxFrame = slotSize - HEADROOM;
    this.data = Buffer.allocUnsafeSlow(capacity * slotSize);
    this.dataView = new DataView(this.data.buffer, this.data.byteOffset, this.data.byteLength);
    const meta = makeMetaArrays(capacity);
    this.start = meta.start;
    this.len = meta.len;
    this.inPort = meta.inPort;
    this.rxIf = meta.rxIf;
    this.l3 = meta.l3;
    this.l4 = meta.l4;
    this.txIf = meta.txIf;
    this.nextHop = meta.nextHop;
    this.outPort = meta.outPort;
    this.icmpError = meta.icmpError;
    this.ct = meta.ct;
    this.ctDir = meta.ctDir;
    this.ctState = meta.ctState;
    this.vnetFlags = meta.vnetFlags;
    this.gsoType = meta.gsoType;
    this.gsoSize = meta.gsoSize;
    this.gsoHdrLen = meta.gsoHdrLen;
    this.csumStart = meta.csumStart;
    this.csumOffset = meta.csumOffset;
    this.outerThOffset = meta.outerThOffset;
    this.innerNhOffset = meta.innerNhOffset;
    this.owner = new Int32Array(capacity).fill(-1);
    this.sharers = new Int32Array(capacity);
    this.freeStack = new Int32Array(capacity);
    // Lowest slot numbers on top, so a short run touches few pages and is easy to read in a debugger.
    for (let i = 0; i < capacity; i++) this.freeStack[i] = capacity - 1 - i;
    this.freeTop = capacity;
  }

  /** Takes a free slot and resets its metadata; -1 when the pool is exhausted. */
  alloc(): number {
    if (this.freeTop === 0) return -1;
    const slot = this.freeStack[--this.freeTop];
    this.reset(slot);
    return slot;
  }

  /** Gives a slot the metadata of a fresh one, as FRAME_META declares (what `alloc` does). */
  reset(slot: number): void {
    this.start[slot] = slot * this.slotSize + HEADROOM;
    resetMeta(this, slot);
  }

  /**
   * Gives a frame back. A shared copy returns its own slot at once and one hold on its
   * owner's bytes; an owner slot returns once no frame holds its bytes any more.
   */
  free(slot: number): void {
    const o = this.owner[slot];
    if (o >= 0) {
      this.owner[slot] = -1;
      this.freeStack[this.freeTop++] = slot;
      slot = o;
    }
    if (this.sharers[slot] > 0) this.sharers[slot]--;
    else this.freeStack[this.freeTop++] = slot;
  }

  /** Whether the frame's bytes are shared with another frame (and so must not be written). */
  isShared(slot: number): boolean {
    return this.owner[slot] >= 0 || this.sharers[slot] > 0;
  }

  /**
   * Takes `n` free slots (n <= available) into out[0..n) without touching their metadata:
   * a receive round lends them to a device read, then `reset`s the slots that got a frame
   * and hands the rest back with `untake`. Cheaper than n allocs when most come back.
   */
  take(out: Int32Array, n: number): void {
    let top = this.freeTop;
    for (let i = 0; i < n; i++) out[i] = this.freeStack[--top];
    this.freeTop = top;
  }

  /** Returns out[from..to) of a `take`, in reverse, so the stack is as it was before (hot slots on top). */
  untake(out: Int32Array, from: number, to: number): void {
    for (let i = to - 1; i >= from; i--) this.freeStack[this.freeTop++] = out[i];
  }

  get available(): number {
    return this.freeTop;
  }

  /**
   * Gives `to`, a frame made from `from` (its bytes already placed at the same distance from
   * its start), the metadata FRAME_META says `how` carries. The caller sets the OWN fields.
   */
  derive(from: number, to: number, how: Derivation): void {
    carryMeta[how](this, from, to, this.start[to] - this.start[from]);
  }

  /** Copies a frame into a fresh slot; -1 when the pool is exhausted. Metadata as FRAME_META's clone column says. */
  clone(slot: number): number {
    const copy = this.alloc();
    if (copy < 0) return -1;
    const s = this.start[slot];
    const d = this.start[copy];
    // copyWithin, not Buffer#copy: the latter makes a view object per call.
    this.data.copyWithin(d, s, s + this.len[slot]);
    this.derive(slot, copy, Derivation.CLONE);
    return copy;
  }

  /**
   * A copy of the frame in `slot` that shares its bytes (see the header): its own metadata,
   * the same start, length and bytes. -1 when the pool is exhausted. From then on neither
   * frame's bytes may be written; what a driver writes in front of the frame (a virtio-net
   * header) is written and sent within one transmit call, and copies go to different ports.
   */
  share(slot: number): number {
    const copy = this.alloc();
    if (copy < 0) return -1;
    const o = this.owner[slot];
    const owner = o >= 0 ? o : slot;
    this.owner[copy] = owner;
    this.sharers[owner]++;
    // The same bytes: offsets carry over unchanged (the clone column, moved by nothing).
    this.start[copy] = this.start[slot];
    this.derive(slot, copy, Derivation.CLONE);
    return copy;
  }

  /** Fills a slot from external bytes (replay input, tests). Returns -1 if too long or no slot. */
  fill(bytes: Buffer, inPort: number): number {
    if (bytes.length > this.maxFrame) return -1;
    const slot = this.alloc();
    if (slot < 0) return -1;
    bytes.copy(this.data, this.start[slot]);
    this.len[slot] = bytes.length;
    this.inPort[slot] = inPort;
    return slot;
  }

  /** A view of the frame's bytes (allocates: control path and tests only). */
  view(slot: number): Buffer {
    const s = this.start[slot];
    return this.data.subarray(s, s + this.len[slot]);
  }
}
