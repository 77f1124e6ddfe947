import { describe, expect, it } from 'vitest';
import { checksumValid, runCase } from './replay-helpers.ts';

const T0 = 1_700_000_000_000_000;
const GW_MAC = '0a:58:0a:f4:01:01';
const A_MAC = '0a:58:0a:f4:01:02';
const UP_MAC = '02:00:00:00:50:11';
const UPSTREAM_MAC = '02:00:00:00:50:01';

describe('replay: learning bridge', () => {
  it('floods an unknown destination to every other port, then forwards learned ones to one port', () => {
    const run = runCase('flood-learn');
    const [a1, a2] = run.input('pa');
    const [b1] = run.input('pb');
    // First A→B: B unknown → flooded to pb and pc, never back to pa.
    expect(run.out.pb.map((f) => f.bytes)).toEqual([a1, a2]);
    expect(run.out.pc.map((f) => f.bytes)).toEqual([a1]);
    // B→A: A was learned on pa from the first frame → only pa.
    expect(run.out.pa.map((f) => f.bytes)).toEqual([b1]);
    expect(run.out.up).toEqual([]);
    expect(run.out.pc[0].tsUs).toBe(T0);
    expect(run.out.pa[0].tsUs).toBe(T0 + 100_000);
    expect(run.result.dataplane.ctx.fdb.size).toBe(2);
  });
});

describe('replay: ARP', () => {
  it('answers a request for the gateway address with the bridge MAC, and floods the request', () => {
    const run = runCase('arp-gateway');
    expect(run.out.pa).toHaveLength(1);
    const reply = run.out.pa[0];
    expect(reply.eth).toEqual({ src: GW_MAC, dst: A_MAC, type: '0x0806' });
    expect(reply.arp).toEqual({ op: 2, sha: GW_MAC, spa: '10.244.1.1', tha: A_MAC, tpa: '10.244.1.2' });
    expect(run.out.pb.map((f) => f.arp?.op)).toEqual([1]);
    expect(run.out.pc.map((f) => f.arp?.op)).toEqual([1]);
    expect(run.counters['arp-input'].packets).toBe(1);
  });
});

describe('replay: ICMP at the gateway', () => {
  it('answers a ping to the gateway with an echo reply from the gateway address', () => {
    const run = runCase('ping-gateway');
    const [, request] = run.input('pa');
    const reply = run.out.pa.find((f) => f.icmp?.type === 0)!;
    expect(reply).toBeDefined();
    expect(reply.eth).toMatchObject({ src: GW_MAC, dst: A_MAC });
    expect(reply.ip).toMatchObject({ src: '10.244.1.1', dst: '10.244.1.2', proto: 1, ttl: 64, checksumOk: true });
    expect(reply.icmp).toMatchObject({ type: 0, code: 0, id: 0x77, seq: 1, checksumOk: true });
    // Same payload as the request.
    expect(reply.bytes.subarray(42)).toEqual(request.subarray(42));
    expect(reply.tsUs).toBe(T0 + 10_000);
  });
});

