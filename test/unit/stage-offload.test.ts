/**
 * TCP segmentation offload frames (from TAPs opened with a virtio-net header) through the
 * graph: forwarded whole with their offload state, measured by segment size against the MTU,
 * and flooded without copying their bytes.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { OFFLOAD_SLOT_SIZE } from '../../src/core/frame-pool.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import { VIRTIO_NET_HDR_LEN } from '../../src/wire/virtio-net.ts';
import * as F from '../helpers/frames.ts';
import { A, B, BCAST, GW, LAB, T0, arpFrame, icmpOf, ip4Of, isIcmp } from './stage-harness.test.ts';

interface Sent {
  frame: Buffer;
  flags: number;
  gsoType: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

function setup() {
  const clock = new VirtualClock();
  clock.set(T0);
  const dp = new Dataplane(parseConfig(LAB, 'test'), { clock, poolSize: 64, slotSize: OFFLOAD_SLOT_SIZE });
  const out: Record<string, Sent[]> = {};
  dp.ctx.ports.names.forEach((name, p) => {
    out[name] = [];
    dp.setDriver(p, {
      transmit: (pool, slots, n) => {
        for (let i = 0; i < n; i++) {
          const s = slots[i];
          out[name].push({
            frame: Buffer.from(pool.view(s)),
            flags: pool.vnetFlags[s],
            gsoType: pool.gsoType[s],
            gsoSize: pool.gsoSize[s],
            csumStart: pool.csumStart[s],
            csumOffset: pool.csumOffset[s],
          });
        }
        return n;
      },
    });
  });
  // Pod A has asked for its gateway, so the router knows where to send errors back.
  dp.receive(dp.portIndex('pa'), arpFrame({ ethDst: BCAST, ethSrc: A.mac, op: 1, sha: A.mac, spa: A.ip, tpa: GW.ip }));
  dp.run();
  for (const k of Object.keys(out)) out[k] = [];
  const free = dp.pool.available;
  /** Receives a TCP super-frame of `payload` bytes as an offloading TAP hands it over. */
  const rxSuper = (port: string, toMac: string, dst: string, payload: number, df = true): void => {
    const tcp = [0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0, ...F.bytes(payload, 9)];
    const frame = F.ethernet(toMac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst, proto: 6, df, id: 0x777 }, tcp));
    const slot = dp.pool.fill(frame, dp.portIndex(port));
    expect(slot).toBeGreaterThanOrEqual(0);
    dp.pool.vnetFlags[slot] = 1;
    dp.pool.gsoType[slot] = 1;
    dp.pool.gsoSize[slot] = 1448;
    dp.pool.gsoHdrLen[slot] = 54;
    dp.pool.csumStart[slot] = 34;
    dp.pool.csumOffset[slot] = 16;
    dp.receiveSlot(dp.portIndex(port), slot);
    dp.run();
  };
  return { dp, out, rxSuper, leakCheck: () => expect(dp.pool.available).toBe(free) };
}

