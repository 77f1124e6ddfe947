/**
 * FramePool: every frame the dataplane holds lives in one slot of one large Buffer.
 *
 * A slot is SLOT_SIZE bytes (or `slotSize`: 68 KiB when TAPs hand over 64 KiB offload
 * frames); a frame starts HEADROOM bytes in, so encapsulation (VXLAN adds 50 bytes) or a
 * virtio-net header moves the start back instead of copying. Per-frame metadata sits in
 * typed arrays indexed by slot number; stages pass slot numbers, never objects. Free slots
 * are a stack.
 *
 * Shared bytes (flood copies): `share(slot)` makes a frame whose metadata is its own but
 * whose bytes are the original's — `start` points into the original slot, `owner` names it —
 * so flooding a 64 KiB super-frame to N ports copies no payload. The owner slot goes back on
 * the free stack only when it and every frame sharing its bytes have been freed. Shared bytes
 * are read-only: a stage that writes into a frame must not get a shared one (bridge-forward
 * sends shared copies only to port-output, whose drivers read them).
 */

// 4 KiB: a full-size frame, or a datagram of up to ~3.9 KB reassembled for the router.
export const SLOT_SIZE = 4096;
export const HEADROOM = 128;
/** Largest frame a default slot holds with full headroom in front of it. */
export const MAX_FRAME = SLOT_SIZE - HEADROOM;
/** Slot size for TCP segmentation offload frames (64 KiB plus headers and headroom). */
export const OFFLOAD_SLOT_SIZE = 68 * 1024;
/** `inPort` of a frame the router made itself (ARP request, ICMP error, echo reply). */
export const NO_PORT = -1;

export class FramePool {
  readonly capacity: number;
  readonly slotSize: number;
  /** Largest frame a slot holds with full headroom in front of it. */
  readonly maxFrame: number;
  /** The bytes of every slot. */
  readonly data: Buffer;
  /** Absolute offset in `data` of the frame's first (Ethernet) byte. */
  readonly start: Int32Array;
  /** Frame length in bytes. */
  readonly len: Int32Array;
  /** Port the frame was received on, or NO_PORT. */
  readonly inPort: Int32Array;
  /** Router interface the frame entered L3 on (for ICMP source choice), or -1. */
  readonly rxIf: Int32Array;
  /** Absolute offset of the L3 (IPv4/ARP) header. */
  readonly l3: Int32Array;
  /** Egress router interface chosen by route lookup. */
  readonly txIf: Int32Array;
  /** Next-hop IPv4 address chosen by route lookup, as int32 (read with >>> 0 for display). */
  readonly nextHop: Int32Array;
  /** Port the frame leaves through (set just before port-output). */
  readonly outPort: Int32Array;
  /** What an ICMP error about this frame should say: type << 24 | code << 16 | next-hop MTU. */
  readonly icmpError: Uint32Array;
  /**
   * Offload state from a virtio-net header (TAPs opened with it), carried to the port the
   * frame leaves by: flags (1 = checksum still to be completed), GSO type (0 = a plain frame,
   * 1 = TCPv4 super-frame to be segmented), segment size, checksum start and offset.
   */
  readonly vnetFlags: Uint8Array;
  readonly gsoType: Uint8Array;
  readonly gsoSize: Uint16Array;
  readonly gsoHdrLen: Uint16Array;
  readonly csumStart: Uint16Array;
  readonly csumOffset: Uint16Array;
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
    this.start = new Int32Array(capacity);
    this.len = new Int32Array(capacity);
    this.inPort = new Int32Array(capacity);
    this.rxIf = new Int32Array(capacity);
    this.l3 = new Int32Array(capacity);
    this.txIf = new Int32Array(capacity);
    this.nextHop = new Int32Array(capacity);
    this.outPort = new Int32Array(capacity);
    this.icmpError = new Uint32Array(capacity);
    this.vnetFlags = new Uint8Array(capacity);
    this.gsoType = new Uint8Array(capacity);
    this.gsoSize = new Uint16Array(capacity);
    this.gsoHdrLen = new Uint16Array(capacity);
    this.csumStart = new Uint16Array(capacity);
    this.csumOffset = new Uint16Array(capacity);
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

  /** Gives a slot the metadata of a fresh one (what `alloc` does to the slot it takes). */
  reset(slot: number): void {
    this.start[slot] = slot * this.slotSize + HEADROOM;
    this.len[slot] = 0;
    this.inPort[slot] = NO_PORT;
    this.rxIf[slot] = -1;
    this.l3[slot] = 0;
    this.txIf[slot] = -1;
    this.nextHop[slot] = 0;
    this.outPort[slot] = -1;
    this.icmpError[slot] = 0;
    this.vnetFlags[slot] = 0;
    this.gsoType[slot] = 0;
    this.gsoHdrLen[slot] = 0;
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

  /** Copies a frame into a fresh slot; -1 when the pool is exhausted. Metadata is copied too. */
  clone(slot: number): number {
    const copy = this.alloc();
    if (copy < 0) return -1;
    const s = this.start[slot];
    const n = this.len[slot];
    const d = this.start[copy];
    // copyWithin, not Buffer#copy: the latter makes a view object per call.
    this.data.copyWithin(d, s, s + n);
    this.len[copy] = n;
    this.l3[copy] = this.l3[slot] === 0 ? 0 : this.l3[slot] - s + d;
    this.copyMeta(slot, copy);
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
    this.start[copy] = this.start[slot];
    this.len[copy] = this.len[slot];
    this.l3[copy] = this.l3[slot];
    this.copyMeta(slot, copy);
    return copy;
  }

  /** Copies the metadata that does not depend on where the bytes are. */
  private copyMeta(slot: number, copy: number): void {
    this.inPort[copy] = this.inPort[slot];
    this.rxIf[copy] = this.rxIf[slot];
    this.txIf[copy] = this.txIf[slot];
    this.nextHop[copy] = this.nextHop[slot];
    this.outPort[copy] = this.outPort[slot];
    this.icmpError[copy] = this.icmpError[slot];
    this.vnetFlags[copy] = this.vnetFlags[slot];
    this.gsoType[copy] = this.gsoType[slot];
    this.gsoSize[copy] = this.gsoSize[slot];
    this.gsoHdrLen[copy] = this.gsoHdrLen[slot];
    this.csumStart[copy] = this.csumStart[slot];
    this.csumOffset[copy] = this.csumOffset[slot];
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
