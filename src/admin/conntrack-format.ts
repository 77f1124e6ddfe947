/**
 * Conntrack text: entries, events and statistics printed as the conntrack tool (conntrack-
 * tools, through libnetfilter_conntrack) prints them, so anyone who reads `conntrack -L`
 * reads `nodeplane show conntrack` at once.
 *
 *   -L    tcp      6 86397 ESTABLISHED src=10.244.1.2 dst=203.0.113.7 sport=40000 dport=80
 *           packets=3 bytes=180 src=203.0.113.7 dst=192.168.50.11 sport=80 dport=40000
 *           packets=2 bytes=120 [ASSURED] mark=0                              (one line)
 *         udp      17 28 src=... dport=53 packets=1 bytes=60 [UNREPLIED] src=... mark=0
 *         icmp     1 29 src=... dst=... type=8 code=0 id=7 packets=1 bytes=84 src=...
 *           type=0 code=0 id=7 packets=1 bytes=84 mark=0
 *         The protocol name is padded to 8 and followed by its number; then seconds left,
 *         the TCP state, the original tuple and its counters, [UNREPLIED] while no reply
 *         was seen, the reply tuple and its counters, [ASSURED], mark=. Linux prints the
 *         counters only with nf_conntrack_acct=1, and ends with `use=` (a reference count
 *         we do not have).
 *   -E        [NEW] tcp      6 120 SYN_SENT src=... [UNREPLIED] src=...
 *          [UPDATE] tcp      6 60 SYN_RECV src=... src=...
 *         [DESTROY] tcp      6 src=... packets=.. bytes=.. src=... packets=.. bytes=.. [ASSURED]
 *         The event in a 9-wide column; as in Linux's events, no timeout and state in
 *         DESTROY, counters only in DESTROY, mark= only when not 0.
 *   -S    entries=2 max=262144 found=10 new=3 invalid=0 insert_failed=0 drop=0 early_drop=0 expired=1
 *
 * The summary conntrack prints on stderr after a listing ("conntrack v1.4.7 (conntrack-
 * tools): 2 flow entries have been shown.") is `conntrackSummary`.
 */
import type { ConntrackEntryJson, ConntrackEventJson, ConntrackStatsJson, ConntrackTupleJson } from './conntrack-json.ts';

function tupleText(t: ConntrackTupleJson): string {
  const ports = t.type !== undefined ? `type=${t.type} code=${t.code} id=${t.id}` : `sport=${t.sport} dport=${t.dport}`;
  return `src=${t.src} dst=${t.dst} ${ports}`;
}

interface Parts {
  timeout: boolean;
  state: boolean;
  counters: boolean;
  /** Print `mark=` only when not 0 (events). */
  markIfSet: boolean;
}

function entryText(e: ConntrackEntryJson, p: Parts): string {
  const w: string[] = [`${e.proto.padEnd(8)} ${e.protonum}`];
  if (p.timeout && e.timeout !== null) w.push(String(e.timeout));
  if (p.state && e.state !== null) w.push(e.state);
  w.push(tupleText(e.orig));
  if (p.counters) w.push(`packets=${e.packets.orig} bytes=${e.bytes.orig}`);
  if (e.unreplied) w.push('[UNREPLIED]');
  w.push(tupleText(e.reply));
  if (p.counters) w.push(`packets=${e.packets.reply} bytes=${e.bytes.reply}`);
  if (e.assured) w.push('[ASSURED]');
  if (!p.markIfSet || e.mark !== 0) w.push(`mark=${e.mark}`);
  return w.join(' ');
}

/** One entry as a line of `conntrack -L` (no newline). */
export function formatConntrackEntry(e: ConntrackEntryJson): string {
  return entryText(e, { timeout: true, state: true, counters: true, markIfSet: false });
}

/** One event as a line of `conntrack -E` (no newline). */
export function formatConntrackEvent(e: ConntrackEventJson): string {
  const destroy = e.event === 'DESTROY';
  const body = entryText(e, { timeout: !destroy, state: !destroy, counters: destroy, markIfSet: true });
  return `${`[${e.event}]`.padStart(9)} ${body}`;
}

/** The last line of a listing, as conntrack words it (it goes to stderr). */
export function conntrackSummary(shown: number): string {
  return `nodeplane: ${shown} flow entries have been shown.`;
}

/** The last line of an event stream (`conntrack -E` prints it when interrupted). */
export function conntrackEventsSummary(shown: number): string {
  return `nodeplane: ${shown} flow events have been shown.`;
}

/** The statistics of `conntrack -S` (one table, so one line) with the entries and the limit. */
export function formatConntrackStats(s: ConntrackStatsJson): string {
  return (
    `entries=${s.entries} max=${s.max} found=${s.found} new=${s.new} invalid=${s.invalid} ` +
    `insert_failed=${s.insertFailed} drop=${s.drop} early_drop=${s.earlyDrop} expired=${s.expired}\n`
  );
}

/** What `conntrack flush` prints (`conntrack -D` says the same). */
export function conntrackDeletedSummary(deleted: number): string {
  return `nodeplane: ${deleted} flow entries have been deleted.`;
}
