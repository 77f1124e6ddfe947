/**
 * decodeFrame on hand-written frames: the representation choices of src/decode/types.ts and
 * the decisions on malformed and truncated input.
 */
import { describe, expect, it } from 'vitest';
import { decodeFrame } from '../../src/decode/decode-frame.ts';
import { tcpFlagsStr } from '../../src/decode/field-lists.ts';
import { formatIpv6 } from '../../src/decode/ipv6-text.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ETH = '00 10 db 88 d2 ef c8 bc c8 96 d2 a0 08 00';
// 10.0.0.1 > 10.0.0.2, UDP, total length 0x24 (36), checksum 0x66c6
const IP_UDP = '45 00 00 24 00 01 00 00 40 11 66 c6 0a 00 00 01 0a 00 00 02';
// UDP 1234 > 53, length 16, checksum 0 (none), 8 data bytes
const UDP = '04 d2 00 35 00 10 00 00 01 02 03 04 05 06 07 08';

describe('decodeFrame', () => {
  it('decodes Ethernet/IPv4/UDP with the documented representations', () => {
    const f = decodeFrame(hex(`${ETH} ${IP_UDP} ${UDP}`));
    expect(f).toEqual({
      len: 50, caplen: 50,
      eth: { src: 'c8:bc:c8:96:d2:a0', dst: '00:10:db:88:d2:ef', type: '0x0800' },
      ip: { src: '10.0.0.1', dst: '10.0.0.2', proto: 17, ttl: 64, id: 1, df: false, mf: false, fragOffset: 0, len: 36, checksumOk: true, hl: 20 },
      udp: { sport: 1234, dport: 53, len: 16 }, // checksum 0: none, so no verdict
    });
  });

  it('ignores Ethernet padding after the datagram', () => {
    const f = decodeFrame(hex(`${ETH} ${IP_UDP} ${UDP} 00 00 00 00 00 00 00 00 00 00`));
    expect(f.error).toBeUndefined();
    expect(f.udp?.len).toBe(16);
  });

  it('reports a total length beyond the frame as an error but still decodes the UDP header', () => {
    const f = decodeFrame(hex(`${ETH} ${IP_UDP} ${UDP}`).subarray(0, 48));
    expect(f.error).toBe('bad ipv4 total length');
    expect(f.ip?.len).toBe(36);
    expect(f.udp).toMatchObject({ sport: 1234, dport: 53, len: 16 });
  });

  it('treats a frame cut by the snaplen as truncation, not as a bad length', () => {
    const f = decodeFrame(hex(`${ETH} ${IP_UDP} ${UDP}`).subarray(0, 48), 48, 50);
    expect(f.error).toBeUndefined();
    expect(f.udp?.checksumOk).toBeUndefined();
    const g = decodeFrame(hex(`${ETH} ${IP_UDP} ${UDP}`).subarray(0, 38), 38, 50);
    expect(g.error).toBe('truncated udp header');
    expect(g.udp).toEqual({ sport: 1234, dport: 53 });
  });

  it('rejects malformed IPv4 headers without an ip object', () => {
    const ihl4 = hex(`${ETH} 44 ${IP_UDP.slice(3)} ${UDP}`);
    expect(decodeFrame(ihl4)).toMatchObject({ error: 'bad ipv4 header length' });
    expect(decodeFrame(ihl4).ip).toBeUndefined();
    expect(decodeFrame(hex(`${ETH} 65 ${IP_UDP.slice(3)} ${UDP}`)).error).toBe('bad ipv4 version');
    expect(decodeFrame(hex(`${ETH} 45 00 00 10`))).toMatchObject({ error: 'truncated ipv4 header' });
    expect(decodeFrame(hex('00 10 db 88 d2 ef c8 bc'))).toEqual({ len: 8, caplen: 8, error: 'truncated ethernet header' });
  });

  it('decodes no L4 header in a later fragment, and no checksum in a first one', () => {
    // MF set, offset 0: a first fragment whose UDP length covers the whole datagram
    const first = hex(`${ETH} 45 00 00 24 00 01 20 00 40 11 46 c6 0a 00 00 01 0a 00 00 02 04 d2 00 35 05 dc 12 34 01 02 03 04 05 06 07 08`);
    const f = decodeFrame(first);
    expect(f.error).toBeUndefined();
    expect(f.ip).toMatchObject({ mf: true, fragOffset: 0, checksumOk: true });
    expect(f.udp).toEqual({ sport: 1234, dport: 53, len: 1500 });
    // offset 185 units = 1480 bytes
    const later = hex(`${ETH} 45 00 00 24 00 01 00 b9 40 11 66 0d 0a 00 00 01 0a 00 00 02 ${UDP}`);
    const g = decodeFrame(later);
    expect(g.ip).toMatchObject({ mf: false, fragOffset: 1480, checksumOk: true });
    expect(g.udp).toBeUndefined();
  });

  it('lists QinQ tags outermost first and reports the outer one as vlan', () => {
    const f = decodeFrame(hex(`ff ff ff ff ff ff 00 20 d2 5a fb 3f 88 a8 00 c8 81 00 27 d1 08 06
      00 01 08 00 06 04 00 01 00 20 d2 5a fb 3f ac 15 4f 61 00 00 00 00 00 00 ac 15 4f 64`));
    expect(f.eth?.type).toBe('0x88a8');
    expect(f.vlan).toEqual({
      id: 200, pcp: 0, type: '0x0806',
      tags: [{ tpid: '0x88a8', id: 200, pcp: 0 }, { tpid: '0x8100', id: 2001, pcp: 1 }],
    });
    expect(f.arp).toEqual({ op: 1, sha: '00:20:d2:5a:fb:3f', spa: '172.21.79.97', tha: '00:00:00:00:00:00', tpa: '172.21.79.100' });
  });

  it('decodes VXLAN on 8472 and stops at a missing I flag', () => {
    const inner = 'ff ff ff ff ff ff 0e 00 00 00 00 02 08 06 00 01 08 00 06 04 00 01 0e 00 00 00 00 02 0a f4 02 00 00 00 00 00 00 00 0a f4 01 00';
    const mk = (flags: string) =>
      hex(`${ETH} 45 00 00 4e 00 01 00 00 40 11 66 9c 0a 00 00 01 0a 00 00 02 c0 00 21 18 00 3a 00 00 ${flags} 00 00 00 00 00 01 00 ${inner}`);
    const f = decodeFrame(mk('08'));
    expect(f.error).toBeUndefined();
    expect(f.vxlan).toMatchObject({ vni: 1, flags: 8, inner: { eth: { src: '0e:00:00:00:00:02' }, arp: { op: 1, tpa: '10.244.1.0' } } });
    const g = decodeFrame(mk('00'));
    expect(g.error).toBe('vxlan I flag not set');
    expect(g.vxlan).toEqual({ vni: 1, flags: 0 });
  });

  it('decodes raw IP and NULL link types, and names unknown ones', () => {
    const raw = hex(`${IP_UDP} ${UDP}`);
    expect(decodeFrame(raw, raw.length, raw.length, 101).udp?.dport).toBe(53);
    const nul = Buffer.concat([hex('02 00 00 00'), raw]);
    expect(decodeFrame(nul, nul.length, nul.length, 0)).toMatchObject({ loopback: { family: 2 }, ip: { src: '10.0.0.1' } });
    expect(decodeFrame(raw, raw.length, raw.length, 147).error).toBe('unsupported link type 147');
  });

  it('formats IPv6 addresses per RFC 5952 and TCP flags like Wireshark', () => {
    expect(formatIpv6(hex('20 01 0d b8 00 00 00 00 00 01 00 00 00 00 00 01'), 0)).toBe('2001:db8::1:0:0:1');
    expect(formatIpv6(hex('fe 80 00 00 00 00 00 00 00 00 00 00 00 00 be ef'), 0)).toBe('fe80::beef');
    expect(formatIpv6(Buffer.alloc(16), 0)).toBe('::');
    expect(formatIpv6(hex('20 01 0d b8 00 00 00 01 00 01 00 01 00 01 00 01'), 0)).toBe('2001:db8:0:1:1:1:1:1');
    expect(tcpFlagsStr('SA')).toBe('·······A··S·');
    expect(tcpFlagsStr('RA')).toBe('·······A·R··');
  });
});
