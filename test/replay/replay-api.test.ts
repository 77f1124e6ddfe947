/**
 * The library API (src/api): replay() of files and of frames in memory, frames decoded on
 * demand, counters and trace; expectReplay against the golden pcaps of captures/replay/;
 * several replays in one process, also concurrently, each with its own state.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeFile, expectReplay, loadConfig, replay, ReplayMismatchError, type ReplayResult } from '../../src/api/index.ts';
import { arp, ethernet, icmpEcho, ipv4, udp } from '../helpers/frames.ts';
import { fixtures } from './replay-helpers.ts';

const LAB = join(fixtures, 'lab.yaml');
const A_MAC = '0a:58:0a:f4:01:02';
const GW_MAC = '0a:58:0a:f4:01:01';
/** Virtual seconds each case runs on after its last frame (neigh-fail waits out its ARP retries). */
const SETTLE: Record<string, number> = { 'neigh-fail': 5 };
const CASES = readdirSync(fixtures, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();

function caseInputs(name: string): Record<string, string> {
  const dir = join(fixtures, name);
  return Object.fromEntries(
    readdirSync(dir)
      .filter((f) => f.endsWith('.pcap'))
      .map((f) => [f.replace(/\.pcap$/, ''), join(dir, f)]),
  );
}

function runCase(name: string): Promise<ReplayResult> {
  return replay({ config: LAB, inputs: caseInputs(name), settle: SETTLE[name] ?? 1 });
}

const tmp = mkdtempSync(join(tmpdir(), 'nodeplane-api-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('replay() and expectReplay: golden pcaps', () => {
  it('every fixture case matches its golden files in captures/replay/<case>/expected', async () => {
    expect(CASES.length).toBeGreaterThanOrEqual(9);
    for (const name of CASES) expectReplay(await runCase(name), join(fixtures, name, 'expected'));
  });

  it('a golden file with one changed byte fails, naming the port, frame and field', async () => {
    const golden = join(tmp, 'ping-gateway');
    const src = join(fixtures, 'ping-gateway', 'expected');
    rmSync(golden, { recursive: true, force: true });
    mkdirSync(golden);
    for (const f of readdirSync(src)) {
      const b = readFileSync(join(src, f));
      if (f === 'pa.pcap') b[24 + 16 + 42 + 16 + 14 + 8] = 63; // frame 2's IPv4 TTL (64 sent)
      writeFileSync(join(golden, f), b);
    }
    const r = await runCase('ping-gateway');
    let err: unknown;
    try {
      expectReplay(r, golden);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ReplayMismatchError);
    const message = (err as Error).message;
    expect(message).toContain('pa: 1 of 2 frames differ');
    expect(message).toMatch(/frame 2 at 1700000000\.010000: .*ICMP echo reply/);
    expect(message).toContain('ip.ttl: expected 63, got 64');
    expect(message).toContain('bytes[22]: expected 0x3f, got 0x40');
    expect((err as ReplayMismatchError).comparison.ports.filter((p) => p.differing > 0).map((p) => p.port)).toEqual(['pa']);
  });

  it('a missing frame and a missing golden file are differences too; update writes them', async () => {
    const golden = join(tmp, 'neigh');
    const r = await runCase('neigh-fail');
    expectReplay(r, golden, { update: true });
    expectReplay(r, golden);
    const short = await replay({ config: LAB, inputs: caseInputs('neigh-fail'), settle: 1.5 });
    expect(() => expectReplay(short, golden)).toThrow(/up: 1 of 3 frames differ \(3 frames expected, 2 transmitted\)\n {2}frame 3: missing; expected .*ARP, Request who-has 192\.168\.50\.99/);
    rmSync(join(golden, 'slow.pcap'));
    expect(() => expectReplay(r, golden)).toThrow(/slow: .*slow\.pcap is missing/);
  });
});

describe('replay(): inputs, results, state', () => {
  it('takes frames in memory, and decodes what each port transmitted on demand', async () => {
    const arpReq = ethernet('ff:ff:ff:ff:ff:ff', A_MAC, 0x0806, arp(1, A_MAC, '10.244.1.2', '00:00:00:00:00:00', '10.244.1.1'));
    const ping = ethernet(GW_MAC, A_MAC, 0x0800, ipv4({ src: '10.244.1.2', dst: '10.244.1.1', proto: 1 }, icmpEcho(8, 7, 1, [1, 2, 3, 4])));
    const r = await replay({ config: LAB, inputs: { pa: [arpReq, { bytes: ping, tsUs: 5_000 }] }, trace: true });
    expect(r.framesIn).toBe(2);
    expect(r.ports.pa.map((f) => f.summary)).toEqual([
      expect.stringContaining('ARP, Reply 10.244.1.1 is-at 0a:58:0a:f4:01:01'),
      expect.stringContaining('10.244.1.1 > 10.244.1.2: ICMP echo reply, id 7, seq 1'),
    ]);
    const reply = r.ports.pa[1];
    expect(reply.n).toBe(2);
    expect(reply.tsUs).toBe(5_000);
    expect(reply.decoded.ip).toMatchObject({ src: '10.244.1.1', dst: '10.244.1.2', ttl: 64, checksumOk: true });
    expect(reply.decoded.icmp).toMatchObject({ type: 0, id: 7, seq: 1 });
    // The request was flooded to the other ports of cni0, and to nothing else.
    expect(Object.fromEntries(Object.entries(r.ports).map(([p, fs]) => [p, fs.length]))).toEqual({ pa: 2, pb: 1, pc: 1, up: 0, slow: 0 });
    expect(r.counters.stages.find((s) => s.name === 'arp-input')?.packets).toBe(1);
    expect(r.trace?.some((l) => l.includes('inputs.pa[1]'))).toBe(true);
    // And writes them as `replay --out` does.
    const out = join(tmp, 'mem-out');
    r.writePcaps(out);
    expect((await decodeFile(join(out, 'pa.pcap'))).map((f) => f.icmp?.type)).toEqual([undefined, 0]);
  });

  it('refuses an input for a port the config does not have', async () => {
    await expect(replay({ config: LAB, inputs: { nope: [] } })).rejects.toThrow('inputs.nope: no port named nope');
  });

  it('runs replays concurrently, each with its own state, and yields to the event loop on long inputs', async () => {
    const config = loadConfig(LAB);
    const sequential: ReplayResult[] = [];
    for (const name of CASES) sequential.push(await runCase(name));
    // A long input: pod A's ARP request, then 3000 echo requests to the gateway.
    const arpReq = ethernet('ff:ff:ff:ff:ff:ff', A_MAC, 0x0806, arp(1, A_MAC, '10.244.1.2', '00:00:00:00:00:00', '10.244.1.1'));
    const pings = [arpReq, ...Array.from({ length: 3000 }, (_, i) =>
      ethernet(GW_MAC, A_MAC, 0x0800, ipv4({ src: '10.244.1.2', dst: '10.244.1.1', proto: 1, id: i }, icmpEcho(8, 9, i & 0xffff, [i & 0xff]))),
    )];
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 0);
    const [longA, longB, ...concurrent] = await Promise.all([
      replay({ config, inputs: { pa: pings } }),
      replay({ config, inputs: { pa: pings }, seed: 7 }),
      ...CASES.map((name) => runCase(name)),
    ]);
    clearInterval(ticker);
    expect(ticks).toBeGreaterThan(0);
    expect(longA.ports.pa).toHaveLength(3001);
    expect(longB.ports.pa.map((f) => f.bytes)).toEqual(longA.ports.pa.map((f) => f.bytes));
    concurrent.forEach((r, i) => {
      for (const port of Object.keys(r.ports)) {
        expect(r.ports[port].map((f) => [f.tsUs, f.bytes])).toEqual(sequential[i].ports[port].map((f) => [f.tsUs, f.bytes]));
      }
    });
    // The config object handed in is not changed by a replay's seed.
    expect(config.seed).toBe(loadConfig(LAB).seed);
  });

  it('changes: a config reloaded at a time of the run applies to frames at or after it, each reload reported', async () => {
    const lab = readFileSync(LAB, 'utf8');
    const viaUp = join(tmp, 'via-up.yaml');
    writeFileSync(viaUp, lab.replace('{ dst: 10.200.0.0/16, via: 10.9.0.2 }', '{ dst: 10.200.0.0/16, via: 192.168.50.1 }'));
    const arpReq = ethernet('ff:ff:ff:ff:ff:ff', A_MAC, 0x0806, arp(1, A_MAC, '10.244.1.2', '00:00:00:00:00:00', '10.244.1.1'));
    const ping = (i: number, tsUs: number) => ({ bytes: ethernet(GW_MAC, A_MAC, 0x0800, ipv4({ src: '10.244.1.2', dst: '10.200.0.5', proto: 1, id: i }, icmpEcho(8, 3, i, [i]))), tsUs });
    // Pings at 1, 2 and 3 ms; the route moves from `slow` to `up` at 2 ms (the ping then included).
    const r = await replay({ config: LAB, inputs: { pa: [{ bytes: arpReq, tsUs: 0 }, ping(1, 1000), ping(2, 2000), ping(3, 3000)] }, changes: [{ atUs: 2000, config: viaUp }], trace: true });
    expect(r.ports.slow.map((f) => f.decoded.ip?.id)).toEqual([1]);
    // Through `up`, the router's address is asked for (by ping 2, at 2 ms; then retried: nobody answers).
    expect(r.ports.up[0].tsUs).toBe(2000);
    expect(new Set(r.ports.up.map((f) => f.summary.replace(/^.*: /, '')))).toEqual(new Set(['ARP, Request who-has 192.168.50.1 tell 192.168.50.11']));
    expect(r.reloads).toEqual([{ atUs: 2000, changes: ['routes: 2 → 2'] }]);
    expect(r.trace).toContain('change at 0.002000: config reloaded: routes: 2 → 2');

    const badMtu = join(tmp, 'bad-mtu.yaml');
    writeFileSync(badMtu, lab.replace('mtu: 1000', 'mtu: 1400'));
    await expect(replay({ config: LAB, inputs: { pa: [arpReq] }, changes: [{ atUs: 5, config: badMtu }] })).rejects.toThrow(/changes\[0\]: reload refused: ports\[slow\]: changed; needs a restart/);
    await expect(replay({ config: LAB, changes: [{ atUs: -1, config: LAB }] })).rejects.toThrow('changes[0].atUs: expected whole microseconds ≥ 0, got -1');
  });

  it('a config file\'s manifests give their Services, as nodeplane replay reads them', async () => {
    const dir = join(tmp, 'manifests');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'svc.yaml'),
      `apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.10, ports: [{name: http, port: 80, protocol: UDP, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: UDP}]
endpoints: [{addresses: [10.244.1.3], nodeName: node1}]
`,
    );
    const config = join(dir, 'node.yaml');
    writeFileSync(config, `${readFileSync(LAB, 'utf8')}nat: { clusterCIDR: 10.244.0.0/16 }\nmanifests: [svc.yaml]\n`);
    const B_MAC = '0a:58:0a:f4:01:03';
    const arpOf = (mac: string, ip: string) => ethernet('ff:ff:ff:ff:ff:ff', mac, 0x0806, arp(1, mac, ip, '00:00:00:00:00:00', '10.244.1.1'));
    const toService = ethernet(GW_MAC, A_MAC, 0x0800, ipv4({ src: '10.244.1.2', dst: '10.96.0.10', proto: 17 }, udp('10.244.1.2', '10.96.0.10', 4000, 80, [1, 2, 3])));
    const r = await replay({ config, inputs: { pa: [arpOf(A_MAC, '10.244.1.2'), toService], pb: [arpOf(B_MAC, '10.244.1.3')] } });
    const sent = r.ports.pb.filter((f) => f.decoded.udp !== undefined);
    expect(sent.map((f) => [f.decoded.ip?.dst, f.decoded.udp?.dport, f.decoded.udp?.checksumOk])).toEqual([['10.244.1.3', 8080, true]]);
  });

  it('decodeFile reads a pcap as decode --json does, with bytes and times', async () => {
    const frames = await decodeFile(join(fixtures, 'ping-gateway', 'pa.pcap'));
    expect(frames.map((f) => [f.n, f.ts, f.eth?.type])).toEqual([
      [1, 1700000000, '0x0806'],
      [2, 1700000000.01, '0x0800'],
    ]);
    expect(frames[1].bytes.length).toBe(frames[1].len);
  });
});
