/**
 * A SYN flood against connection tracking, replayed in process on the virtual clock: 2,000,000
 * TCP SYNs from random outside sources and ports to a pod's port 80, arriving on the uplink at
 * 200,000 a second, against `conntrack.max` 262,144, while a masqueraded connection of pod A
 * to an outside server, established before the flood, exchanges a segment each way every
 * 10,000 SYNs. Frames are written straight into pool slots (no pcap on disk), 256 per run().
 *
 * What must hold: the established flow is never evicted and every one of its segments is
 * translated and delivered; the table never holds more than `max`; once full, each new SYN
 * evicts an unassured entry (early drop) or is dropped, and both are counted (as are the few
 * SYNs whose entry a later SYN of the same batch evicted before they were routed); the process's
 * memory stays bounded (its RSS growth is printed); no slot is lost; and after the SYN_SENT
 * timeout every flood entry has expired while the established flow remains.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { Random } from '../../src/core/random.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import { TcpState } from '../../src/tables/conntrack-tcp.ts';
import * as F from '../helpers/frames.ts';
import { A, B, BCAST, GW, LAB, T0, UP, arpFrame } from './stage-harness.test.ts';

const SYNS = 2_000_000;
const MAX = 262_144;
const BATCH = 256;
const SERVER = '203.0.113.5';
const UPSTREAM2_MAC = '02:00:00:00:50:02';
/** 200,000 SYNs a second. */
const US_PER_SYN = 5;

