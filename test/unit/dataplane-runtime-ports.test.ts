/**
 * Ports added and removed while the dataplane runs (src/dataplane/runtime-ports.ts), at the
 * Dataplane level on the stage harness's recording sinks: a new pod port joins the bridge's
 * floods and learning at once; removing it flushes its FDB entries, neighbours, queued frames
 * and conntrack entries and nothing of the other ports; its number is reused with counters at
 * zero and no stale frame; an L3 port brings and takes its routes; a reload keeps them all.
 */
import { describe, expect, it } from 'vitest';
import { fdbState, neighState, portsState, routesState } from '../../src/admin/state.ts';
import { parseConfig } from '../../src/config/load.ts';
import { RuntimePortError } from '../../src/dataplane/runtime-ports.ts';
import { A, B, BCAST, GW, Harness, LAB, SEC, UPSTREAM, arpFrame, arpOf, ethOf, icmpOf, introduce, ip4Of, isArp, neighbour, pingFrame, udpFrame, type Host } from './stage-harness.test.ts';

const NAT_LAB = `${LAB}nat: { clusterCIDR: 10.244.0.0/16 }\n`;
const D: Host = { port: 'pd', mac: '0a:58:0a:f4:01:05', ip: '10.244.1.5' };
const E: Host = { port: 'pe', mac: '0a:58:0a:f4:01:06', ip: '10.244.1.6' };

function addPod(h: Harness, host: Host, hostAddresses = [host.ip]): number {
  const p = h.dp.addPort({ name: host.port, bridge: 'cni0', hostAddresses });
  h.attach(host.port);
  return p;
}

function removePod(h: Harness, name: string): ReturnType<Harness['dp']['removePort']> {
  const r = h.dp.removePort(name);
  h.detach(name);
  return r;
}

