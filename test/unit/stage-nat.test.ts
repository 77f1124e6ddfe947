/**
 * Connection tracking and NAT at the hooks, stage by stage, on the stage tests' lab node
 * (pods A, B, C on cni0 10.244.1.0/24, an uplink `up` 192.168.50.11/24, a narrow L3 link
 * `slow` 10.9.0.1/24 with MTU 1000) with `nat.clusterCIDR` 10.244.0.0/16: masquerade and its
 * replies, ICMP echo identifiers, what is and is not masqueraded, ctstate per hook, the
 * INVALID drop, unconfirmed entries, fragments, related ICMP errors built by the router,
 * null bindings and a DNAT policy at the place the Services issue will fill, and trace notes.
 * Frames are built by test/helpers/frames.ts; every checksum is verified independently.
 */
import { dropReasons } from '../../src/core/drop-reason.ts';
import { describe, expect, it } from 'vitest';
import { ACCEPT } from '../../src/core/hook.ts';
import { TextTracer } from '../../src/decode/text-tracer.ts';
import { NatDst, type NatPolicy } from '../../src/stages/nat-manip.ts';
import { type Conntrack, CT_DNAT, CT_SNAT } from '../../src/tables/conntrack.ts';
import { conntrackEntryView } from '../../src/tables/conntrack-views.ts';
import { TcpState } from '../../src/tables/conntrack-tcp.ts';
import { parseIpv4 } from '../../src/wire/ipv4-address.ts';
import * as F from '../helpers/frames.ts';
import { A, B, GW, Harness, LAB, SLOW, UP, icmpOf, introduce, ip4Of, isIcmp, udpFrame } from './stage-harness.test.ts';

const NAT = LAB + 'nat: { clusterCIDR: 10.244.0.0/16 }\n';
const SERVER = '203.0.113.5';
const UPSTREAM2_MAC = '02:00:00:00:50:02';

/** The TCP/UDP checksum of the frame's datagram sums right (0 for UDP means none). */
function l4ChecksumOk(f: Buffer): boolean {
  const ip = ip4Of(f);
  const l4 = 14 + ip.ihl;
  const seg = [...f.subarray(l4, 14 + ip.total)];
  if (ip.proto === 17 && f.readUInt16BE(l4 + 6) === 0) return true;
  return F.checksum([...F.ip(ip.src), ...F.ip(ip.dst), 0, ip.proto, seg.length >> 8, seg.length & 0xff, ...seg]) === 0;
}

const ports = (f: Buffer): [number, number] => {
  const l4 = 14 + ip4Of(f).ihl;
  return [f.readUInt16BE(l4), f.readUInt16BE(l4 + 2)];
};

/** A UDP frame from the server side (on `up`, from the upstream router 203.0.113.0/24 goes through). */
function fromServer(dst: string, sport: number, dport: number, src = SERVER): Buffer {
  return F.ethernet(UP.mac, UPSTREAM2_MAC, 0x0800, F.ipv4({ src, dst, proto: 17 }, F.udp(src, dst, sport, dport, F.bytes(20, 5))));
}

function tcpFrame(from: { mac: string; ip: string }, toMac: string, dst: string, sport: number, dport: number, flags: number, seq = 1000, ack = 0, data: number[] = []): Buffer {
  return F.ethernet(toMac, from.mac, 0x0800, F.ipv4({ src: from.ip, dst, proto: 6 }, F.tcp(from.ip, dst, sport, dport, flags, seq, ack, data)));
}

const ctOf = (h: Harness): Conntrack => {
  const ct = h.dp.ctx.conntrack;
  if (ct === null) throw new Error('conntrack off');
  return ct;
};

