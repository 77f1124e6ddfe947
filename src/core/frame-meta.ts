/**
 * Frame metadata: every per-frame field the pool keeps beside a frame's bytes, declared once.
 *
 * Each field is a typed array indexed by slot (`pool.txIf[slot]`). The table says its kind,
 * the value `FramePool.alloc` resets it to, and how a frame made from another one inherits
 * it: a copy (`FramePool.clone`, and `FramePool.share` over the same bytes), a fragment
 * (ip4-fragment) or a reassembled datagram (ip4-reassemble, from the fragment that opened it). FramePool makes its arrays and
 * compiles its reset and its three carries from this table alone, so a field added here is
 * reset, cloned, fragmented and reassembled as declared; its array must also be declared in
 * FramePool (`implements FrameMeta` makes a missing one a type error), and
 * `test/unit/core-frame-meta.test.ts` checks every row on every path.
 */

/** Typed-array kind of a field. */
export type MetaKind = 'int32' | 'uint32' | 'uint16' | 'uint8' | 'float64';

/** How a frame made from another gets a field. */
export const enum Carry {
  /** Not carried: the alloc reset value (the field does not hold for the new frame). */
  RESET = 0,
  /** The same value. */
  COPY = 1,
  /** An absolute offset into the pool's bytes, moved with the frame (0, unknown, stays 0). */
  REBASE = 2,
  /** Set by the path that makes the frame (where it starts, how long it is). */
  OWN = 3,
}

/** The three ways one frame is made from another. */
export const enum Derivation {
  CLONE = 0,
  FRAGMENT = 1,
  REASSEMBLE = 2,
}

export interface MetaField {
  readonly name: string;
  readonly kind: MetaKind;
  /** Value after alloc; 'slot' for `start` (the slot's first byte after the headroom). */
  readonly reset: number | 'slot';
  readonly clone: Carry;
  readonly fragment: Carry;
  readonly reassemble: Carry;
  readonly doc: string;
}

/**
 * `ctState` values: what connection tracking made of a frame, as iptables' `--ctstate` names
 * it. NEW, ESTABLISHED and RELATED equal the conntrack table's CtVerdict codes.
 */
export const enum CtState {
  /** Not seen by conntrack (it is off, or the frame has not reached a hook yet). */
  NONE = 0,
  /** The first packets of a flow, before any reply. */
  NEW = 1,
  /** A reply, or a packet of a flow that has seen one. */
  ESTABLISHED = 2,
  /** An ICMP error about a tracked flow. */
  RELATED = 3,
  /** Belongs to no valid state (a segment no state allows, an ICMP error about nothing). */
  INVALID = 4,
  /** Not tracked: a protocol conntrack does not follow, or a fragment passing the bridge. */
  UNTRACKED = 5,
}

/** `inPort` of a frame the router made itself (ARP request, ICMP error, echo reply). */
export const NO_PORT = -1;

