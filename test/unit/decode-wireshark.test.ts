/**
 * nodeplane's decoder against Wireshark's, frame by frame, on every public capture:
 * `expected/<file>.fields.tsv` was made by tshark (see the captures' MANIFEST.md). Each field
 * is compared as the list of all its occurrences, outermost first ("outer,inner" for VXLAN
 * and for the datagram quoted by an ICMP error). A disagreement fails the test unless it is
 * listed in TOLERATED with its reason; a tolerance that no longer matches anything fails too.
 * L4 checksum verdicts are compared in checksum-verdicts.test.ts.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { decodeFrame } from '../../src/decode/decode-frame.ts';
import { fieldLists } from '../../src/decode/field-lists.ts';
import { readCaptureSync } from '../../src/pcap/reader.ts';

const DIR = fileURLToPath(new URL('../../../shared/captures/public/', import.meta.url));
const PRESENT = existsSync(DIR);
if (!PRESENT) console.log(`decode-wireshark: skipped, the public captures folder ${DIR} is absent`);

/** The tsv columns compared here (ip.frag_offset is in 8-byte units on both sides after fieldLists). */
const FIELDS = [
  'frame.len', 'frame.cap_len',
  'eth.src', 'eth.dst', 'eth.type', 'vlan.id', 'vlan.priority',
  'arp.opcode', 'arp.src.hw_mac', 'arp.src.proto_ipv4', 'arp.dst.hw_mac', 'arp.dst.proto_ipv4',
  'ip.src', 'ip.dst', 'ip.proto', 'ip.ttl', 'ip.id', 'ip.flags.df', 'ip.flags.mf', 'ip.frag_offset', 'ip.len',
  'ip.checksum.status',
  'ipv6.src', 'ipv6.dst', 'ipv6.nxt',
  'icmp.type', 'icmp.code', 'icmp.ident', 'icmp.seq', 'icmpv6.type', 'icmpv6.code',
  'udp.srcport', 'udp.dstport', 'udp.length',
  'tcp.srcport', 'tcp.dstport', 'tcp.seq_raw', 'tcp.ack_raw', 'tcp.flags.str',
  'vxlan.vni',
];

interface Tolerance {
  file: string;
  frame: number;
  field: string;
  reason: string;
}

const TOLERATED: Tolerance[] = [
  {
    file: 'pcpp_IcmpPackets.pcapng', frame: 13, field: 'tcp.seq_raw',
    reason: 'a source quench quotes only 8 bytes of TCP: Wireshark shows just the ports, we also report the sequence number those 8 bytes hold',
  },
  {
    file: 'zeek_trunc-ipv4-truncated-broken-header.pcap', frame: 1, field: 'ip.len',
    reason: 'IHL 15 (60 bytes) with total length 20: we reject the header before reporting any ip field; Wireshark shows the total length it read before rejecting',
  },
];

interface Row {
  frame: number;
  cells: Map<string, string[]>;
}

function readTsv(path: string): Row[] {
  const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l !== '');
  const header = lines[0].split('\t');
  for (const f of FIELDS) if (!header.includes(f)) throw new Error(`${path}: no column ${f}`);
  return lines.slice(1).map((line) => {
    const cols = line.split('\t');
    const cells = new Map<string, string[]>();
    header.forEach((h, i) => cells.set(h, cols[i] === undefined || cols[i] === '' ? [] : cols[i].split(',')));
    return { frame: Number(cols[0]), cells };
  });
}

/** A tsv value as fieldLists writes it (ip.id keeps tshark's 0x%04x; eth.type lower-case). */
function norm(field: string, v: string): string {
  return field === 'eth.type' ? v.toLowerCase() : v;
}

const files = PRESENT ? readdirSync(DIR).filter((f) => /\.(pcap|pcapng)$/.test(f)).sort() : [];

describe.skipIf(!PRESENT)('decoder agrees with Wireshark on the public captures', () => {
  it('finds the captures and their expected fields', () => {
    expect(files.length).toBeGreaterThanOrEqual(41);
    for (const f of files) expect(existsSync(`${DIR}expected/${f}.fields.tsv`), f).toBe(true);
  });

  const used = new Set<Tolerance>();
  let compared = 0;

  it.each(files)('%s', (file) => {
    const rows = readTsv(`${DIR}expected/${file}.fields.tsv`);
    const cap = readCaptureSync(`${DIR}${file}`);
    const problems: string[] = [];
    let i = 0;
    for (const rec of cap.records()) {
      const row = rows[i++];
      if (row === undefined) {
        problems.push(`frame ${i}: not in the tsv`);
        continue;
      }
      expect(row.frame).toBe(i);
      const linkType = cap.interfaces[rec.interfaceId].linkType;
      const decoded = decodeFrame(rec.data, rec.caplen, rec.origLen, linkType);
      const ours = fieldLists(decoded);
      for (const field of FIELDS) {
        const ws = (row.cells.get(field) ?? []).map((v) => norm(field, v));
        const mine = ours.get(field) ?? [];
        compared++;
        if (ws.join(',') === mine.join(',')) continue;
        const tol = TOLERATED.find((t) => t.file === file && t.frame === i && t.field === field);
        if (tol) {
          used.add(tol);
          continue;
        }
        problems.push(`frame ${i} ${field}: wireshark [${ws.join(',')}] nodeplane [${mine.join(',')}]`);
      }
    }
    expect(i, 'frames in the capture vs rows in the tsv').toBe(rows.length);
    expect(problems).toEqual([]);
  });

  it('uses every tolerance (no stale entries) and compared something', () => {
    expect(compared).toBeGreaterThan(10_000);
    expect(TOLERATED.filter((t) => !used.has(t))).toEqual([]);
  });
});