/** Live entries as `conntrack -L` would list them (tuples as text). */
function entries(h: Harness): string[] {
  const ct = ctOf(h);
  const out: string[] = [];
  const t = (x: { src: number; dst: number; sport: number; dport: number }): string => `${ipText(x.src)}:${x.sport}>${ipText(x.dst)}:${x.dport}`;
  for (let id = 0; id < ct.highWater; id++) {
    const v = conntrackEntryView(ct, id);
    if (v) out.push(`${v.proto} ${t(v.original)} ${t(v.reply)}${v.state ? ' ' + v.state : ''}`);
  }
  return out.sort();
}
const ipText = (a: number): string => [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join('.');

describe('masquerade', () => {
  it('gives a pod flow leaving through the uplink the uplink address, keeps its port, and translates the reply back', () => {
    const h = new Harness(NAT);
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: SERVER, sport: 40000, dport: 53 }));
    const [out] = h.take('up');
    expect(ip4Of(out)).toMatchObject({ src: UP.ip, dst: SERVER, ttl: 63, checksumOk: true });
    expect(ports(out)).toEqual([40000, 53]);
    expect(l4ChecksumOk(out)).toBe(true);
    expect(entries(h)).toEqual([`17 ${A.ip}:40000>${SERVER}:53 ${SERVER}:53>${UP.ip}:40000`]);

    h.rx('up', fromServer(UP.ip, 53, 40000));
    const [back] = h.take('pa');
    expect(ip4Of(back)).toMatchObject({ src: SERVER, dst: A.ip, ttl: 63, checksumOk: true });
    expect(ports(back)).toEqual([53, 40000]);
    expect(l4ChecksumOk(back)).toBe(true);
    expect(back.subarray(0, 6)).toEqual(Buffer.from(F.mac(A.mac)));
    const ct = ctOf(h);
    expect(ct.statusOf(0) & CT_SNAT).toBe(CT_SNAT);
  });

  it('gives the second of two pods with the same source port towards one server another port, and each reply to its pod', () => {
    const h = new Harness(NAT);
    introduce(h, A);
    introduce(h, B);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: SERVER, sport: 40000, dport: 53 }));
    h.rx('pb', udpFrame({ from: B, toMac: GW.mac, dst: SERVER, sport: 40000, dport: 53 }));
    const [a, b] = h.take('up');
    expect([ip4Of(a).src, ip4Of(b).src]).toEqual([UP.ip, UP.ip]);
    expect(ports(a)).toEqual([40000, 53]);
    const bPort = ports(b)[0];
    expect(bPort).not.toBe(40000);
    expect(bPort).toBeGreaterThanOrEqual(1024);
    expect([l4ChecksumOk(a), l4ChecksumOk(b)]).toEqual([true, true]);
    h.rx('up', fromServer(UP.ip, 53, bPort));
    h.rx('up', fromServer(UP.ip, 53, 40000));
    expect(h.take('pb').map((f) => [ip4Of(f).dst, ...ports(f), l4ChecksumOk(f)])).toEqual([[B.ip, 53, 40000, true]]);
    expect(h.take('pa').map((f) => [ip4Of(f).dst, ...ports(f), l4ChecksumOk(f)])).toEqual([[A.ip, 53, 40000, true]]);
  });

  it('masquerades ICMP echo by identifier: the second pod with the same identifier gets another', () => {
    const h = new Harness(NAT);
    introduce(h, A);
    introduce(h, B);
    const ping = (from: typeof A) => F.ethernet(GW.mac, from.mac, 0x0800, F.ipv4({ src: from.ip, dst: SERVER, proto: 1 }, F.icmpEcho(8, 0x77, 1, F.bytes(16, 3))));
    h.rx('pa', ping(A));
    h.rx('pb', ping(B));
    const [a, b] = h.take('up');
    const idOf = (f: Buffer): number => f.readUInt16BE(14 + 20 + 4);
    expect([ip4Of(a).src, idOf(a), icmpOf(a).checksumOk]).toEqual([UP.ip, 0x77, true]);
    expect([ip4Of(b).src, icmpOf(b).checksumOk]).toEqual([UP.ip, true]);
    expect(idOf(b)).not.toBe(0x77);
    const reply = (id: number) => F.ethernet(UP.mac, UPSTREAM2_MAC, 0x0800, F.ipv4({ src: SERVER, dst: UP.ip, proto: 1 }, F.icmpEcho(0, id, 1, F.bytes(16, 3))));
    h.rx('up', reply(idOf(b)));
    h.rx('up', reply(0x77));
    const [rb] = h.take('pb');
    const [ra] = h.take('pa');
    expect([ip4Of(rb).dst, idOf(rb), icmpOf(rb).checksumOk, ip4Of(rb).checksumOk]).toEqual([B.ip, 0x77, true, true]);
    expect([ip4Of(ra).dst, idOf(ra), icmpOf(ra).checksumOk]).toEqual([A.ip, 0x77, true]);
  });

  it('leaves alone pod-to-pod traffic, bridged or routed, and anything leaving through a bridge interface', () => {
    const h = new Harness(NAT);
    introduce(h, A);
    introduce(h, B);
    h.rx('pa', udpFrame({ from: A, toMac: B.mac, dst: B.ip }));
    expect(ip4Of(h.take('pb')[0]).src).toBe(A.ip);
    // Routed to a pod of the same node through the gateway MAC: destination inside the cluster.
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: B.ip }));
    expect(ip4Of(h.take('pb')[0]).src).toBe(A.ip);
    // Not from the cluster: a host on the narrow link talking to the outside keeps its address.
    h.rx('slow', F.ethernet(SLOW.mac, '02:00:00:00:09:02', 0x0800, F.ipv4({ src: '10.200.0.9', dst: SERVER, proto: 17 }, F.udp('10.200.0.9', SERVER, 1, 2, []))));
    expect(ip4Of(h.take('up')[0]).src).toBe('10.200.0.9');
    expect(ctOf(h).statusOf(0) & CT_SNAT).toBe(0);
  });

  it('takes the address of the port the flow leaves by: the narrow link has its own', () => {
    const h = new Harness(NAT);
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '10.200.1.1', sport: 5000 }));
    const [out] = h.take('slow');
    expect(ip4Of(out)).toMatchObject({ src: SLOW.ip, dst: '10.200.1.1', checksumOk: true });
    expect(l4ChecksumOk(out)).toBe(true);
  });
});