export const FRAME_META = [
  { name: 'start', kind: 'int32', reset: 'slot', clone: Carry.OWN, fragment: Carry.OWN, reassemble: Carry.OWN,
    doc: "absolute offset in the pool's bytes of the frame's first (Ethernet) byte" },
  { name: 'len', kind: 'int32', reset: 0, clone: Carry.COPY, fragment: Carry.OWN, reassemble: Carry.OWN,
    doc: 'frame length in bytes' },
  { name: 'inPort', kind: 'int32', reset: NO_PORT, clone: Carry.COPY, fragment: Carry.COPY, reassemble: Carry.COPY,
    doc: 'port the frame was received on, or NO_PORT' },
  { name: 'rxIf', kind: 'int32', reset: -1, clone: Carry.COPY, fragment: Carry.COPY, reassemble: Carry.COPY,
    doc: 'router interface the frame entered L3 on (for the ICMP source choice), or -1' },
  { name: 'l3', kind: 'int32', reset: 0, clone: Carry.REBASE, fragment: Carry.REBASE, reassemble: Carry.REBASE,
    doc: 'absolute offset of the L3 (IPv4/ARP) header; 0 before l3-input' },
  { name: 'l4', kind: 'int32', reset: 0, clone: Carry.REBASE, fragment: Carry.RESET, reassemble: Carry.OWN,
    doc: 'absolute offset of the IPv4 payload (TCP/UDP/ICMP header) of a datagram or first fragment; 0 unknown. Set by ip4-input and by the stages that build packets; a non-first fragment has none' },
  { name: 'txIf', kind: 'int32', reset: -1, clone: Carry.COPY, fragment: Carry.COPY, reassemble: Carry.RESET,
    doc: 'egress router interface chosen by route lookup' },
  { name: 'nextHop', kind: 'int32', reset: 0, clone: Carry.COPY, fragment: Carry.COPY, reassemble: Carry.RESET,
    doc: 'next-hop IPv4 address chosen by route lookup, as int32 (read with >>> 0 for display)' },
  { name: 'outPort', kind: 'int32', reset: -1, clone: Carry.COPY, fragment: Carry.RESET, reassemble: Carry.RESET,
    doc: 'port the frame leaves through (set just before port-output)' },
  { name: 'icmpError', kind: 'uint32', reset: 0, clone: Carry.COPY, fragment: Carry.RESET, reassemble: Carry.RESET,
    doc: 'what an ICMP error about this frame should say: type << 24 | code << 16 | next-hop MTU' },
  { name: 'ct', kind: 'int32', reset: -1, clone: Carry.COPY, fragment: Carry.COPY, reassemble: Carry.RESET,
    doc: 'conntrack entry the frame belongs to, or -1 (not looked up, untracked); fragments keep their datagram\'s, a reassembled datagram is looked up afresh' },
  { name: 'ctDir', kind: 'uint8', reset: 0, clone: Carry.COPY, fragment: Carry.COPY, reassemble: Carry.RESET,
    doc: "direction of the frame in its conntrack entry (0 original, 1 reply); meaningless while ct is -1" },
  { name: 'ctState', kind: 'uint8', reset: 0, clone: Carry.COPY, fragment: Carry.COPY, reassemble: Carry.RESET,
    doc: "what conntrack made of the frame (CtState: iptables' --ctstate), 0 before conntrack saw it" },
  // Offload state from a virtio-net header (TAPs opened with it), carried to the port the frame
  // leaves by. Fragments and reassembled datagrams are whole packets with their checksums done.
  { name: 'vnetFlags', kind: 'uint8', reset: 0, clone: Carry.COPY, fragment: Carry.RESET, reassemble: Carry.RESET,
    doc: 'virtio-net flags (1: the L4 checksum is still to be completed)' },
  { name: 'gsoType', kind: 'uint8', reset: 0, clone: Carry.COPY, fragment: Carry.RESET, reassemble: Carry.RESET,
    doc: 'virtio-net GSO type (0 a plain frame, 1 a TCPv4 super-frame to be segmented; | 0x20 inside a UDP tunnel over IPv4)' },
  { name: 'gsoSize', kind: 'uint16', reset: 0, clone: Carry.COPY, fragment: Carry.RESET, reassemble: Carry.RESET,
    doc: 'segment size of a super-frame' },
  { name: 'gsoHdrLen', kind: 'uint16', reset: 0, clone: Carry.COPY, fragment: Carry.RESET, reassemble: Carry.RESET,
    doc: 'virtio-net header length field' },
  { name: 'csumStart', kind: 'uint16', reset: 0, clone: Carry.COPY, fragment: Carry.RESET, reassemble: Carry.RESET,
    doc: 'where the checksum to complete starts, from the frame start' },
  { name: 'csumOffset', kind: 'uint16', reset: 0, clone: Carry.COPY, fragment: Carry.RESET, reassemble: Carry.RESET,
    doc: 'where in that range the checksum is stored' },
  { name: 'outerThOffset', kind: 'uint16', reset: 0, clone: Carry.COPY, fragment: Carry.RESET, reassemble: Carry.RESET,
    doc: 'UDP-tunnel super-frame: where the outer UDP header starts, from the frame start (0 otherwise)' },
  { name: 'innerNhOffset', kind: 'uint16', reset: 0, clone: Carry.COPY, fragment: Carry.RESET, reassemble: Carry.RESET,
    doc: 'UDP-tunnel super-frame: where the inner IP header starts, from the frame start (0 otherwise)' },
] as const satisfies readonly MetaField[];

