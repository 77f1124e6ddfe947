/**
 * Benchmark of src/wire/checksum.ts: the Internet checksum (RFC 1071) and its incremental
 * update (RFC 1624).
 *
 *   checksum.full.<N>          internetChecksum over an N-byte buffer (20: an IPv4 header,
 *                              64, 1500); gbps counts the bytes summed
 *   checksum.update16          updateChecksum16: one 16-bit word changed (TTL, a port)
 *   checksum.update32          updateChecksum32: one IPv4 address changed (NAT)
 *   checksum.udp.<N>           pseudoHeaderSum + internetChecksum over an N-byte UDP
 *                              datagram (64, 1500), as UdpView.fillChecksum does
 *
 * Each operation works on one of 64 buffers in turn (different contents, all resident in
 * cache), so the figures are for data already in L1/L2: the best case a forwarding path
 * touching a fresh packet can hope for.
 *
 * benchChecksum(filter?) returns the rows; `npx tsx bench/checksum.bench.ts` prints them as
 * JSON lines.
 */
import { internetChecksum, pseudoHeaderSum, updateChecksum16, updateChecksum32 } from '../src/wire/checksum.ts';
import { type BenchResult, measure, toResult } from './harness.ts';

const BUFFERS = 64;

let sink = 0;

/** 64 buffers of `len` pseudo-random bytes (seeded, so every run sums the same data). */
function buffers(len: number, seed: number): Buffer[] {
  let x = seed >>> 0;
  const out: Buffer[] = [];
  for (let b = 0; b < BUFFERS; b++) {
    const buf = Buffer.alloc(len);
    for (let i = 0; i < len; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      buf[i] = x >>> 24;
    }
    out.push(buf);
  }
  return out;
}

function fullSum(bufs: Buffer[], len: number): (n: number) => void {
  return (n) => {
    let acc = 0;
    for (let i = 0; i < n; i++) acc ^= internetChecksum(bufs[i & (BUFFERS - 1)], 0, len);
    sink ^= acc;
  };
}

function udpSum(bufs: Buffer[], len: number): (n: number) => void {
  return (n) => {
    let acc = 0;
    for (let i = 0; i < n; i++) {
      const src = 0x0af40001 + i; // 10.244.0.1 + i: the pseudo header changes per packet
      acc ^= internetChecksum(bufs[i & (BUFFERS - 1)], 0, len, pseudoHeaderSum(src >>> 0, 0x0af40102, 17, len));
    }
    sink ^= acc;
  };
}

function update16(n: number): void {
  let c = 0x1c46;
  for (let i = 0; i < n; i++) c = updateChecksum16(c, 0x4011 + (i & 0xff00), 0x3f11 + (i & 0xff00));
  sink ^= c;
}

function update32(n: number): void {
  let c = 0xb1e6;
  for (let i = 0; i < n; i++) c = updateChecksum32(c, (0x0af40005 + i) >>> 0, 0xc0a80a02);
  sink ^= c;
}

export async function benchChecksum(filter: (name: string) => boolean = () => true): Promise<BenchResult[]> {
  const rows: BenchResult[] = [];
  for (const len of [20, 64, 1500]) {
    const name = `checksum.full.${len}`;
    if (filter(name)) rows.push(toResult(measure(name, fullSum(buffers(len, len), len)), { bytes: len }));
  }
  if (filter('checksum.update16')) rows.push(toResult(measure('checksum.update16', update16)));
  if (filter('checksum.update32')) rows.push(toResult(measure('checksum.update32', update32)));
  for (const len of [64, 1500]) {
    const name = `checksum.udp.${len}`;
    if (filter(name)) rows.push(toResult(measure(name, udpSum(buffers(len, len + 1), len)), { packet: true, bytes: len }));
  }
  if (sink === 0.5) console.log('');
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchChecksum()) console.log(JSON.stringify(r));
}