describe('ctstate and the INVALID drop', () => {
  it('moves a masqueraded TCP flow through its states, and drops a forwarded ACK that belongs to no flow', () => {
    const h = new Harness(NAT);
    introduce(h, A);
    const ct = ctOf(h);
    h.rx('pa', tcpFrame(A, GW.mac, SERVER, 41000, 443, F.TCP_SYN, 1000));
    const [syn] = h.take('up');
    expect([ip4Of(syn).src, ...ports(syn), l4ChecksumOk(syn)]).toEqual([UP.ip, 41000, 443, true]);
    expect(ct.tcpStateOf(0)).toBe(TcpState.SYN_SENT);
    const fromSrv = (flags: number, seq: number, ack: number) =>
      F.ethernet(UP.mac, UPSTREAM2_MAC, 0x0800, F.ipv4({ src: SERVER, dst: UP.ip, proto: 6 }, F.tcp(SERVER, UP.ip, 443, 41000, flags, seq, ack)));
    h.rx('up', fromSrv(F.TCP_SYN | F.TCP_ACK, 5000, 1001));
    const [synack] = h.take('pa');
    expect([ip4Of(synack).dst, ...ports(synack), l4ChecksumOk(synack)]).toEqual([A.ip, 443, 41000, true]);
    expect(ct.tcpStateOf(0)).toBe(TcpState.SYN_RECV);
    h.rx('pa', tcpFrame(A, GW.mac, SERVER, 41000, 443, F.TCP_ACK, 1001, 5001));
    expect(h.take('up')).toHaveLength(1);
    expect(ct.tcpStateOf(0)).toBe(TcpState.ESTABLISHED);
    // An ACK of no flow (another port): INVALID, and forwarded, so dropped.
    h.rx('pa', tcpFrame(A, GW.mac, SERVER, 41001, 443, F.TCP_ACK, 1, 1));
    expect(h.take('up')).toHaveLength(0);
    expect(h.drops('postrouting')).toEqual({ 'conntrack.invalid': 1 });
    expect(ct.count).toBe(1);
  });

  it('answers an INVALID ACK addressed to the router with a reset instead of dropping it', () => {
    const h = new Harness(NAT);
    introduce(h, A);
    h.rx('pa', tcpFrame(A, GW.mac, GW.ip, 41000, 22, F.TCP_ACK, 1, 1));
    const [rst] = h.take('pa');
    expect(rst[14 + 20 + 13] & F.TCP_RST).toBe(F.TCP_RST);
    expect(h.drops('postrouting')).toEqual({});
  });

  it('drops an INVALID segment bridged between two pods (br_netfilter runs the FORWARD chain)', () => {
    const h = new Harness(NAT);
    introduce(h, B);
    h.rx('pa', tcpFrame(A, B.mac, B.ip, 41000, 80, F.TCP_ACK, 1, 1));
    expect(h.take('pb')).toHaveLength(0);
    expect(h.drops('bridge-ip4')).toEqual({ 'conntrack.invalid': 1 });
    h.rx('pa', tcpFrame(A, B.mac, B.ip, 41000, 80, F.TCP_SYN, 1));
    expect(h.take('pb')).toHaveLength(1);
  });

  it('drops a bridged frame whose IPv4 header does not validate, as br_validate_ipv4 does', () => {
    const h = new Harness(NAT);
    introduce(h, B);
    h.rx('pa', udpFrame({ from: A, toMac: B.mac, dst: B.ip, badChecksum: true }));
    expect(h.take('pb')).toHaveLength(0);
    expect(h.drops('bridge-ip4')).toEqual({ 'conntrack.bad-bridged-header': 1 });
  });

  it('tracks only with connection tracking on: without nat or conntrack no hook has a handler', () => {
    const h = new Harness();
    expect(h.dp.ctx.conntrack).toBeNull();
    for (const s of ['prerouting', 'input', 'output', 'postrouting', 'bridge-ip4']) {
      expect((h.dp.graph.get(s) as unknown as { handlers: unknown[] }).handlers).toEqual([]);
    }
    const t = new Harness(LAB + 'conntrack: { max: 1000 }\n');
    introduce(t, A);
    t.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: SERVER, sport: 40000, dport: 53 }));
    // Tracked, not masqueraded: no `nat` section.
    expect(ip4Of(t.take('up')[0]).src).toBe(A.ip);
    expect(entries(t)).toEqual([`17 ${A.ip}:40000>${SERVER}:53 ${SERVER}:53>${A.ip}:40000`]);
  });
});

