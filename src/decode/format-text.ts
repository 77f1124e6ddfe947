/**
 * One line of text per decoded frame, in the spirit of `tcpdump -nn -e -tttt` (UTC):
 *
 *   2013-05-18 20:21:44.837063 36:dc:85:1e:b3:40 > 00:16:3e:08:71:cf, ethertype IPv4 (0x0800),
 *   length 148: IP 192.168.203.1.45149 > 192.168.202.1.4789: VXLAN, flags [I] (0x08), vni 100
 *   | 00:16:3e:37:f6:04 > 00:30:88:01:00:02, ethertype IPv4 (0x0800), length 98:
 *   IP 192.168.203.3 > 192.168.203.5: ICMP echo request, id 1292, seq 1, length 64
 *
 * (one line in reality). A tunnel's inner frame follows " | ". TCP flags use tcpdump's
 * letters (S, F, R, P, ".", U, E, W); a decode error ends the line as "[error: reason]".
 */

import type { DecodedFrame, DecodedIcmp, DecodedLayers } from './types.ts';

const ETHERTYPE_NAMES: Record<string, string> = {
  '0x0800': 'IPv4',
  '0x0806': 'ARP',
  '0x86dd': 'IPv6',
  '0x8100': '802.1Q',
  '0x88a8': '802.1Q-QinQ',
  '0x9100': '802.1Q-9100',
};

function ethertype(t: string): string {
  if (parseInt(t, 16) < 0x0600) return `802.3, length ${parseInt(t, 16)}`;
  const name = ETHERTYPE_NAMES[t];
  return name ? `ethertype ${name} (${t})` : `ethertype Unknown (${t})`;
}

/** First second of the year 10000: the arithmetic below covers 1970-01-01 up to here. */
const YEAR_10000 = 253402300800;
const SECONDS_PER_DAY = 86400;

const pad2 = (v: number) => (v < 10 ? `0${v}` : String(v));

/**
 * `YYYY-MM-DD HH:MM:SS` of whole seconds since the epoch, in UTC, by the civil-from-days
 * arithmetic of the proleptic Gregorian calendar (eras of 400 years of 146097 days, years
 * counted from March). The same text as Date's toISOString, without a Date: the first one a
 * process formats costs about a millisecond while V8 sets up its time zone cache, a share of
 * `nodeplane decode`'s start that shows.
 */
function utcDateTime(tsSec: number): string {
  const days = Math.floor(tsSec / SECONDS_PER_DAY);
  const secs = tsSec - days * SECONDS_PER_DAY;
  const z = days + 719468; // days since 0000-03-01
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = era * 400 + yoe + (month <= 2 ? 1 : 0);
  const hh = Math.floor(secs / 3600);
  const mm = Math.floor((secs % 3600) / 60);
  return `${String(year).padStart(4, '0')}-${pad2(month)}-${pad2(day)} ${pad2(hh)}:${pad2(mm)}:${pad2(secs % 60)}`;
}

/** `YYYY-MM-DD HH:MM:SS.ffffff` in UTC; nine fraction digits when `nanos` is set. */
export function formatTimestamp(tsSec: number, tsNsec: number, nanos: boolean): string {
  let iso: string;
  if (Number.isInteger(tsSec) && tsSec >= 0 && tsSec < YEAR_10000) {
    iso = utcDateTime(tsSec);
  } else {
    const d = new Date(tsSec * 1000);
    iso = Number.isNaN(d.getTime()) ? String(tsSec) : d.toISOString().slice(0, 19).replace('T', ' ');
  }
  const frac = nanos ? String(tsNsec).padStart(9, '0') : String(Math.floor(tsNsec / 1000)).padStart(6, '0');
  return `${iso}.${frac}`;
}

const TCPDUMP_FLAGS: Record<string, string> = { F: 'F', S: 'S', R: 'R', P: 'P', A: '.', U: 'U', E: 'E', C: 'W', N: 'N' };

function tcpdumpFlags(flags: string): string {
  // tcpdump prints S F R P then U E W then "." for ACK.
  let out = '';
  for (const l of 'SFRPUECN') if (flags.includes(l)) out += TCPDUMP_FLAGS[l];
  if (flags.includes('A')) out += '.';
  return out === '' ? 'none' : out;
}

const port = (addr: string, p?: number) => (p === undefined ? addr : `${addr}.${p}`);

function icmpText(icmp: DecodedIcmp, len: number | undefined): string {
  const l = len === undefined ? '' : `, length ${len}`;
  const idseq = `${icmp.id !== undefined ? `, id ${icmp.id}` : ''}${icmp.seq !== undefined ? `, seq ${icmp.seq}` : ''}`;
  const q = icmp.quoted;
  const qproto = q?.udp ? 'udp' : q?.tcp ? 'tcp' : undefined;
  const qport = q?.udp?.dport ?? q?.tcp?.dport;
  switch (icmp.type) {
    case 0:
      return `ICMP echo reply${idseq}${l}`;
    case 8:
      return `ICMP echo request${idseq}${l}`;
    case 3: {
      const dst = q?.ip?.dst ?? '?';
      const what: Record<number, string> = {
        0: `net ${dst} unreachable`,
        1: `host ${dst} unreachable`,
        2: `${dst} protocol ${q?.ip?.proto ?? '?'} unreachable`,
        3: `${dst} ${qproto ?? 'proto'} port ${qport ?? '?'} unreachable`,
        4: `${dst} unreachable - need to frag (mtu ${icmp.mtu ?? 0})`,
      };
      return `ICMP ${what[icmp.code ?? -1] ?? `${dst} unreachable (code ${icmp.code})`}${l}`;
    }
    case 11:
      return `ICMP time exceeded in-${icmp.code === 1 ? 'reassembly' : 'transit'}${l}`;
    case 5:
      return `ICMP redirect ${q?.ip?.dst ?? '?'}${l}`;
    default:
      return `ICMP type ${icmp.type ?? '?'}, code ${icmp.code ?? '?'}${idseq}${l}`;
  }
}

