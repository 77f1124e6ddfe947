/**
 * TapPort on a fake TAP driver (test/helpers/fake-tap.ts), without root: slots lent only for
 * the length of a read, rounds sized so their floods fit, the drain and its per-port count
 * when stages hold the pool down to its reserve, the virtio-net header read on receive and
 * written on transmit, and a device that vanishes.
 */
import { describe, expect, it } from 'vitest';
import { portsState } from '../../src/admin/state.ts';
import { formatPorts } from '../../src/admin/format.ts';
import { parseConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { OFFLOAD_SLOT_SIZE } from '../../src/core/frame-pool.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import type { Logger } from '../../src/log.ts';
import { RX_RESERVE_BASE, RxBudget } from '../../src/ports/rx-budget.ts';
import { MAX_ROUNDS, QUIET_GAP_US, TapPort } from '../../src/ports/tap-port.ts';
import { FakeTapDriver } from '../helpers/fake-tap.ts';
import * as F from '../helpers/frames.ts';
import { A, B, BCAST, C, GW, LAB, T0, arpFrame, udpFrame } from './stage-harness.test.ts';

interface Warning {
  obj: Record<string, unknown>;
  msg: string;
}

function node(opts: { poolSize?: number; vnet?: boolean; tunnelGso?: boolean; kernelTunnelGso?: boolean; batch?: number } = {}) {
  const clock = new VirtualClock();
  clock.set(T0);
  const dp = new Dataplane(parseConfig(LAB, 'test'), {
    clock,
    poolSize: opts.poolSize ?? 512,
    slotSize: opts.vnet ? OFFLOAD_SLOT_SIZE : undefined,
  });
  const driver = new FakeTapDriver();
  driver.framePool = dp.pool;
  driver.tunnelGso = opts.kernelTunnelGso ?? true;
  const warns: Warning[] = [];
  const log = { warn: (obj: Record<string, unknown>, msg: string) => warns.push({ obj, msg }) } as unknown as Logger;
  const budget = new RxBudget(dp.pool, dp.ctx.ports);
  const ports = dp.config.ports.map((p, i) => {
    const port = new TapPort(dp, i, p.name, { log, budget, driver, vnetHdr: opts.vnet, tunnelGso: opts.tunnelGso, batch: opts.batch });
    port.open(p.mtu);
    dp.setDriver(i, port);
    return port;
  });
  const capacity = dp.pool.capacity;
  for (const p of ports) p.start();
  return { dp, driver, ports, warns, budget, capacity, idle: dp.pool.available, clock };
}

const udp = (from = A, to = B, seed = 7): Buffer => udpFrame({ from, toMac: to.mac, dst: to.ip, seed });
const broadcast = (from = A): Buffer => arpFrame({ ethDst: BCAST, ethSrc: from.mac, op: 1, sha: from.mac, spa: from.ip, tpa: '10.244.1.77' });

describe('TapPort: slots lent on demand', () => {
  it('holds no slot while idle, however many ports: only the one shared drain slot is taken', () => {
    const { dp, capacity, idle, driver } = node();
    expect(dp.ctx.ports.count).toBe(5);
    expect(idle).toBe(capacity - 1);
    for (const t of driver.taps.values()) expect(t.reads).toEqual([]);
  });

  it('lends a round of slots for one read, forwards what was read, and gets every slot back', () => {
    const { dp, driver, idle } = node();
    driver.queue('pa', udp(), udp(A, B, 8), udp(A, B, 9));
    driver.wake('pa');
    const pa = driver.tap('pa');
    // One read of a whole batch of lent slots; it found three frames, and the round ended.
    expect(pa.reads).toEqual([{ count: 64, got: 3, free: idle - 64 }]);
    expect(dp.ctx.ports.rxFrames[dp.portIndex('pa')]).toBe(3);
    // B is not known yet: flooded to the other members of cni0.
    expect(driver.tap('pb').written).toEqual([udp(), udp(A, B, 8), udp(A, B, 9)]);
    expect(driver.tap('pc').written).toHaveLength(3);
    expect(dp.pool.available).toBe(idle);
  });

  it('reads MAX_ROUNDS rounds of a full batch per wake-up and leaves the rest for the next one', () => {
    const { dp, driver, idle } = node();
    // Pod B answers first so A's frames go to pb alone (no flood copies).
    driver.queue('pb', udp(B, A));
    driver.wake('pb');
    const frames = Array.from({ length: MAX_ROUNDS * 64 + 10 }, (_, i) => udp(A, B, i));
    driver.queue('pa', ...frames);
    const pb = driver.tap('pb');
    pb.written.length = 0;
    driver.wake('pa');
    const pa = driver.tap('pa');
    expect(pa.reads.map((r) => r.got)).toEqual(Array(MAX_ROUNDS).fill(64));
    expect(pa.waiting).toBe(10);
    driver.wake('pa');
    expect(pa.reads.at(-1)).toMatchObject({ count: 64, got: 10 });
    expect(pb.written).toHaveLength(frames.length);
    expect(pb.written.every((f, i) => f.equals(frames[i]))).toBe(true);
    expect(dp.pool.available).toBe(idle);
  });

  it('sizes a round so that every frame read can be flooded: (free − reserve) / fan-out', () => {
    const { dp, driver, budget, capacity } = node({ poolSize: 200 });
    // cni0: three member ports and the router's interface.
    expect(budget.fanOut).toBe(4);
    expect(budget.reserve).toBe(RX_RESERVE_BASE + 4);
    const round = Math.floor((capacity - 1 - budget.reserve) / budget.fanOut);
    expect(round).toBe(32);
    driver.queue('pa', ...Array.from({ length: 40 }, () => broadcast()));
    driver.wake('pa');
    expect(driver.tap('pa').reads.map((r) => [r.count, r.got])).toEqual([
      [round, round],
      [round, 40 - round],
    ]);
    // Every broadcast reached both other pods: no flood copy went without a slot.
    expect(driver.tap('pb').written).toHaveLength(40);
    expect(driver.tap('pc').written).toHaveLength(40);
    expect(dp.stageCounters()['bridge-forward'].drops).toEqual({});
    expect(dp.pool.available).toBe(capacity - 1);
  });

  it('still reads one frame a round while the pool is just above its reserve, on every port alike', () => {
    const { dp, driver, budget, idle } = node();
    const held: number[] = [];
    while (dp.pool.available > budget.reserve + 2) held.push(dp.pool.alloc());
    for (const name of ['pa', 'pb', 'pc']) driver.queue(name, broadcast(name === 'pa' ? A : name === 'pb' ? B : C));
    driver.wakeAll();
    for (const name of ['pa', 'pb', 'pc']) {
      expect(driver.tap(name).reads[0]).toMatchObject({ count: 1, got: 1 });
      expect(dp.ctx.ports.rxNoBuffer[dp.portIndex(name)]).toBe(0);
    }
    for (const s of held) dp.pool.free(s);
    expect(dp.pool.available).toBe(idle);
  });
});

describe('TapPort: when the pool is down to its reserve', () => {
  it('drains the device into the drain slot, counts the drops per port, logs once per port', () => {
    const { dp, driver, budget, warns, idle } = node();
    const held: number[] = [];
    while (dp.pool.available > budget.reserve) held.push(dp.pool.alloc());
    driver.queue('pa', udp(), udp(), udp());
    driver.queue('pb', udp(B, A), udp(B, A));
    driver.wakeAll();
    const ports = dp.ctx.ports;
    const pa = dp.portIndex('pa');
    const pb = dp.portIndex('pb');
    expect([ports.rxNoBuffer[pa], ports.rxNoBuffer[pb]]).toEqual([3, 2]);
    expect([ports.rxFrames[pa], ports.rxFrames[pb]]).toEqual([0, 0]);
    // Nothing is left in the devices: a full pool never leaves a port's queue filling unseen.
    expect(driver.tap('pa').waiting + driver.tap('pb').waiting).toBe(0);
    expect(warns.map((w) => w.obj.port)).toEqual(['pa', 'pb']);
    expect(warns[0].msg).toMatch(/no free frame slot/);
    expect(dp.pool.available).toBe(budget.reserve);

    // Still short: counted again, not logged again.
    driver.queue('pa', udp());
    driver.wakeAll();
    expect(ports.rxNoBuffer[pa]).toBe(4);
    expect(warns).toHaveLength(2);

    // `show ports` says so.
    const state = portsState(dp);
    expect(state.ports[pa].rx).toEqual({ bytes: 0, packets: 0, noBuffer: 4 });
    expect(formatPorts(state)).toContain('    RX:  bytes packets   nobuf\n             0       0       4\n');

    // Slots come back: the ports forward again.
    for (const s of held) dp.pool.free(s);
    driver.queue('pa', udp());
    driver.wakeAll();
    expect(ports.rxFrames[pa]).toBe(1);
    expect(driver.tap('pb').written).toHaveLength(1);
    expect(dp.pool.available).toBe(idle);
  });
});

describe('TapPort: virtio-net header (offload)', () => {
  /** struct virtio_net_hdr, little-endian. */
  function vnetHeader(h: { flags: number; gsoType: number; hdrLen: number; gsoSize: number; csumStart: number; csumOffset: number }): Buffer {
    const b = Buffer.alloc(10);
    b[0] = h.flags;
    b[1] = h.gsoType;
    b.writeUInt16LE(h.hdrLen, 2);
    b.writeUInt16LE(h.gsoSize, 4);
    b.writeUInt16LE(h.csumStart, 6);
    b.writeUInt16LE(h.csumOffset, 8);
    return b;
  }

  function tcpSuper(payload: number): Buffer {
    const tcp = [0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0, ...F.bytes(payload, 9)];
    return F.ethernet(B.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: B.ip, proto: 6, df: true }, tcp));
  }

  it('reads the header into the pool metadata and writes it back in front of the frame', () => {
    const { dp, driver, idle } = node({ vnet: true, poolSize: 300 });
    expect(driver.tap('pa').opts.vnetHdr).toBe(true);
    expect(driver.tap('pa').capacity).toBe(dp.pool.maxFrame + 10);
    // B speaks first (a plain frame: header of zeros), so A's super-frame goes to pb alone.
    driver.queue('pb', Buffer.concat([Buffer.alloc(10), udp(B, A)]));
    driver.wake('pb');
    expect(driver.tap('pa').written[0]).toEqual(Buffer.concat([Buffer.alloc(10), udp(B, A)]));

    const seen: number[][] = [];
    dp.setObserver({
      onRx: (_p, pool, s) => seen.push([pool.len[s], pool.vnetFlags[s], pool.gsoType[s], pool.gsoHdrLen[s], pool.gsoSize[s], pool.csumStart[s], pool.csumOffset[s]]),
      onTx: () => undefined,
      flush: () => undefined,
    });
    const frame = tcpSuper(30_000);
    const hdr = { flags: 1, gsoType: 1, hdrLen: 54, gsoSize: 1448, csumStart: 34, csumOffset: 16 };
    driver.queue('pa', Buffer.concat([vnetHeader(hdr), frame]));
    driver.wake('pa');
    expect(seen).toEqual([[frame.length, 1, 1, 54, 1448, 34, 16]]);
    const out = driver.tap('pb').written;
    expect(out).toHaveLength(1);
    expect(out[0].subarray(0, 10)).toEqual(vnetHeader(hdr));
    expect(out[0].subarray(10).equals(frame)).toBe(true);
    expect(dp.pool.available).toBe(idle);
  });

  it('a plain frame after a super-frame in the same slot goes out with a header of zeros', () => {
    const { driver } = node({ vnet: true, poolSize: 300 });
    driver.queue('pb', Buffer.concat([Buffer.alloc(10), udp(B, A)]));
    driver.wake('pb');
    const hdr = Buffer.from([1, 1, 54, 0, 0xa8, 5, 34, 0, 16, 0]);
    driver.queue('pa', Buffer.concat([hdr, tcpSuper(5000)]));
    driver.wake('pa');
    driver.queue('pa', Buffer.concat([Buffer.alloc(10), udp(A, B)]));
    driver.wake('pa');
    const out = driver.tap('pb').written;
    expect(out.map((f) => f.subarray(0, 10).toString('hex'))).toEqual([hdr.toString('hex'), '00'.repeat(10)]);
  });
});

