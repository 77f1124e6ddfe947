/**
 * Connection tracking tables in one shape, so the differential test can set the kernel's
 * beside nodeplane's: `conntrack -L` text (conntrack-tools) parsed, and
 * `nodeplane show conntrack --json` read into the same rows.
 *
 * conntrack -L prints one entry a line, e.g.
 *
 *   udp      17 29 src=10.9.0.1 dst=10.9.0.2 sport=59609 dport=9 packets=1 bytes=30 [UNREPLIED] src=10.9.0.2 dst=10.9.0.1 sport=9 dport=59609 packets=0 bytes=0 mark=0 use=1
 *   tcp      6 119 TIME_WAIT src=10.9.0.1 dst=10.9.0.2 sport=54096 dport=9000 packets=5 bytes=269 src=10.9.0.2 dst=10.9.0.1 sport=9000 dport=54096 packets=4 bytes=216 [ASSURED] mark=0 use=1
 *   icmp     1 29 src=10.9.0.1 dst=10.9.0.2 type=8 code=0 id=18818 packets=1 bytes=84 src=10.9.0.2 dst=10.9.0.1 type=0 code=0 id=18818 packets=1 bytes=84 mark=0 use=1
 *
 * (the counters only with net.netfilter.nf_conntrack_acct=1). The first key=value group is
 * the original direction, the second the reply; [UNREPLIED] and [ASSURED] are flags.
 */
import type { ConntrackEntryJson, ConntrackTupleJson } from '../../src/admin/conntrack-json.ts';

export interface ConntrackTuple {
  src: string;
  dst: string;
  /** Ports for TCP and UDP; for ICMP echo the identifier in both. */
  sport: number;
  dport: number;
}

export interface ConntrackRow {
  /** 'tcp', 'udp', 'icmp', or the protocol number as text. */
  proto: string;
  /** TCP state (ESTABLISHED, TIME_WAIT...); '' for other protocols. */
  state: string;
  /** Seconds left. */
  timeout: number;
  orig: ConntrackTuple;
  reply: ConntrackTuple;
  assured: boolean;
  unreplied: boolean;
  /** Per direction [original, reply]; null when the listing has no counters. */
  packets: [number, number] | null;
  bytes: [number, number] | null;
  mark: number;
}

const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp' };

/** Parses `conntrack -L` output (the default text format) into rows. */
export function parseConntrackList(text: string): ConntrackRow[] {
  const rows: ConntrackRow[] = [];
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words.length < 4 || !/^\d+$/.test(words[1] ?? '')) continue;
    const proto = PROTO_NAMES[Number(words[1])] ?? words[1];
    const timeout = Number(words[2]);
    let i = 3;
    let state = '';
    if (!words[i].includes('=') && !words[i].startsWith('[')) state = words[i++];
    const groups: Array<Record<string, string>> = [];
    let assured = false;
    let unreplied = false;
    let mark = 0;
    for (; i < words.length; i++) {
      const w = words[i];
      if (w === '[ASSURED]') assured = true;
      else if (w === '[UNREPLIED]') unreplied = true;
      else if (w.startsWith('[')) continue;
      else {
        const eq = w.indexOf('=');
        if (eq < 0) continue;
        const key = w.slice(0, eq);
        const value = w.slice(eq + 1);
        if (key === 'mark') mark = Number(value);
        else if (key === 'src') groups.push({ src: value });
        else if (groups.length > 0 && key !== 'use' && key !== 'zone' && key !== 'secctx') groups[groups.length - 1][key] = value;
      }
    }
    if (groups.length < 2) throw new Error(`conntrack -L: cannot read the tuples of "${line.trim()}"`);
    const tuple = (g: Record<string, string>): ConntrackTuple =>
      proto === 'icmp' ? { src: g.src, dst: g.dst, sport: Number(g.id), dport: Number(g.id) } : { src: g.src, dst: g.dst, sport: Number(g.sport), dport: Number(g.dport) };
    const counters = (key: string): [number, number] | null => (groups[0][key] === undefined ? null : [Number(groups[0][key]), Number(groups[1][key] ?? 0)]);
    rows.push({ proto, state, timeout, orig: tuple(groups[0]), reply: tuple(groups[1]), assured, unreplied, packets: counters('packets'), bytes: counters('bytes'), mark });
  }
  return rows;
}

/**
 * Reads `nodeplane show conntrack --json` (a JSON array, one entry a line: the fields of
 * src/admin/conntrack-json.ts) into the rows conntrack -L gives.
 */
export function parseNodeplaneConntrack(text: string): ConntrackRow[] {
  const entries = JSON.parse(text) as ConntrackEntryJson[];
  if (!Array.isArray(entries)) throw new Error(`show conntrack --json: expected an array, got ${text.slice(0, 200)}`);
  const tuple = (t: ConntrackTupleJson): ConntrackTuple =>
    t.id !== undefined ? { src: t.src, dst: t.dst, sport: t.id, dport: t.id } : { src: t.src, dst: t.dst, sport: Number(t.sport), dport: Number(t.dport) };
  return entries.map((e) => ({
    proto: e.proto,
    state: e.state ?? '',
    timeout: Number(e.timeout),
    orig: tuple(e.orig),
    reply: tuple(e.reply),
    assured: e.assured,
    unreplied: e.unreplied,
    packets: [e.packets.orig, e.packets.reply],
    bytes: [e.bytes.orig, e.bytes.reply],
    mark: e.mark,
  }));
}