describe('unconfirmed entries', () => {
  it('removes the entry of a first packet dropped before POSTROUTING (TTL expired), after the error went out as RELATED', () => {
    const h = new Harness(NAT);
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: SERVER, ttl: 1 }));
    const [err] = h.take('pa');
    expect(isIcmp(err, 11, 0)).toBe(true);
    expect(entries(h)).toEqual([]);
    expect(h.dp.conntrackHooks?.unconfirmed.removed).toBe(1);
  });

  it('keeps the entries of packets delivered to the router (confirmed at LOCAL_IN) and of its replies', () => {
    const h = new Harness(NAT);
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: GW.ip, sport: 40000, dport: 9 }));
    expect(isIcmp(h.take('pa')[0], 3, 3)).toBe(true);
    h.rx('pa', F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: GW.ip, proto: 1 }, F.icmpEcho(8, 0x99, 1, []))));
    expect(isIcmp(h.take('pa')[0], 0)).toBe(true);
    expect(entries(h)).toEqual([`1 ${A.ip}:153>${GW.ip}:153 ${GW.ip}:153>${A.ip}:153`, `17 ${A.ip}:40000>${GW.ip}:9 ${GW.ip}:9>${A.ip}:40000`]);
    expect(h.dp.conntrackHooks?.unconfirmed.removed).toBe(0);
    // The echo reply was the entry's reply: the ICMP entry has seen one.
    expect(ctOf(h).protoOf(1)).toBe(1);
    expect(ctOf(h).packetsOf((1 << 1) | 1)).toBe(1);
  });
});

/** The datagram quoted by the ICMP error in `f`, with its header fields and the first ports. */
function quoteOf(f: Buffer): { ip: ReturnType<typeof ip4Of>; sport: number; dport: number; l4ChecksumField: number } {
  const q = Buffer.concat([Buffer.alloc(14), icmpOf(f).body]);
  const ip = ip4Of(q);
  const l4 = 14 + ip.ihl;
  return { ip, sport: q.readUInt16BE(l4), dport: q.readUInt16BE(l4 + 2), l4ChecksumField: q.readUInt16BE(l4 + 6) };
}

