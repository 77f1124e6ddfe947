/**
 * The shared harness of the stage tests: a Dataplane built from a small config, a virtual
 * clock, one recording sink per port, and frame readers written from the RFC layouts (no code
 * shared with src/wire or src/decode, as test/helpers/frames.ts builds frames independently).
 *
 * Importing this file adds an afterEach hook to the importing test file: every Harness a test
 * made is settled (all neighbour timers run to the end, so queued packets are released) and
 * then must have no frame left in any stage queue and every pool slot back on the free list.
 * A stage that forgets to free a slot on any path fails the test that took that path.
 *
 * The pool is pre-filled with 0xa5 (as smoltcp's construct tests pre-fill their buffers), so
 * a stage that reads bytes it never wrote sees a multicast bit and a non-zero value.
 *
 * This file is a test file too: the harness's own checks run only when it is the file under
 * test, not in every file that imports it.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import * as F from '../helpers/frames.ts';

export const T0 = 1_700_000_000_000_000;
export const SEC = 1_000_000;
export const MS = 1_000;

/** Three pods on cni0, an uplink with a default route, and a narrow (MTU 1000) L3 link. */
export const LAB = `
node: { name: node1 }
bridges:
  - { name: cni0, address: 10.244.1.1/24, mac: 0a:58:0a:f4:01:01 }
ports:
  - { name: pa, bridge: cni0 }
  - { name: pb, bridge: cni0 }
  - { name: pc, bridge: cni0 }
  - { name: up, address: 192.168.50.11/24, mac: 02:00:00:00:50:11 }
  - { name: slow, address: 10.9.0.1/24, mac: 02:00:00:00:09:01, mtu: 1000 }
routes:
  - { dst: default, via: 192.168.50.1 }
  - { dst: 203.0.113.0/24, via: 192.168.50.2 }
  - { dst: 10.200.0.0/16, via: 10.9.0.2 }
neighbors:
  - { ip: 192.168.50.1, mac: 02:00:00:00:50:01, dev: up }
  - { ip: 192.168.50.2, mac: 02:00:00:00:50:02, dev: up }
  - { ip: 10.9.0.2, mac: 02:00:00:00:09:02, dev: slow }
`;

export const GW = { mac: '0a:58:0a:f4:01:01', ip: '10.244.1.1' };
export const UP = { mac: '02:00:00:00:50:11', ip: '192.168.50.11' };
export const SLOW = { mac: '02:00:00:00:09:01', ip: '10.9.0.1' };
export const UPSTREAM = { mac: '02:00:00:00:50:01', ip: '192.168.50.1' };
export const UPSTREAM2 = { mac: '02:00:00:00:50:02', ip: '192.168.50.2' };
export const SLOW_GW = { mac: '02:00:00:00:09:02', ip: '10.9.0.2' };
export const BCAST = 'ff:ff:ff:ff:ff:ff';

export interface Host {
  port: string;
  mac: string;
  ip: string;
}
export const A: Host = { port: 'pa', mac: '0a:58:0a:f4:01:02', ip: '10.244.1.2' };
export const B: Host = { port: 'pb', mac: '0a:58:0a:f4:01:03', ip: '10.244.1.3' };
export const C: Host = { port: 'pc', mac: '0a:58:0a:f4:01:04', ip: '10.244.1.4' };

const live: Harness[] = [];

export class Harness {
  readonly clock = new VirtualClock();
  readonly dp: Dataplane;
  readonly startAvailable: number;
  private out: Record<string, Buffer[]> = {};
  private outTs: Record<string, number[]> = {};

  constructor(yaml = LAB, poolSize = 512) {
    this.clock.set(T0);
    this.dp = new Dataplane(parseConfig(yaml, 'test'), { clock: this.clock, poolSize });
    this.dp.pool.data.fill(0xa5);
    this.dp.ctx.ports.names.forEach((name) => this.attach(name));
    this.startAvailable = this.dp.pool.available;
    live.push(this);
  }

