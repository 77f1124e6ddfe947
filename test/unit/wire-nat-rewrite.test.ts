/**
 * NAT rewrites keep every checksum equal to a full recomputation: IPv4 header, TCP and UDP
 * (pseudo header and ports), ICMP echo identifiers, offload partial sums, UDP's zero rule,
 * and addresses and ports quoted inside ICMP errors. Packets are built by the test helpers
 * and checked with a checksum written here, independently of src/wire/checksum.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  NatSide,
  refreshIcmpChecksum,
  rewriteAddress,
  rewriteL4End,
  rewritePort,
  rewriteQuotedAddress,
  rewriteQuotedPort,
} from '../../src/wire/nat-rewrite.ts';
import { icmpEcho, ipv4, udp } from '../helpers/frames.ts';

function sum16(b: Uint8Array, acc = 0): number {
  let s = acc;
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (b[i + 1] ?? 0);
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}
const ok = (b: Uint8Array, acc = 0): boolean => sum16(b, acc) === 0xffff;
const dotted = (a: number): string => [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join('.');
const pseudo = (p: Buffer, proto: number): number => {
  const len = p.length - 20;
  return sum16(p.subarray(12, 20)) + proto + len;
};

function tcp(src: string, dst: string, sport: number, dport: number, payload: number[]): number[] {
  const seg = [sport >> 8, sport & 255, dport >> 8, dport & 255, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0, ...payload];
  const ipb = (s: string) => s.split('.').map(Number);
  const ps = [...ipb(src), ...ipb(dst), 0, 6, (seg.length >> 8) & 255, seg.length & 255];
  const c = ~sum16(Uint8Array.from([...ps, ...seg])) & 0xffff;
  seg[16] = c >> 8;
  seg[17] = c & 255;
  return seg;
}

const addr = fc.integer({ min: 1, max: 0xfffffffe }).map((a) => a >>> 0);
const port = fc.integer({ min: 1, max: 65535 });
const payload = fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 41 });

describe('rewriteAddress and rewritePort', () => {
  it('keep IPv4 and TCP checksums valid for any address and port, either side', () => {
    fc.assert(
      fc.property(addr, port, payload, fc.boolean(), (a, p, data, src) => {
        const pkt = Buffer.from(ipv4({ src: '10.244.1.2', dst: '93.184.216.34', proto: 6 }, tcp('10.244.1.2', '93.184.216.34', 40000, 80, data)));
        const side = src ? NatSide.SOURCE : NatSide.DESTINATION;
        rewriteAddress(pkt, 0, 20, 6, side, a, false);
        rewritePort(pkt, 20, 6, side, p, false);
        expect(pkt.readUInt32BE(src ? 12 : 16)).toBe(a);
        expect(pkt.readUInt16BE(src ? 20 : 22)).toBe(p);
        expect(ok(pkt.subarray(0, 20))).toBe(true);
        expect(ok(pkt.subarray(20), pseudo(pkt, 6))).toBe(true);
      }),
      { seed: 7, numRuns: 2000 },
    );
  });

  it('keep UDP checksums valid, never write a computed zero, and leave "no checksum" alone', () => {
    fc.assert(
      fc.property(addr, port, payload, (a, p, data) => {
        const pkt = Buffer.from(ipv4({ src: '10.244.1.2', dst: '10.96.0.10', proto: 17 }, udp('10.244.1.2', '10.96.0.10', 5353, 53, data)));
        rewriteAddress(pkt, 0, 20, 17, NatSide.DESTINATION, a, false);
        rewritePort(pkt, 20, 17, NatSide.DESTINATION, p, false);
        expect(pkt.readUInt16BE(26)).not.toBe(0);
        expect(ok(pkt.subarray(20), pseudo(pkt, 17))).toBe(true);
        expect(ok(pkt.subarray(0, 20))).toBe(true);
      }),
      { seed: 8, numRuns: 2000 },
    );
    const none = Buffer.from(ipv4({ src: '10.244.1.2', dst: '10.96.0.10', proto: 17 }, udp('10.244.1.2', '10.96.0.10', 5353, 53, [1, 2, 3])));
    none.writeUInt16BE(0, 26);
    rewriteAddress(none, 0, 20, 17, NatSide.SOURCE, 0xc0a83201, false);
    rewritePort(none, 20, 17, NatSide.SOURCE, 1024, false);
    expect(none.readUInt16BE(26)).toBe(0);
    expect(ok(none.subarray(0, 20))).toBe(true);
  });

  it('rewrite an ICMP echo identifier with the ICMP checksum, and no pseudo header', () => {
    const pkt = Buffer.from(ipv4({ src: '10.244.1.2', dst: '8.8.8.8', proto: 1 }, icmpEcho(8, 0x1234, 1, [9, 8, 7])));
    rewriteAddress(pkt, 0, 20, 1, NatSide.SOURCE, 0xc0a8320b, false);
    rewritePort(pkt, 20, 1, NatSide.SOURCE, 0xbeef, false);
    expect(pkt.readUInt16BE(24)).toBe(0xbeef);
    expect(ok(pkt.subarray(20))).toBe(true);
    expect(ok(pkt.subarray(0, 20))).toBe(true);
    expect(dotted(pkt.readUInt32BE(12))).toBe('192.168.50.11');
  });

  it('adjust an offload partial sum for addresses only, as the device will add the rest', () => {
    fc.assert(
      fc.property(addr, port, payload, (a, p, data) => {
        const pkt = Buffer.from(ipv4({ src: '10.244.1.2', dst: '93.184.216.34', proto: 6 }, tcp('10.244.1.2', '93.184.216.34', 40000, 80, data)));
        // NEEDS_CSUM: the field holds the pseudo-header sum, folded, not inverted.
        const fold = (x: number) => sum16(new Uint8Array(0), x);
        pkt.writeUInt16BE(fold(pseudo(pkt, 6)), 36);
        rewriteAddress(pkt, 0, 20, 6, NatSide.SOURCE, a, true);
        rewritePort(pkt, 20, 6, NatSide.SOURCE, p, true);
        expect(pkt.readUInt16BE(36)).toBe(fold(pseudo(pkt, 6)));
        // The device completes it: the sum over the segment with the partial sum in place.
        const done = Buffer.from(pkt);
        done.writeUInt16BE(~sum16(done.subarray(20)) & 0xffff, 36);
        expect(ok(done.subarray(20), pseudo(done, 6))).toBe(true);
      }),
      { seed: 9, numRuns: 1000 },
    );
  });

  it('change nothing when the value is already the target', () => {
    const pkt = Buffer.from(ipv4({ src: '10.244.1.2', dst: '10.96.0.10', proto: 17 }, udp('10.244.1.2', '10.96.0.10', 5353, 53, [1])));
    const before = Buffer.from(pkt);
    rewriteAddress(pkt, 0, 20, 17, NatSide.SOURCE, 0x0af40102, false);
    rewritePort(pkt, 20, 17, NatSide.DESTINATION, 53, false);
    expect(pkt.equals(before)).toBe(true);
  });
});

describe('rewriteL4End (address and port in one update per checksum)', () => {
  /** Checksum fields are equal as one's-complement numbers (0x0000 and 0xffff are both zero). */
  const sameSum = (a: number, b: number): boolean => a === b || (a % 0xffff === 0 && b % 0xffff === 0);

  it('gives what rewriteAddress then rewritePort give, for TCP and UDP, either side, offloaded or not', () => {
    fc.assert(
      fc.property(addr, port, payload, fc.boolean(), fc.boolean(), fc.boolean(), (a, p, data, isTcp, src, partial) => {
        const proto = isTcp ? 6 : 17;
        const l4 = isTcp ? tcp('10.244.1.2', '93.184.216.34', 40000, 80, data) : udp('10.244.1.2', '93.184.216.34', 40000, 80, data);
        const pkt = Buffer.from(ipv4({ src: '10.244.1.2', dst: '93.184.216.34', proto }, l4));
        const csum = isTcp ? 36 : 26;
        if (partial) pkt.writeUInt16BE(sum16(new Uint8Array(0), pseudo(pkt, proto)), csum);
        const side = src ? NatSide.SOURCE : NatSide.DESTINATION;
        const twoSteps = Buffer.from(pkt);
        rewriteAddress(twoSteps, 0, 20, proto, side, a, partial);
        rewritePort(twoSteps, 20, proto, side, p, partial);
        rewriteL4End(pkt, 0, 20, proto, side, a, p, partial);
        expect(pkt.readUInt32BE(src ? 12 : 16)).toBe(a);
        expect(pkt.readUInt16BE(src ? 20 : 22)).toBe(p);
        expect(ok(pkt.subarray(0, 20))).toBe(true);
        if (!partial) expect(ok(pkt.subarray(20), pseudo(pkt, proto))).toBe(true);
        expect(sameSum(pkt.readUInt16BE(csum), twoSteps.readUInt16BE(csum))).toBe(true);
        expect(sameSum(pkt.readUInt16BE(10), twoSteps.readUInt16BE(10))).toBe(true);
        pkt.writeUInt16BE(0, csum);
        twoSteps.writeUInt16BE(0, csum);
        pkt.writeUInt16BE(0, 10);
        twoSteps.writeUInt16BE(0, 10);
        expect(pkt.equals(twoSteps)).toBe(true);
      }),
      { seed: 10, numRuns: 3000 },
    );
  });

  it('leaves a UDP "no checksum" zero, and changes nothing when the end is already addr:port', () => {
    const none = Buffer.from(ipv4({ src: '10.244.1.2', dst: '10.96.0.10', proto: 17 }, udp('10.244.1.2', '10.96.0.10', 5353, 53, [1, 2, 3])));
    none.writeUInt16BE(0, 26);
    rewriteL4End(none, 0, 20, 17, NatSide.SOURCE, 0xc0a83201, 1024, false);
    expect(none.readUInt16BE(26)).toBe(0);
    expect(ok(none.subarray(0, 20))).toBe(true);
    const pkt = Buffer.from(ipv4({ src: '10.244.1.2', dst: '10.96.0.10', proto: 17 }, udp('10.244.1.2', '10.96.0.10', 5353, 53, [1])));
    const before = Buffer.from(pkt);
    rewriteL4End(pkt, 0, 20, 17, NatSide.SOURCE, 0x0af40102, 5353, false);
    expect(pkt.equals(before)).toBe(true);
  });
});