describe('ICMP errors related to translated flows', () => {
  it('translates an error from outside about a masqueraded flow back to the pod: outer and quoted headers, every checksum', () => {
    const h = new Harness(NAT);
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: SERVER, sport: 40000, dport: 53 }));
    const [sent] = h.take('up');
    // The server's host answers port unreachable, quoting what it received (the masqueraded datagram).
    const quoted = [...sent.subarray(14, 14 + 28)];
    h.rx('up', F.ethernet(UP.mac, UPSTREAM2_MAC, 0x0800, F.ipv4({ src: SERVER, dst: UP.ip, proto: 1 }, F.icmpError(3, 3, quoted))));
    const [err] = h.take('pa');
    expect(ip4Of(err)).toMatchObject({ src: SERVER, dst: A.ip, checksumOk: true });
    expect(icmpOf(err)).toMatchObject({ type: 3, code: 3, checksumOk: true });
    const q = quoteOf(err);
    expect(q.ip).toMatchObject({ src: A.ip, dst: SERVER, checksumOk: true });
    expect([q.sport, q.dport]).toEqual([40000, 53]);
    // The quoted UDP checksum was updated for the source address back to the pod's.
    const orig = udpFrame({ from: A, toMac: GW.mac, dst: SERVER, sport: 40000, dport: 53 });
    expect(q.l4ChecksumField).toBe(orig.readUInt16BE(14 + 20 + 6));
  });

  it('gives the quote back the pod\'s own port when masquerade changed it', () => {
    const h = new Harness(NAT);
    introduce(h, A);
    introduce(h, B);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: SERVER, sport: 40000, dport: 53 }));
    h.rx('pb', udpFrame({ from: B, toMac: GW.mac, dst: SERVER, sport: 40000, dport: 53 }));
    const [, sentB] = h.take('up');
    expect(ports(sentB)[0]).not.toBe(40000);
    h.rx('up', F.ethernet(UP.mac, UPSTREAM2_MAC, 0x0800, F.ipv4({ src: SERVER, dst: UP.ip, proto: 1 }, F.icmpError(3, 3, [...sentB.subarray(14, 14 + 28)]))));
    expect(h.take('pa')).toHaveLength(0);
    const [err] = h.take('pb');
    expect(ip4Of(err)).toMatchObject({ dst: B.ip, checksumOk: true });
    expect(icmpOf(err).checksumOk).toBe(true);
    const q = quoteOf(err);
    expect([q.ip.src, q.sport, q.dport, q.ip.checksumOk]).toEqual([B.ip, 40000, 53, true]);
    const orig = udpFrame({ from: B, toMac: GW.mac, dst: SERVER, sport: 40000, dport: 53 });
    expect(q.l4ChecksumField).toBe(orig.readUInt16BE(14 + 20 + 6));
  });

  it('translates an error the router builds about a translated reply, so the server sees what it sent', () => {
    const h = new Harness(NAT);
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: SERVER, sport: 40000, dport: 53 }));
    h.take('up');
    const reply = F.ethernet(UP.mac, UPSTREAM2_MAC, 0x0800, F.ipv4({ src: SERVER, dst: UP.ip, proto: 17, ttl: 1 }, F.udp(SERVER, UP.ip, 53, 40000, F.bytes(20, 5))));
    h.rx('up', reply);
    expect(h.take('pa')).toHaveLength(0);
    const [err] = h.take('up');
    expect(ip4Of(err)).toMatchObject({ src: UP.ip, dst: SERVER, checksumOk: true });
    expect(icmpOf(err)).toMatchObject({ type: 11, code: 0, checksumOk: true });
    const q = quoteOf(err);
    expect(q.ip).toMatchObject({ src: SERVER, dst: UP.ip, ttl: 1, checksumOk: true });
    expect([q.sport, q.dport]).toEqual([53, 40000]);
    // Quoted as received: the whole quote equals the datagram the server sent.
    expect(icmpOf(err).body).toEqual(reply.subarray(14));
  });

  it('passes an ICMP error about no tracked flow as INVALID: dropped when forwarded', () => {
    const h = new Harness(NAT);
    introduce(h, A);
    const stray = F.ipv4({ src: A.ip, dst: SERVER, proto: 17 }, F.udp(A.ip, SERVER, 1234, 53, []));
    h.rx('up', F.ethernet(UP.mac, UPSTREAM2_MAC, 0x0800, F.ipv4({ src: SERVER, dst: A.ip, proto: 1 }, F.icmpError(3, 3, stray))));
    expect(h.take('pa')).toHaveLength(0);
    expect(h.drops('postrouting')).toEqual({ 'conntrack.invalid': 1 });
  });
});

