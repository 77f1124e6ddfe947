/**
 * Flattens a decoded frame into Wireshark display-field lists: for each field name (as in
 * `tshark -T fields -e NAME`), the values of every occurrence, outermost first — the same
 * shape as `tshark -E occurrence=a -E aggregator=,` prints for tunnelled frames and ICMP
 * errors. Values are normalised to tshark's text: numbers in decimal, `ip.id` in 0x%04x,
 * flags 0/1, `ip.frag_offset` in 8-byte units, `tcp.flags.str` with U+00B7 for clear bits,
 * checksum status 0 bad / 1 good / 2 no verdict (given for every ICMP layer, every UDP layer
 * with its length field and every TCP layer with its flags, like Wireshark's status fields).
 *
 * Used to compare nodeplane's decoder with Wireshark's; it adds nothing to the decode.
 */

import type { DecodedFrame, DecodedLayers } from './types.ts';

export type FieldLists = Map<string, string[]>;

const TCP_LETTERS = 'FSRPAUECN';

/** Our flags letters ("SA") as Wireshark's 12-character tcp.flags.str ("·······A··S·"). */
export function tcpFlagsStr(flags: string): string {
  const out: string[] = [];
  for (let bit = 11; bit >= 0; bit--) {
    const l = bit < 9 ? TCP_LETTERS[bit] : 'R';
    out.push(bit < 9 && flags.includes(l) ? l : '\u00b7');
  }
  return out.join('');
}

function push(m: FieldLists, name: string, v: string | number | boolean | undefined): void {
  if (v === undefined) return;
  const s = typeof v === 'boolean' ? (v ? '1' : '0') : String(v);
  const a = m.get(name);
  if (a) a.push(s);
  else m.set(name, [s]);
}

/** 1 good, 0 bad, 2 no verdict (Wireshark's "not verified"; also stands for its 3, "not present"). */
function status(ok: boolean | undefined): number {
  return ok === undefined ? 2 : ok ? 1 : 0;
}

function walk(l: DecodedLayers, m: FieldLists): void {
  if (l.eth) {
    push(m, 'eth.src', l.eth.src);
    push(m, 'eth.dst', l.eth.dst);
    if (parseInt(l.eth.type, 16) >= 0x0600) push(m, 'eth.type', l.eth.type);
  }
  if (l.vlan) {
    const tags = l.vlan.tags ?? [{ tpid: l.eth?.type ?? '0x8100', id: l.vlan.id, pcp: l.vlan.pcp }];
    for (const t of tags) {
      // Wireshark's "vlan" dissector takes 802.1Q tags; 802.1ad S-tags are "ieee8021ad".
      const proto = t.tpid === '0x88a8' ? 'ieee8021ad' : 'vlan';
      push(m, `${proto}.id`, t.id);
      push(m, `${proto}.priority`, t.pcp);
    }
  }
  if (l.arp) {
    push(m, 'arp.opcode', l.arp.op);
    push(m, 'arp.src.hw_mac', l.arp.sha);
    push(m, 'arp.src.proto_ipv4', l.arp.spa);
    push(m, 'arp.dst.hw_mac', l.arp.tha);
    push(m, 'arp.dst.proto_ipv4', l.arp.tpa);
  }
  if (l.ip) {
    const ip = l.ip;
    push(m, 'ip.src', ip.src);
    push(m, 'ip.dst', ip.dst);
    push(m, 'ip.proto', ip.proto);
    push(m, 'ip.ttl', ip.ttl);
    push(m, 'ip.id', '0x' + ip.id.toString(16).padStart(4, '0'));
    push(m, 'ip.flags.df', ip.df);
    push(m, 'ip.flags.mf', ip.mf);
    push(m, 'ip.frag_offset', ip.fragOffset / 8);
    push(m, 'ip.len', ip.len);
    push(m, 'ip.checksum.status', ip.checksumOk ? 1 : 0);
  }
  if (l.ip6) {
    push(m, 'ipv6.src', l.ip6.src);
    push(m, 'ipv6.dst', l.ip6.dst);
    push(m, 'ipv6.nxt', l.ip6.nxt);
  }
  if (l.icmp) {
    push(m, 'icmp.type', l.icmp.type);
    push(m, 'icmp.code', l.icmp.code);
    push(m, 'icmp.ident', l.icmp.id);
    push(m, 'icmp.seq', l.icmp.seq);
    if (l.icmp.type !== undefined) push(m, 'icmp.checksum.status', status(l.icmp.checksumOk));
  }
  if (l.icmp6) {
    push(m, 'icmpv6.type', l.icmp6.type);
    push(m, 'icmpv6.code', l.icmp6.code);
  }
  if (l.udp) {
    push(m, 'udp.srcport', l.udp.sport);
    push(m, 'udp.dstport', l.udp.dport);
    push(m, 'udp.length', l.udp.len);
    if (l.udp.len !== undefined) push(m, 'udp.checksum.status', status(l.udp.checksumOk));
  }
  if (l.tcp) {
    push(m, 'tcp.srcport', l.tcp.sport);
    push(m, 'tcp.dstport', l.tcp.dport);
    push(m, 'tcp.seq_raw', l.tcp.seq);
    push(m, 'tcp.ack_raw', l.tcp.ack);
    push(m, 'tcp.flags.str', l.tcp.flags === undefined ? undefined : tcpFlagsStr(l.tcp.flags));
    if (l.tcp.flags !== undefined) push(m, 'tcp.checksum.status', status(l.tcp.checksumOk));
  }
  if (l.icmp?.quoted) walk(l.icmp.quoted, m);
  if (l.vxlan) {
    push(m, 'vxlan.vni', l.vxlan.vni);
    if (l.vxlan.inner) walk(l.vxlan.inner, m);
  }
}

/** The field lists of a frame (frame.len and frame.cap_len included). */
export function fieldLists(f: DecodedFrame): FieldLists {
  const m: FieldLists = new Map();
  push(m, 'frame.len', f.len);
  push(m, 'frame.cap_len', f.caplen);
  walk(f, m);
  return m;
}