describe('replay: routing', () => {
  it('holds a routed packet while it resolves the gateway, then sends it with TTL−1 and the right MACs', () => {
    const run = runCase('routed-arp');
    const [sent] = run.input('pa');
    const [req, fwd] = run.out.up;
    expect(run.out.up).toHaveLength(2);
    expect(req.eth).toEqual({ src: UP_MAC, dst: 'ff:ff:ff:ff:ff:ff', type: '0x0806' });
    expect(req.arp).toEqual({ op: 1, sha: UP_MAC, spa: '192.168.50.11', tha: '00:00:00:00:00:00', tpa: '192.168.50.1' });
    expect(req.tsUs).toBe(T0);
    expect(fwd.tsUs).toBe(T0 + 50_000);
    expect(fwd.eth).toEqual({ src: UP_MAC, dst: UPSTREAM_MAC, type: '0x0800' });
    expect(fwd.ip).toMatchObject({ src: '10.244.1.2', dst: '203.0.113.5', ttl: 63, checksumOk: true });
    expect(checksumValid(fwd.bytes, 14, 20)).toBe(true);
    // Everything after the TTL and checksum is untouched.
    expect(fwd.bytes.subarray(14 + 12)).toEqual(sent.subarray(14 + 12));
    expect(fwd.udp).toMatchObject({ sport: 40000, dport: 53, checksumOk: true });
  });

  it('answers an expiring TTL with ICMP time exceeded quoting the original header', () => {
    const run = runCase('ttl-expiry');
    const [, sent] = run.input('pa');
    const err = run.out.pa.find((f) => f.icmp?.type === 11)!;
    expect(err).toBeDefined();
    expect(err.ip).toMatchObject({ src: '10.244.1.1', dst: '10.244.1.2', proto: 1, checksumOk: true });
    expect(err.icmp).toMatchObject({ type: 11, code: 0, checksumOk: true });
    // The quote: the original IP header (TTL 1 as received) and its first 8 payload bytes at least.
    const quoted = err.bytes.subarray(14 + 20 + 8);
    expect(quoted.subarray(0, 28)).toEqual(sent.subarray(14, 14 + 28));
    expect(quoted[8]).toBe(1);
    expect(run.out.up).toEqual([]);
  });

  it('answers a destination without a route with ICMP net unreachable', () => {
    const run = runCase('no-route');
    const err = run.out.pa.find((f) => f.icmp?.type === 3)!;
    expect(err.icmp).toMatchObject({ type: 3, code: 0, checksumOk: true });
    expect(err.ip).toMatchObject({ src: '10.244.1.1', dst: '10.244.1.2' });
    expect(run.out.up).toEqual([]);
  });

  it('sends three ARP requests a second apart to an unanswering neighbour, then ICMP host unreachable', () => {
    const run = runCase('neigh-fail', 5);
    const reqs = run.out.up;
    expect(reqs.map((f) => f.arp?.tpa)).toEqual(['192.168.50.99', '192.168.50.99', '192.168.50.99']);
    expect(reqs.map((f) => f.tsUs - reqs[0].tsUs)).toEqual([0, 1_000_000, 2_000_000]);
    const err = run.out.pa.find((f) => f.icmp?.type === 3)!;
    expect(err.icmp).toMatchObject({ type: 3, code: 1, checksumOk: true });
    expect(err.tsUs - reqs[0].tsUs).toBe(3_000_000);
    expect(err.ip).toMatchObject({ src: '10.244.1.1', dst: '10.244.1.2' });
    // The quoted header is the packet as it waited: already forwarded, TTL 63.
    expect(err.bytes[14 + 28 + 8]).toBe(63);
  });

  it('answers DF and oversize with fragmentation needed carrying the MTU; fragments without DF', () => {
    const run = runCase('frag-needed');
    const [, df, noDf] = run.input('pa');
    const err = run.out.pa.find((f) => f.icmp?.type === 3)!;
    expect(err.icmp).toMatchObject({ type: 3, code: 4, mtu: 1000, checksumOk: true });
    expect(err.bytes.readUInt16BE(14 + 20 + 6)).toBe(1000);
    expect(err.bytes.subarray(14 + 28, 14 + 28 + 20)).toEqual(df.subarray(14, 34));
    const frags = run.out.slow;
    expect(frags).toHaveLength(2);
    expect(frags.map((f) => [f.ip!.mf, f.ip!.fragOffset, f.ip!.len, f.ip!.ttl, f.ip!.checksumOk])).toEqual([
      [true, 0, 996, 63, true],
      [false, 976, 1400 - 976, 63, true],
    ]);
    expect(frags.every((f) => f.eth!.dst === '02:00:00:00:09:02' && f.eth!.src === '02:00:00:00:09:01')).toBe(true);
    // Reassembling the payloads gives the original datagram's payload.
    const payload = Buffer.concat(frags.map((f) => f.bytes.subarray(34)));
    expect(payload).toEqual(noDf.subarray(34));
  });
});

describe('replay: bad input', () => {
  it('drops malformed frames with a counted reason and still passes the good packet after them', () => {
    const run = runCase('malformed');
    const replies = run.out.pa.filter((f) => f.icmp?.type === 0);
    expect(replies.map((f) => f.icmp?.seq)).toEqual([4]);
    expect(run.counters['ethernet-input'].drops).toEqual({ 'eth.runt': 1 });
    expect(run.counters['ip4-input'].drops).toEqual({
      'ip4.bad-checksum': 1,
      'ip4.bad-version': 1,
      'ip4.bad-total-length': 1,
    });
  });
});

describe('replay: determinism', () => {
  it('writes byte-identical files on a second run', () => {
    for (const name of ['flood-learn', 'neigh-fail', 'frag-needed', 'malformed']) {
      const first = runCase(name, 5);
      const second = runCase(name, 5);
      expect(Object.keys(first.raw).length).toBe(5);
      for (const port of Object.keys(first.raw)) expect(second.raw[port].equals(first.raw[port])).toBe(true);
    }
  });
});