describe('TapPort: UDP-tunnel GSO (the 24-byte virtio-net header)', () => {
  /** struct virtio_net_hdr_v1_hash_tunnel, little-endian: 10 bytes as above, 10 of num_buffers and hash, the two offsets. */
  function tunnelHeader(h: { flags: number; gsoType: number; hdrLen: number; gsoSize: number; csumStart: number; csumOffset: number; outerTh: number; innerNh: number }): Buffer {
    const b = Buffer.alloc(24);
    b[0] = h.flags;
    b[1] = h.gsoType;
    b.writeUInt16LE(h.hdrLen, 2);
    b.writeUInt16LE(h.gsoSize, 4);
    b.writeUInt16LE(h.csumStart, 6);
    b.writeUInt16LE(h.csumOffset, 8);
    b.writeUInt16LE(h.outerTh, 20);
    b.writeUInt16LE(h.innerNh, 22);
    return b;
  }

  it('asks for it, and with it granted reads and writes the tunnel header, offsets included', () => {
    const { dp, driver, ports, idle } = node({ vnet: true, tunnelGso: true, poolSize: 300 });
    expect(driver.tap('pa').opts).toMatchObject({ vnetHdr: true, tunnelGso: true });
    expect(ports.every((p) => p.tunnelGso)).toBe(true);
    expect(ports[0].offload).toBe('tcp+udp-tunnel');
    expect(driver.tap('pa').capacity).toBe(dp.pool.maxFrame + 24);
    driver.queue('pb', Buffer.concat([Buffer.alloc(24), udp(B, A)]));
    driver.wake('pb');
    expect(driver.tap('pa').written[0]).toEqual(Buffer.concat([Buffer.alloc(24), udp(B, A)]));
    // A frame the kernel handed over with tunnel offload state (a pod's own VXLAN), bridged
    // to pb: the header goes out as it came in.
    const hdr = { flags: 1, gsoType: 0x21, hdrLen: 104, gsoSize: 1398, csumStart: 84, csumOffset: 16, outerTh: 34, innerNh: 64 };
    const frame = udpFrame({ from: A, toMac: B.mac, dst: B.ip, dataLen: 3000 });
    driver.queue('pa', Buffer.concat([tunnelHeader(hdr), frame]));
    driver.wake('pa');
    const out = driver.tap('pb').written;
    expect(out).toHaveLength(1);
    expect(out[0].subarray(0, 24)).toEqual(tunnelHeader(hdr));
    expect(out[0].subarray(24).equals(frame)).toBe(true);
    // A plain frame after it in the same slot: a header of zeros, the offsets too.
    driver.queue('pa', Buffer.concat([Buffer.alloc(24), udp(A, B)]));
    driver.wake('pa');
    expect(out[1].subarray(0, 24)).toEqual(Buffer.alloc(24));
    expect(dp.pool.available).toBe(idle);
  });

  it('refused by the kernel: the port opens with the 10-byte header and says so', () => {
    const { driver, ports } = node({ vnet: true, tunnelGso: true, kernelTunnelGso: false, poolSize: 300 });
    expect(ports.some((p) => p.tunnelGso)).toBe(false);
    expect(ports[0].offload).toBe('tcp');
    driver.queue('pa', Buffer.concat([Buffer.alloc(10), udp(A, B)]));
    driver.wake('pa');
    expect(driver.tap('pb').written[0]).toEqual(Buffer.concat([Buffer.alloc(10), udp(A, B)]));
  });

  it('not asked for (no VXLAN device): the 10-byte header', () => {
    const { driver, ports } = node({ vnet: true, poolSize: 300 });
    expect(driver.tap('pa').opts.tunnelGso).toBe(false);
    expect(ports.some((p) => p.tunnelGso)).toBe(false);
  });
});

