/**
 * The listing's lines written straight from the table (conntrack-lines.ts, on AsciiWriter)
 * are the object-based forms exactly: the text of formatConntrackEntry(conntrackEntryJson)
 * and the JSON of JSON.stringify(conntrackEntryJson), for entries of every protocol, TCP
 * state, flag, NAT binding, service tag (never shown: mark is 0) and counter size.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AsciiWriter } from '../../src/admin/ascii-writer.ts';
import { formatConntrackEntry } from '../../src/admin/conntrack-format.ts';
import { conntrackEntryJson } from '../../src/admin/conntrack-json.ts';
import { CONNTRACK_LINE_MAX, conntrackEntryLine } from '../../src/admin/conntrack-lines.ts';
import { Conntrack, CT_LIVE } from '../../src/tables/conntrack.ts';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from '../../src/tables/conntrack-tcp.ts';
import { formatIpv4 } from '../../src/wire/ipv4-address.ts';

describe('AsciiWriter', () => {
  it('writes whole numbers up to 2^53, dotted quads and text without a stray byte', () => {
    const w = new AsciiWriter(Buffer.alloc(256, 0xa5));
    for (const n of [0, 7, 9, 10, 99, 100, 65535, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 123456789012, 2 ** 53]) {
      w.uint(n);
      w.byte(32);
    }
    w.ipv4(0);
    w.byte(32);
    w.ipv4(-1);
    w.byte(32);
    w.ipv4(0x0af40102);
    w.text(' ok');
    expect(w.toString()).toBe('0 7 9 10 99 100 65535 2147483648 4294967295 4294967296 123456789012 9007199254740992 0.0.0.0 255.255.255.255 10.244.1.2 ok');
    expect(w.buf[w.pos]).toBe(0xa5);
    expect(w.room).toBe(256 - w.pos);
  });

  it('writes any number and address as String and formatIpv4 do', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), (n, a) => {
        const w = new AsciiWriter(Buffer.alloc(64));
        w.uint(n);
        w.byte(32);
        w.ipv4(a);
        expect(w.toString()).toBe(`${n} ${formatIpv4(a >>> 0)}`);
      }),
    );
  });
});

describe('conntrack listing lines', () => {
  it('equal the object-based text and JSON for random tables', () => {
    const flow = fc.record({
      proto: fc.constantFrom(6, 17, 1),
      src: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      dst: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      sport: fc.integer({ min: 0, max: 65535 }),
      dport: fc.integer({ min: 0, max: 65535 }),
      /** Packets that follow: direction, TCP flags, length. */
      packets: fc.array(fc.tuple(fc.boolean(), fc.constantFrom(TCP_SYN, TCP_SYN | TCP_ACK, TCP_ACK, TCP_FIN | TCP_ACK, TCP_RST), fc.integer({ min: 20, max: 65535 })), { maxLength: 6 }),
      nat: fc.constantFrom('none', 'snat', 'dnat'),
      natPort: fc.integer({ min: 1, max: 65535 }),
      tag: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      bigCounters: fc.boolean(),
      age: fc.integer({ min: 0, max: 200_000_000 }),
    });
    fc.assert(
      fc.property(fc.array(flow, { minLength: 1, maxLength: 12 }), (flows) => {
        const ct = new Conntrack({ max: 64, hashSeed: 7 });
        ct.nowUs = 1_700_000_000_000_000;
        for (const f of flows) {
          const first = f.proto === 6 ? TCP_SYN : f.proto === 1 ? 8 : 0;
          const sport = f.proto === 1 ? f.dport : f.sport;
          const ref = ct.track(f.proto, f.src, f.dst, sport, f.dport, first, 60);
          if (ref < 0 || (ref & 1) === 1) continue;
          const id = ref >> 1;
          if (f.nat === 'snat') ct.bindSnat(id, 0xc0a8320b | 0, f.natPort);
          if (f.nat === 'dnat') ct.bindDnat(id, 0x0af40209 | 0, f.natPort);
          for (const [reply, flags, len] of f.packets) {
            // A packet of a direction carries that direction's tuple.
            const r = (id << 1) | (reply ? 1 : 0);
            const l4 = f.proto === 6 ? flags : f.proto === 1 ? (reply ? 0 : 8) : 0;
            if ((ct.statusOf(id) & CT_LIVE) === 0) break; // destroyed (an RST before any reply)
            ct.track(f.proto, ct.srcOf(r), ct.dstOf(r), ct.sportOf(r), ct.dportOf(r), l4, f.bigCounters ? len * 2 ** 33 : len);
          }
          if (ct.isLive(id)) ct.setServiceTag(id, f.tag);
        }
        ct.nowUs += flows[0].age;
        for (let id = 0; id < ct.highWater; id++) {
          if (!ct.isLive(id)) continue;
          const obj = conntrackEntryJson(ct, id);
          expect(conntrackEntryLine(ct, id)).toBe(formatConntrackEntry(obj));
          const json = conntrackEntryLine(ct, id, true);
          expect(json).toBe(JSON.stringify(obj));
          expect(json.length).toBeLessThan(CONNTRACK_LINE_MAX);
          expect(obj.mark).toBe(0);
        }
      }),
      { numRuns: 300 },
    );
  });
});