function l3Text(f: DecodedLayers): string {
  if (f.arp) {
    const a = f.arp;
    if (a.op === 1) return `ARP, Request who-has ${a.tpa ?? '?'} tell ${a.spa ?? '?'}`;
    if (a.op === 2) return `ARP, Reply ${a.spa ?? '?'} is-at ${a.sha ?? '?'}`;
    return `ARP, op ${a.op ?? '?'}`;
  }
  if (f.ip) {
    const ip = f.ip;
    const frag = ip.mf || ip.fragOffset > 0 ? ` (frag ${ip.id}:${ip.len - ip.hl}@${ip.fragOffset}${ip.mf ? '+' : ''})` : '';
    const bad = ip.checksumOk ? '' : ' [bad ip cksum]';
    if (f.udp) {
      const u = f.udp;
      const head = `IP ${port(ip.src, u.sport)} > ${port(ip.dst, u.dport)}:`;
      const ck = u.checksumOk === false ? ' [bad udp cksum]' : '';
      if (f.vxlan) {
        const v = f.vxlan;
        const inner = v.inner ? ` | ${layersText(v.inner)}` : '';
        return `${head} VXLAN, flags [${v.flags & 8 ? 'I' : '.'}] (0x${v.flags.toString(16).padStart(2, '0')}), vni ${v.vni}${frag}${bad}${ck}${inner}`;
      }
      return `${head} UDP, length ${u.len !== undefined ? u.len - 8 : '?'}${frag}${bad}${ck}`;
    }
    if (f.tcp) {
      const t = f.tcp;
      const parts = [`Flags [${t.flags !== undefined ? tcpdumpFlags(t.flags) : '?'}]`];
      if (t.seq !== undefined) parts.push(`seq ${t.seq}`);
      if (t.ack !== undefined && t.flags?.includes('A')) parts.push(`ack ${t.ack}`);
      const ck = t.checksumOk === false ? ' [bad tcp cksum]' : '';
      return `IP ${port(ip.src, t.sport)} > ${port(ip.dst, t.dport)}: ${parts.join(', ')}${frag}${bad}${ck}`;
    }
    if (f.icmp) {
      const ck = f.icmp.checksumOk === false ? ' [bad icmp cksum]' : '';
      return `IP ${ip.src} > ${ip.dst}: ${icmpText(f.icmp, ip.len - ip.hl)}${frag}${bad}${ck}`;
    }
    return `IP ${ip.src} > ${ip.dst}: ip-proto-${ip.proto} ${ip.len - ip.hl}${frag}${bad}`;
  }
  if (f.ip6) {
    const ip6 = f.ip6;
    if (f.udp) return `IP6 ${port(ip6.src, f.udp.sport)} > ${port(ip6.dst, f.udp.dport)}: UDP, length ${f.udp.len !== undefined ? f.udp.len - 8 : '?'}`;
    if (f.tcp) return `IP6 ${port(ip6.src, f.tcp.sport)} > ${port(ip6.dst, f.tcp.dport)}: Flags [${f.tcp.flags !== undefined ? tcpdumpFlags(f.tcp.flags) : '?'}]`;
    if (f.icmp6) return `IP6 ${ip6.src} > ${ip6.dst}: ICMP6, type ${f.icmp6.type ?? '?'}, code ${f.icmp6.code ?? '?'}, length ${ip6.plen}`;
    return `IP6 ${ip6.src} > ${ip6.dst}: next-header ${ip6.nxt}, payload length ${ip6.plen}`;
  }
  return '';
}

function layersText(f: DecodedLayers, len?: number): string {
  let s = '';
  if (f.eth) {
    s = `${f.eth.src} > ${f.eth.dst}, ${ethertype(f.eth.type)}${len !== undefined ? `, length ${len}` : ''}: `;
    if (f.vlan) {
      const tags = f.vlan.tags ?? [{ id: f.vlan.id, pcp: f.vlan.pcp }];
      s += tags.map((t, i) => {
        const next = i + 1 < tags.length && 'tpid' in tags[i + 1] ? (tags[i + 1] as { tpid: string }).tpid : f.vlan!.type;
        return `vlan ${t.id}, p ${t.pcp}${next ? `, ${ethertype(next)}` : ''}, `;
      }).join('');
    }
  } else if (f.loopback) {
    s = `loopback family ${f.loopback.family}: `;
  }
  s += l3Text(f);
  if (f.error !== undefined) s += `${s.endsWith(' ') || s === '' ? '' : ' '}[error: ${f.error}]`;
  return s.trimEnd();
}

/** The text line of one frame (no newline). */
export function formatFrameText(f: DecodedFrame, tsSec: number, tsNsec: number, nanos = false): string {
  const body = layersText(f, f.len);
  return `${formatTimestamp(tsSec, tsNsec, nanos)} ${body === '' ? `[${f.caplen} bytes]` : body}`;
}
