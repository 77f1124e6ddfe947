/**
 * The TCP state machine of connection tracking, as Linux's nf_conntrack_proto_tcp tracks it.
 *
 * A segment is reduced to one of six flag classes (SYN, SYN-ACK, FIN, ACK, RST, NONE; RST
 * wins, then SYN, then FIN, then ACK), and the next state is read from a table indexed by
 * (direction, class, current state). Two results are not states: IV (the segment is
 * INVALID in this state, e.g. an ACK in the original direction before any SYN-ACK) and IG
 * (ignored: it passes without changing the entry, because the endpoints may be in sync
 * while we are not; a stale entry resyncs when a SYN-ACK answers an ignored SYN).
 *
 * What is not done, as the docs must say: window tracking. Linux also checks that every
 * segment falls in the receiver's window (sequence and acknowledgement bounds, window
 * scaling), marks out-of-window segments INVALID and shortens timeouts for retransmissions
 * and unacknowledged data; nodeplane tracks flags only. Its consequences: no INVALID
 * verdict for an out-of-window segment, an RST is believed whatever its sequence number,
 * and a SYN-ACK resyncs a stale entry without checking that it acknowledges the SYN.
 *
 * Pure data and functions: `tcpStep` is the whole per-segment decision, on one state byte
 * and one byte of per-entry memory (`aux`), so it is tested without a table; conntrack.ts
 * applies its result (timeouts, ASSURED, counters).
 */

/** TCP conntrack states, numbered as Linux numbers them (`conntrack -L` shows the names). */
export const enum TcpState {
  NONE = 0,
  SYN_SENT = 1,
  SYN_RECV = 2,
  ESTABLISHED = 3,
  FIN_WAIT = 4,
  CLOSE_WAIT = 5,
  LAST_ACK = 6,
  TIME_WAIT = 7,
  CLOSE = 8,
  SYN_SENT2 = 9,
  /** Not a state: the segment is invalid here. */
  IV = 10,
  /** Not a state: the segment is let through and changes nothing. */
  IG = 11,
}

export const TCP_STATE_COUNT = 10;

export const TCP_STATE_NAMES = ['NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSE', 'SYN_SENT2'];

/** Flag classes, in the order of the table's rows. */
export const enum TcpClass {
  SYN = 0,
  SYNACK = 1,
  FIN = 2,
  ACK = 3,
  RST = 4,
  NONE = 5,
}

/** TCP header flag bits (byte 13 of the header). */
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

/**
 * Flag combinations a TCP stack sends (PSH, ECE and CWR aside), as Linux's tcp_error accepts
 * them: SYN, SYN-ACK, RST, RST-ACK, FIN-ACK, ACK, each optionally with URG where it can carry
 * data. Anything else (SYN+FIN, a bare FIN, no flag at all) is INVALID before any lookup.
 */
const VALID_COMBINATION = new Uint8Array(64);
for (const f of [
  TCP_SYN,
  TCP_SYN | TCP_URG,
  TCP_SYN | TCP_ACK,
  TCP_RST,
  TCP_RST | TCP_ACK,
  TCP_FIN | TCP_ACK,
  TCP_FIN | TCP_ACK | TCP_URG,
  TCP_ACK,
  TCP_ACK | TCP_URG,
]) {
  VALID_COMBINATION[f] = 1;
}

/** The flag class of a TCP flags byte, or -1 when the combination is invalid. */
export function tcpFlagClass(flags: number): number {
  const f = flags & 0x3f & ~TCP_PSH;
  if (VALID_COMBINATION[f] === 0) return -1;
  if ((f & TCP_RST) !== 0) return TcpClass.RST;
  if ((f & TCP_SYN) !== 0) return (f & TCP_ACK) !== 0 ? TcpClass.SYNACK : TcpClass.SYN;
  if ((f & TCP_FIN) !== 0) return TcpClass.FIN;
  if ((f & TCP_ACK) !== 0) return TcpClass.ACK;
  return TcpClass.NONE;
}

