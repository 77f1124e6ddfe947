/**
 * `POST /v1/ports` and `DELETE /v1/ports/NAME` (live-ports.ts behind the admin server) on a
 * fake TAP driver and a recorded namespace plug, without root: a pod port is added, reads and
 * forwards, shows in `show ports` with its owner, changes the receive budget's flood, and goes
 * with its TAP; bad requests, clashes and a failing plug get their status and leave nothing
 * behind. And the flags of `nodeplane port add` that do not go together.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AdminRefused, fetchState, requestJson, sendJson } from '../../src/admin/client.ts';
import { type AdminServer, startAdminServer } from '../../src/admin/server.ts';
import type { PortsState } from '../../src/admin/state.ts';
import { portAddRequest, type PortAddOptions } from '../../src/cli/port.ts';
import { parseConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import type { Logger } from '../../src/log.ts';
import { LivePorts } from '../../src/ports/live-ports.ts';
import type { PodNetnsSpec } from '../../src/ports/pod-netns.ts';
import { RxBudget } from '../../src/ports/rx-budget.ts';
import { TapPort } from '../../src/ports/tap-port.ts';
import { UserError } from '../../src/user-error.ts';
import { FakeTapDriver } from '../helpers/fake-tap.ts';
import { A, LAB, T0, udpFrame } from './stage-harness.test.ts';

const quiet = { info() {}, warn() {}, error() {}, debug() {} } as unknown as Logger;

let dir: string;
let sock: string;
let server: AdminServer | null;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nodeplane-admin-ports-'));
  sock = join(dir, 'admin.sock');
  server = null;
});

afterEach(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function node(plugFails = false) {
  const clock = new VirtualClock();
  clock.set(T0);
  const dp = new Dataplane(parseConfig(LAB, 'test'), { clock, poolSize: 512 });
  const driver = new FakeTapDriver();
  const budget = new RxBudget(dp.pool, dp.ctx.ports);
  const ports = dp.config.ports.map((p, i) => {
    const port = new TapPort(dp, i, p.name, { log: quiet, budget, driver });
    port.open(p.mtu);
    dp.setDriver(i, port);
    port.start();
    return port;
  });
  const plugs: Array<{ tap: string; spec: PodNetnsSpec }> = [];
  const live = new LivePorts(dp, {
    log: quiet,
    budget,
    vnetHdr: false,
    driver,
    plug: async (tap, spec) => {
      plugs.push({ tap, spec });
      if (plugFails) throw new Error('RTNETLINK answers: File exists');
    },
  });
  server = await startAdminServer(dp, sock, {
    portStatus: () => [...ports.map((p) => ({ name: p.name, downReason: p.downReason, tap: p.stats() })), ...live.status()],
    ports: live,
  });
  return { dp, driver, budget, plugs, idle: dp.pool.available };
}

async function refusal(p: Promise<unknown>): Promise<[number | undefined, string]> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AdminRefused);
    return [(err as AdminRefused).status, (err as AdminRefused).reason];
  }
  throw new Error('not refused');
}

describe('the admin socket adds and removes ports', () => {
  it('adds a pod port plugged into a namespace, which forwards at once, and removes it with its TAP', async () => {
    const { dp, driver, budget, plugs, idle } = await node();
    expect(budget.fanOut).toBe(4);
    const added = await sendJson(sock, 'POST', '/v1/ports', { name: 'pd', bridge: 'cni0', netns: { path: dir, ifname: 'eth0', ip: '10.244.1.5/24' }, owner: 'podnet/c1/eth0' });
    // The gateway defaults to cni0's address; the pod's MAC is 0a:58 + its address.
    expect(added).toEqual({ name: 'pd', port: 5, mtu: 1500, mac: '0a:58:0a:f4:01:05', netns: { path: dir, ifname: 'eth0', ip: '10.244.1.5/24', gateway: '10.244.1.1' } });
    expect(plugs).toEqual([{ tap: 'pd', spec: { path: dir, ifname: 'eth0', ip: '10.244.1.5/24', gateway: '10.244.1.1' } }]);
    expect(driver.tap('pd').opts).toMatchObject({ mtu: 1500, mac: '0a:58:0a:f4:01:05', up: true, vnetHdr: false });
    expect(budget.fanOut).toBe(5);

    // It reads: a frame from the pod to A is forwarded to pa.
    driver.queue('pd', udpFrame({ from: { mac: '0a:58:0a:f4:01:05', ip: '10.244.1.5' }, toMac: A.mac, dst: A.ip }));
    driver.wake('pd');
    expect(driver.tap('pa').written.length + driver.tap('pb').written.length).toBeGreaterThan(0);
    const state = (await fetchState(sock, 'ports')) as PortsState;
    expect(state.ports.find((p) => p.name === 'pd')).toMatchObject({ runtime: true, owner: 'podnet/c1/eth0', master: 'cni0', rx: { packets: 1 }, driver: { tap: { rxFrames: 1 } } });

    expect(await requestJson(sock, 'DELETE', '/v1/ports/pd')).toEqual({ name: 'pd', port: 5, fdbEntries: 1, neighbours: 0, queuedFrames: 0, conntrackEntries: 0, reassemblies: 0 });
    expect(driver.tap('pd').closed).toBe(true);
    expect(budget.fanOut).toBe(4);
    expect(((await fetchState(sock, 'ports')) as PortsState).ports.map((p) => p.name)).toEqual(['pa', 'pb', 'pc', 'up', 'slow']);
    expect(await refusal(requestJson(sock, 'DELETE', '/v1/ports/pd'))).toEqual([404, 'no port pd']);
    expect(dp.pool.available).toBe(idle);
  });

  it('adds an L3 port without a namespace', async () => {
    const { dp, plugs } = await node();
    const added = await sendJson(sock, 'POST', '/v1/ports', { name: 'up2', address: '172.16.0.1/24', mtu: 9000 });
    expect(added).toMatchObject({ name: 'up2', port: 5, mtu: 9000, netns: null });
    expect(plugs).toEqual([]);
    expect(dp.ctx.ifs.indexOf('up2')).toBeGreaterThan(0);
  });

  it('answers 400, 404, 405 and 409 for what it cannot do, with nothing changed', async () => {
    const { dp, driver } = await node();
    const post = (body: unknown): Promise<unknown> => sendJson(sock, 'POST', '/v1/ports', body);
    expect(await refusal(post({ name: 'pd', bridge: 'cni0', color: 'red' }))).toEqual([400, 'unknown field color']);
    expect(await refusal(post({ name: 'pd', bridge: 'cni0', address: '10.1.0.1/24' }))).toEqual([400, 'port pd: give either a bridge or an address']);
    expect(await refusal(post({ name: 'pd', bridge: 'cni9' }))).toEqual([400, 'port pd: no bridge cni9 (bridges: cni0)']);
    expect(await refusal(post({ name: 'pa', bridge: 'cni0' }))).toEqual([409, 'port pa exists']);
    expect(await refusal(post({ name: 'pd', bridge: 'cni0', netns: { path: join(dir, 'none'), ifname: 'eth0' } }))).toEqual([400, `port pd: netns ${join(dir, 'none')}: no such network namespace`]);
    expect(await refusal(post({ name: 'pd', bridge: 'cni0', netns: { path: dir, ifname: 'eth0', ip: '10.244.1.5/24; reboot' } }))).toEqual([400, 'port pd: ip 10.244.1.5/24; reboot: not an IPv4 address or prefix']);
    expect(await refusal(post([1]))).toEqual([400, 'the request must be a JSON object']);
    expect(await refusal(requestJson(sock, 'DELETE', '/v1/ports/pa'))).toEqual([409, 'port pa is a port of the config: remove it from the config and restart nodeplane']);
    expect(await refusal(requestJson(sock, 'GET', '/v1/ports/pa'))).toEqual([405, 'method GET not allowed on /v1/ports/pa: DELETE removes the port']);
    expect(dp.ctx.ports.count).toBe(5);
    expect([...driver.taps.keys()]).toEqual(['pa', 'pb', 'pc', 'up', 'slow']);
  });

  it('undoes an add whose namespace plug fails: the TAP closed, the port gone', async () => {
    const { dp, driver, budget } = await node(true);
    expect(await refusal(sendJson(sock, 'POST', '/v1/ports', { name: 'pd', bridge: 'cni0', netns: { path: dir, ifname: 'eth0', ip: '10.244.1.5/24' } }))).toEqual([
      500,
      'port pd: RTNETLINK answers: File exists',
    ]);
    expect(driver.tap('pd').closed).toBe(true);
    expect(dp.portIndex('pd')).toBe(-1);
    expect(budget.fanOut).toBe(4);
  });
});

describe('nodeplane port add flags', () => {
  const base: PortAddOptions = { admin: 'x', route: [] };
  const refused = (f: () => unknown): string => {
    try {
      f();
    } catch (err) {
      expect(err).toBeInstanceOf(UserError);
      return (err as Error).message;
    }
    throw new Error('not refused');
  };
  it('builds the request, and refuses flags that do not go together', () => {
    expect(portAddRequest('pd', { ...base, bridge: 'cni0', netns: '/run/netns/x', ifname: 'eth0', ip: '10.244.1.5/24', route: ['10.96.0.0/12'], mtu: '1450' })).toEqual({
      name: 'pd',
      bridge: 'cni0',
      mtu: 1450,
      netns: { path: '/run/netns/x', ifname: 'eth0', ip: '10.244.1.5/24', routes: ['10.96.0.0/12'] },
    });
    expect(refused(() => portAddRequest('pd', base))).toBe('port add: give either --bridge or --address');
    expect(refused(() => portAddRequest('pd', { ...base, bridge: 'cni0', ifname: 'eth0' }))).toBe('port add: --ifname needs --netns');
    expect(refused(() => portAddRequest('pd', { ...base, bridge: 'cni0', netns: '/run/netns/x' }))).toBe('port add: --netns needs --ifname (the interface name in the namespace)');
    expect(refused(() => portAddRequest('pd', { ...base, bridge: 'cni0', mtu: '9x' }))).toBe('port add: --mtu 9x: expected a whole number in 68..65535');
  });
});