describe('fragments', () => {
  it('reassembles a fragmented datagram before conntrack, masquerades it whole and fragments it again for the egress MTU', () => {
    const h = new Harness(NAT);
    introduce(h, A);
    const dgram = F.ipv4({ src: A.ip, dst: '10.200.1.1', proto: 17, id: 0x4242 }, F.udp(A.ip, '10.200.1.1', 40000, 7, F.bytes(1600, 11)));
    const payload = dgram.slice(20);
    const frag = (off: number, len: number, mf: boolean) =>
      F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: '10.200.1.1', proto: 17, id: 0x4242, mf, fragOffset: off }, payload.slice(off, off + len)));
    h.rxBatch('pa', [frag(1200, payload.length - 1200, false), frag(0, 1200, true)]);
    const out = h.take('slow');
    expect(out.length).toBe(2);
    for (const f of out) expect(ip4Of(f)).toMatchObject({ src: SLOW.ip, dst: '10.200.1.1', ttl: 63, checksumOk: true });
    // Put back together, the datagram carries the translated ports and a right UDP checksum.
    const first = out.find((f) => ip4Of(f).fragOffset === 0)!;
    const rest = out.find((f) => ip4Of(f).fragOffset !== 0)!;
    const whole = Buffer.concat([first.subarray(14, 14 + ip4Of(first).total), rest.subarray(14 + 20, 14 + ip4Of(rest).total)]);
    whole.writeUInt16BE(whole.length, 2);
    whole.writeUInt16BE(0, 6);
    const frame = Buffer.concat([Buffer.alloc(14), whole]);
    expect(ports(frame)).toEqual([40000, 7]);
    expect(l4ChecksumOk(frame)).toBe(true);
    expect(h.counters('ip4-reassemble').drops).toEqual({ 'ip4.fragment-queued': 2 });
    expect(entries(h)).toEqual([`17 ${A.ip}:40000>10.200.1.1:7 10.200.1.1:7>${SLOW.ip}:40000`]);
  });

  it('passes fragments bridged between pods untracked', () => {
    const h = new Harness(NAT);
    introduce(h, B);
    h.rx('pa', udpFrame({ from: A, toMac: B.mac, dst: B.ip, mf: true, dataLen: 64 }));
    h.rx('pa', udpFrame({ from: A, toMac: B.mac, dst: B.ip, fragOffset: 80, dataLen: 64 }));
    expect(h.take('pb')).toHaveLength(2);
    expect(entries(h)).toEqual([]);
  });
});

