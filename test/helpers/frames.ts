/**
 * An independent frame builder for fixtures and tests: plain byte arithmetic, its own
 * checksum, no code shared with src/wire, so a bug there cannot hide in both the fixture and
 * the code under test.
 */

export function mac(s: string): number[] {
  const parts = s.split(':').map((h) => parseInt(h, 16));
  if (parts.length !== 6 || parts.some((p) => !(p >= 0 && p <= 255))) throw new Error(`bad mac ${s}`);
  return parts;
}

export function ip(s: string): number[] {
  const parts = s.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !(Number.isInteger(p) && p >= 0 && p <= 255))) throw new Error(`bad ip ${s}`);
  return parts;
}

export function checksum(bytes: number[] | Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i] << 8) + (i + 1 < bytes.length ? bytes[i + 1] : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 65536);
  return ~sum & 0xffff;
}

const be16 = (v: number): number[] => [(v >> 8) & 0xff, v & 0xff];

export function ethernet(dst: string, src: string, type: number, payload: number[]): Buffer {
  return Buffer.from([...mac(dst), ...mac(src), ...be16(type), ...payload]);
}

export function arp(op: 1 | 2, sha: string, spa: string, tha: string, tpa: string): number[] {
  return [0, 1, 8, 0, 6, 4, 0, op, ...mac(sha), ...ip(spa), ...mac(tha), ...ip(tpa)];
}

export interface Ipv4Options {
  src: string;
  dst: string;
  proto: number;
  ttl?: number;
  id?: number;
  df?: boolean;
  mf?: boolean;
  fragOffset?: number;
  /** Corrupts the header checksum when set. */
  badChecksum?: boolean;
}

export function ipv4(o: Ipv4Options, payload: number[]): number[] {
  const total = 20 + payload.length;
  const flags = (o.df ? 0x4000 : 0) | (o.mf ? 0x2000 : 0) | ((o.fragOffset ?? 0) >> 3);
  const h = [0x45, 0, ...be16(total), ...be16(o.id ?? 0x1234), ...be16(flags), o.ttl ?? 64, o.proto, 0, 0, ...ip(o.src), ...ip(o.dst)];
  let c = checksum(h);
  if (o.badChecksum) c ^= 0x5555;
  h[10] = c >> 8;
  h[11] = c & 0xff;
  return [...h, ...payload];
}

export function icmpEcho(type: 0 | 8, id: number, seq: number, data: number[]): number[] {
  const m = [type, 0, 0, 0, ...be16(id), ...be16(seq), ...data];
  const c = checksum(m);
  m[2] = c >> 8;
  m[3] = c & 0xff;
  return m;
}

export function udp(src: string, dst: string, sport: number, dport: number, data: number[]): number[] {
  const len = 8 + data.length;
  const seg = [...be16(sport), ...be16(dport), ...be16(len), 0, 0, ...data];
  const pseudo = [...ip(src), ...ip(dst), 0, 17, ...be16(len), ...seg];
  const c = checksum(pseudo) || 0xffff;
  seg[6] = c >> 8;
  seg[7] = c & 0xff;
  return seg;
}

/** TCP flag bits. */
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

/** A TCP segment (20-byte header, no options) with its checksum over the pseudo header. */
export function tcp(src: string, dst: string, sport: number, dport: number, flags: number, seq: number, ack: number, data: number[] = []): number[] {
  const be32 = (v: number): number[] => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  const seg = [...be16(sport), ...be16(dport), ...be32(seq), ...be32(ack), 0x50, flags, ...be16(65535), 0, 0, 0, 0, ...data];
  const pseudo = [...ip(src), ...ip(dst), 0, 6, ...be16(seg.length), ...seg];
  const c = checksum(pseudo);
  seg[16] = c >> 8;
  seg[17] = c & 0xff;
  return seg;
}

/** An ICMP error (type, code, the 32-bit word after the checksum) quoting `quoted` (an IPv4 datagram). */
export function icmpError(type: number, code: number, quoted: number[], word = 0): number[] {
  const m = [type, code, 0, 0, (word >>> 24) & 0xff, (word >>> 16) & 0xff, (word >>> 8) & 0xff, word & 0xff, ...quoted];
  const c = checksum(m);
  m[2] = c >> 8;
  m[3] = c & 0xff;
  return m;
}

export function bytes(n: number, seed = 1): number[] {
  const out: number[] = [];
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    out.push((x >> 16) & 0xff);
  }
  return out;
}

export interface PcapRecordIn {
  tsUs: number;
  frame: Buffer;
}

/** A classic little-endian microsecond pcap, written by hand. */
export function pcapFile(records: PcapRecordIn[]): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(1, 20);
  const parts: Buffer[] = [header];
  for (const r of records) {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(Math.floor(r.tsUs / 1e6), 0);
    h.writeUInt32LE(r.tsUs % 1e6, 4);
    h.writeUInt32LE(r.frame.length, 8);
    h.writeUInt32LE(r.frame.length, 12);
    parts.push(h, r.frame);
  }
  return Buffer.concat(parts);
}
