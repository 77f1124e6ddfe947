// Every public capture reads without error, and each record's lengths, timestamp and
// interface match what Wireshark recorded in expected/<file>.fields.tsv.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readCaptureSync } from '../../src/pcap/reader.ts';
import { parseEpoch } from '../helpers/tshark.ts';

const PUBLIC = fileURLToPath(new URL('../../../shared/captures/public/', import.meta.url));
const havePublic = existsSync(PUBLIC);
if (!havePublic) console.warn(`skipping pcap-public: no shared captures beside the repository (${PUBLIC})`);

const files = havePublic ? readdirSync(PUBLIC).filter((f) => /\.pcap(ng)?$/.test(f)).sort() : [];

interface Expected {
  len: number;
  caplen: number;
  sec: number;
  nsec: number;
  ifId: number;
}

function expectedRows(file: string): Expected[] {
  const lines = readFileSync(`${PUBLIC}expected/${file}.fields.tsv`, 'utf8').split('\n').filter(Boolean);
  const head = lines[0]!.split('\t');
  const col = (name: string) => {
    const i = head.indexOf(name);
    if (i < 0) throw new Error(`${file}.fields.tsv has no column ${name}`);
    return i;
  };
  const [len, cap, time, ifc] = [col('frame.len'), col('frame.cap_len'), col('frame.time_epoch'), col('frame.interface_id')];
  return lines.slice(1).map((l) => {
    const c = l.split('\t');
    const [sec, nsec] = parseEpoch(c[time]!);
    return { len: Number(c[len]), caplen: Number(c[cap]), sec, nsec, ifId: c[ifc] ? Number(c[ifc]) : 0 };
  });
}

describe.skipIf(!havePublic)('public captures', () => {
  it('finds the captures', () => {
    expect(files.length).toBeGreaterThan(30);
    expect(files.some((f) => f.endsWith('.pcapng'))).toBe(true);
  });

  for (const file of files) {
    it(`reads ${file} like Wireshark`, () => {
      const cap = readCaptureSync(PUBLIC + file);
      expect(cap.format).toBe(file.endsWith('.pcapng') ? 'pcapng' : 'pcap');
      const want = expectedRows(file);
      const got = [...cap.records()].map((r) => ({
        len: r.origLen,
        caplen: r.caplen,
        sec: r.tsSec,
        nsec: r.tsNsec,
        ifId: r.interfaceId,
        dataLen: r.data.length,
      }));
      expect(got.length).toBe(want.length);
      expect(cap.count).toBe(want.length);
      for (let i = 0; i < got.length; i++) {
        const { dataLen, ...rest } = got[i]!;
        expect(rest, `${file} record ${i + 1}`).toEqual(want[i]);
        expect(dataLen).toBe(rest.caplen);
      }
    });
  }

  it.skipIf(!files.includes('pcpp_many_interfaces-1.pcapng'))('reads all 11 interfaces of a multi-interface pcapng', () => {
    const cap = readCaptureSync(PUBLIC + 'pcpp_many_interfaces-1.pcapng');
    expect(cap.interfaces.length).toBe(11);
    expect(cap.interfaces[0]).toMatchObject({ name: 'en0', linkType: 1, snaplen: 262144, tsResolNs: 1000 });
    // Interface 10 is lo0 with LINKTYPE_NULL (0): its frames have no Ethernet header.
    expect(cap.interfaces[10]).toMatchObject({ linkType: 0 });
  });

  it.skipIf(!files.includes('pcpp_nanosecs_big_endian.pcap'))('reads a big-endian nanosecond pcap', () => {
    const cap = readCaptureSync(PUBLIC + 'pcpp_nanosecs_big_endian.pcap');
    expect(cap.interfaces).toEqual([{ linkType: 1, snaplen: 262144, tsResolNs: 1 }]);
  });

  it.skipIf(!files.includes('zeek_trunc-hdr.pcap'))('tolerates a record longer than a bogus snaplen, as Wireshark does', () => {
    // snaplen 1, one record of caplen 8: see caplenLimit() in src/pcap/pcap-format.ts.
    const cap = readCaptureSync(PUBLIC + 'zeek_trunc-hdr.pcap');
    expect(cap.interfaces[0]!.snaplen).toBe(1);
    expect([...cap.records()].map((r) => r.caplen)).toEqual([8]);
  });

  it.skipIf(!files.includes('tcpdump_udp-length-heapoverflow.pcap'))('masks FCS bits out of the link-type word', () => {
    // The header's link-type word is 0x30000001: LINKTYPE_ETHERNET with bits 28-31 set but no F bit.
    const cap = readCaptureSync(PUBLIC + 'tcpdump_udp-length-heapoverflow.pcap');
    expect(cap.interfaces[0]!.linkType).toBe(1);
    expect(cap.interfaces[0]!.fcsLen).toBeUndefined();
  });
});
