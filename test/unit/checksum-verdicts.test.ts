/**
 * Our checksum verdicts against Wireshark's, for every IPv4 header, ICMP message, UDP datagram
 * and TCP segment of the public captures, VXLAN inner packets and ICMP-quoted datagrams
 * included. IP/UDP/TCP statuses come from `expected/<file>.fields.tsv`; ICMP statuses from
 * running tshark here (the tsv has none). Wireshark status: 0 bad, 1 good, 2 not verified,
 * 3 not present. Where Wireshark gives 0 or 1 we must give the same verdict; where it gives
 * 2 or 3 we must give none, unless TOLERATED says why.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeFrame } from '../../src/decode/decode-frame.ts';
import { fieldLists } from '../../src/decode/field-lists.ts';
import { readCaptureSync } from '../../src/pcap/reader.ts';

const DIR = fileURLToPath(new URL('../../../shared/captures/public/', import.meta.url));
const PRESENT = existsSync(DIR);
if (!PRESENT) console.log(`checksum-verdicts: skipped, the public captures folder ${DIR} is absent`);

const TSHARK = '/usr/bin/tshark';
const HAVE_TSHARK = existsSync(TSHARK);
const CI = process.env.CI === 'true';
if (PRESENT && !HAVE_TSHARK) {
  console.log(`checksum-verdicts: ${TSHARK} not found, ICMP verdicts ${CI ? 'FAIL (CI=true)' : 'skipped'}`);
}

interface Tolerance {
  file: string;
  frame: number;
  field: string;
  reason: string;
}

const QUOTED_ICMP =
  'an echo quoted whole (84 bytes) inside an ICMP error: Wireshark never verifies ICMP "in ICMP error packet", ' +
  'we verify it because every byte is there (and it is good)';

/** Disagreements we accept, with why. */
const TOLERATED: Tolerance[] = [
  { file: 'pcpp_IcmpPackets.pcapng', frame: 11, field: 'icmp.checksum.status', reason: QUOTED_ICMP },
  { file: 'pcpp_IcmpPackets.pcapng', frame: 12, field: 'icmp.checksum.status', reason: QUOTED_ICMP },
];

const STATUS_FIELDS = ['ip.checksum.status', 'udp.checksum.status', 'tcp.checksum.status', 'icmp.checksum.status'] as const;

const files = PRESENT ? readdirSync(DIR).filter((f) => /\.(pcap|pcapng)$/.test(f)).sort() : [];
const run = promisify(execFile);

/** frame number -> icmp.checksum.status values, per file. */
const icmpStatus = new Map<string, Map<number, string[]>>();

async function tsharkIcmp(file: string): Promise<Map<number, string[]>> {
  const { stdout } = await run(TSHARK, [
    '-r', `${DIR}${file}`, '-o', 'ip.defragment:FALSE', '-d', 'udp.port==8472,vxlan',
    '-T', 'fields', '-e', 'frame.number', '-e', 'icmp.checksum.status',
  ], { maxBuffer: 1 << 24 });
  const m = new Map<number, string[]>();
  for (const line of stdout.split('\n')) {
    if (line === '') continue;
    const [n, v] = line.split('\t');
    m.set(Number(n), v === undefined || v === '' ? [] : v.split(','));
  }
  return m;
}

function readStatuses(file: string): Map<number, Map<string, string[]>> {
  const lines = readFileSync(`${DIR}expected/${file}.fields.tsv`, 'utf8').split('\n').filter((l) => l !== '');
  const header = lines[0].split('\t');
  const out = new Map<number, Map<string, string[]>>();
  for (const line of lines.slice(1)) {
    const cols = line.split('\t');
    const m = new Map<string, string[]>();
    for (const f of STATUS_FIELDS) {
      const i = header.indexOf(f);
      if (i >= 0) m.set(f, cols[i] === undefined || cols[i] === '' ? [] : cols[i].split(','));
    }
    out.set(Number(cols[0]), m);
  }
  return out;
}

describe.skipIf(!PRESENT)('checksum verdicts agree with Wireshark', () => {
  const used = new Set<Tolerance>();
  const tally = new Map<string, number>();

  beforeAll(async () => {
    if (!HAVE_TSHARK) return;
    const queue = [...files];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let f = queue.shift(); f !== undefined; f = queue.shift()) icmpStatus.set(f, await tsharkIcmp(f));
      }),
    );
    // One tshark start-up per capture: minutes when the machine is busy with other tests.
  }, 240_000);

  it('has tshark for the ICMP verdicts (required when CI=true)', () => {
    if (CI) expect(HAVE_TSHARK, `${TSHARK} is required in CI`).toBe(true);
  });

  it.each(files)('%s', (file) => {
    const expected = readStatuses(file);
    const icmp = icmpStatus.get(file);
    const cap = readCaptureSync(`${DIR}${file}`);
    const problems: string[] = [];
    let n = 0;
    for (const rec of cap.records()) {
      n++;
      const ours = fieldLists(decodeFrame(rec.data, rec.caplen, rec.origLen, cap.interfaces[rec.interfaceId].linkType));
      const ws = new Map(expected.get(n) ?? []);
      if (icmp) ws.set('icmp.checksum.status', icmp.get(n) ?? []);
      for (const field of STATUS_FIELDS) {
        if (!ws.has(field)) continue;
        const theirs = ws.get(field)!;
        const mine = (ours.get(field) ?? []).map(String);
        const bad = (why: string) => {
          const tol = TOLERATED.find((t) => t.file === file && t.frame === n && t.field === field);
          if (tol) used.add(tol);
          else problems.push(`frame ${n} ${field}: wireshark [${theirs.join(',')}] nodeplane [${mine.join(',')}]: ${why}`);
        };
        if (theirs.length !== mine.length) {
          bad('different number of occurrences');
          continue;
        }
        theirs.forEach((w, k) => {
          const o = mine[k];
          const key = `${field}=${w}`;
          tally.set(key, (tally.get(key) ?? 0) + 1);
          if (w === '0' || w === '1') {
            if (o !== w) bad(`occurrence ${k + 1}: verdict differs`);
          } else if (o !== '2') {
            bad(`occurrence ${k + 1}: Wireshark did not verify, we gave a verdict`);
          }
        });
      }
    }
    expect(problems).toEqual([]);
  });

  it('compared good and bad verdicts of every kind, and every tolerance is used', () => {
    for (const f of ['ip', 'udp', 'tcp']) {
      expect(tally.get(`${f}.checksum.status=1`) ?? 0, `${f} good`).toBeGreaterThan(0);
      expect(tally.get(`${f}.checksum.status=0`) ?? 0, `${f} bad`).toBeGreaterThan(0);
    }
    if (HAVE_TSHARK) expect(tally.get('icmp.checksum.status=1') ?? 0).toBeGreaterThan(50);
    expect(TOLERATED.filter((t) => !used.has(t))).toEqual([]);
    console.log('checksum-verdicts compared:', Object.fromEntries([...tally].sort()));
  });
});
