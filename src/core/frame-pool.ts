/**
 * FramePool: every frame the dataplane holds lives in one slot of one large Buffer.
 *
 * A slot is SLOT_SIZE bytes (or `slotSize`: 68 KiB when TAPs hand over 64 KiB offload
 * frames); a frame starts HEADROOM bytes in, so encapsulation (VXLAN adds 50 bytes) or a
 * virtio-net header moves the start back instead of copying. Per-frame metadata sits in
 * typed arrays indexed by slot number; stages pass slot numbers, never objects. Free slots
 * are a stack.
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
    this.freeStack = new Int32Array(capacity);
    // Lowest slot numbers on top, so a short run touches few pages and is easy to read in a debugger.
    for (let i = 0; i < capacity; i++) this.freeStack[i] = capacity - 1 - i;
    this.freeTop = capacity;
  }

  /** Takes a free slot and resets its metadata; -1 when the pool is exhausted. */
  alloc(): number {
    if (this.freeTop === 0) return -1;
    const slot = this.freeStack[--this.freeTop];
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
    return slot;
  }

  free(slot: number): void {
    this.freeStack[this.freeTop++] = slot;
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
    this.data.copy(this.data, d, s, s + n);
    this.len[copy] = n;
    this.inPort[copy] = this.inPort[slot];
    this.rxIf[copy] = this.rxIf[slot];
    this.l3[copy] = this.l3[slot] === 0 ? 0 : this.l3[slot] - s + d;
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