type ArrayOf<K extends MetaKind> = K extends 'int32'
  ? Int32Array
  : K extends 'uint32'
    ? Uint32Array
    : K extends 'uint16'
      ? Uint16Array
      : K extends 'uint8'
        ? Uint8Array
        : Float64Array;

export type MetaName = (typeof FRAME_META)[number]['name'];

/** The metadata arrays of a pool, one per row of FRAME_META, typed by kind. */
export type FrameMeta = { readonly [F in (typeof FRAME_META)[number] as F['name']]: ArrayOf<F['kind']> };

type AnyArray = Int32Array | Uint32Array | Uint16Array | Uint8Array | Float64Array;

/** Makes the arrays of every field for `capacity` slots. */
export function makeMetaArrays(capacity: number): FrameMeta {
  const out: Record<string, AnyArray> = {};
  for (const f of FRAME_META) {
    const k: MetaKind = f.kind;
    out[f.name] =
      k === 'int32' ? new Int32Array(capacity)
      : k === 'uint32' ? new Uint32Array(capacity)
      : k === 'uint16' ? new Uint16Array(capacity)
      : k === 'uint8' ? new Uint8Array(capacity)
      : new Float64Array(capacity);
  }
  return out as unknown as FrameMeta;
}

// The reset and the carries are compiled from the table into straight-line code, once, when
// this module loads: the same stores a hand-written alloc would make. Loops over the arrays
// of each kind cost 3-4 times as much per alloc (measured), and alloc runs for every frame
// received. Names and values come from the constant table above, never from input.

/** Resets every field of `slot` but `start` to its declared value. */
export type MetaResetFn = (meta: FrameMeta, slot: number) => void;
/** Carries `from`'s fields to `to`; `delta` is how far the frame's bytes moved (REBASE). */
export type MetaCarryFn = (meta: FrameMeta, from: number, to: number, delta: number) => void;

function compileReset(): MetaResetFn {
  const lines: string[] = [];
  for (const f of FRAME_META) {
    const reset: number | 'slot' = f.reset;
    if (reset !== 'slot') lines.push(`m.${f.name}[s] = ${reset};`);
  }
  return new Function('m', 's', lines.join('\n')) as MetaResetFn;
}

function compileCarry(how: Derivation): MetaCarryFn {
  const lines: string[] = [];
  for (const f of FRAME_META) {
    const c: Carry = how === Derivation.CLONE ? f.clone : how === Derivation.FRAGMENT ? f.fragment : f.reassemble;
    // RESET: the new frame was just allocated, so it holds its reset value already.
    if (c === Carry.COPY) lines.push(`m.${f.name}[t] = m.${f.name}[f];`);
    else if (c === Carry.REBASE) lines.push(`{ const v = m.${f.name}[f]; m.${f.name}[t] = v === 0 ? 0 : v + d; }`);
  }
  return new Function('m', 'f', 't', 'd', lines.join('\n')) as MetaCarryFn;
}

/** What FramePool.alloc runs after setting `start`. */
export const resetMeta: MetaResetFn = compileReset();

/** Per Derivation: what a frame made from another (freshly allocated) inherits from it. */
export const carryMeta: readonly MetaCarryFn[] = [
  compileCarry(Derivation.CLONE),
  compileCarry(Derivation.FRAGMENT),
  compileCarry(Derivation.REASSEMBLE),
];