describe('offload super-frames', () => {
  it('masquerade a TCP super-frame whose checksum is partial: only the pseudo-header sum changes, its offload state is kept', () => {
    const h = new Harness(NAT, 64);
    introduce(h, A);
    const dst = SERVER;
    h.rx('pa', tcpFrame(A, GW.mac, dst, 42000, 80, F.TCP_SYN, 100));
    h.rx('up', F.ethernet(UP.mac, UPSTREAM2_MAC, 0x0800, F.ipv4({ src: dst, dst: UP.ip, proto: 6 }, F.tcp(dst, UP.ip, 80, 42000, F.TCP_SYN | F.TCP_ACK, 900, 101))));
    h.rx('pa', tcpFrame(A, GW.mac, dst, 42000, 80, F.TCP_ACK, 101, 901));
    h.clear();
    // A super-frame as an offloading TAP hands it over: the checksum field holds the
    // pseudo-header sum only (not inverted), the device adds the segment.
    const pseudo = (src: string, d: string, len: number): number => {
      let s = 0;
      for (const b of [F.ip(src), F.ip(d)]) s += (b[0] << 8) + b[1] + (b[2] << 8) + b[3];
      s += 6 + len;
      while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
      return s;
    };
    const data = F.bytes(2896, 4);
    const seg = [0xa4, 0x10, 0, 80, 0, 0, 0, 101, 0, 0, 3, 0x85, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0, ...data];
    const partial = pseudo(A.ip, dst, seg.length);
    seg[16] = partial >> 8;
    seg[17] = partial & 0xff;
    const frame = F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst, proto: 6, df: true }, seg));
    const dp = h.dp;
    const sent: { frame: Buffer; flags: number; gso: number; csumStart: number }[] = [];
    for (const name of ['pa', 'up']) {
      dp.setDriver(h.port(name), {
        transmit: (pool, slots, n) => {
          for (let i = 0; i < n; i++) sent.push({ frame: Buffer.from(pool.view(slots[i])), flags: pool.vnetFlags[slots[i]], gso: pool.gsoType[slots[i]], csumStart: pool.csumStart[slots[i]] });
          return n;
        },
      });
    }
    const rxSuper = (port: string, f: Buffer): void => {
      const slot = dp.pool.fill(f, h.port(port));
      dp.pool.vnetFlags[slot] = 1;
      dp.pool.gsoType[slot] = 1;
      dp.pool.gsoSize[slot] = 1448;
      dp.pool.csumStart[slot] = 34;
      dp.pool.csumOffset[slot] = 16;
      dp.receiveSlot(h.port(port), slot);
      dp.run();
    };
    rxSuper('pa', frame);
    expect(sent.map((x) => [x.flags, x.gso, x.csumStart])).toEqual([[1, 1, 34]]);
    const out = sent[0].frame;
    expect(ip4Of(out)).toMatchObject({ src: UP.ip, dst, ttl: 63, checksumOk: true });
    expect(out.readUInt16BE(14 + 20 + 16)).toBe(pseudo(UP.ip, dst, seg.length));
    // Everything the device sums over is untouched: the TCP header but its checksum, and the data.
    expect(out.subarray(34, 50)).toEqual(frame.subarray(34, 50));
    expect(out.subarray(54)).toEqual(frame.subarray(54));

    // A super-frame the other way (the server's side offloads too): its destination goes back to A.
    const back = [0, 80, 0xa4, 0x10, 0, 0, 3, 0x85, 0, 0, 0, 101 + 2896, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0, ...data];
    const p2 = pseudo(dst, UP.ip, back.length);
    back[16] = p2 >> 8;
    back[17] = p2 & 0xff;
    sent.length = 0;
    rxSuper('up', F.ethernet(UP.mac, UPSTREAM2_MAC, 0x0800, F.ipv4({ src: dst, dst: UP.ip, proto: 6, df: true }, back)));
    expect(sent.map((x) => [x.flags, x.gso])).toEqual([[1, 1]]);
    expect(ip4Of(sent[0].frame)).toMatchObject({ src: dst, dst: A.ip, checksumOk: true });
    expect(sent[0].frame.readUInt16BE(14 + 20 + 16)).toBe(pseudo(dst, A.ip, back.length));
    expect(ctOf(h).packetsOf(0)).toBe(3);
  });
});

describe('DNAT at the place the Services issue fills, and null bindings', () => {
  const VIP = '10.96.0.10';

  /** A stand-in for kube-proxy's rules: new flows to VIP:80 go to B:8080. */
  function withDnat(h: Harness): void {
    const ct = ctOf(h);
    const policy: NatPolicy = {
      dropReasons: dropReasons([['test.no-endpoint', 'no endpoint']]),
      decide: (slot, id) => {
        const data = h.dp.pool.data;
        const ip = h.dp.pool.l3[slot];
        if (data.readUInt32BE(ip + 16) !== parseIpv4(VIP)) return ACCEPT;
        return ct.bindDnat(id, parseIpv4(B.ip) | 0, 8080) ? ACCEPT : 0;
      },
    };
    const pre = h.dp.stages.prerouting;
    const plain = pre.handlers.find((x) => x.name === 'dnat');
    if (plain === undefined) throw new Error('no dnat handler at prerouting');
    pre.unregister(plain);
    pre.register(new NatDst(h.dp.ctx, 'prerouting', policy));
  }

  it('routes a DNAT\'d flow to its endpoint and translates the reply bridged back to the client', () => {
    const h = new Harness(NAT);
    withDnat(h);
    introduce(h, A);
    introduce(h, B);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: VIP, sport: 40000, dport: 80 }));
    const [atB] = h.take('pb');
    expect(ip4Of(atB)).toMatchObject({ src: A.ip, dst: B.ip, ttl: 63, checksumOk: true });
    expect([...ports(atB), l4ChecksumOk(atB)]).toEqual([40000, 8080, true]);
    expect(ctOf(h).statusOf(0) & (CT_DNAT | CT_SNAT)).toBe(CT_DNAT);
    // The endpoint answers the client directly: the frame is bridged, and translated there.
    h.rx('pb', udpFrame({ from: B, toMac: A.mac, dst: A.ip, sport: 8080, dport: 40000 }));
    const [atA] = h.take('pa');
    expect(ip4Of(atA)).toMatchObject({ src: VIP, dst: A.ip, ttl: 64, checksumOk: true });
    expect([...ports(atA), l4ChecksumOk(atA)]).toEqual([80, 40000, true]);
  });

  it('gives a flow whose reply tuple another flow holds a null binding: its own address, another port', () => {
    const h = new Harness(NAT);
    withDnat(h);
    introduce(h, A);
    introduce(h, B);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: VIP, sport: 40000, dport: 80 }));
    h.take('pb');
    // A now talks to B:8080 directly from the same port: B could not tell the two apart.
    h.rx('pa', udpFrame({ from: A, toMac: B.mac, dst: B.ip, sport: 40000, dport: 8080 }));
    const [direct] = h.take('pb');
    expect(ip4Of(direct)).toMatchObject({ src: A.ip, dst: B.ip, checksumOk: true });
    const p = ports(direct)[0];
    expect(p).not.toBe(40000);
    expect(l4ChecksumOk(direct)).toBe(true);
    h.rx('pb', udpFrame({ from: B, toMac: A.mac, dst: A.ip, sport: 8080, dport: p }));
    const [back] = h.take('pa');
    expect([ip4Of(back).src, ...ports(back), l4ChecksumOk(back)]).toEqual([B.ip, 8080, 40000, true]);
    h.rx('pb', udpFrame({ from: B, toMac: A.mac, dst: A.ip, sport: 8080, dport: 40000 }));
    expect(ip4Of(h.take('pa')[0]).src).toBe(VIP);
  });
});

