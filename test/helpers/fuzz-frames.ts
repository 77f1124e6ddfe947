/**
 * Frames for the dataplane fuzz tests: a dozen well-formed seeds from pod A on the stage
 * harness's lab (ARP, pings, UDP and TCP to the router, across it and along the bridge,
 * fragments) and the mutations applied to them: truncations, bit flips, lying length
 * fields, random EtherTypes, random bytes.
 */
import type { Random } from '../../src/core/random.ts';
import * as F from './frames.ts';
import { A, B, GW, UP, UPSTREAM, arpFrame, pingFrame, udpFrame } from '../unit/stage-harness.test.ts';

export function seeds(): Buffer[] {
  const tcp = (flags: number): Buffer =>
    F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: GW.ip, proto: 6 }, [0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]));
  return [
    arpFrame({ ethDst: 'ff:ff:ff:ff:ff:ff', ethSrc: A.mac, op: 1, sha: A.mac, spa: A.ip, tpa: GW.ip }),
    arpFrame({ ethDst: UP.mac, ethSrc: UPSTREAM.mac, op: 2, sha: UPSTREAM.mac, spa: UPSTREAM.ip, tha: UP.mac, tpa: UP.ip }),
    pingFrame({ from: A, toMac: GW.mac, dst: GW.ip }),
    pingFrame({ from: A, toMac: GW.mac, dst: '10.9.0.7', ttl: 1 }),
    udpFrame({ from: A, toMac: GW.mac, dst: '8.8.8.8', dataLen: 1400, df: true }),
    udpFrame({ from: A, toMac: GW.mac, dst: '10.200.1.1', dataLen: 1400 }),
    udpFrame({ from: A, toMac: B.mac, dst: B.ip }),
    udpFrame({ from: A, toMac: GW.mac, dst: GW.ip, mf: true }),
    udpFrame({ from: A, toMac: GW.mac, dst: GW.ip, fragOffset: 1480 }),
    tcp(0x02),
    tcp(0x10),
    F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: GW.ip, proto: 1 }, [13, 0, 0, 0, ...F.bytes(16)])),
  ];
}

export function mutate(r: Random, frame: Buffer): Buffer {
  const f = Buffer.from(frame);
  switch (r.below(6)) {
    case 0:
      return f.subarray(0, r.below(f.length + 1));
    case 1: {
      for (let k = 1 + r.below(4); k > 0; k--) f[r.below(f.length)] ^= 1 << r.below(8);
      return f;
    }
    case 2: {
      // A length field that lies: IHL, total length, UDP length, TCP data offset, ARP lengths.
      const at = [14, 16, 17, 38, 39, 46, 18, 19][r.below(8)];
      if (at < f.length) f[at] = r.nextU32() & 0xff;
      return f;
    }
    case 3:
      f.writeUInt16BE([0x0800, 0x0806, 0x86dd, 0x8100, 0x88a8, r.below(0x10000)][r.below(6)], 12);
      return f;
    case 4:
      return Buffer.from(F.bytes(r.below(1600), r.nextU32()));
    default:
      return f;
  }
}
