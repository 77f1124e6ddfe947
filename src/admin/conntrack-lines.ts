/**
 * Listing lines straight from the conntrack table into a buffer, for the stream of `show
 * conntrack`: the text of `conntrack -L` (what formatConntrackEntry makes of
 * conntrackEntryJson) and the JSON of an entry (what JSON.stringify makes of
 * conntrackEntryJson), written by an AsciiWriter without a single heap allocation. A listing
 * of 1,000,000 entries runs on the packet thread: made as objects and strings it took three
 * times the work and filled the young generation every few milliseconds, each scavenge a
 * pause for forwarding. Tests hold both forms equal to the object-based ones for every
 * protocol and flag.
 */
import type { Conntrack } from '../tables/conntrack.ts';
import { CT_ASSURED, CT_DNAT, CT_SEEN_REPLY, CT_SNAT, IPPROTO_ICMP, IPPROTO_TCP } from '../tables/conntrack-store.ts';
import { TCP_STATE_NAMES } from '../tables/conntrack-tcp.ts';
import { AsciiWriter } from './ascii-writer.ts';
import { protoName } from './conntrack-json.ts';

/** More bytes than the longest line of either form (JSON of a TCP entry with 2^53 counters: ~430). */
export const CONNTRACK_LINE_MAX = 1024;

/** `tcp      6` as conntrack pads it, by protocol number. */
const HEADS: Record<number, string> = {};
function head(proto: number): string {
  return (HEADS[proto] ??= `${protoName(proto).padEnd(8)} ${proto}`);
}

function secondsLeft(ct: Conntrack, id: number): number {
  return Math.max(0, Math.floor((ct.deadlineOf(id) - ct.nowUs) / 1e6));
}

function tcpState(ct: Conntrack, id: number): string {
  return TCP_STATE_NAMES[ct.tcpStateOf(id)] ?? 'NONE';
}

function tupleText(w: AsciiWriter, ct: Conntrack, ref: number, icmp: boolean): void {
  w.text('src=');
  w.ipv4(ct.srcOf(ref));
  w.text(' dst=');
  w.ipv4(ct.dstOf(ref));
  if (icmp) {
    // An echo request travels in the original direction (ref even), its reply back.
    w.text((ref & 1) === 0 ? ' type=8 code=0 id=' : ' type=0 code=0 id=');
    w.uint(ct.sportOf(ref));
  } else {
    w.text(' sport=');
    w.uint(ct.sportOf(ref));
    w.text(' dport=');
    w.uint(ct.dportOf(ref));
  }
  w.text(' packets=');
  w.uint(ct.packetsOf(ref));
  w.text(' bytes=');
  w.uint(ct.bytesOf(ref));
}

/** Writes live entry `id` as a line of `conntrack -L` (no newline). */
export function writeConntrackEntryLine(w: AsciiWriter, ct: Conntrack, id: number): void {
  const proto = ct.protoOf(id);
  const st = ct.statusOf(id);
  const icmp = proto === IPPROTO_ICMP;
  const o = id << 1;
  w.text(head(proto));
  w.byte(32);
  w.uint(secondsLeft(ct, id));
  if (proto === IPPROTO_TCP) {
    w.byte(32);
    w.text(tcpState(ct, id));
  }
  w.byte(32);
  tupleText(w, ct, o, icmp);
  if ((st & CT_SEEN_REPLY) === 0) w.text(' [UNREPLIED]');
  w.byte(32);
  tupleText(w, ct, o | 1, icmp);
  if ((st & CT_ASSURED) !== 0) w.text(' [ASSURED]');
  // No connection mark (ConntrackEntryJson.mark): conntrack -L's mark=0.
  w.text(' mark=0');
}

function tupleJson(w: AsciiWriter, ct: Conntrack, ref: number, icmp: boolean): void {
  w.text('{"src":"');
  w.ipv4(ct.srcOf(ref));
  w.text('","dst":"');
  w.ipv4(ct.dstOf(ref));
  if (icmp) {
    w.text((ref & 1) === 0 ? '","type":8,"code":0,"id":' : '","type":0,"code":0,"id":');
    w.uint(ct.sportOf(ref));
  } else {
    w.text('","sport":');
    w.uint(ct.sportOf(ref));
    w.text(',"dport":');
    w.uint(ct.dportOf(ref));
  }
  w.byte(125);
}

function bool(w: AsciiWriter, v: boolean): void {
  w.text(v ? 'true' : 'false');
}

/** Writes live entry `id` as the JSON text of its ConntrackEntryJson (same fields, same order). */
export function writeConntrackEntryJsonLine(w: AsciiWriter, ct: Conntrack, id: number): void {
  const proto = ct.protoOf(id);
  const st = ct.statusOf(id);
  const icmp = proto === IPPROTO_ICMP;
  const o = id << 1;
  const r = o | 1;
  w.text('{"id":');
  w.uint(id);
  w.text(',"proto":"');
  w.text(protoName(proto));
  w.text('","protonum":');
  w.uint(proto);
  w.text(',"timeout":');
  w.uint(secondsLeft(ct, id));
  if (proto === IPPROTO_TCP) {
    w.text(',"state":"');
    w.text(tcpState(ct, id));
    w.text('","orig":');
  } else {
    w.text(',"state":null,"orig":');
  }
  tupleJson(w, ct, o, icmp);
  w.text(',"reply":');
  tupleJson(w, ct, r, icmp);
  w.text(',"unreplied":');
  bool(w, (st & CT_SEEN_REPLY) === 0);
  w.text(',"assured":');
  bool(w, (st & CT_ASSURED) !== 0);
  w.text(',"snat":');
  bool(w, (st & CT_SNAT) !== 0);
  w.text(',"dnat":');
  bool(w, (st & CT_DNAT) !== 0);
  w.text(',"packets":{"orig":');
  w.uint(ct.packetsOf(o));
  w.text(',"reply":');
  w.uint(ct.packetsOf(r));
  w.text('},"bytes":{"orig":');
  w.uint(ct.bytesOf(o));
  w.text(',"reply":');
  w.uint(ct.bytesOf(r));
  // No connection mark (ConntrackEntryJson.mark).
  w.text('},"mark":0}');
}

/** One line as a string (tests; the stream writes into its own buffers). */
export function conntrackEntryLine(ct: Conntrack, id: number, json = false): string {
  const w = new AsciiWriter(Buffer.alloc(CONNTRACK_LINE_MAX));
  if (json) writeConntrackEntryJsonLine(w, ct, id);
  else writeConntrackEntryLine(w, ct, id);
  return w.toString();
}
