import { describe, expect, it } from 'vitest';
import {
  broadcastOf, cidrContains, cidrsOverlap, formatCidr, formatIpv4, inPrefix, isLoopback, isMartianSource, isMulticast,
  isMulticastOrBroadcast, isReserved, networkOf, parseCidr, parseIpv4, prefixMask, subnetOf,
} from '../../src/wire/ipv4-address.ts';

describe('wire/ipv4-address', () => {
  it('parses dotted quads to unsigned 32-bit numbers', () => {
    expect(parseIpv4('10.244.1.2')).toBe(0x0af40102);
    expect(parseIpv4('255.255.255.255')).toBe(0xffffffff);
    expect(parseIpv4('192.168.50.11')).toBe(0xc0a8320b);
    expect(parseIpv4('0.0.0.0')).toBe(0);
    expect(parseIpv4('200.1.1.1')).toBeGreaterThan(0);
  });

  it('formats', () => {
    expect(formatIpv4(0xc0a8320b)).toBe('192.168.50.11');
    expect(formatIpv4(0xffffffff)).toBe('255.255.255.255');
    expect(formatIpv4(-1)).toBe('255.255.255.255');
  });

  it.each(['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.1.1.1', '1.1.1.-1', 'a.b.c.d', '1..1.1', ' 1.1.1.1'])('rejects %j', (s) => {
    expect(() => parseIpv4(s)).toThrow(/invalid IPv4/);
  });

  it('parses CIDR and rejects bad prefix lengths', () => {
    expect(parseCidr('10.244.1.1/24')).toEqual({ addr: 0x0af40101, prefixLen: 24 });
    expect(parseCidr('0.0.0.0/0')).toEqual({ addr: 0, prefixLen: 0 });
    expect(parseCidr('10.0.0.1')).toEqual({ addr: 0x0a000001, prefixLen: 32 });
    expect(() => parseCidr('10.0.0.0/33')).toThrow(/prefix length/);
    expect(() => parseCidr('10.0.0.0/')).toThrow(/prefix length/);
    expect(() => parseCidr('10.0.0.0/08')).toThrow(/prefix length/);
    expect(() => parseCidr('10.0.0/8')).toThrow(/invalid IPv4/);
  });

  it('computes masks and membership', () => {
    expect(prefixMask(0)).toBe(0);
    expect(prefixMask(1)).toBe(0x80000000);
    expect(prefixMask(24)).toBe(0xffffff00);
    expect(prefixMask(32)).toBe(0xffffffff);
    expect(inPrefix(parseIpv4('10.244.2.7'), parseIpv4('10.244.0.0'), 16)).toBe(true);
    expect(inPrefix(parseIpv4('10.245.2.7'), parseIpv4('10.244.0.0'), 16)).toBe(false);
    expect(inPrefix(parseIpv4('200.0.0.1'), 0, 0)).toBe(true);
    expect(inPrefix(parseIpv4('200.0.0.1'), parseIpv4('200.0.0.1'), 32)).toBe(true);
    expect(networkOf(parseIpv4('10.244.1.77'), 24)).toBe(parseIpv4('10.244.1.0'));
    expect(broadcastOf(parseIpv4('10.244.1.77'), 24)).toBe(parseIpv4('10.244.1.255'));
  });

  it('classifies martian sources and multicast/broadcast', () => {
    for (const a of ['0.0.0.0', '0.1.2.3', '127.0.0.1', '224.0.0.1', '239.255.255.255', '240.0.0.1', '255.255.255.255']) {
      expect(isMartianSource(parseIpv4(a)), a).toBe(true);
    }
    for (const a of ['1.1.1.1', '10.0.0.1', '126.255.255.255', '128.0.0.1', '223.255.255.255']) {
      expect(isMartianSource(parseIpv4(a)), a).toBe(false);
    }
    expect(isMulticastOrBroadcast(parseIpv4('224.0.0.5'))).toBe(true);
    expect(isMulticastOrBroadcast(parseIpv4('255.255.255.255'))).toBe(true);
    expect(isMulticastOrBroadcast(parseIpv4('240.0.0.1'))).toBe(false);
    expect(isMulticastOrBroadcast(parseIpv4('10.0.0.255'))).toBe(false);
  });

  it('formats, contains and overlaps prefixes', () => {
    const c = parseCidr('10.244.1.77/24');
    expect(formatCidr(c)).toBe('10.244.1.77/24');
    expect(formatCidr(subnetOf(c))).toBe('10.244.1.0/24');
    expect(cidrContains(c, parseIpv4('10.244.1.200'))).toBe(true);
    expect(cidrContains(c, parseIpv4('10.244.2.1'))).toBe(false);
    expect(cidrsOverlap(parseCidr('10.244.0.0/16'), parseCidr('10.244.7.0/24'))).toBe(true);
    expect(cidrsOverlap(parseCidr('10.244.7.0/24'), parseCidr('10.244.0.0/16'))).toBe(true);
    expect(cidrsOverlap(parseCidr('10.244.7.0/24'), parseCidr('10.244.8.0/24'))).toBe(false);
    expect(cidrsOverlap(parseCidr('0.0.0.0/0'), parseCidr('192.0.2.1/32'))).toBe(true);
  });

  it('names loopback, multicast and reserved addresses', () => {
    expect(['126.255.255.255', '127.0.0.1', '127.255.255.255', '128.0.0.0'].map((a) => isLoopback(parseIpv4(a)))).toEqual([false, true, true, false]);
    expect(['223.255.255.255', '224.0.0.1', '239.255.255.255', '240.0.0.0'].map((a) => isMulticast(parseIpv4(a)))).toEqual([false, true, true, false]);
    expect(['239.255.255.255', '240.0.0.1', '255.255.255.255'].map((a) => isReserved(parseIpv4(a)))).toEqual([false, true, true]);
  });
});
