/**
 * Fuzzing decodeFrame with 100,000 seeded frames: real frames of the public captures (when
 * present) and hand-built ones, truncated at every length, with bit flips, with length fields
 * that lie (IHL, total length, UDP length, TCP data offset, ARP address lengths, VXLAN flags
 * and inner frame), plus random bytes. Every frame must decode without an exception into
 * fields or an `error` reason, its JSON and text forms must build, and the decoder must never
 * look past caplen (the same bytes followed by garbage decode identically).
 */
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { decodeFrame } from '../../src/decode/decode-frame.ts';
import { formatFrameText } from '../../src/decode/format-text.ts';
import type { DecodedFrame } from '../../src/decode/types.ts';
import { readCaptureSync } from '../../src/pcap/reader.ts';

const TOTAL = 100_000;
const SEED = 20240611;

/** mulberry32: a small seeded PRNG, independent of Math.random. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ETH_IP = '00 16 3e 08 71 cf 36 dc 85 1e b3 40 08 00';
const IP_UDP = (len: number) => `45 00 ${len.toString(16).padStart(4, '0')} d2 c0 40 00 40 11 00 00 c0 a8 cb 01 c0 a8 ca 01`;

/** Hand-built seeds (bytes written out, not produced by the encoders under test). */
const HAND: Buffer[] = [
  // Ethernet / IPv4 / UDP 4789 / VXLAN vni 100 / Ethernet / IPv4 / TCP SYN
  hex(`${ETH_IP} ${IP_UDP(20 + 8 + 8 + 14 + 40)} b0 5d 12 b5 00 46 00 00  08 00 00 00 00 00 64 00
       00 30 88 01 00 02 00 16 3e 37 f6 04 08 00
       45 00 00 28 00 01 40 00 40 06 00 00 0a 00 00 01 0a 00 00 02
       9c 40 00 50 00 00 00 01 00 00 00 00 50 02 ff ff 00 00 00 00`),
  // Ethernet / 802.1Q vid 123 / ARP request
  hex(`ff ff ff ff ff ff 00 18 73 de 57 c1 81 00 00 7b 08 06
       00 01 08 00 06 04 00 01 00 18 73 de 57 c1 c0 a8 7b 02 00 00 00 00 00 00 c0 a8 7b 01`),
  // QinQ 802.1ad + 802.1Q / IPv4 / ICMP echo
  hex(`00 10 db 88 d2 ef c8 bc c8 96 d2 a0 88 a8 00 c8 81 00 27 d1 08 00
       45 00 00 1c 00 02 00 00 40 01 00 00 0a 00 00 01 0a 00 00 02 08 00 f7 fe 00 01 00 00`),
  // IPv4 / ICMP port unreachable quoting IPv4 / UDP
  hex(`${ETH_IP} 45 00 00 38 00 03 00 00 40 01 00 00 0a 00 00 02 0a 00 00 01
       03 03 00 00 00 00 00 00 45 00 00 30 00 04 00 00 40 11 00 00 0a 00 00 01 0a 00 00 02 d4 31 00 35 00 1c 00 00`),
  // IPv4 with options, first fragment of a UDP 8472 datagram
  hex(`${ETH_IP} 46 00 00 2c 00 05 20 00 40 11 00 00 0a 00 00 01 0a 00 00 02 01 01 01 00
       30 39 21 18 05 dc 00 00 08 00 00 00 00 00 01 00`),
  // IPv6 / fragment header / UDP
  hex(`00 16 3e 08 71 cf 36 dc 85 1e b3 40 86 dd 60 00 00 00 00 18 2c 40
       20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02
       11 00 00 01 00 00 00 07 00 35 d4 31 00 10 00 00`),
];

const DIR = fileURLToPath(new URL('../../../shared/captures/public/', import.meta.url));
function realFrames(): { data: Buffer; linkType: number }[] {
  if (!existsSync(DIR)) {
    console.log(`decode-fuzz: the public captures folder ${DIR} is absent; fuzzing hand-built frames only`);
    return [];
  }
  const out: { data: Buffer; linkType: number }[] = [];
  for (const f of readdirSync(DIR).filter((x) => /\.(pcap|pcapng)$/.test(x)).sort()) {
    const cap = readCaptureSync(DIR + f);
    for (const r of cap.records()) out.push({ data: Buffer.from(r.data), linkType: cap.interfaces[r.interfaceId].linkType });
  }
  return out;
}

const REASON = /^[a-z0-9][a-zA-Z0-9 ]*[a-z0-9]$/;

function check(f: DecodedFrame, label: string): void {
  const hasFields = f.eth !== undefined || f.loopback !== undefined || f.ip !== undefined || f.ip6 !== undefined;
  if (f.error !== undefined && !REASON.test(f.error)) throw new Error(`${label}: odd error text ${JSON.stringify(f.error)}`);
  if (!hasFields && f.error === undefined) throw new Error(`${label}: neither fields nor an error`);
  JSON.parse(JSON.stringify(f));
  formatFrameText(f, 0, 0);
}

