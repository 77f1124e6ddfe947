// Malformed captures: each case is built byte by byte with the small helpers below (not with
// the production writers) and must fail with a CaptureFormatError that names the file and
// the offset of the offending header or block, from both the whole-file and stream readers.
import { describe, expect, it } from 'vitest';
import { CaptureFormatError } from '../../src/pcap/errors.ts';
import { CaptureStreamReader, parseCapture } from '../../src/pcap/reader.ts';

// --- independent byte builders --------------------------------------------------------------

type Endian = 'le' | 'be';

function u16(v: number, e: Endian = 'le'): number[] {
  return e === 'le' ? [v & 0xff, (v >>> 8) & 0xff] : [(v >>> 8) & 0xff, v & 0xff];
}

function u32(v: number, e: Endian = 'le'): number[] {
  const b = [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  return e === 'le' ? b : b.reverse();
}

function bytes(...parts: (number[] | Buffer)[]): Buffer {
  return Buffer.concat(parts.map((p) => Buffer.from(p)));
}

function pcapHeader(snaplen = 65535, e: Endian = 'le'): number[] {
  return [...u32(0xa1b2c3d4, e), ...u16(2, e), ...u16(4, e), ...u32(0, e), ...u32(0, e), ...u32(snaplen, e), ...u32(1, e)];
}

function pcapRecord(caplen: number, dataLen = caplen, origLen = caplen): number[] {
  return [...u32(1_700_000_000), ...u32(5), ...u32(caplen), ...u32(origLen), ...new Array<number>(dataLen).fill(0xab)];
}

/** A pcapng block; `len` and `trailer` override the computed total length. */
function block(type: number, body: number[], o: { len?: number; trailer?: number; e?: Endian } = {}): number[] {
  const total = 12 + body.length;
  return [...u32(type, o.e), ...u32(o.len ?? total, o.e), ...body, ...u32(o.trailer ?? o.len ?? total, o.e)];
}

function shb(e: Endian = 'le'): number[] {
  return block(0x0a0d0d0a, [...u32(0x1a2b3c4d, e), ...u16(1, e), ...u16(0, e), ...u32(0xffffffff), ...u32(0xffffffff)], { e });
}

function idb(snaplen = 65535, e: Endian = 'le'): number[] {
  return block(1, [...u16(1, e), ...u16(0, e), ...u32(snaplen, e)], { e });
}

function epb(ifId: number, caplen: number, dataLen = caplen): number[] {
  const pad = (4 - (dataLen % 4)) % 4;
  return block(6, [...u32(ifId), ...u32(0), ...u32(1000), ...u32(caplen), ...u32(caplen), ...new Array<number>(dataLen + pad).fill(0xcd)]);
}

// --- cases ----------------------------------------------------------------------------------

interface Case {
  name: string;
  file: Buffer;
  offset: number;
  reason: RegExp;
}

const SHB_LEN = 28;
const IDB_LEN = 20;

const cases: Case[] = [
  { name: 'empty file', file: Buffer.alloc(0), offset: 0, reason: /empty file/ },
  { name: 'unknown magic', file: bytes(u32(0xdeadbeef), new Array(20).fill(0)), offset: 0, reason: /unknown magic number 0xefbeadde/ },
  { name: 'too short for a magic number', file: bytes([0xd4, 0xc3]), offset: 0, reason: /truncated file header/ },
  { name: 'truncated global header', file: bytes(pcapHeader().slice(0, 10)), offset: 0, reason: /truncated pcap file header \(10 of 24 bytes\)/ },
  { name: 'truncated record header', file: bytes(pcapHeader(), pcapRecord(4), pcapRecord(4).slice(0, 9)), offset: 24 + 20, reason: /truncated record header in record 2 \(9 of 16 bytes\)/ },
  { name: 'truncated record data', file: bytes(pcapHeader(), pcapRecord(60, 5)), offset: 24, reason: /truncated record data in record 1 \(5 of 60 bytes\)/ },
  { name: 'truncated big-endian record data', file: bytes(pcapHeader(65535, 'be'), [...u32(1, 'be'), ...u32(0, 'be'), ...u32(60, 'be'), ...u32(60, 'be'), 1, 2, 3]), offset: 24, reason: /\(3 of 60 bytes\)/ },
  { name: 'caplen above snaplen', file: bytes(pcapHeader(65535), pcapRecord(8), pcapRecord(300000, 0)), offset: 24 + 24, reason: /record length 300000 exceeds snaplen 65535/ },
  { name: 'pcapng block length not a multiple of 4', file: bytes(shb(), block(1, [...u16(1), ...u16(0), ...u32(0), 0, 0], { len: 22 })), offset: SHB_LEN, reason: /block length 22 is not a multiple of 4/ },
  { name: 'pcapng block length too small', file: bytes(shb(), idb(), block(5, [], { len: 8 })), offset: SHB_LEN + IDB_LEN, reason: /block length 8 is too small/ },
  { name: 'pcapng section header too small', file: bytes(block(0x0a0d0d0a, [...u32(0x1a2b3c4d), 0, 0, 0, 0])), offset: 0, reason: /block length 20 is too small \(minimum 28\)/ },
  { name: 'pcapng trailer mismatch', file: bytes(shb(), block(1, [...u16(1), ...u16(0), ...u32(65535)], { trailer: 24 })), offset: SHB_LEN, reason: /block trailer length 24 does not match block length 20/ },
  { name: 'pcapng bad byte-order magic', file: bytes(block(0x0a0d0d0a, [...u32(0x11223344), ...u16(1), ...u16(0), ...u32(0), ...u32(0)])), offset: 0, reason: /byte-order magic 0x44332211/ },
  { name: 'pcapng EPB on an unknown interface', file: bytes(shb(), idb(), epb(0, 4), epb(3, 4)), offset: SHB_LEN + IDB_LEN + 36, reason: /packet refers to interface 3 but the section has 1 interface/ },
  { name: 'pcapng EPB before any IDB', file: bytes(shb(), epb(0, 4)), offset: SHB_LEN, reason: /interface 0 but the section has 0/ },
  { name: 'pcapng interface ids restart in a new section', file: bytes(shb(), idb(), idb(), shb(), idb(), epb(1, 4)), offset: SHB_LEN * 2 + IDB_LEN * 3, reason: /interface 1 but the section has 1/ },
  { name: 'pcapng EPB data past the block end', file: bytes(shb(), idb(), epb(0, 40, 8)), offset: SHB_LEN + IDB_LEN, reason: /packet data of 40 bytes runs past the end of a 40-byte block/ },
  { name: 'pcapng caplen above snaplen', file: bytes(shb(), idb(1500), epb(0, 270000)), offset: SHB_LEN + IDB_LEN, reason: /record length 270000 exceeds snaplen 1500/ },
  { name: 'pcapng truncated block', file: bytes(shb(), idb(), epb(0, 64).slice(0, 50)), offset: SHB_LEN + IDB_LEN, reason: /truncated block \(50 of 96 bytes\)/ },
  { name: 'pcapng truncated block header', file: bytes(shb(), idb(), [6, 0, 0]), offset: SHB_LEN + IDB_LEN, reason: /truncated block header \(3 of 8 bytes\)/ },
  { name: 'pcapng option past the block end', file: bytes(shb(), block(1, [...u16(1), ...u16(0), ...u32(0), ...u16(2), ...u16(40), 0x65, 0x74, 0x68, 0x30])), offset: SHB_LEN, reason: /option 2 of length 40 runs past the end of its block/ },
  { name: 'big-endian pcapng with a bad trailer', file: bytes(shb('be'), block(1, [...u16(1, 'be'), ...u16(0), ...u32(0)], { e: 'be', trailer: 0x14000000 })), offset: SHB_LEN, reason: /block trailer length 335544320 does not match block length 20/ },
];

function streamError(file: Buffer, name: string): unknown {
  const r = new CaptureStreamReader(name);
  try {
    for (let i = 0; i < file.length; i += 7) for (const _ of r.feed(file.subarray(i, i + 7))) void _;
    r.end();
  } catch (e) {
    return e;
  }
  return undefined;
}

function fileError(file: Buffer, name: string): unknown {
  try {
    const cap = parseCapture(file, name);
    for (const _ of cap.records()) void _;
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('malformed captures', () => {
  for (const c of cases) {
    it(`rejects: ${c.name}`, () => {
      const name = `cases/${c.name.replace(/\W+/g, '-')}.pcap`;
      for (const err of [fileError(c.file, name), streamError(c.file, name)]) {
        expect(err).toBeInstanceOf(CaptureFormatError);
        const e = err as CaptureFormatError;
        expect(e.file).toBe(name);
        expect(e.offset).toBe(c.offset);
        expect(e.message).toMatch(c.reason);
        expect(e.message.startsWith(`${name}: `)).toBe(true);
        expect(e.message.endsWith(` at byte offset ${c.offset}`)).toBe(true);
      }
    });
  }

  it('accepts the well-formed counterparts of the builders', () => {
    const pcap = parseCapture(bytes(pcapHeader(), pcapRecord(8), pcapRecord(70, 70, 1500)), 'ok.pcap');
    expect([...pcap.records()].map((r) => [r.caplen, r.origLen, r.tsSec, r.tsNsec])).toEqual([
      [8, 8, 1_700_000_000, 5000],
      [70, 1500, 1_700_000_000, 5000],
    ]);
    const ng = parseCapture(bytes(shb(), idb(), epb(0, 5), shb('be'), idb(65535, 'be')), 'ok.pcapng');
    expect(ng.interfaces.length).toBe(2);
    expect([...ng.records()].map((r) => [r.caplen, r.interfaceId, r.tsNsec])).toEqual([[5, 0, 1_000_000]]);
  });

  it('the error message carries no stack-worthy detail beyond file, reason and offset', () => {
    const e = fileError(Buffer.from([1, 2, 3, 4, 5]), 'x.pcap') as CaptureFormatError;
    expect(e.message).toBe('x.pcap: unknown magic number 0x01020304 (not a pcap or pcapng file) at byte offset 0');
    expect(e.name).toBe('CaptureFormatError');
  });
});