describe('offload super-frames', () => {
  it('are routed whole, TTL−1, with their virtio-net state carried to the egress port', () => {
    const { out, rxSuper, leakCheck } = setup();
    rxSuper('pa', GW.mac, '8.8.8.8', 14_480);
    expect(out.up).toHaveLength(1);
    const [s] = out.up;
    expect(s.frame.length).toBe(14 + 20 + 20 + 14_480);
    expect(ip4Of(s.frame)).toMatchObject({ ttl: 63, dst: '8.8.8.8', total: 20 + 20 + 14_480, checksumOk: true });
    expect([s.flags, s.gsoType, s.gsoSize, s.csumStart, s.csumOffset]).toEqual([1, 1, 1448, 34, 16]);
    leakCheck();
  });

  it('are bridged whole, each flooded copy with the same state', () => {
    const { out, rxSuper, leakCheck } = setup();
    rxSuper('pa', B.mac, B.ip, 20_000);
    for (const p of ['pb', 'pc']) {
      expect(out[p]).toHaveLength(1);
      expect([out[p][0].frame.length, out[p][0].gsoType, out[p][0].gsoSize]).toEqual([14 + 40 + 20_000, 1, 1448]);
    }
    expect(out.pa).toEqual([]);
    leakCheck();
  });

  it('are measured by their segments: 1448-byte segments do not fit an MTU of 1000 → ICMP 3/4 with DF', () => {
    const { out, rxSuper, leakCheck } = setup();
    rxSuper('pa', GW.mac, '10.200.1.1', 14_480);
    expect(out.slow).toEqual([]);
    const errs = out.pa.filter((s) => isIcmp(s.frame, 3, 4));
    expect(errs).toHaveLength(1);
    expect(icmpOf(errs[0].frame)).toMatchObject({ type: 3, code: 4 });
    expect(errs[0].frame.readUInt16BE(14 + 20 + 6)).toBe(1000);
    // The error itself is a plain frame.
    expect([errs[0].flags, errs[0].gsoType]).toEqual([0, 0]);
    leakCheck();
  });

  it('fit when the segments do, however large the super-frame', () => {
    const { out, rxSuper } = setup();
    rxSuper('pa', GW.mac, '8.8.8.8', 60_000);
    expect(out.up).toHaveLength(1);
  });

  it('without DF and too big for the egress MTU are dropped and counted, not fragmented', () => {
    const { dp, out, rxSuper, leakCheck } = setup();
    rxSuper('pa', GW.mac, '10.200.1.1', 14_480, false);
    expect(out.slow).toEqual([]);
    expect(dp.stageCounters()['ip4-forward'].drops).toEqual({ 'ip4.super-frame-over-mtu': 1 });
    leakCheck();
  });

  it('flooded, go to every member from one set of bytes, each driver writing its virtio-net header in front', () => {
    const { dp, rxSuper, leakCheck } = setup();
    // Drivers that do what TapPort.transmit does: the 10-byte header into the headroom just
    // in front of the frame, then header and frame written out in one go (here: kept).
    const wire: Record<string, { bytes: Buffer; start: number }[]> = { pb: [], pc: [] };
    for (const name of ['pb', 'pc']) {
      dp.setDriver(dp.portIndex(name), {
        transmit: (pool, slots, n) => {
          const data = pool.data;
          for (let i = 0; i < n; i++) {
            const s = slots[i];
            const h = pool.start[s] - VIRTIO_NET_HDR_LEN;
            data[h] = pool.vnetFlags[s];
            data[h + 1] = pool.gsoType[s];
            data.writeUInt16LE(pool.gsoHdrLen[s], h + 2);
            data.writeUInt16LE(pool.gsoSize[s], h + 4);
            data.writeUInt16LE(pool.csumStart[s], h + 6);
            data.writeUInt16LE(pool.csumOffset[s], h + 8);
            wire[name].push({ bytes: Buffer.from(data.subarray(h, pool.start[s] + pool.len[s])), start: pool.start[s] });
          }
          return n;
        },
      });
    }
    const payload = 60_000;
    rxSuper('pa', B.mac, B.ip, payload);
    const header = Buffer.from([1, 1, 54, 0, 1448 & 255, 1448 >> 8, 34, 0, 16, 0]);
    for (const name of ['pb', 'pc']) {
      expect(wire[name]).toHaveLength(1);
      const [sent] = wire[name];
      expect(sent.bytes.subarray(0, VIRTIO_NET_HDR_LEN)).toEqual(header);
      expect(sent.bytes.length).toBe(VIRTIO_NET_HDR_LEN + 14 + 40 + payload);
      expect(ethOfSent(sent.bytes)).toEqual({ dst: B.mac, src: A.mac });
      expect(sent.bytes.subarray(VIRTIO_NET_HDR_LEN + 54)).toEqual(Buffer.from(F.bytes(payload, 9)));
    }
    // One set of bytes behind both copies: nothing was copied.
    expect(wire.pb[0].start).toBe(wire.pc[0].start);
    expect(wire.pb[0].bytes).toEqual(wire.pc[0].bytes);
    leakCheck();
  });

  it('flooded as a broadcast, the router gets a copy of its own and the members share theirs, no slot lost', () => {
    const { dp, out, rxSuper, leakCheck } = setup();
    const starts: number[] = [];
    const inner = dp.stages.portOutput.drivers.slice();
    for (const name of ['pb', 'pc']) {
      const p = dp.portIndex(name);
      dp.setDriver(p, {
        transmit: (pool, slots, n) => {
          for (let i = 0; i < n; i++) starts.push(pool.start[slots[i]]);
          return inner[p]!.transmit(pool, slots, n);
        },
      });
    }
    const routed = dp.stageCounters()['l3-input'].packets;
    rxSuper('pa', BCAST, '10.244.1.255', 30_000);
    expect(out.pb).toHaveLength(1);
    expect(out.pc).toHaveLength(1);
    expect(out.pb[0].frame).toEqual(out.pc[0].frame);
    expect(new Set(starts).size).toBe(1);
    expect(dp.stageCounters()['l3-input'].packets).toBe(routed + 1);
    leakCheck();
  });
});

function ethOfSent(b: Buffer): { dst: string; src: string } {
  const mac = (o: number): string => [...b.subarray(o, o + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
  return { dst: mac(VIRTIO_NET_HDR_LEN), src: mac(VIRTIO_NET_HDR_LEN + 6) };
}