/** Offsets of interesting length fields in an Ethernet/IPv4 frame (tags skipped). */
function lengthFieldOffsets(b: Buffer): number[] {
  let p = 12;
  while (p + 4 <= b.length && (b.readUInt16BE(p) === 0x8100 || b.readUInt16BE(p) === 0x88a8)) p += 4;
  const ip = p + 2;
  const offs = [ip, ip + 2, ip + 3, ip + 6]; // IHL/version, total length, fragment bits
  if (ip + 20 <= b.length) {
    const l4 = ip + ((b[ip] & 0xf) << 2);
    offs.push(l4 + 4, l4 + 5, l4 + 12, l4 + 8); // UDP length, TCP data offset, VXLAN flags
    offs.push(ip + 4, ip + 5); // ARP hlen/plen when this is ARP
  }
  return offs.filter((o) => o < b.length);
}

describe('decodeFrame fuzzing', () => {
  it(`survives ${TOTAL} random and mutated frames`, () => {
    const rnd = prng(SEED);
    const int = (n: number) => Math.floor(rnd() * n);
    const seeds = [...realFrames(), ...HAND.map((data) => ({ data, linkType: 1 }))];
    const stats = { frames: 0, errors: 0, vxlan: 0, truncations: 0 };
    const errors = new Map<string, number>();
    const garbage = Buffer.alloc(256);

    const run = (data: Buffer, linkType: number, label: string, origLen = data.length, compareTail = false) => {
      stats.frames++;
      let f: DecodedFrame;
      try {
        f = decodeFrame(data, data.length, origLen, linkType);
      } catch (e) {
        throw new Error(`${label}: decodeFrame threw ${(e as Error).stack}\nframe ${data.toString('hex')}`);
      }
      check(f, label);
      if (f.error !== undefined) {
        stats.errors++;
        errors.set(f.error, (errors.get(f.error) ?? 0) + 1);
      }
      if (f.vxlan) stats.vxlan++;
      if (compareTail) {
        // Same bytes, then garbage after caplen: must decode identically.
        for (let i = 0; i < garbage.length; i++) garbage[i] = int(256);
        const big = Buffer.concat([data, garbage]);
        const g = decodeFrame(big, data.length, origLen, linkType);
        if (JSON.stringify(g) !== JSON.stringify(f)) throw new Error(`${label}: decoder read past caplen\n${data.toString('hex')}`);
      }
    };

    // 1. Every truncation of every seed frame (capped so the other kinds keep their share).
    outer: for (const { data, linkType } of seeds) {
      const step = data.length > 300 ? Math.ceil(data.length / 150) : 1;
      for (let k = 0; k <= data.length; k += step) {
        if (stats.frames >= TOTAL * 0.4) break outer;
        stats.truncations++;
        run(data.subarray(0, k), linkType, `truncate ${k}`, data.length, true);
      }
    }
    // 2-4. Bit flips, lying length fields, VXLAN inner corruption, random bytes.
    while (stats.frames < TOTAL) {
      const kind = int(10);
      if (kind === 0) {
        const b = Buffer.alloc(int(200));
        for (let i = 0; i < b.length; i++) b[i] = int(256);
        if (b.length > 13 && rnd() < 0.7) b.writeUInt16BE([0x0800, 0x0806, 0x86dd, 0x8100][int(4)], 12);
        run(b, rnd() < 0.9 ? 1 : [0, 101, 108, 228, 229, 147][int(6)], 'random', b.length, true);
        continue;
      }
      const s = seeds[int(seeds.length)];
      const b = Buffer.from(s.data);
      if (b.length === 0) continue;
      if (kind <= 3) {
        for (let n = 1 + int(8); n > 0; n--) b[int(b.length)] ^= 1 << int(8);
      } else if (kind <= 7) {
        const offs = lengthFieldOffsets(b);
        for (let n = 1 + int(3); n > 0 && offs.length > 0; n--) {
          const o = offs[int(offs.length)];
          b[o] = rnd() < 0.5 ? int(256) : b[o] ^ (1 << int(8));
        }
      } else {
        // Corrupt bytes deep inside (a VXLAN inner frame, an ICMP quote) and maybe cut the end.
        const from = Math.min(b.length - 1, 42 + int(40));
        for (let n = 1 + int(6); n > 0; n--) b[from + int(b.length - from)] = int(256);
      }
      const cut = rnd() < 0.3 ? int(b.length + 1) : b.length;
      const origLen = rnd() < 0.2 ? b.length + int(3000) : cut;
      run(b.subarray(0, cut), s.linkType, `mutate kind ${kind}`, origLen, rnd() < 0.1);
    }

    expect(stats.frames).toBe(TOTAL);
    expect(stats.errors).toBeGreaterThan(TOTAL / 10);
    expect(stats.vxlan).toBeGreaterThan(100);
    console.log('decode-fuzz:', stats, Object.fromEntries([...errors].sort((a, b) => b[1] - a[1])));
  });
});