describe('ports added at run time', () => {
  it('a pod port on cni0 floods, learns and forwards at once, and shows in show ports', () => {
    const h = new Harness();
    introduce(h, A);
    const p = addPod(h, D);
    expect(p).toBe(5); // after the config's five
    // A broadcast from pa reaches the new port (and pb, pc); D's answer is learned and forwarded.
    h.rx('pa', arpFrame({ ethDst: BCAST, ethSrc: A.mac, op: 1, sha: A.mac, spa: A.ip, tpa: D.ip }));
    expect(h.take('pd').map((f) => arpOf(f).tpa)).toEqual([D.ip]);
    expect(h.take('pb')).toHaveLength(1);
    h.rx('pd', arpFrame({ ethDst: A.mac, ethSrc: D.mac, op: 2, sha: D.mac, spa: D.ip, tha: A.mac, tpa: A.ip }));
    expect(h.take('pa').map((f) => ethOf(f).src)).toEqual([D.mac]);
    expect(h.take('pb')).toEqual([]);
    h.rx('pa', udpFrame({ from: A, toMac: D.mac, dst: D.ip }));
    expect(h.take('pd')).toHaveLength(1);
    expect(h.take('pb')).toEqual([]);
    // Routed to the pod from the uplink: the router resolves D on cni0 and sends to pd only.
    h.rx('pd', arpFrame({ ethDst: BCAST, ethSrc: D.mac, op: 1, sha: D.mac, spa: D.ip, tpa: GW.ip }));
    h.clear();
    h.rx('up', udpFrame({ from: UPSTREAM, toMac: '02:00:00:00:50:11', src: '198.51.100.7', dst: D.ip }));
    expect(h.take('pd').map((f) => ip4Of(f).dst)).toEqual([D.ip]);

    const state = portsState(h.dp).ports.find((x) => x.name === 'pd');
    expect(state).toMatchObject({ name: 'pd', role: 'bridged', master: 'cni0', up: true, runtime: true, mtu: 1500 });
    // Received: D's ARP reply and request; sent: the flooded request, the UDP, the router's ARP reply, the routed UDP.
    expect(state!.rx.packets).toBe(2);
    expect(state!.tx.packets).toBe(4);
    expect(portsState(h.dp).ports.find((x) => x.name === 'pa')!.runtime).toBe(false);
  });

  it('removing it flushes its FDB entries, neighbours and conntrack entries, and nothing of the others', () => {
    const h = new Harness(NAT_LAB);
    introduce(h, A);
    introduce(h, B);
    addPod(h, D);
    introduce(h, D);
    // Flows: D ↔ A across the bridge, D → outside (masqueraded), A → outside.
    h.rx('pd', udpFrame({ from: D, toMac: A.mac, dst: A.ip, sport: 1111 }));
    h.rx('pd', udpFrame({ from: D, toMac: GW.mac, dst: '198.51.100.9', sport: 2222 }));
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '198.51.100.9', sport: 3333 }));
    h.clear();
    const ct = h.dp.ctx.conntrack!;
    const liveEntries = (): number => {
      let n = 0;
      for (let id = 0; id < ct.highWater; id++) if (ct.isLive(id)) n++;
      return n;
    };
    expect(liveEntries()).toBe(3);
    expect(fdbState(h.dp).entries.filter((e) => e.port === 'pd').map((e) => e.mac)).toEqual([D.mac]);
    expect(neighbour(h, 'cni0', D.ip)).toBeDefined();

    const r = removePod(h, 'pd');
    expect(r).toEqual({ name: 'pd', port: 5, fdbEntries: 1, neighbours: 1, queuedFrames: 0, conntrackEntries: 2, reassemblies: 0 });
    expect(liveEntries()).toBe(1);
    expect(fdbState(h.dp).entries.filter((e) => e.type === 'dynamic').map((e) => e.port).sort()).toEqual(['pa', 'pb']);
    expect(neighbour(h, 'cni0', D.ip)).toBeUndefined();
    expect(neighbour(h, 'cni0', A.ip)).toBeDefined();
    expect(portsState(h.dp).ports.map((p) => p.name)).toEqual(['pa', 'pb', 'pc', 'up', 'slow']);
    expect(h.dp.portIndex('pd')).toBe(-1);
    // A frame to D's MAC is unknown now: flooded to the config's members only.
    h.rx('pa', udpFrame({ from: A, toMac: D.mac, dst: D.ip }));
    expect(h.take('pb')).toHaveLength(1);
    expect(h.take('pc')).toHaveLength(1);
    expect(h.dp.ctx.ports.bridges[0].members).toEqual(Int32Array.from([0, 1, 2]));
  });

  it('a reused port number starts with counters at zero and gets none of the old port’s waiting frames', () => {
    const h = new Harness();
    addPod(h, D);
    introduce(h, D);
    h.rx('pd', udpFrame({ from: D, toMac: A.mac, dst: A.ip }));
    h.clear();
    // Traffic for a second address behind pd waits for ARP on cni0 when pd goes.
    const F = { ip: '10.244.1.9', mac: '0a:58:0a:f4:01:09' };
    h.rx('up', udpFrame({ from: UPSTREAM, toMac: '02:00:00:00:50:11', src: '198.51.100.7', dst: F.ip }));
    expect(h.take('pd').filter((f) => isArp(f, 1)).map((f) => arpOf(f).tpa)).toEqual([F.ip]);
    h.clear();
    const r = removePod(h, 'pd');
    expect(r.conntrackEntries).toBe(0); // connection tracking is off in this config
    expect(r.neighbours).toBe(1); // D's entry (its address was given); F's entry has no MAC yet and stays
    // F's queued frame waits in F's entry (on cni0, not reached through pd): it is not pd's.
    // The next port takes number 5, with zero counters.
    expect(addPod(h, E, [E.ip, F.ip])).toBe(5);
    const fresh = portsState(h.dp).ports.find((p) => p.name === 'pe')!;
    expect([fresh.rx.packets, fresh.rx.bytes, fresh.tx.packets, fresh.tx.bytes, fresh.rx.noBuffer, fresh.linkDowns]).toEqual([0, 0, 0, 0, 0, 0]);
    // The removal of pe (F among its addresses) frees the frame that waited for F, unsent.
    const gone = removePod(h, 'pe');
    expect(gone).toMatchObject({ neighbours: 1, queuedFrames: 1 });
    expect(h.take('pa').filter((f) => !isArp(f))).toEqual([]);
  });

  it('a frame queued for a removed pod is freed, never sent to the pod that takes its number', () => {
    const h = new Harness();
    addPod(h, D);
    h.clear();
    // The router has a packet for D and asks for its MAC; D's port goes before it answers.
    h.rx('up', udpFrame({ from: UPSTREAM, toMac: '02:00:00:00:50:11', src: '198.51.100.7', dst: D.ip }));
    expect(h.take('pd').filter((f) => isArp(f, 1))).toHaveLength(1);
    const r = removePod(h, 'pd');
    expect(r).toMatchObject({ neighbours: 1, queuedFrames: 1 });
    // A new pod on the same number answers for the same address: nothing of the old is sent.
    const D2: Host = { ...D, port: 'pd2', mac: '0a:58:0a:f4:01:55' };
    expect(addPod(h, D2)).toBe(5);
    h.rx('pd2', arpFrame({ ethDst: GW.mac, ethSrc: D2.mac, op: 2, sha: D2.mac, spa: D2.ip, tha: GW.mac, tpa: GW.ip }));
    expect(h.take('pd2')).toEqual([]);
  });

  it('an L3 port brings its address and routes, answers on them, and takes them away', () => {
    const h = new Harness();
    const p = h.dp.addPort({ name: 'up2', address: '172.16.0.1/24', mtu: 9000 });
    h.attach('up2');
    expect(p).toBe(5);
    const routes = routesState(h.dp).routes.filter((r) => r.dev === 'up2').map((r) => `${r.table} ${r.type} ${r.dst}`);
    expect(routes.sort()).toEqual(['local broadcast 172.16.0.255', 'local local 172.16.0.1', 'main unicast 172.16.0.0/24'].sort());
    const host = { port: 'up2', mac: '02:00:00:00:16:02', ip: '172.16.0.2' };
    introduce(h, host, { ip: '172.16.0.1' });
    h.rx('up2', pingFrame({ from: host, toMac: '0a:58:ac:10:00:01', dst: '172.16.0.1' }));
    const replies = h.take('up2').filter((f) => !isArp(f));
    expect(replies.map((f) => [ethOf(f).src, ip4Of(f).src, icmpOf(f).type])).toEqual([['0a:58:ac:10:00:01', '172.16.0.1', 0]]);
    expect(neighbour(h, 'up2', host.ip)).toBeDefined();
    expect(portsState(h.dp).ports.find((x) => x.name === 'up2')).toMatchObject({ role: 'routed', address: '172.16.0.1/24', mac: '0a:58:ac:10:00:01', mtu: 9000, runtime: true });

    const ifIndex = h.dp.ctx.ifs.indexOf('up2');
    const r = h.dp.removePort('up2');
    h.detach('up2');
    expect(r).toMatchObject({ neighbours: 1 });
    expect(routesState(h.dp).routes.filter((x) => x.dst.startsWith('172.16.'))).toEqual([]);
    expect(h.dp.ctx.ifs.indexOf('up2')).toBe(-1);
    // Traffic to that subnet now takes the default route.
    h.rx('pa', udpFrame({ from: A, toMac: GW.mac, dst: '172.16.0.2' }));
    expect(h.take('up').map((f) => ethOf(f).dst)).toEqual([UPSTREAM.mac]);
    // Another L3 port takes the freed interface and the number again.
    expect(h.dp.addPort({ name: 'up3', address: '172.17.0.1/30' })).toBe(5);
    expect(h.dp.ctx.ifs.indexOf('up3')).toBe(ifIndex);
    expect(h.dp.ctx.ports.ifOf[5]).toBe(ifIndex);
    h.dp.removePort('up3');
  });

  it('a reload leaves runtime ports and their routes alone, and does not count them as a change', () => {
    const h = new Harness();
    addPod(h, D);
    h.dp.addPort({ name: 'up2', address: '172.16.0.1/24' });
    h.attach('up2');
    introduce(h, D);
    introduce(h, { port: 'up2', mac: '02:00:00:00:16:02', ip: '172.16.0.2' }, { ip: '172.16.0.1' });
    const withRoute = LAB.replace('routes:\n', 'routes:\n  - { dst: 198.51.100.0/24, via: 192.168.50.2 }\n');
    expect(h.dp.reload(parseConfig(withRoute, 'next'))).toEqual({ ok: true, changes: ['routes: 3 → 4'] });
    expect(h.dp.reload(parseConfig(withRoute, 'again'))).toEqual({ ok: true, changes: [] });
    expect(routesState(h.dp).routes.filter((r) => r.dev === 'up2')).toHaveLength(3);
    expect(portsState(h.dp).ports.filter((p) => p.runtime).map((p) => p.name)).toEqual(['pd', 'up2']);
    // Both still forward: pd learned, and the L3 port answers on its address.
    h.rx('pa', udpFrame({ from: A, toMac: D.mac, dst: D.ip }));
    expect(h.take('pd')).toHaveLength(1);
    h.rx('up2', pingFrame({ from: { mac: '02:00:00:00:16:02', ip: '172.16.0.2' }, toMac: '0a:58:ac:10:00:01', dst: '172.16.0.1' }));
    expect(h.take('up2').filter((f) => !isArp(f))).toHaveLength(1);
    expect(neighState(h.dp).entries.some((e) => e.dev === 'cni0' && e.ip === D.ip)).toBe(true);
  });

  it('refuses what does not fit, with nothing changed', () => {
    const h = new Harness();
    const refused = (f: () => unknown): string => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(RuntimePortError);
        return (err as Error).message;
      }
      throw new Error('not refused');
    };
    expect(refused(() => h.dp.addPort({ name: 'pa', bridge: 'cni0' }))).toBe('port pa exists');
    expect(refused(() => h.dp.addPort({ name: 'cni0', bridge: 'cni0' }))).toBe('cni0 is the name of an interface of the router');
    expect(refused(() => h.dp.addPort({ name: 'px', bridge: 'br9' }))).toBe('port px: no bridge br9 (bridges: cni0)');
    expect(refused(() => h.dp.addPort({ name: 'px', bridge: 'cni0', address: '10.1.0.1/24' }))).toBe('port px: give either a bridge or an address');
    expect(refused(() => h.dp.addPort({ name: 'px' }))).toBe('port px: give either a bridge or an address');
    expect(refused(() => h.dp.addPort({ name: 'a-name-too-long-x', bridge: 'cni0' }))).toMatch(/1 to 15 bytes/);
    expect(refused(() => h.dp.addPort({ name: 'px', address: '192.168.50.99/24' }))).toBe('port px: address 192.168.50.99/24: a route to 192.168.50.255/32 exists');
    expect(refused(() => h.dp.addPort({ name: 'px', address: '10.1.0.1/33' }))).toMatch(/invalid prefix length/);
    expect(refused(() => h.dp.addPort({ name: 'px', bridge: 'cni0', mtu: 40 }))).toBe('port px: mtu 40 is not in 68..65535');
    expect(refused(() => h.dp.addPort({ name: 'px', bridge: 'cni0', hostAddresses: ['10.244.1.300'] }))).toMatch(/host address 10.244.1.300/);
    expect(refused(() => h.dp.removePort('pa'))).toBe('port pa is a port of the config: remove it from the config and restart nodeplane');
    expect(refused(() => h.dp.removePort('nope'))).toBe('no port nope');
    expect(h.dp.ctx.ports.count).toBe(5);
    expect(h.dp.ctx.ifs.count).toBe(3);
    expect(routesState(h.dp)).toEqual(routesState(new Harness().dp));
  });

  it('many ports come and go: numbers stay below the peak, the per-port arrays grow once', () => {
    const h = new Harness();
    introduce(h, A);
    for (let round = 0; round < 50; round++) {
      const hosts: Host[] = [0, 1, 2].map((k) => ({ port: `r${round}-${k}`, mac: `0a:58:0a:f4:02:${(round * 3 + k).toString(16).padStart(2, '0')}`, ip: `10.244.1.${100 + k}` }));
      expect(hosts.map((x) => addPod(h, x))).toEqual([5, 6, 7]);
      for (const x of hosts) {
        h.rx(x.port, udpFrame({ from: x, toMac: A.mac, dst: A.ip }));
        expect(h.take('pa')).toHaveLength(1);
      }
      h.clear();
      for (const x of hosts) removePod(h, x.port);
      expect(h.dp.ctx.ports.count).toBe(5);
    }
    expect(h.dp.ctx.fdb.size).toBe(1); // A's entry alone
    expect(h.dp.ctx.ports.up.length).toBeLessThanOrEqual(16);
    h.advance(h.now + SEC);
  });
});
