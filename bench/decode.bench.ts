/**
 * Benchmark of frame decoding, the two paths gopacket also has:
 *
 *   decode.views.<l4>.<size>        the zero-allocation path: module-level EthernetView,
 *                                   Ipv4View and UdpView/TcpView rebound per frame, checkLen
 *                                   at each layer, every SPEC §5 field of eth/ip/udp|tcp read
 *                                   into a preallocated Float64Array, IPv4 header checksum
 *                                   verified (what a forwarding path does)
 *   decode.views-l4csum.<l4>.<size> the same plus the UDP/TCP checksum over the pseudo
 *                                   header: the same verdicts decodeFrame gives
 *   decode.decodeFrame.<l4>.<size>  src/decode/decode-frame.ts: objects and strings per frame
 *                                   (MACs, addresses, TCP flags as text), as `decode --json`
 *
 * <l4> is udp or tcp; <size> is 64 (the minimum Ethernet frame without FCS) or 1514 (a full
 * 1500-byte IP packet). Each path runs over 256 different frames in turn (ports, IP ids and
 * addresses vary; every checksum valid), built here byte by byte with a local checksum
 * routine rather than by the production encoders.
 *
 * benchDecode(filter?) returns the rows; `npx tsx bench/decode.bench.ts` prints them as JSON
 * lines.
 */
import { decodeFrame } from '../src/decode/decode-frame.ts';
import { EthernetView } from '../src/wire/ethernet.ts';
import { Ipv4View } from '../src/wire/ipv4.ts';
import { TcpView } from '../src/wire/tcp.ts';
import { UdpView } from '../src/wire/udp.ts';
import { type BenchResult, measure, toResult } from './harness.ts';

const FRAMES = 256;
const PROTO_TCP = 6;
const PROTO_UDP = 17;

// ---------------------------------------------------------------------------------------
// Frames

function sum16(b: Buffer, off: number, len: number, acc: number): number {
  for (let i = 0; i < len; i += 2) acc += (b[off + i] << 8) | (i + 1 < len ? b[off + i + 1] : 0);
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return acc;
}

function put16(b: Buffer, off: number, v: number): void {
  b[off] = (v >>> 8) & 0xff;
  b[off + 1] = v & 0xff;
}

function put32(b: Buffer, off: number, v: number): void {
  put16(b, off, v >>> 16);
  put16(b, off + 2, v & 0xffff);
}

/** One Ethernet/IPv4/(UDP|TCP) frame of `size` bytes, number `k` of the set. */
function frame(proto: number, size: number, k: number): Buffer {
  const b = Buffer.alloc(size);
  b.set([0x02, 0x42, 0x0a, 0xf4, 0x01, 0x02, 0x02, 0x42, 0x0a, 0xf4, 0x00, k & 0xff, 0x08, 0x00], 0);
  const ip = 14;
  const src = (0x0af40000 | (k + 2)) >>> 0; // 10.244.0.(k+2)
  const dst = 0x0af40102; // 10.244.1.2
  const total = size - ip;
  b[ip] = 0x45;
  put16(b, ip + 2, total);
  put16(b, ip + 4, 0x1000 + k);
  put16(b, ip + 6, 0x4000); // DF
  b[ip + 8] = 64;
  b[ip + 9] = proto;
  put32(b, ip + 12, src);
  put32(b, ip + 16, dst);
  put16(b, ip + 10, ~sum16(b, ip, 20, 0) & 0xffff);

  const l4 = ip + 20;
  const l4len = total - 20;
  for (let i = l4 + 20; i < size; i++) b[i] = (i * 31 + k) & 0xff; // payload
  let csumAt: number;
  if (proto === PROTO_UDP) {
    put16(b, l4, 40000 + k);
    put16(b, l4 + 2, 53);
    put16(b, l4 + 4, l4len);
    csumAt = l4 + 6;
  } else {
    put16(b, l4, 40000 + k);
    put16(b, l4 + 2, 80);
    put32(b, l4 + 4, 0x12345678 + k * 1000);
    put32(b, l4 + 8, 0x9abcdef0);
    b[l4 + 12] = 0x50; // data offset 5 words
    b[l4 + 13] = 0x18; // PSH ACK
    put16(b, l4 + 14, 502);
    csumAt = l4 + 16;
  }
  put16(b, csumAt, 0);
  const pseudo = (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + l4len;
  let c = ~sum16(b, l4, l4len, pseudo) & 0xffff;
  if (c === 0 && proto === PROTO_UDP) c = 0xffff;
  put16(b, csumAt, c);
  return b;
}

function frames(proto: number, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let k = 0; k < FRAMES; k++) out.push(frame(proto, size, k));
  return out;
}

// ---------------------------------------------------------------------------------------
// The zero-allocation path

const eth = new EthernetView();
const ip4 = new Ipv4View();
const udp = new UdpView();
const tcp = new TcpView();

/** Field slots of the decoded frame; reused by every frame. */
const enum F {
  EthSrc, EthDst, EthType,
  IpSrc, IpDst, IpProto, IpTtl, IpId, IpDf, IpMf, IpFrag, IpLen, IpCsumOk,
  L4Sport, L4Dport, L4Len, TcpSeq, TcpAck, TcpFlags, L4CsumOk,
  Count,
}
const fields = new Float64Array(F.Count);

// One small function per layer: each stays within V8's inlining budget, so the getters are
// inlined and their values go straight into `fields`. Written as one big function, V8 ran
// out of budget (the checksum loops are inlined first), left EthernetView's MAC getters
// and TcpView.ack as calls, and every 48-bit MAC or u32 >= 2^31 they returned was boxed
// in a 16-byte HeapNumber: 32-48 bytes per frame.

