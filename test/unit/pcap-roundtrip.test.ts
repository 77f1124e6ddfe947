// Writer round trips: files written by PcapWriter and PcapngWriter read back identically with
// our reader, and tshark and capinfos see the same frames, lengths, timestamps, interfaces,
// directions and comments.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PcapngWriter } from '../../src/pcap/pcapng-writer.ts';
import { PcapWriter } from '../../src/pcap/pcap-writer.ts';
import { readCaptureSync } from '../../src/pcap/reader.ts';
import { directionOf } from '../../src/pcap/record.ts';
import { type CaptureSink, fileSink, memorySink } from '../../src/pcap/sink.ts';
import { capinfosInfo, describeWithTools, parseEpoch, tsharkFields } from '../helpers/tshark.ts';

const dir = mkdtempSync(join(tmpdir(), 'nodeplane-pcap-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What one written packet should look like to any reader. */
interface Frame {
  ifId: number;
  sec: number;
  nsec: number;
  data: Buffer;
  origLen: number;
  direction?: 'in' | 'out';
  comment?: string;
}

/** Deterministic frame bytes: an Ethernet-looking header then a counter pattern. */
function frame(n: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (n * 31 + i) & 0xff;
  b.writeUInt16BE(0x0800, 12);
  return b;
}

/** Writes to a file and to memory at once, so the test can check the file sink is byte-exact. */
function teeSink(path: string): CaptureSink & { bytes(): Buffer } {
  const f = fileSink(path);
  const m = memorySink();
  return { write: (b) => (f.write(b), m.write(b)), close: () => (f.close(), m.close()), bytes: () => m.bytes() };
}

function writePcap(name: string, nanosecond: boolean): { path: string; frames: Frame[] } {
  const path = join(dir, name);
  const sink = teeSink(path);
  const w = new PcapWriter(sink, { nanosecond, snaplen: 1500 });
  const frames: Frame[] = [];
  const times: [number, number][] = [
    [0, 0],
    [1_700_000_000, 1],
    [1_700_000_000, 999_999_999],
    [1_700_000_123, 123_456_789],
    [0xffffffff, 500_000],
  ];
  times.forEach(([sec, nsec], i) => {
    const data = frame(i, 60 + i * 300);
    const origLen = i === 2 ? 9000 : data.length;
    w.writeRecord(sec, nsec, data, origLen);
    const kept = data.subarray(0, Math.min(data.length, 1500));
    frames.push({ ifId: 0, sec, nsec: nanosecond ? nsec : nsec - (nsec % 1000), data: kept, origLen });
  });
  // One frame longer than the snaplen: cut to 1500, wire length kept.
  const long = frame(9, 1600);
  w.writeRecord(5, 5000, long);
  frames.push({ ifId: 0, sec: 5, nsec: 5000, data: long.subarray(0, 1500), origLen: 1600 });
  w.close();
  expect(readFileSync(path).equals(sink.bytes())).toBe(true);
  return { path, frames };
}

const IFACES = [
  { name: 'pa-rx', description: 'port pa', tsResolNs: 1000 as const },
  { name: 'up', tsResolNs: 1 as const },
  { name: 'flannel.1', description: 'vxlan device', tsResolNs: 1000 as const, snaplen: 128 },
];

function writePcapng(): { path: string; frames: Frame[] } {
  const path = join(dir, 'three.pcapng');
  const sink = teeSink(path);
  const w = new PcapngWriter(sink, { comment: 'round trip', application: 'nodeplane test' });
  const ids = IFACES.map((i) => w.addInterface(i));
  expect(ids).toEqual([0, 1, 2]);
  const frames: Frame[] = [];
  for (let n = 0; n < 12; n++) {
    const ifId = n % 3;
    const sec = 1_700_000_000 + n;
    const nsec = (n * 123_456_789) % 1_000_000_000;
    const data = frame(n, 60 + n * 17);
    const direction = n % 4 === 3 ? undefined : n % 2 ? ('out' as const) : ('in' as const);
    const comment = n % 3 === 1 ? `packet ${n}: é ☃` : undefined;
    w.writePacket(ifId, sec, nsec, data, { direction, comment, origLen: data.length + (n === 5 ? 40 : 0) });
    const snaplen = IFACES[ifId]!.snaplen ?? 262144;
    const keep = IFACES[ifId]!.tsResolNs;
    frames.push({
      ifId,
      sec,
      nsec: nsec - (nsec % keep),
      data: data.subarray(0, Math.min(snaplen, data.length)),
      origLen: data.length + (n === 5 ? 40 : 0),
      direction,
      comment,
    });
  }
  w.close();
  expect(readFileSync(path).equals(sink.bytes())).toBe(true);
  return { path, frames };
}

const cases = [
  { label: 'µs pcap', ...writePcap('us.pcap', false), format: 'pcap', resol: [1000] },
  { label: 'ns pcap', ...writePcap('ns.pcap', true), format: 'pcap', resol: [1] },
  { label: '3-interface pcapng', ...writePcapng(), format: 'pcapng', resol: [1000, 1, 1000] },
];

describe('writer round trip through our reader', () => {
  for (const c of cases) {
    it(c.label, () => {
      const cap = readCaptureSync(c.path);
      expect(cap.format).toBe(c.format);
      expect(cap.interfaces.map((i) => i.tsResolNs)).toEqual(c.resol);
      const got = [...cap.records()].map((r) => ({
        ifId: r.interfaceId,
        sec: r.tsSec,
        nsec: r.tsNsec,
        data: Buffer.from(r.data),
        origLen: r.origLen,
        direction: directionOf(r.flags),
        comment: r.comment,
      }));
      expect(got).toEqual(c.frames);
    });
  }

  it('writes interface names, descriptions and snaplens', () => {
    const cap = readCaptureSync(cases[2]!.path);
    expect(cap.interfaces).toEqual([
      { linkType: 1, snaplen: 262144, name: 'pa-rx', description: 'port pa', tsResolNs: 1000 },
      { linkType: 1, snaplen: 262144, name: 'up', tsResolNs: 1 },
      { linkType: 1, snaplen: 128, name: 'flannel.1', description: 'vxlan device', tsResolNs: 1000 },
    ]);
  });

  it('an empty capture is still a valid file', () => {
    const m = memorySink();
    new PcapWriter(m).close();
    expect(m.bytes().length).toBe(24);
    const n = memorySink();
    new PcapngWriter(n).close();
    const { format, count } = readCaptureSync(writeTemp('empty.pcapng', n.bytes()));
    expect([format, count]).toEqual(['pcapng', 0]);
  });
});

function writeTemp(name: string, bytes: Buffer): string {
  const p = join(dir, name);
  const s = fileSink(p);
  s.write(bytes);
  s.close();
  return p;
}

const FIELDS = [
  'frame.number',
  'frame.len',
  'frame.cap_len',
  'frame.time_epoch',
  'frame.interface_id',
  'frame.interface_name',
  'frame.packet_flags_direction',
  'frame.comment',
] as const;

describeWithTools(['tshark', 'capinfos'], 'writer round trip through tshark and capinfos', () => {
  for (const c of cases) {
    it(c.label, () => {
      const rows = tsharkFields(c.path, FIELDS);
      expect(rows.length).toBe(c.frames.length);
      rows.forEach((row, i) => {
        const f = c.frames[i]!;
        const [num, len, caplen, epoch, ifId, ifName, dir, comment] = row;
        expect(Number(num)).toBe(i + 1);
        expect(Number(len)).toBe(f.origLen);
        expect(Number(caplen)).toBe(f.data.length);
        expect(parseEpoch(epoch!)).toEqual([f.sec, f.nsec]);
        if (c.format === 'pcapng') {
          expect(Number(ifId)).toBe(f.ifId);
          expect(ifName).toBe(IFACES[f.ifId]!.name);
          // tshark 4.x prints the direction bits as hex (0x00000001 inbound, 0x00000002 outbound).
          const want = f.direction === 'in' ? 1 : f.direction === 'out' ? 2 : undefined;
          expect(dir ? Number(dir) : undefined).toBe(want);
          expect(comment || undefined).toBe(f.comment);
        }
      });
      const info = capinfosInfo(c.path);
      expect(info.packets).toBe(c.frames.length);
      expect(info.interfaces.length).toBe(c.resol.length);
      info.interfaces.forEach((iface, k) => {
        expect(iface.encapsulation).toMatch(/^Ethernet \(1 /);
        expect(iface.packets).toBe(c.frames.filter((f) => f.ifId === k).length);
        if (c.format === 'pcapng') {
          expect(iface.name).toBe(IFACES[k]!.name);
          expect(iface.snaplen).toBe(IFACES[k]!.snaplen ?? 262144);
          expect(iface.tsResolution || '0x06').toBe(c.resol[k] === 1 ? '0x09' : '0x06');
        } else {
          expect(iface.snaplen).toBe(1500);
        }
      });
    });
  }

  it('tshark sees the frame bytes we wrote', () => {
    const mac = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
    for (const c of cases) {
      const rows = tsharkFields(c.path, ['eth.dst', 'eth.src', 'eth.type']);
      expect(rows).toEqual(c.frames.map((f) => [mac(f.data.subarray(0, 6)), mac(f.data.subarray(6, 12)), '0x0800']));
    }
  });
});
