// Our reader reads what editcap writes: every public capture converted to classic µs pcap,
// nanosecond pcap and pcapng must give the same records as the original, record by record.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { readCaptureSync } from '../../src/pcap/reader.ts';
import type { CaptureRecord } from '../../src/pcap/record.ts';
import { describeWithTools, runTool } from '../helpers/tshark.ts';

const PUBLIC = fileURLToPath(new URL('../../../shared/captures/public/', import.meta.url));
const havePublic = existsSync(PUBLIC);
if (!havePublic) console.warn(`skipping pcap-editcap: no shared captures beside the repository (${PUBLIC})`);

const files = havePublic ? readdirSync(PUBLIC).filter((f) => /\.pcap(ng)?$/.test(f)).sort() : [];
const dir = mkdtempSync(join(tmpdir(), 'nodeplane-editcap-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function view(r: CaptureRecord, usOnly: boolean) {
  return {
    sec: r.tsSec,
    nsec: usOnly ? r.tsNsec - (r.tsNsec % 1000) : r.tsNsec,
    caplen: r.caplen,
    origLen: r.origLen,
    data: r.data.toString('hex'),
  };
}

/** Per-record interface link types, since editcap maps interface ids when it changes format. */
function linkTypes(path: string): number[] {
  const cap = readCaptureSync(path);
  return [...cap.records()].map((r) => cap.interfaces[r.interfaceId]!.linkType);
}

const formats = [
  { flag: 'pcap', format: 'pcap', ns: false },
  { flag: 'nsecpcap', format: 'pcap', ns: true },
  { flag: 'pcapng', format: 'pcapng', ns: false },
] as const;

if (havePublic) {
  describeWithTools(['editcap'], 'reading editcap output', () => {
    for (const file of files) {
      // Classic pcap has one link type per file: editcap refuses a multi-link-type pcapng.
      const original = readCaptureSync(PUBLIC + file);
      const mixed = new Set(original.interfaces.map((i) => i.linkType)).size > 1;
      for (const f of formats) {
        const out = join(dir, `${file}.${f.flag}`);
        if (mixed && f.format === 'pcap') {
          it(`${file} -> ${f.flag} is refused by editcap (several link types)`, () => {
            expect(() => runTool('editcap', ['-F', f.flag, PUBLIC + file, out])).toThrow(/can't be written/);
          });
          continue;
        }
        it(`${file} -> ${f.flag}`, () => {
          runTool('editcap', ['-F', f.flag, PUBLIC + file, out]);
          const conv = readCaptureSync(out);
          expect(conv.format).toBe(f.format);
          // editcap keeps a source's resolution in pcapng (if_tsresol 9 for nanosecond sources).
          const resol = f.format === 'pcapng' ? original.interfaces[0]!.tsResolNs : f.ns ? 1 : 1000;
          expect(conv.interfaces[0]!.tsResolNs).toBe(resol);
          // Sources are at most µs precise except the nanosecond ones; a µs target truncates.
          const usOnly = !f.ns && f.format === 'pcap';
          const want = [...original.records()].map((r) => view(r, usOnly));
          const got = [...conv.records()].map((r) => view(r, usOnly));
          expect(got).toEqual(want);
          expect(linkTypes(out)).toEqual(linkTypes(PUBLIC + file));
        });
      }
    }
  });
}