describe('trace', () => {
  it('says what conntrack made of each frame and which translation it got', () => {
    const h = new Harness(NAT);
    const lines: string[] = [];
    h.dp.graph.setTracer(new TextTracer(h.dp.pool, h.dp.ctx.ports.names, () => '', (l) => lines.push(l.trim())));
    introduce(h, A);
    lines.length = 0;
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: SERVER, sport: 40000, dport: 53 }));
    h.rx('up', fromServer(UP.ip, 53, 40000));
    h.rx('pa', tcpFrame(A, GW.mac, SERVER, 41000, 443, F.TCP_ACK, 1, 1));
    const notes = lines.filter((l) => /: (ct|snat|dnat|dropped)/.test(l)).map((l) => l.replace(/^s\d+\s+/, ''));
    expect(notes).toEqual([
      'prerouting: ct new (entry 0, original; expires in 30 s)',
      'postrouting: snat 10.244.1.2:40000 -> 192.168.50.11:40000',
      'prerouting: ct established (entry 0, reply; expires in 30 s)',
      'prerouting: dnat 192.168.50.11:40000 -> 10.244.1.2:40000',
      'prerouting: ct invalid',
      'postrouting: dropped conntrack.invalid (filter: forwarded packet with ctstate INVALID)',
    ]);
  });
});

describe('a full table evicting entries of packets still in flight', () => {
  it('drops a packet whose entry a later packet of its batch evicted, instead of sending it untranslated or binding a dead entry', () => {
    const h = new Harness(NAT + 'conntrack: { max: 4 }\n');
    introduce(h, A);
    const ct = ctOf(h);
    // Six new flows in one batch: the fifth and sixth evict two of the first four, whose
    // packets have not reached POSTROUTING yet.
    h.rxBatch('pa', [1, 2, 3, 4, 5, 6].map((k) => udpFrame({ from: A, toMac: GW.mac, dst: SERVER, sport: 40000 + k, dport: 53 })));
    const out = h.take('up');
    expect(ct.earlyDrop).toBe(2);
    expect(out).toHaveLength(4);
    for (const f of out) expect(ip4Of(f).src).toBe(UP.ip);
    // Dropped at the first NAT handler they reach: the destination manip at prerouting.
    expect(h.drops('prerouting')).toEqual({ 'nat.entry-gone': 2 });
    // No tuple of a dead entry is left in the index: two per live entry.
    expect(ct.count).toBe(4);
    expect(ct.index.size).toBe(2 * ct.count);
    // The flows whose packets left are answered and translated back.
    for (const f of out) h.rx('up', fromServer(UP.ip, 53, ports(f)[0]));
    expect(h.take('pa').map((f) => ip4Of(f).dst)).toEqual([A.ip, A.ip, A.ip, A.ip]);
  });
});