  /** Gives port `name` (of the config, or added at run time) a recording sink as its driver. */
  attach(name: string): void {
    this.out[name] = [];
    this.outTs[name] = [];
    this.dp.setDriver(this.port(name), {
      transmit: (pool, slots, n) => {
        for (let i = 0; i < n; i++) {
          this.out[name].push(Buffer.from(pool.view(slots[i])));
          this.outTs[name].push(this.clock.nowUs());
        }
        return n;
      },
    });
  }

  /** Forgets the sink of a port removed at run time. */
  detach(name: string): void {
    delete this.out[name];
    delete this.outTs[name];
  }

  get now(): number {
    return this.clock.nowUs();
  }

  port(name: string): number {
    const p = this.dp.portIndex(name);
    if (p < 0) throw new Error(`no port ${name}`);
    return p;
  }

  /** Runs every timer due up to `toUs` at its own instant, then sets the clock to `toUs` and runs. */
  advance(toUs: number): void {
    for (let guard = 0; guard < 100_000; guard++) {
      const t = this.dp.nextTimerUs();
      if (t > toUs) break;
      this.clock.set(t);
      this.dp.run();
    }
    this.clock.set(toUs);
    this.dp.run();
  }

  /** Receives one frame on `port` at `atUs` (default: now), after the timers due by then. */
  rx(port: string, frame: Buffer, atUs = this.now): void {
    this.rxBatch(port, [frame], atUs);
  }

  /** Receives frames on `port` as one batch (one dispatch) at `atUs`. */
  rxBatch(port: string, frames: Buffer[], atUs = this.now): void {
    this.advance(atUs);
    const p = this.port(port);
    for (const f of frames) expect(this.dp.receive(p, f)).toBe(true);
    this.dp.run();
  }

  /** Frames sent on `port` since the last take, and forgets them. */
  take(port: string): Buffer[] {
    if (this.out[port] === undefined) this.port(port);
    const f = this.out[port];
    this.out[port] = [];
    this.outTs[port] = [];
    return f;
  }

  /** Send times (µs) of the frames not yet taken from `port`. */
  times(port: string): number[] {
    return [...this.outTs[port]];
  }

  /** Forgets everything sent so far on every port. */
  clear(): void {
    for (const name of Object.keys(this.out)) this.take(name);
  }

  counters(stage: string): { packets: number; drops: Record<string, number> } {
    const c = this.dp.stageCounters()[stage];
    if (!c) throw new Error(`no stage ${stage}`);
    return c;
  }

  drops(stage: string): Record<string, number> {
    return this.counters(stage).drops;
  }

  /**
   * Runs every timer due in the next five minutes at its own instant: far beyond any
   * resolution, DELAY or PROBE the tests start, so waiting packets have all been released.
   */
  settle(): void {
    this.advance(this.now + 300 * SEC);
  }

  /** No frame queued at any stage, and every slot back in the pool. */
  checkClean(): void {
    const queued = this.dp.graph.stages.filter((s) => s.queued !== 0).map((s) => `${s.name}: ${s.queued}`);
    expect(queued, 'frames left in stage queues').toEqual([]);
    expect(this.dp.pool.available, 'free slots (a lower count is a leaked slot)').toBe(this.startAvailable);
  }
}

afterEach(() => {
  for (const h of live.splice(0)) {
    h.settle();
    h.checkClean();
  }
});

// ---------------------------------------------------------------- frame builders

export interface UdpOpts {
  from: Host | { mac: string; ip: string };
  toMac: string;
  dst: string;
  src?: string;
  ttl?: number;
  df?: boolean;
  mf?: boolean;
  fragOffset?: number;
  id?: number;
  dataLen?: number;
  dport?: number;
  sport?: number;
  badChecksum?: boolean;
  seed?: number;
}