describe('TapPort: quiet ports', () => {
  it('after a wake-up of one frame, reads one frame and stops there; frames closer together end quiet mode', () => {
    const { dp, driver, clock, idle } = node();
    const pa = driver.tap('pa');
    const pb = driver.tap('pb');
    let t = T0;
    // A first wake-up reads a whole round and finds one frame: the port is now quiet.
    driver.queue('pa', udp());
    driver.wake('pa');
    expect(pa.reads.map((r) => [r.count, r.got])).toEqual([[64, 1]]);
    // Far apart, one frame each: one read of one slot, no read that would find the device empty.
    for (let i = 0; i < 3; i++) {
      clock.set((t += 10 * QUIET_GAP_US));
      pa.reads.length = 0;
      driver.queue('pa', udp(A, B, i));
      driver.wake('pa');
      expect(pa.reads.map((r) => [r.count, r.got])).toEqual([[1, 1]]);
    }
    // Two frames at once, far from the last: the first goes, the second waits for the next
    // wake-up (the poll is level-triggered, so it comes at once).
    clock.set((t += 10 * QUIET_GAP_US));
    pa.reads.length = 0;
    driver.queue('pa', udp(A, B, 10), udp(A, B, 11));
    driver.wake('pa');
    expect(pa.reads.map((r) => [r.count, r.got])).toEqual([[1, 1]]);
    expect(pa.waiting).toBe(1);
    // That wake-up comes within QUIET_GAP_US: quiet mode ends, and full rounds read the rest.
    clock.set((t += 10));
    pa.reads.length = 0;
    driver.queue('pa', udp(A, B, 12), udp(A, B, 13));
    driver.wake('pa');
    expect(pa.reads.map((r) => [r.count, r.got])).toEqual([
      [1, 1],
      [64, 2],
    ]);
    clock.set((t += 10));
    pa.reads.length = 0;
    driver.queue('pa', udp(A, B, 14), udp(A, B, 15));
    driver.wake('pa');
    expect(pa.reads.map((r) => [r.count, r.got])).toEqual([[64, 2]]);
    // Every frame was forwarded, in order, and every slot came back.
    expect(pb.written.slice(-6)).toEqual([10, 11, 12, 13, 14, 15].map((i) => udp(A, B, i)));
    expect(dp.pool.available).toBe(idle);
  });
});

