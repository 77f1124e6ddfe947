// Child process for test/e2e/tap-native.test.ts, run inside a test namespace:
//   ip netns exec NS node bin/run-ts.js test/e2e/tap-fixture.ts '<json config>'
// It opens a TAP device and plays a host at `ip`/`peerMac` on the wire side: it answers
// ARP requests and ICMP echo requests for `ip`, counts UDP datagrams to port 9999 and can
// send UDP datagrams to the kernel. It reports on stdout as JSON lines and takes JSON
// commands on stdin.
import { createInterface } from 'node:readline';
import {
  tapClose,
  tapErrnoName,
  tapOpen,
  tapReadBatch,
  tapStartReading,
  tapStats,
  tapStopReading,
  tapWriteBatch,
  type TapHandle,
} from '../../src/ports/tap-native.ts';
import { parseMac, writeMac } from '../../src/wire/mac.ts';

interface Config {
  mode: 'serve' | 'errors';
  name: string;
  mtu?: number;
  mac?: string;
  ip?: string; // the wire-side host this fixture plays
  peerMac?: string;
  kernelIp?: string;
  maxBatch?: number;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as Config;
const emit = (o: object): void => {
  process.stdout.write(JSON.stringify(o) + '\n');
};

const ipBytes = (s: string): Buffer => Buffer.from(s.split('.').map(Number));
const ipStr = (b: Buffer, o: number): string => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
const macStr = (b: Buffer, o: number): string =>
  [...b.subarray(o, o + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');

function checksum(b: Buffer, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i + 1 < end; i += 2) sum += b.readUInt16BE(i);
  if ((end - start) & 1) sum += b[end - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

if (cfg.mode === 'errors') {
  for (const name of [cfg.name, 'bad/name']) {
    try {
      const h = tapOpen(name);
      tapClose(h);
      emit({ ev: 'open-result', name, ok: true });
    } catch (err) {
      const e = err as { code?: string; message: string };
      emit({ ev: 'open-result', name, ok: false, code: e.code, message: e.message });
    }
  }
  process.exit(0);
}

// ---- serve mode ----
let h: TapHandle;
try {
  h = tapOpen(cfg.name, { mtu: cfg.mtu, mac: cfg.mac, up: true });
} catch (err) {
  const e = err as { code?: string; message: string };
  emit({ ev: 'open-failed', code: e.code, message: e.message });
  process.exit(0);
}

const myIp = ipBytes(cfg.ip!);
const macBytes = (text: string): Buffer => {
  const b = Buffer.alloc(6);
  writeMac(b, 0, parseMac(text));
  return b;
};
const myMac = macBytes(cfg.peerMac!);
const tapMac = macBytes(cfg.mac!);
const CAP = 2048;
const SLOTS = 256;
const MAX_BATCH = cfg.maxBatch ?? 64;
const pool = Buffer.alloc(CAP * SLOTS);
const offsets = new Int32Array(MAX_BATCH);
const lengths = new Int32Array(MAX_BATCH);
let nextSlot = 0;
// Hands the addon fresh slots for every batch (a ring over the pool) so that reading
// at offsets changed between reads is exercised.
const refill = (): void => {
  for (let i = 0; i < MAX_BATCH; i++) {
    offsets[i] = nextSlot * CAP;
    nextSlot = (nextSlot + 1) % SLOTS;
  }
};

const out = Buffer.alloc(CAP * MAX_BATCH);
const outOffsets = new Int32Array(MAX_BATCH);
const outLengths = new Int32Array(MAX_BATCH);
for (let i = 0; i < MAX_BATCH; i++) outOffsets[i] = i * CAP;

let counters = { batches: 0, frames: 0, maxBatchSeen: 0, udp: 0, udpOutOfOrder: 0, arpRequests: 0, echoRequests: 0, written: 0 };
const resetCounters = (): void => {
  counters = { batches: 0, frames: 0, maxBatchSeen: 0, udp: 0, udpOutOfOrder: 0, arpRequests: 0, echoRequests: 0, written: 0 };
};

function handleFrame(f: Buffer, replies: Buffer[]): void {
  if (f.length < 14) return;
  const type = f.readUInt16BE(12);
  if (type === 0x0806 && f.length >= 42 && f.readUInt16BE(20) === 1 && f.subarray(38, 42).equals(myIp)) {
    counters.arpRequests++;
    emit({ ev: 'arp-request', target: ipStr(f, 38), sender: ipStr(f, 28), senderMac: macStr(f, 22) });
    const r = Buffer.alloc(42);
    f.copy(r, 0, 6, 12); // eth dst = requester
    myMac.copy(r, 6);
    r.writeUInt16BE(0x0806, 12);
    r.writeUInt16BE(1, 14); // htype ethernet
    r.writeUInt16BE(0x0800, 16);
    r[18] = 6;
    r[19] = 4;
    r.writeUInt16BE(2, 20); // reply
    myMac.copy(r, 22);
    myIp.copy(r, 28);
    f.copy(r, 32, 22, 32); // tha, tpa = sender's
    replies.push(r);
    return;
  }
  if (type !== 0x0800 || f.length < 34) return;
  const ihl = (f[14]! & 0x0f) * 4;
  const proto = f[23];
  const l4 = 14 + ihl;
  if (proto === 1 && f[l4] === 8 && f.subarray(30, 34).equals(myIp)) {
    counters.echoRequests++;
    const totalLen = f.readUInt16BE(16);
    const r = Buffer.from(f.subarray(0, 14 + totalLen));
    f.copy(r, 0, 6, 12);
    myMac.copy(r, 6);
    f.copy(r, 26, 30, 34); // swap IPs: the header checksum stays valid
    f.copy(r, 30, 26, 30);
    r[l4] = 0; // echo reply
    r.writeUInt16BE(0, l4 + 2);
    r.writeUInt16BE(checksum(r, l4, 14 + totalLen), l4 + 2);
    emit({ ev: 'icmp-echo', from: ipStr(f, 26), seq: f.readUInt16BE(l4 + 6) });
    replies.push(r);
    return;
  }
  if (proto === 17 && f.readUInt16BE(l4 + 2) === 9999) {
    // The sender numbers its datagrams from 0 after each reset: they must come in order.
    if (parseInt(f.toString('latin1', l4 + 8, l4 + 24), 10) !== counters.udp) counters.udpOutOfOrder++;
    counters.udp++;
  }
}

function writeFrames(frames: Buffer[]): number {
  let total = 0;
  for (let start = 0; start < frames.length; start += MAX_BATCH) {
    const chunk = frames.slice(start, start + MAX_BATCH);
    chunk.forEach((fr, i) => {
      fr.copy(out, outOffsets[i]!);
      outLengths[i] = fr.length;
    });
    const n = tapWriteBatch(h, out, outOffsets, outLengths, chunk.length);
    if (n < 0) {
      emit({ ev: 'write-error', code: n, name: tapErrnoName(n) });
      break;
    }
    total += n;
    counters.written += n;
  }
  return total;
}

function readError(code: number): void {
  emit({ ev: 'read-error', code, name: tapErrnoName(code), stats: tapStats(h) });
}

// Reads batches of up to MAX_BATCH while the device has frames (at most 8 per wake-up, as
// TapPort does), each into fresh slots.
function onReadable(status: number): void {
  if (status < 0) {
    readError(status);
    return;
  }
  for (let round = 0; round < 8; round++) {
    refill();
    const count = tapReadBatch(h, MAX_BATCH);
    if (count < 0) {
      readError(count);
      return;
    }
    if (count === 0) return;
    counters.batches++;
    counters.frames += count;
    counters.maxBatchSeen = Math.max(counters.maxBatchSeen, count);
    const replies: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      handleFrame(pool.subarray(offsets[i]!, offsets[i]! + lengths[i]!), replies);
    }
    if (replies.length) writeFrames(replies);
    if (count < MAX_BATCH) return;
  }
}

function udpFrame(seq: number): Buffer {
  const payload = Buffer.from(`datagram ${seq}`);
  const f = Buffer.alloc(14 + 20 + 8 + payload.length);
  tapMac.copy(f, 0);
  myMac.copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(20 + 8 + payload.length, 16);
  f.writeUInt16BE(seq & 0xffff, 18);
  f[22] = 64;
  f[23] = 17;
  myIp.copy(f, 26);
  ipBytes(cfg.kernelIp!).copy(f, 30);
  f.writeUInt16BE(checksum(f, 14, 34), 24);
  f.writeUInt16BE(40000, 34);
  f.writeUInt16BE(9998, 36);
  f.writeUInt16BE(8 + payload.length, 38);
  payload.copy(f, 42); // UDP checksum 0: none
  return f;
}

const start = (): void => {
  tapStartReading(h, pool, offsets, lengths, CAP, onReadable);
};
start();
emit({ ev: 'ready', name: h.name, fd: h.fd });

createInterface({ input: process.stdin }).on('line', (line) => {
  const cmd = JSON.parse(line) as { cmd: string; count?: number };
  switch (cmd.cmd) {
    case 'stats':
      emit({ ev: 'stats', ...counters, native: tapStats(h) });
      break;
    case 'reset':
      resetCounters();
      emit({ ev: 'reset' });
      break;
    case 'pause':
      tapStopReading(h);
      emit({ ev: 'paused' });
      break;
    case 'resume':
      start();
      emit({ ev: 'resumed' });
      break;
    case 'send-udp': {
      const frames = Array.from({ length: cmd.count ?? 1 }, (_, i) => udpFrame(i));
      emit({ ev: 'sent', written: writeFrames(frames) });
      break;
    }
    case 'close':
      tapClose(h);
      emit({ ev: 'closed', stats: tapStats(h) });
      process.exit(0);
  }
});
process.stdin.on('end', () => {
  tapClose(h);
  process.exit(0);
});
