/**
 * End to end: nodeplane-cni driven exactly as a container runtime drives it (cni-fixture.ts),
 * with Debian's host-local for addresses, against a running nodeplane in a namespace.
 *
 * - ADD gives the pod's namespace an eth0 with an address from the range and a default route
 *   through the gateway, and prints a result the specification's shape (interface with its
 *   sandbox, address with interface index and gateway, routes, dns);
 * - the pod pings its gateway and another pod, and still does after a SIGHUP reload;
 * - CHECK succeeds, and fails once the address is removed by hand, or the default route;
 * - DEL removes the interface and frees the address; a second DEL succeeds;
 * - with no nodeplane on the socket, ADD fails with code 11 ("try again later") and takes
 *   no address; VERSION lists the versions.
 *
 * Everything lives in namespaces this file creates (src/lab/netns.ts), removed on exit.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchState } from '../../src/admin/client.ts';
import type { PortsState } from '../../src/admin/state.ts';
import { portName } from '../../src/cni/plugin.ts';
import type { Lab } from '../../src/lab/lab.ts';
import { createNetns, type Netns } from '../../src/lab/netns.ts';
import { GATEWAY, PLUGIN, hostLocalProblem, leases, netconf, runPlugin, startNode } from './cni-fixture.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';

const problem = missingPrerequisite(['ping', 'nsenter']) ?? hostLocalProblem();
const skip = skipUnlessReady('CNI plugin end-to-end tests', problem);

const nsPath = (ns: Netns): string => `/run/netns/${ns.name}`;

describe.skipIf(skip)('nodeplane-cni, as a runtime runs it', () => {
  let dir = '';
  let dataDir = '';
  let lab: Lab | null = null;
  let pod1: Netns;
  let pod2: Netns;
  let conf: Record<string, unknown>;

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-cni-'));
    dataDir = join(dir, 'ipam');
    lab = await startNode(dir);
    pod1 = createNetns('cni-pod1');
    pod2 = createNetns('cni-pod2');
    conf = netconf(lab.adminSocket, dataDir);
  }, 60_000);

  afterAll(async () => {
    pod1?.remove();
    pod2?.remove();
    if (lab) {
      await lab.stopNodeplane().catch(() => undefined);
      lab.destroy();
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ADD, ping, CHECK, CHECK after a hand-made change, DEL, DEL again', async () => {
    const a1 = { containerId: 'c0ffee01', netns: nsPath(pod1) };
    const a2 = { containerId: 'c0ffee02', netns: nsPath(pod2) };
    const add1 = await runPlugin(PLUGIN, 'ADD', a1, conf);
    expect(add1.stderr).toBe('');
    expect(add1.code, add1.stdout).toBe(0);
    const r1 = add1.json as { cniVersion: string; interfaces: Array<Record<string, unknown>>; ips: Array<Record<string, unknown>>; routes: unknown[]; dns: unknown };
    expect(r1.cniVersion).toBe('1.0.0');
    expect(r1.interfaces).toEqual([{ name: 'eth0', mac: expect.stringMatching(/^0a:58:0a:f4:01:/), mtu: 1500, sandbox: nsPath(pod1) }]);
    expect(r1.ips).toEqual([{ address: expect.stringMatching(/^10\.244\.1\.\d+\/24$/), gateway: GATEWAY, interface: 0 }]);
    expect(r1.routes).toEqual([{ dst: '0.0.0.0/0', gw: GATEWAY }]);
    expect(r1.dns).toEqual({});
    const addr1 = String(r1.ips[0].address);
    const host = Number(addr1.split('/')[0].split('.')[3]);
    expect(host).toBeGreaterThanOrEqual(10);
    expect(host).toBeLessThanOrEqual(250);
    expect(leases(dataDir)).toEqual([addr1.split('/')[0]]);

    // The pod's namespace: eth0, up, with the address and the default route.
    const link = JSON.parse(pod1.ip(['-j', 'addr', 'show', 'dev', 'eth0'])) as Array<{ flags: string[]; address: string; addr_info: Array<{ family: string; local: string; prefixlen: number }> }>;
    expect(link[0].flags).toContain('UP');
    expect(link[0].address).toBe(r1.interfaces[0].mac);
    expect(link[0].addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`)).toEqual([addr1]);
    expect(pod1.ip(['-4', 'route', 'show', 'default'])).toMatch(new RegExp(`^default via ${GATEWAY.replace(/\./g, '\\.')} dev eth0`));

    const add2 = await runPlugin(PLUGIN, 'ADD', a2, conf);
    expect(add2.code, add2.stdout).toBe(0);
    const addr2 = String((add2.json as { ips: Array<{ address: string }> }).ips[0].address);
    expect(addr2).not.toBe(addr1);
    const ports = (await fetchState(lab!.adminSocket, 'ports')) as PortsState;
    expect(ports.ports.map((p) => [p.name, p.owner, p.master, p.up])).toEqual([
      [portName('c0ffee01', 'eth0'), 'podnet/c0ffee01/eth0', 'cni0', true],
      [portName('c0ffee02', 'eth0'), 'podnet/c0ffee02/eth0', 'cni0', true],
    ]);

    for (const dst of [GATEWAY, addr2.split('/')[0]]) {
      const r = await pod1.run('ping', ['-c', '3', '-i', '0.2', '-W', '2', '-q', dst], { timeoutMs: 20_000 });
      expect(r.stdout, `ping ${dst}`).toMatch(/3 packets transmitted, 3 received/);
    }

    // A SIGHUP reload (same config) leaves the pods' ports alone: they still forward.
    lab!.nodeplane!.kill('SIGHUP');
    for (let i = 0; !lab!.nodeplaneStderr.includes('"msg":"config reloaded"'); i++) {
      if (i === 100) throw new Error(`no reload logged: ${lab!.nodeplaneStderr.slice(-1000)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(((await fetchState(lab!.adminSocket, 'ports')) as PortsState).ports).toHaveLength(2);
    const again = await pod1.run('ping', ['-c', '2', '-i', '0.2', '-W', '2', '-q', addr2.split('/')[0]], { timeoutMs: 20_000 });
    expect(again.stdout, 'ping after the reload').toMatch(/2 packets transmitted, 2 received/);

    // CHECK with the ADD's result as prevResult: silent success.
    const check1 = await runPlugin(PLUGIN, 'CHECK', a1, { ...conf, prevResult: r1 });
    expect([check1.code, check1.stdout]).toEqual([0, '']);
    // The address removed by hand: CHECK says so.
    pod1.ip(['addr', 'del', addr1, 'dev', 'eth0']);
    const check2 = await runPlugin(PLUGIN, 'CHECK', a1, { ...conf, prevResult: r1 });
    expect(check2.code).toBe(1);
    expect(check2.json).toMatchObject({ cniVersion: '1.0.0', code: 102, msg: `eth0 in ${nsPath(pod1)}: address ${addr1} missing (has none)` });
    // pod2's default route removed by hand: CHECK says so.
    const prev2 = add2.json!;
    expect((await runPlugin(PLUGIN, 'CHECK', a2, { ...conf, prevResult: prev2 })).code).toBe(0);
    pod2.ip(['route', 'del', 'default']);
    const check3 = await runPlugin(PLUGIN, 'CHECK', a2, { ...conf, prevResult: prev2 });
    expect(check3.json).toMatchObject({ code: 102, msg: `eth0 in ${nsPath(pod2)}: route 0.0.0.0/0 via ${GATEWAY} missing` });

    // DEL: the interface goes from the namespace, the address back to the range.
    const del1 = await runPlugin(PLUGIN, 'DEL', a1, { ...conf, prevResult: r1 });
    expect([del1.code, del1.stdout]).toEqual([0, '']);
    expect(pod1.ip(['link', 'show', 'dev', 'eth0'], { check: false })).toBe('');
    expect(leases(dataDir)).toEqual([addr2.split('/')[0]]);
    expect(((await fetchState(lab!.adminSocket, 'ports')) as PortsState).ports.map((p) => p.name)).toEqual([portName('c0ffee02', 'eth0')]);
    // A second DEL of the same attachment succeeds, and so does a DEL whose namespace is gone.
    const del1again = await runPlugin(PLUGIN, 'DEL', a1, conf);
    expect([del1again.code, del1again.stdout]).toEqual([0, '']);
    const del2 = await runPlugin(PLUGIN, 'DEL', { ...a2, netns: '' }, conf);
    expect([del2.code, del2.stdout, del2.stderr]).toEqual([0, '', '']);
    expect(leases(dataDir)).toEqual([]);
    expect(pod2.ip(['link', 'show', 'dev', 'eth0'], { check: false })).toBe('');
  }, 120_000);

  it('ADD with no nodeplane on the socket: code 11, no address taken; VERSION; a bad config', async () => {
    const away = netconf(join(dir, 'nobody.sock'), dataDir);
    const r = await runPlugin(PLUGIN, 'ADD', { containerId: 'c0ffee03', netns: nsPath(pod1) }, away);
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ cniVersion: '1.0.0', code: 11, msg: 'nodeplane is not answering on its admin socket' });
    expect(leases(dataDir)).toEqual([]);
    // DEL with nobody there still releases (there is nothing to release) and succeeds.
    expect((await runPlugin(PLUGIN, 'DEL', { containerId: 'c0ffee03', netns: nsPath(pod1) }, away)).code).toBe(0);

    const v = await runPlugin(PLUGIN, 'VERSION', { containerId: '', netns: '' }, { cniVersion: '1.0.0' });
    expect([v.code, v.json]).toEqual([0, { cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] }]);
    const old = await runPlugin(PLUGIN, 'ADD', { containerId: 'c0ffee04', netns: nsPath(pod1) }, { ...conf, cniVersion: '2.0.0' });
    expect(old.json).toMatchObject({ code: 1, msg: 'incompatible CNI version' });
    const noIpam = await runPlugin(PLUGIN, 'ADD', { containerId: 'c0ffee04', netns: nsPath(pod1) }, { ...conf, ipam: undefined });
    expect(noIpam.json).toMatchObject({ code: 7, details: 'ipam: nodeplane-cni needs an IPAM plugin (host-local, say)' });
    expect(leases(dataDir)).toEqual([]);
  }, 60_000);
});
