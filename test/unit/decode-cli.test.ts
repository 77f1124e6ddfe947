/**
 * `nodeplane decode` as a user runs it: the real launcher in a child process. Good captures
 * give one line per frame (text) or one JSON object per line (--json); bad input gives exactly
 * one line on stderr naming the file, a non-zero exit and no stack trace. The bad files are
 * built by hand in a temporary directory.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../../bin/nodeplane.js', import.meta.url));
const PUBLIC = fileURLToPath(new URL('../../../shared/captures/public/', import.meta.url));
const TMP = mkdtempSync(join(tmpdir(), 'nodeplane-decode-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function nodeplane(...args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { maxBuffer: 1 << 26 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Classic little-endian microsecond pcap: file header + records. */
function pcap(snaplen: number, records: { data: Buffer; caplen?: number; origLen?: number; sec?: number; usec?: number }[]): Buffer {
  const h = Buffer.alloc(24);
  h.writeUInt32LE(0xa1b2c3d4, 0);
  h.writeUInt16LE(2, 4);
  h.writeUInt16LE(4, 6);
  h.writeUInt32LE(snaplen, 16);
  h.writeUInt32LE(1, 20);
  const parts: Buffer[] = [h];
  for (const r of records) {
    const rh = Buffer.alloc(16);
    rh.writeUInt32LE(r.sec ?? 1700000000, 0);
    rh.writeUInt32LE(r.usec ?? 250000, 4);
    rh.writeUInt32LE(r.caplen ?? r.data.length, 8);
    rh.writeUInt32LE(r.origLen ?? r.data.length, 12);
    parts.push(rh, r.data);
  }
  return Buffer.concat(parts);
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
// Broadcast ARP request who-has 10.0.0.1 tell 10.0.0.2, and an IPv4/ICMP echo request.
const ARP = hex('ff ff ff ff ff ff 78 31 c1 c6 3f c2 08 06 00 01 08 00 06 04 00 01 78 31 c1 c6 3f c2 0a 00 00 02 00 00 00 00 00 00 0a 00 00 01');
const PING = hex(`00 10 db 88 d2 ef c8 bc c8 96 d2 a0 08 00 45 00 00 1c 00 01 00 00 40 01 66 de 0a 00 00 01 0a 00 00 02
                  08 00 f7 fe 00 01 00 00`);

function file(name: string, bytes: Buffer): string {
  const p = join(TMP, name);
  writeFileSync(p, bytes);
  return p;
}

function expectUserError(r: Result, path: string): void {
  expect(r.code).not.toBe(0);
  expect(r.stdout).toBe('');
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toContain(path);
  expect(r.stderr).not.toMatch(/\n\s+at |Error:|node:internal/);
}

describe('nodeplane decode (CLI)', () => {
  it('prints one text line per frame', async () => {
    const p = file('good.pcap', pcap(65535, [{ data: ARP }, { data: PING, sec: 1700000001, usec: 5 }]));
    const r = await nodeplane('decode', p);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    expect(lines).toEqual([
      '2023-11-14 22:13:20.250000 78:31:c1:c6:3f:c2 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: ARP, Request who-has 10.0.0.1 tell 10.0.0.2',
      '2023-11-14 22:13:21.000005 c8:bc:c8:96:d2:a0 > 00:10:db:88:d2:ef, ethertype IPv4 (0x0800), length 42: IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 0, length 8',
    ]);
  });

  it('prints one JSON object per line with n and ts', async () => {
    const p = file('good-json.pcap', pcap(65535, [{ data: ARP }, { data: PING, sec: 1700000001, usec: 5 }]));
    const r = await nodeplane('decode', p, '--json');
    expect(r.code).toBe(0);
    const objs = r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
    expect(objs).toHaveLength(2);
    expect(objs[0]).toMatchObject({
      n: 1, ts: 1700000000.25, len: 42, caplen: 42,
      eth: { src: '78:31:c1:c6:3f:c2', dst: 'ff:ff:ff:ff:ff:ff', type: '0x0806' },
      arp: { op: 1, sha: '78:31:c1:c6:3f:c2', spa: '10.0.0.2', tha: '00:00:00:00:00:00', tpa: '10.0.0.1' },
    });
    expect(objs[1]).toMatchObject({
      n: 2, ts: 1700000001.000005,
      ip: { src: '10.0.0.1', dst: '10.0.0.2', proto: 1, ttl: 64, id: 1, df: false, mf: false, fragOffset: 0, len: 28, checksumOk: true },
      icmp: { type: 8, code: 0, id: 1, seq: 0, checksumOk: true },
    });
    expect(objs[1].error).toBeUndefined();
  });

  it.skipIf(!existsSync(PUBLIC))('decodes every frame of a public VXLAN capture, text and JSON alike', async () => {
    const p = join(PUBLIC, 'tcpdump_vxlan_port_8472.pcap');
    const [text, json] = await Promise.all([nodeplane('decode', p), nodeplane('decode', p, '--json')]);
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(10);
    expect(lines[0]).toContain('VXLAN, flags [I] (0x08), vni 100');
    expect(lines[0]).toContain('ICMP echo request, id 1292, seq 1, length 64');
    const objs = json.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(objs.map((o) => o.n)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(objs[0].vxlan).toMatchObject({ vni: 100, inner: { icmp: { type: 8, id: 1292, seq: 1 } } });
    expect(typeof objs[0].ts).toBe('number');
  });

  it('rejects an empty file', async () => {
    const p = file('empty.pcap', Buffer.alloc(0));
    expectUserError(await nodeplane('decode', p), p);
  });

  it('rejects a file with a wrong magic', async () => {
    const p = file('magic.pcap', Buffer.concat([Buffer.from('not a capture file at all'), Buffer.alloc(40)]));
    expectUserError(await nodeplane('decode', p, '--json'), p);
  });

  it('rejects a truncated file (record cut short)', async () => {
    const whole = pcap(65535, [{ data: ARP }, { data: PING }]);
    const p = file('truncated.pcap', whole.subarray(0, whole.length - 10));
    expectUserError(await nodeplane('decode', p), p);
  });

  it('rejects a record longer than the snaplen allows', async () => {
    const big = Buffer.alloc(300_000, 0x5a);
    const p = file('oversized.pcap', pcap(65535, [{ data: ARP }, { data: big }]));
    expectUserError(await nodeplane('decode', p), p);
  });

  it('rejects a missing file', async () => {
    const p = join(TMP, 'does-not-exist.pcap');
    const r = await nodeplane('decode', p);
    expectUserError(r, p);
    expect(r.stderr).toContain('no such file');
  });
});