describe('TapPort: a device that goes away', () => {
  it('onReadable(-errno): the port goes down with the reason, no slot is lost, the others go on', () => {
    const { dp, driver, ports, warns, idle } = node();
    const pc = dp.portIndex('pc');
    driver.vanish('pc', 77);
    expect(dp.ctx.ports.up[pc]).toBe(0);
    expect(dp.ctx.ports.linkDowns[pc]).toBe(1);
    expect(ports[pc].downReason).toBe('EBADFD');
    expect(warns.map((w) => [w.obj.port, w.msg])).toEqual([['pc', 'port down: device is gone']]);
    expect(dp.pool.available).toBe(idle);
    // A broadcast from pa now reaches pb and the router only.
    driver.queue('pa', arpFrame({ ethDst: BCAST, ethSrc: A.mac, op: 1, sha: A.mac, spa: A.ip, tpa: GW.ip }));
    driver.wake('pa');
    expect(driver.tap('pb').written).toHaveLength(1);
    expect(driver.tap('pc').written).toHaveLength(0);
    expect(driver.tap('pa').written).toHaveLength(1); // the router's ARP reply
    expect(dp.pool.available).toBe(idle);
  });

  it('a read that fails gives the round back and takes the port down', () => {
    const { dp, driver, ports, idle } = node();
    const pa = driver.tap('pa');
    pa.failWith = 77;
    driver.queue('pa', udp());
    driver.wake('pa');
    expect(dp.ctx.ports.up[dp.portIndex('pa')]).toBe(0);
    expect(ports[dp.portIndex('pa')].downReason).toBe('EBADFD');
    expect(dp.pool.available).toBe(idle);
    expect(pa.reading).toBe(false);
  });

  it('close stops reading and closes the device; a closed port transmits nothing', () => {
    const { dp, driver, ports } = node();
    const pb = dp.portIndex('pb');
    ports[pb].close();
    expect(driver.tap('pb').closed).toBe(true);
    expect(driver.tap('pb').reading).toBe(false);
    driver.queue('pa', udp());
    driver.wake('pa');
    expect(driver.tap('pb').written).toHaveLength(0);
    expect(dp.ctx.ports.txDrops[pb]).toBe(1);
  });
});