/** The bytes of a one's-complement 16-bit checksum update (RFC 1624) for one changed word. */
function update16(check: number, oldWord: number, newWord: number): number {
  let s = (~check & 0xffff) + (~oldWord & 0xffff) + newWord;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

describe('conntrack under a SYN flood', () => {
  it('keeps an established masqueraded flow going through 2,000,000 SYNs against a table of 262,144, memory bounded, evictions counted', () => {
    const clock = new VirtualClock();
    clock.set(T0);
    // The pods' neighbour entries are static: they answer no ARP probe in this test.
    const pods = `neighbors:\n  - { ip: ${A.ip}, mac: '${A.mac}', dev: cni0 }\n  - { ip: ${B.ip}, mac: '${B.mac}', dev: cni0 }\n`;
    const yaml = `${LAB.replace('neighbors:\n', pods)}nat: { clusterCIDR: 10.244.0.0/16 }\nconntrack: { max: ${MAX} }\n`;
    const dp = new Dataplane(parseConfig(yaml, 'flood'), { clock, poolSize: 2048 });
    const sent: Record<string, Buffer[]> = {};
    const count: number[] = dp.ctx.ports.names.map(() => 0);
    dp.ctx.ports.names.forEach((name, p) => {
      sent[name] = [];
      dp.setDriver(p, {
        transmit: (pool, slots, n) => {
          count[p] += n;
          // Keep only what is not a flood SYN (to pb): the established flow's segments.
          for (let i = 0; i < n; i++) {
            const d = pool.data;
            const o = pool.start[slots[i]];
            if (name !== 'pb' || d[o + 23] !== 6 || d[o + 47] !== F.TCP_SYN) sent[name].push(Buffer.from(pool.view(slots[i])));
          }
          return n;
        },
      });
    });
    const port = (name: string): number => dp.portIndex(name);
    const rx = (name: string, frame: Buffer): void => {
      expect(dp.receive(port(name), frame)).toBe(true);
      dp.run();
    };
    const free = dp.pool.available;
    const ct = dp.ctx.conntrack!;
    // The bridge learns where the pods are.
    for (const pod of [A, B]) rx(pod.port, arpFrame({ ethDst: BCAST, ethSrc: pod.mac, op: 1, sha: pod.mac, spa: pod.ip, tpa: GW.ip }));
    sent.pa.length = 0;

    // The established flow: A:41000 -> SERVER:443, masqueraded to UP.ip:41000.
    let aSeq = 1000;
    let sSeq = 9000;
    const fromA = (flags: number, data: number[] = []): Buffer =>
      F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: SERVER, proto: 6 }, F.tcp(A.ip, SERVER, 41000, 443, flags, aSeq, sSeq, data)));
    const fromServer = (flags: number, data: number[] = []): Buffer =>
      F.ethernet(UP.mac, UPSTREAM2_MAC, 0x0800, F.ipv4({ src: SERVER, dst: UP.ip, proto: 6 }, F.tcp(SERVER, UP.ip, 443, 41000, flags, sSeq, aSeq, data)));
    rx('pa', fromA(F.TCP_SYN));
    aSeq++;
    rx('up', fromServer(F.TCP_SYN | F.TCP_ACK));
    sSeq++;
    rx('pa', fromA(F.TCP_ACK));
    expect(ct.count).toBe(1);
    expect(ct.tcpStateOf(0)).toBe(TcpState.ESTABLISHED);
    sent.up.length = 0;
    sent.pa.length = 0;

    // The flood: a template SYN to B:80, its source address and port changed per frame with
    // both checksums updated incrementally.
    const template = F.ethernet(UP.mac, UPSTREAM2_MAC, 0x0800, F.ipv4({ src: '1.0.0.1', dst: B.ip, proto: 6, ttl: 60 }, F.tcp('1.0.0.1', B.ip, 1024, 80, F.TCP_SYN, 1, 0)));
    const tSrcHi = template.readUInt16BE(26);
    const tSrcLo = template.readUInt16BE(28);
    const tSport = template.readUInt16BE(34);
    const tIpCheck = template.readUInt16BE(24);
    const tTcpCheck = template.readUInt16BE(50);
    const pool = dp.pool;
    const data = pool.data;
    const upPort = port('up');
    const r = new Random(2024);
    const rss0 = process.memoryUsage().rss;
    let rssPeak = rss0;
    let now = T0;
    let exchanges = 0;
    let maxCount = 0;
    const t0 = performance.now();
    for (let done = 0; done < SYNS; done += BATCH) {
      const n = Math.min(BATCH, SYNS - done);
      for (let i = 0; i < n; i++) {
        const s = pool.alloc();
        const o = pool.start[s];
        template.copy(data, o);
        // A source in 1.0.0.0 - 126.255.255.255, a port of 1024 - 65535.
        const hi = ((1 + r.below(126)) << 8) | r.below(256);
        const lo = r.below(65536);
        const sport = 1024 + r.below(64512);
        data.writeUInt16BE(hi, o + 26);
        data.writeUInt16BE(lo, o + 28);
        data.writeUInt16BE(sport, o + 34);
        data.writeUInt16BE(update16(update16(tIpCheck, tSrcHi, hi), tSrcLo, lo), o + 24);
        data.writeUInt16BE(update16(update16(update16(tTcpCheck, tSrcHi, hi), tSrcLo, lo), tSport, sport), o + 50);
        pool.len[s] = template.length;
        dp.receiveSlot(upPort, s);
      }
      now += n * US_PER_SYN;
      clock.set(now);
      dp.run();
      if (ct.count > maxCount) maxCount = ct.count;
      if ((done / BATCH) % 40 === 39) {
        // Every 10,240 SYNs: a segment each way on the established flow.
        rx('pa', fromA(F.TCP_ACK | F.TCP_PSH, [exchanges & 0xff]));
        aSeq++;
        rx('up', fromServer(F.TCP_ACK | F.TCP_PSH, [exchanges & 0xff]));
        sSeq++;
        exchanges++;
        rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    const rssGrowth = rssPeak - rss0;
    // SYNs whose new entry a later SYN of the same batch evicted before they were routed.
    const gone = dp.stageCounters().prerouting.drops['nat.entry-gone'] ?? 0;
    console.log(
      `syn flood: ${SYNS} SYNs in ${seconds.toFixed(1)} s (${Math.round(SYNS / seconds)} /s), table ${ct.count}/${MAX} (peak ${maxCount}), ` +
        `early drops ${ct.earlyDrop}, new flows dropped ${ct.drop}, SYNs evicted in flight ${gone}, SYNs forwarded ${count[port('pb')]}, RSS +${(rssGrowth / 2 ** 20).toFixed(1)} MiB (peak ${(rssPeak / 2 ** 20).toFixed(0)} MiB)`,
    );

    // The established flow: every segment of both directions went through, translated.
    expect(exchanges).toBeGreaterThan(190);
    expect(sent.up).toHaveLength(exchanges);
    expect(sent.pa).toHaveLength(exchanges);
    for (const f of sent.up) expect([f.subarray(26, 30).join('.'), f.readUInt16BE(34)]).toEqual([UP.ip, 41000]);
    for (const f of sent.pa) expect([f.subarray(30, 34).join('.'), f.readUInt16BE(36)]).toEqual([A.ip, 41000]);
    expect(ct.tcpStateOf(0)).toBe(TcpState.ESTABLISHED);
    // The table stayed within max; every SYN past it evicted an unassured entry or was dropped, counted.
    expect(maxCount).toBeLessThanOrEqual(MAX);
    expect(ct.count).toBeGreaterThan(MAX * 0.95);
    expect(ct.earlyDrop + ct.drop).toBeGreaterThanOrEqual(SYNS - MAX);
    // pb also got the two ARP frames of the start.
    expect(sent.pb).toHaveLength(2);
    expect(count[port('pb')] - sent.pb.length + ct.drop + gone).toBe(SYNS);
    expect(gone).toBeLessThan(SYNS / 100);
    // Memory bounded: the table's arrays (~33 MiB at this max) and the frames, nothing per SYN.
    expect(rssGrowth).toBeLessThan(200 * 2 ** 20);
    expect(pool.available).toBe(free);

    // Past the SYN_SENT timeout (120 s) every flood entry has expired; the established flow remains.
    const end = now + 121_000_000;
    for (let guard = 0; guard < 1_000_000 && dp.nextTimerUs() <= end; guard++) {
      clock.set(dp.nextTimerUs());
      dp.run();
    }
    expect(ct.count).toBe(1);
    expect(ct.tcpStateOf(0)).toBe(TcpState.ESTABLISHED);
  }, 180_000);
});