/**
 * Whether a segment may create an entry: only a valid SYN without ACK, as with Linux's
 * nf_conntrack_tcp_loose=0 (the issue wants "a non-SYN that starts nothing" INVALID; Linux's
 * default of 1 would pick up mid-stream connections instead).
 */
export function tcpStartsConnection(flags: number): boolean {
  return tcpFlagClass(flags) === TcpClass.SYN;
}

// Each row below: the next state for one (direction, flag class), one column per current
// state (no segment leads back to NONE) in the order NONE SYN_SENT SYN_RECV ESTABLISHED FIN_WAIT CLOSE_WAIT LAST_ACK
// TIME_WAIT CLOSE SYN_SENT2. Written from Linux's table, which is the reference.
const SS = TcpState.SYN_SENT;
const SR = TcpState.SYN_RECV;
const ES = TcpState.ESTABLISHED;
const FW = TcpState.FIN_WAIT;
const CW = TcpState.CLOSE_WAIT;
const LA = TcpState.LAST_ACK;
const TW = TcpState.TIME_WAIT;
const CL = TcpState.CLOSE;
const S2 = TcpState.SYN_SENT2;
const IV = TcpState.IV;
const IG = TcpState.IG;

const ROWS: number[][] = [
  // Original direction (the side that sent the first SYN).
  /* SYN    */ [SS, SS, IG, IG, IG, IG, IG, SS, SS, S2], // new, retransmitted; a SYN after close reopens
  /* SYNACK */ [IV, IV, SR, IV, IV, IV, IV, IV, IV, SR], // only in a simultaneous open
  /* FIN    */ [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
  /* ACK    */ [ES, IV, ES, ES, CW, CW, TW, TW, CL, IV], // an ACK before the SYN-ACK is invalid
  /* RST    */ [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
  /* NONE   */ [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
  // Reply direction.
  /* SYN    */ [IV, S2, IV, IV, IV, IV, IV, SS, IV, S2], // simultaneous open; reopen with roles swapped
  /* SYNACK */ [IV, SR, IG, IG, IG, IG, IG, IG, IG, SR], // late retransmissions are ignored
  /* FIN    */ [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
  /* ACK    */ [IV, IG, SR, ES, CW, CW, TW, TW, CL, IG],
  /* RST    */ [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
  /* NONE   */ [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
];

/** Next states, indexed by ((dir * 6 + class) * 10 + state). */
export const TCP_TRANSITIONS = new Uint8Array(ROWS.flat());

/** The next state (or IV / IG) for a segment of `cls` in direction `dir` (0 original, 1 reply). */
export function tcpTransition(dir: number, cls: number, state: number): number {
  return TCP_TRANSITIONS[(dir * 6 + cls) * TCP_STATE_COUNT + state];
}

// aux: one byte per entry of what the transition table alone cannot know.
/** Bit 0: the original side sent the first FIN; bit 1: the reply side did. */
export const TCP_AUX_CLOSE_INIT = 3;
const AUX_LAST_DIR_SHIFT = 2;
const AUX_LAST_CLASS_SHIFT = 3;
const AUX_LAST_MASK = 0x3c;
/** Where aux keeps the last segment's direction and flag class (conntrack.ts reads them for its steady case). */
export const TCP_AUX_LAST_DIR_SHIFT = AUX_LAST_DIR_SHIFT;
export const TCP_AUX_LAST_CLASS_SHIFT = AUX_LAST_CLASS_SHIFT;
export const TCP_AUX_LAST_CLASS_MASK = 7 << AUX_LAST_CLASS_SHIFT;
/** A SYN came from the reply side while SYN_SENT. */
const AUX_SIMULTANEOUS_OPEN = 0x40;
/** A SYN was ignored in LAST_ACK: the ACK it draws (RFC 5961) must not move to TIME_WAIT. */
const AUX_EXPECT_CHALLENGE_ACK = 0x80;
/** A new entry's aux: no segment seen (last class NONE). */
export const TCP_AUX_INITIAL = TcpClass.NONE << AUX_LAST_CLASS_SHIFT;

/** What tcpStep decided, in bits 16-17 of its result. */
export const enum TcpAction {
  /** Move to the state in bits 0-3, refresh the timeout, count the segment. */
  APPLY = 0,
  /** Let the segment through; only aux changes. */
  IGNORE = 1,
  INVALID = 2,
  /** A SYN reopens a closed connection: destroy the entry and create a new one. */
  REOPEN = 3,
}

function withLast(aux: number, dir: number, cls: number): number {
  return (aux & ~AUX_LAST_MASK) | (dir << AUX_LAST_DIR_SHIFT) | (cls << AUX_LAST_CLASS_SHIFT);
}

/**
 * One segment of class `cls` (tcpFlagClass) in direction `dir` on an entry in `state` with
 * `aux`. Returns `action << 16 | newAux << 8 | nextState` (TcpAction; the state is the
 * current one unless APPLY). The rules beyond the table, as Linux applies them:
 * - a SYN in TIME_WAIT or CLOSE reopens when the connection was closed by a FIN or the last
 *   segment from that side was a reset; otherwise it is ignored;
 * - a SYN-ACK that answers an ignored SYN resyncs a stale entry to SYN_RECV;
 * - in a simultaneous open (SYN_SENT2), the reply side's ACK of SYN_RECV establishes;
 * - the challenge ACK a LAST_ACK peer sends to an ignored SYN does not bring TIME_WAIT.
 */
export function tcpStep(state: number, aux: number, dir: number, cls: number): number {
  let next = TCP_TRANSITIONS[(dir * 6 + cls) * TCP_STATE_COUNT + state];
  const lastDir = (aux >> AUX_LAST_DIR_SHIFT) & 1;
  const lastCls = (aux >> AUX_LAST_CLASS_SHIFT) & 7;
  if (next === TcpState.SYN_SENT && state >= TcpState.TIME_WAIT) {
    if ((aux & TCP_AUX_CLOSE_INIT) !== 0 || (lastDir === dir && lastCls === TcpClass.RST)) return (TcpAction.REOPEN << 16) | (aux << 8) | state;
    next = TcpState.IG;
  }
  if (next === TcpState.IG) {
    if (cls === TcpClass.SYNACK && lastCls === TcpClass.SYN && lastDir !== dir) {
      // The endpoints restarted behind our back (Linux also checks that it acknowledges that SYN).
      const a = withLast(aux & ~AUX_EXPECT_CHALLENGE_ACK, dir, cls);
      return (TcpAction.APPLY << 16) | (a << 8) | TcpState.SYN_RECV;
    }
    let a = withLast(aux, dir, cls);
    if (cls === TcpClass.SYN && dir === 0) a = state === TcpState.LAST_ACK ? a | AUX_EXPECT_CHALLENGE_ACK : a & ~AUX_EXPECT_CHALLENGE_ACK;
    return (TcpAction.IGNORE << 16) | (a << 8) | state;
  }
  if (next === TcpState.IV) return (TcpAction.INVALID << 16) | (aux << 8) | state;
  if (next === TcpState.TIME_WAIT && state === TcpState.LAST_ACK && cls === TcpClass.ACK && lastDir !== dir && lastCls === TcpClass.SYN && (aux & AUX_EXPECT_CHALLENGE_ACK) !== 0) {
    return (TcpAction.IGNORE << 16) | ((aux & ~AUX_EXPECT_CHALLENGE_ACK) << 8) | state;
  }
  let a = aux;
  if (next === TcpState.SYN_SENT2) a |= AUX_SIMULTANEOUS_OPEN;
  else if (next === TcpState.SYN_RECV && dir === 1 && cls === TcpClass.ACK && (a & AUX_SIMULTANEOUS_OPEN) !== 0) next = TcpState.ESTABLISHED;
  a = withLast(a, dir, cls);
  if (next !== state && next === TcpState.FIN_WAIT) a |= 1 << dir;
  return (TcpAction.APPLY << 16) | (a << 8) | next;
}