/** An Ethernet frame carrying an IPv4 UDP datagram. */
export function udpFrame(o: UdpOpts): Buffer {
  const src = o.src ?? o.from.ip;
  const payload = F.udp(src, o.dst, o.sport ?? 40000, o.dport ?? 5353, F.bytes(o.dataLen ?? 32, o.seed ?? 7));
  const datagram = F.ipv4(
    { src, dst: o.dst, proto: 17, ttl: o.ttl, id: o.id, df: o.df, mf: o.mf, fragOffset: o.fragOffset, badChecksum: o.badChecksum },
    payload,
  );
  return F.ethernet(o.toMac, o.from.mac, 0x0800, datagram);
}

/** An Ethernet frame carrying an ICMP echo request. */
export function pingFrame(o: { from: Host | { mac: string; ip: string }; toMac: string; dst: string; ttl?: number; seq?: number; dataLen?: number }): Buffer {
  const icmp = F.icmpEcho(8, 0x77, o.seq ?? 1, F.bytes(o.dataLen ?? 16, 3));
  return F.ethernet(o.toMac, o.from.mac, 0x0800, F.ipv4({ src: o.from.ip, dst: o.dst, proto: 1, ttl: o.ttl }, icmp));
}

/** An ARP packet in an Ethernet frame. */
export function arpFrame(o: { ethDst: string; ethSrc: string; op: 1 | 2; sha: string; spa: string; tha?: string; tpa: string }): Buffer {
  return F.ethernet(o.ethDst, o.ethSrc, 0x0806, F.arp(o.op, o.sha, o.spa, o.tha ?? '00:00:00:00:00:00', o.tpa));
}

/** `host` asks who has the gateway address: the router learns it (STALE) and answers. */
export function introduce(h: Harness, host: Host, gw: { ip: string } = GW): void {
  h.rx(host.port, arpFrame({ ethDst: BCAST, ethSrc: host.mac, op: 1, sha: host.mac, spa: host.ip, tpa: gw.ip }));
  h.clear();
}

// ---------------------------------------------------------------- frame readers

const hex2 = (v: number): string => v.toString(16).padStart(2, '0');
export const macAt = (b: Buffer, o: number): string => [...b.subarray(o, o + 6)].map(hex2).join(':');
export const ipAt = (b: Buffer, o: number): string => [...b.subarray(o, o + 4)].join('.');

export function ethOf(f: Buffer): { dst: string; src: string; type: number } {
  return { dst: macAt(f, 0), src: macAt(f, 6), type: f.readUInt16BE(12) };
}

export interface Ip4Fields {
  version: number;
  ihl: number;
  tos: number;
  total: number;
  id: number;
  df: boolean;
  mf: boolean;
  /** Fragment offset in bytes. */
  fragOffset: number;
  ttl: number;
  proto: number;
  checksum: number;
  src: string;
  dst: string;
  /** The header sums to 0xffff. */
  checksumOk: boolean;
}

export function ip4Of(f: Buffer, o = 14): Ip4Fields {
  const ihl = (f[o] & 15) * 4;
  const flags = f.readUInt16BE(o + 6);
  return {
    version: f[o] >> 4,
    ihl,
    tos: f[o + 1],
    total: f.readUInt16BE(o + 2),
    id: f.readUInt16BE(o + 4),
    df: (flags & 0x4000) !== 0,
    mf: (flags & 0x2000) !== 0,
    fragOffset: (flags & 0x1fff) * 8,
    ttl: f[o + 8],
    proto: f[o + 9],
    checksum: f.readUInt16BE(o + 10),
    src: ipAt(f, o + 12),
    dst: ipAt(f, o + 16),
    checksumOk: F.checksum(f.subarray(o, o + ihl)) === 0,
  };
}

export interface IcmpFields {
  type: number;
  code: number;
  checksumOk: boolean;
  /** Bytes 6..7 of the header: the next-hop MTU of 3/4, the sequence of an echo. */
  word2: number;
  /** Everything after the 8-byte header (the quote of an error). */
  body: Buffer;
}

