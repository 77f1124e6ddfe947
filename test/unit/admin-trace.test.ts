import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fetchTrace } from '../../src/admin/client.ts';
import type { LiveTraceResult } from '../../src/admin/live-trace.ts';
import { startAdminServer } from '../../src/admin/server.ts';
import { parseConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import * as F from '../helpers/frames.ts';

const CONFIG = `
node: { name: n }
bridges: [{ name: cni0, address: 10.244.1.1/24, mac: 0a:58:0a:f4:01:01 }]
ports: [{ name: pa, bridge: cni0 }, { name: pb, bridge: cni0 }]
`;
const A = { mac: '0a:58:0a:f4:01:02', ip: '10.244.1.2' };
const GW = '0a:58:0a:f4:01:01';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function running() {
  const dir = mkdtempSync(join(tmpdir(), 'nodeplane-trace-'));
  const clock = new VirtualClock();
  clock.set(1_700_000_000_000_000);
  const dp = new Dataplane(parseConfig(CONFIG, 'test'), { clock });
  dp.ctx.ports.names.forEach((_, p) => dp.setDriver(p, { transmit: (_pool, _s, n) => n }));
  const sock = join(dir, 'admin.sock');
  const server = await startAdminServer(dp, sock);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }), () => server.close());
  const tracing = async (): Promise<void> => {
    for (let i = 0; i < 200 && dp.stages.ethernetInput.tracer === null; i++) await new Promise((r) => setTimeout(r, 10));
  };
  return { dp, sock, tracing };
}

describe('live trace through the admin socket', () => {
  it('follows the next frames hop by hop, then stops tracing', async () => {
    const { dp, sock, tracing } = await running();
    const result = fetchTrace(sock, 2, 5) as Promise<LiveTraceResult>;
    await tracing();
    dp.receive(0, F.ethernet('ff:ff:ff:ff:ff:ff', A.mac, 0x0806, F.arp(1, A.mac, A.ip, '00:00:00:00:00:00', '10.244.1.1')));
    dp.run();
    dp.receive(0, F.ethernet(GW, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: '10.244.1.1', proto: 1 }, F.icmpEcho(8, 1, 1, F.bytes(8)))));
    dp.run();
    const r = await result;
    expect(r).toMatchObject({ frames: 2, complete: true });
    const text = r.lines.join('\n');
    expect(r.lines[0]).toMatch(/^#1 at \d+\.\d{6} on pa$/);
    expect(text).toMatch(/s\d+ rx pa: .*ARP, Request who-has 10\.244\.1\.1 tell 10\.244\.1\.2/);
    expect(text).toMatch(/s\d+ tx pb: .*ARP, Request who-has/);
    expect(text).toMatch(/#2 at .* on pa/);
    expect(text).toMatch(/ip4-lookup → input/);
    // The reply the router builds leaves through LOCAL_OUT, its route lookup and POSTROUTING.
    expect(text).toMatch(/icmp-local → output\n.*output → ip4-output\n.*ip4-output → postrouting\n.*postrouting → neighbour-output/);
    expect(text).toMatch(/tx pa: .*ICMP echo reply/);
    // Tracing is off again.
    expect(dp.graph.stages.every((s) => s.tracer === null)).toBe(true);
  });

  it('with a match, follows only matching frames and what is made from them', async () => {
    const { dp, sock, tracing } = await running();
    const result = fetchTrace(sock, 1, 5, 'ICMP echo request') as Promise<LiveTraceResult>;
    await tracing();
    // An ARP request (not followed, nor its flood copies), then the ping (followed).
    dp.receive(0, F.ethernet('ff:ff:ff:ff:ff:ff', A.mac, 0x0806, F.arp(1, A.mac, A.ip, '00:00:00:00:00:00', '10.244.1.1')));
    dp.receive(0, F.ethernet(GW, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: '10.244.1.1', proto: 1 }, F.icmpEcho(8, 1, 1, F.bytes(8)))));
    dp.run();
    const r = await result;
    expect(r.frames).toBe(1);
    const text = r.lines.join('\n');
    expect(text).not.toMatch(/ARP/);
    expect(text).toMatch(/rx pa: .*ICMP echo request/);
    expect(text).toMatch(/tx pa: .*ICMP echo reply/);
  });

  it('with a tcpdump filter as match, follows what libpcap matches', async () => {
    const { dp, sock, tracing } = await running();
    const result = fetchTrace(sock, 1, 5, 'icmp[icmptype] == icmp-echo and src host 10.244.1.2') as Promise<LiveTraceResult>;
    await tracing();
    dp.receive(0, F.ethernet('ff:ff:ff:ff:ff:ff', A.mac, 0x0806, F.arp(1, A.mac, A.ip, '00:00:00:00:00:00', '10.244.1.1')));
    dp.receive(0, F.ethernet(GW, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: '10.244.1.1', proto: 17 }, F.udp(A.ip, '10.244.1.1', 1, 2, F.bytes(8)))));
    dp.receive(0, F.ethernet(GW, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: '10.244.1.1', proto: 1 }, F.icmpEcho(8, 1, 7, F.bytes(8)))));
    dp.run();
    const r = await result;
    expect(r.frames).toBe(1);
    const text = r.lines.join('\n');
    expect(text).not.toMatch(/ARP|UDP/);
    expect(text).toMatch(/rx pa: .*ICMP echo request.*seq 7/);
  });

  it('one trace at a time', async () => {
    const { dp, sock, tracing } = await running();
    // Long enough never to time out here: the first trace ends when its frame arrives.
    const first = fetchTrace(sock, 1, 120) as Promise<LiveTraceResult>;
    await tracing();
    await expect(fetchTrace(sock, 1, 1)).rejects.toThrow(/a trace is already running/);
    dp.receive(0, F.ethernet('ff:ff:ff:ff:ff:ff', A.mac, 0x0806, F.arp(1, A.mac, A.ip, '00:00:00:00:00:00', '10.244.1.1')));
    dp.run();
    expect(await first).toMatchObject({ frames: 1, complete: true });
  });

  it('gives up after the time limit and says how many frames it saw', async () => {
    const { sock } = await running();
    expect(await (fetchTrace(sock, 5, 0.3) as Promise<LiveTraceResult>)).toEqual({ frames: 0, complete: false, lines: [] });
  });
});