describe('rewrites inside an ICMP error', () => {
  /** Port unreachable from 93.184.216.34 about a UDP datagram the node sent, quoting `quote` bytes of its L4 header. */
  function error(quote: number): Buffer {
    const inner = Buffer.from(ipv4({ src: '192.168.50.11', dst: '93.184.216.34', proto: 17 }, udp('192.168.50.11', '93.184.216.34', 1024, 53, [1, 2, 3, 4])));
    const quoted = inner.subarray(0, 20 + quote);
    const icmp = Buffer.concat([Buffer.from([3, 3, 0, 0, 0, 0, 0, 0]), quoted]);
    const outer = Buffer.from(ipv4({ src: '93.184.216.34', dst: '192.168.50.11', proto: 1 }, [...icmp]));
    refreshIcmpChecksum(outer, 20, outer.length - 20);
    return outer;
  }

  it('translate the quoted header back to the pod, every checksum right, the quoted UDP checksum too', () => {
    const pkt = error(12);
    rewriteAddress(pkt, 0, 20, 1, NatSide.DESTINATION, 0x0af40102, false);
    rewriteQuotedAddress(pkt, 28, 48, 12, 17, NatSide.SOURCE, 0x0af40102);
    rewriteQuotedPort(pkt, 48, 12, 17, NatSide.SOURCE, 40000);
    refreshIcmpChecksum(pkt, 20, pkt.length - 20);
    expect(ok(pkt.subarray(0, 20))).toBe(true);
    expect(ok(pkt.subarray(20))).toBe(true);
    expect(ok(pkt.subarray(28, 48))).toBe(true);
    expect(dotted(pkt.readUInt32BE(28 + 12))).toBe('10.244.1.2');
    expect(pkt.readUInt16BE(48)).toBe(40000);
    const quotedUdp = pkt.subarray(48, 60);
    expect(ok(quotedUdp, sum16(pkt.subarray(40, 48)) + 17 + 12)).toBe(true);
  });

  it('translate the ports of an 8-byte quote without reaching past it', () => {
    const pkt = error(8);
    const len = pkt.length;
    rewriteQuotedAddress(pkt, 28, 48, 8, 17, NatSide.SOURCE, 0x0af40102);
    rewriteQuotedPort(pkt, 48, 8, 17, NatSide.SOURCE, 40000);
    refreshIcmpChecksum(pkt, 20, len - 20);
    expect(pkt.length).toBe(len);
    expect(pkt.readUInt16BE(48)).toBe(40000);
    expect(ok(pkt.subarray(20))).toBe(true);
    expect(ok(pkt.subarray(28, 48))).toBe(true);
  });
});