/** The ICMP message of an Ethernet/IPv4 frame. */
export function icmpOf(f: Buffer): IcmpFields {
  const ip = ip4Of(f);
  const o = 14 + ip.ihl;
  const end = 14 + ip.total;
  return {
    type: f[o],
    code: f[o + 1],
    checksumOk: F.checksum(f.subarray(o, end)) === 0,
    word2: f.readUInt16BE(o + 6),
    body: Buffer.from(f.subarray(o + 8, end)),
  };
}

export function isIcmp(f: Buffer, type?: number, code?: number): boolean {
  if (f.length < 34 || f.readUInt16BE(12) !== 0x0800 || f[14 + 9] !== 1) return false;
  const m = icmpOf(f);
  return (type === undefined || m.type === type) && (code === undefined || m.code === code);
}

export function isArp(f: Buffer, op?: number): boolean {
  return f.length >= 42 && f.readUInt16BE(12) === 0x0806 && (op === undefined || f.readUInt16BE(20) === op);
}

export function arpOf(f: Buffer): { op: number; sha: string; spa: string; tha: string; tpa: string } {
  return { op: f.readUInt16BE(20), sha: macAt(f, 22), spa: ipAt(f, 28), tha: macAt(f, 32), tpa: ipAt(f, 38) };
}

/** The neighbour entry of `ip` on router interface `dev`, as the table holds it. */
export function neighbour(h: Harness, dev: string, ip: string): { state: number; mac: string } | undefined {
  const { ifs, neigh } = h.dp.ctx;
  const ifIndex = ifs.indexOf(dev);
  const [a, b, c, d] = F.ip(ip);
  const id = neigh.find(ifIndex, ((a << 24) | (b << 16) | (c << 8) | d) >>> 0);
  if (id < 0) return undefined;
  const hi = neigh.macHi[id] >>> 0;
  const lo = neigh.macLo[id] >>> 0;
  const mac = [hi >>> 8, hi & 255, lo >>> 24, (lo >>> 16) & 255, (lo >>> 8) & 255, lo & 255].map(hex2).join(':');
  return { state: neigh.state[id], mac };
}

// ---------------------------------------------------------------- the harness's own checks

if (expect.getState().testPath === fileURLToPath(import.meta.url)) {
  describe('stage harness', () => {
    it('sees a slot that a stage did not give back', () => {
      const h = new Harness();
      const slot = h.dp.pool.alloc();
      expect(() => h.checkClean()).toThrow(/leaked slot/);
      h.dp.pool.free(slot);
      h.checkClean();
    });

    it('sees a frame left in a stage queue', () => {
      const h = new Harness();
      const slot = h.dp.pool.fill(Buffer.alloc(60), 0);
      h.dp.pool.outPort[slot] = 0;
      h.dp.stages.portOutput.enqueue(slot);
      expect(() => h.checkClean()).toThrow(/stage queues/);
      h.dp.graph.dispatch();
      h.clear();
    });

    it('settle runs resolutions to the end, so waiting packets come back to the pool', () => {
      const h = new Harness();
      introduce(h, A);
      h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.9.0.77' }));
      expect(h.dp.pool.available).toBeLessThan(h.startAvailable);
      h.settle();
      h.checkClean();
      expect(h.take('pa').filter((f) => isIcmp(f, 3, 1))).toHaveLength(1);
    });

    it('reads the fields the builder wrote', () => {
      const f = udpFrame({ from: A, toMac: GW.mac, dst: '203.0.113.5', ttl: 9, df: true, id: 0x4242 });
      expect(ethOf(f)).toEqual({ dst: GW.mac, src: A.mac, type: 0x0800 });
      expect(ip4Of(f)).toMatchObject({ version: 4, ihl: 20, ttl: 9, df: true, mf: false, id: 0x4242, src: A.ip, dst: '203.0.113.5', proto: 17, checksumOk: true });
    });
  });
}