/** Ethernet fields; returns the EtherType, or -1 when the header is cut short. */
function decodeEth(buf: Buffer, len: number): number {
  if (eth.bind(buf, 0, len).checkLen() !== null) return -1;
  fields[F.EthSrc] = eth.src;
  fields[F.EthDst] = eth.dst;
  const type = eth.etherType;
  fields[F.EthType] = type;
  return type;
}

/** IPv4 fields and the header checksum verdict; returns false when malformed. */
function decodeIp(buf: Buffer, off: number, len: number): boolean {
  if (ip4.bind(buf, off, len).checkLen() !== null) return false;
  fields[F.IpSrc] = ip4.src;
  fields[F.IpDst] = ip4.dst;
  fields[F.IpProto] = ip4.protocol;
  fields[F.IpTtl] = ip4.ttl;
  fields[F.IpId] = ip4.ident;
  fields[F.IpDf] = ip4.df ? 1 : 0;
  fields[F.IpMf] = ip4.mf ? 1 : 0;
  fields[F.IpFrag] = ip4.fragOffset;
  fields[F.IpLen] = ip4.totalLength;
  fields[F.IpCsumOk] = ip4.checksumOk() ? 1 : 0;
  return true;
}

function decodeUdp(buf: Buffer, off: number, len: number, l4csum: boolean): boolean {
  if (udp.bind(buf, off, len).checkLen() !== null) return false;
  fields[F.L4Sport] = udp.srcPort;
  fields[F.L4Dport] = udp.dstPort;
  fields[F.L4Len] = udp.length;
  if (l4csum) fields[F.L4CsumOk] = udp.checksumOk(ip4.src, ip4.dst) ? 1 : 0;
  return true;
}

function decodeTcp(buf: Buffer, off: number, len: number, l4csum: boolean): boolean {
  if (tcp.bind(buf, off, len).checkLen() !== null) return false;
  fields[F.L4Sport] = tcp.srcPort;
  fields[F.L4Dport] = tcp.dstPort;
  fields[F.TcpSeq] = tcp.seq;
  fields[F.TcpAck] = tcp.ack;
  fields[F.TcpFlags] = tcp.flags;
  if (l4csum) fields[F.L4CsumOk] = tcp.checksumOk(ip4.src, ip4.dst, len) ? 1 : 0;
  return true;
}

/** Decodes one frame into `fields`; returns 0, or 1 when a layer is malformed. */
function decodeViews(buf: Buffer, len: number, l4csum: boolean): number {
  if (decodeEth(buf, len) !== 0x0800) return eth.len < 14 ? 1 : 0;
  const ipOff = eth.payloadOffset;
  if (!decodeIp(buf, ipOff, len - ipOff)) return 1;
  if (ip4.isFragment) return 0;
  const l4Off = ip4.payloadOffset;
  const l4Len = ip4.totalLength - ip4.headerLength;
  const proto = ip4.protocol;
  if (proto === PROTO_UDP) return decodeUdp(buf, l4Off, l4Len, l4csum) ? 0 : 1;
  if (proto === PROTO_TCP) return decodeTcp(buf, l4Off, l4Len, l4csum) ? 0 : 1;
  return 0;
}

let sink = 0;
let lastDecoded: unknown = null;

function viewsLoop(set: Buffer[], l4csum: boolean): (n: number) => void {
  return (n) => {
    let bad = 0;
    let ok = 0;
    for (let i = 0; i < n; i++) {
      const b = set[i & (FRAMES - 1)];
      bad += decodeViews(b, b.length, l4csum);
      ok += fields[F.IpCsumOk] + fields[F.L4Sport];
    }
    sink ^= bad + ok;
  };
}

function decodeFrameLoop(set: Buffer[]): (n: number) => void {
  return (n) => {
    let acc = 0;
    for (let i = 0; i < n; i++) {
      const f = decodeFrame(set[i & (FRAMES - 1)]);
      acc += f.len;
      lastDecoded = f;
    }
    sink ^= acc;
  };
}

/** Fails loudly if a path rejects or misreads the fixtures, so no rate is for a no-op. */
function check(set: Buffer[], proto: number): void {
  for (const b of set) {
    if (decodeViews(b, b.length, true) !== 0 || fields[F.IpCsumOk] !== 1 || fields[F.L4CsumOk] !== 1) {
      throw new Error('decode bench: views path rejects a fixture');
    }
    const d = decodeFrame(b);
    const l4 = proto === PROTO_UDP ? d.udp : d.tcp;
    if (d.error !== undefined || d.ip?.checksumOk !== true || l4?.checksumOk !== true) {
      throw new Error(`decode bench: decodeFrame rejects a fixture: ${JSON.stringify(d)}`);
    }
  }
}

export async function benchDecode(filter: (name: string) => boolean = () => true): Promise<BenchResult[]> {
  const rows: BenchResult[] = [];
  for (const [l4, proto] of [['udp', PROTO_UDP], ['tcp', PROTO_TCP]] as const) {
    for (const size of [64, 1514]) {
      const names = [`decode.views.${l4}.${size}`, `decode.views-l4csum.${l4}.${size}`, `decode.decodeFrame.${l4}.${size}`];
      if (!names.some(filter)) continue;
      const set = frames(proto, size);
      check(set, proto);
      const loops = [viewsLoop(set, false), viewsLoop(set, true), decodeFrameLoop(set)];
      for (let v = 0; v < 3; v++) {
        if (filter(names[v])) rows.push(toResult(measure(names[v], loops[v]), { packet: true, bytes: size }));
      }
    }
  }
  if (sink === 0.5 && lastDecoded === null) console.log('');
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchDecode()) console.log(JSON.stringify(r));
}
