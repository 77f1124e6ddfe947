import { describe, expect, it } from 'vitest';
import { fdbState, neighState, routesState } from '../../src/admin/state.ts';
import { parseConfig } from '../../src/config/load.ts';
import { A, GW, Harness, LAB, UPSTREAM, UPSTREAM2, ethOf, introduce, udpFrame } from './stage-harness.test.ts';

const withRoute = LAB.replace('routes:\n', 'routes:\n  - { dst: 198.51.100.0/24, via: 192.168.50.2 }\n');

describe('Dataplane.reload', () => {
  it('applies new routes live: the next packet takes them', () => {
    const h = new Harness();
    introduce(h, A);
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '198.51.100.9' }));
    expect(h.take('up').map((f) => ethOf(f).dst)).toEqual([UPSTREAM.mac]);
    const r = h.dp.reload(parseConfig(withRoute, 'next'));
    expect(r).toEqual({ ok: true, changes: ['routes: 3 → 4'] });
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '198.51.100.9' }));
    expect(h.take('up').map((f) => ethOf(f).dst)).toEqual([UPSTREAM2.mac]);
  });

  it('replaces static neighbours', () => {
    const h = new Harness();
    introduce(h, A);
    const moved = LAB.replace('{ ip: 192.168.50.1, mac: 02:00:00:00:50:01, dev: up }', '{ ip: 192.168.50.1, mac: 02:00:00:00:50:99, dev: up }');
    expect(h.dp.reload(parseConfig(moved, 'next'))).toEqual({ ok: true, changes: ['neighbors: 3 → 3'] });
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '8.8.8.8' }));
    expect(h.take('up').map((f) => ethOf(f).dst)).toEqual(['02:00:00:00:50:99']);
  });

  it('refuses a config that changes interfaces or table sizes, whole, and keeps the running state', () => {
    const h = new Harness();
    introduce(h, A);
    const changed = withRoute
      .replace('address: 192.168.50.11/24', 'address: 192.168.50.12/24')
      .replace('  - { name: pc, bridge: cni0 }\n', '')
      .concat('arp: { queueLen: 5 }\npool: { offloadSlots: 4096 }\n');
    const r = h.dp.reload(parseConfig(changed, 'next'));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toEqual([
      'ports[pc]: removed; needs a restart of nodeplane to change interfaces and table sizes',
      'ports[up]: changed; needs a restart of nodeplane to change interfaces and table sizes',
      'arp.queueLen: changed; needs a restart of nodeplane to change interfaces and table sizes',
      'pool: changed; needs a restart of nodeplane to change interfaces and table sizes',
    ]);
    // Nothing of it was applied: the new route is not there.
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '198.51.100.9' }));
    expect(h.take('up').map((f) => ethOf(f).dst)).toEqual([UPSTREAM.mac]);
  });

  it('leaves the live state a start with the new config would have', () => {
    const next = withRoute
      .replace('{ name: cni0, address: 10.244.1.1/24', '{ name: cni0, ageingSeconds: 30, address: 10.244.1.1/24')
      .replace('{ ip: 10.9.0.2, mac: 02:00:00:00:09:02, dev: slow }', '{ ip: 10.9.0.3, mac: 02:00:00:00:09:03, dev: slow }')
      .concat('arp: { retries: 5, retryIntervalMs: 200, reachableMs: 5000, staleMs: 9000, failedMs: 0 }\n')
      .concat('icmp: { ratePerSec: 10, burst: 2, perHostIntervalMs: 0, perHostBurst: 1 }\n');
    const reloaded = new Harness();
    expect(reloaded.dp.reload(parseConfig(next, 'next'))).toEqual({
      ok: true,
      changes: ['routes: 3 → 4', 'neighbors: 3 → 3', 'arp: updated', 'icmp: updated', 'bridge ageing: updated'],
    });
    const started = new Harness(next);
    expect(routesState(reloaded.dp)).toEqual(routesState(started.dp));
    expect(neighState(reloaded.dp)).toEqual(neighState(started.dp));
    expect(fdbState(reloaded.dp)).toEqual(fdbState(started.dp));
    const { ctx } = reloaded.dp;
    expect(ctx.neigh.timers).toEqual(started.dp.ctx.neigh.timers);
    expect(ctx.icmpLimiter).toEqual(started.dp.ctx.icmpLimiter);
    expect(ctx.icmpPerHost).toEqual(started.dp.ctx.icmpPerHost);
    expect(ctx.fdb).toEqual(started.dp.ctx.fdb);
  });
});
