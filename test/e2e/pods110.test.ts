/**
 * End to end: a real node's pod count. kubelet's default maxPods is 110: one nodeplane with
 * 110 TAP ports on cni0 (10.244.1.1/24), every one a TAP device of the running nodeplane.
 * Pods — network namespaces holding the kernel end of a TAP as eth0 — sit on the first, a
 * middle and the last two ports (p0, p55, p108, p109); the other 106 TAPs stay in the node's
 * namespace, up and idle, as pods that say nothing. For each TAP mode (offload, the default;
 * `--no-offload`; a capture on, at snaplen 128, which records super-frames as they cross and
 * leaves offload on):
 *
 * - every pod pings every other and the gateway, 5 each, none lost;
 * - 16 MiB of random bytes over TCP from p108 to p109 arrive intact;
 * - `show ports` lists 110 ports up, none with a frame dropped for want of a slot, and the
 *   pool has every slot back;
 * - with offload, nodeplane's resident memory idle and during the transfer stays under 256 MiB.
 *
 * What 110 ports cost against 3, per second of nodeplane CPU, is measured by
 * `npm run bench -- e2e-paths`. Everything lives in namespaces this file creates
 * (src/lab/netns.ts), removed on exit.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fetchState } from '../../src/admin/client.ts';
import type { PortsState } from '../../src/admin/state.ts';
import type { Netns } from '../../src/lab/netns.ts';
import { PODS110_GATEWAY as GATEWAY, PODS110_MODES, type Pods110Lab, pods110Address as addressOf, startPods110Lab, stopPods110Lab } from '../../src/lab/path-topologies.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';
import { expectIntact, tcpTransfer } from './tcp-transfer.ts';

const problem = missingPrerequisite(['ping', 'python3', 'ss']);
const skip = skipUnlessReady('110-pod end-to-end tests', problem);

const TRANSFER_BYTES = 16 * 1024 * 1024;
const RSS_LIMIT = 256 * 1024 * 1024;

async function ping(from: Netns, to: string): Promise<string> {
  const r = await from.run('ping', ['-c', '5', '-i', '0.2', '-W', '2', '-q', to], { timeoutMs: 20_000 });
  return `${from.name.replace(/^npt-\d+-\d+-/, '')} → ${to}: ${/\d+ packets transmitted, \d+ received/.exec(r.stdout)?.[0] ?? r.stdout + r.stderr}`;
}

/** VmRSS of a process, in bytes. */
function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

const MiB = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;

describe.skipIf(skip)('110 pods on one bridge', () => {
  for (const mode of PODS110_MODES) {
    it(`${mode.name}: pods on the first, a middle and the last ports talk without loss; 16 MiB over TCP arrive intact`, async () => {
      if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
      let big: Pods110Lab | undefined;
      try {
        const podPorts = [0, 55, 108, 109];
        big = await startPods110Lab(110, podPorts, mode);
        const lab = big.lab;
        const log = lab.nodeplaneStderr;
        expect(log).toMatch(mode.name === 'no offload' ? /"offload":false/ : /"offload":true/);

        // Every one of the 110 is a TAP of this nodeplane: 106 in the node's namespace, 4 in pods.
        const inNode = lab.node.ip(['-o', 'link', 'show', 'type', 'tun']).split('\n').filter((l) => /: p\d+: /.test(l));
        expect(inNode).toHaveLength(106);
        for (const p of podPorts) expect(lab.pod(`p${p}`).ip(['-o', 'link', 'show', 'eth0'])).toMatch(/[<,]UP,LOWER_UP>/);

        const pods = podPorts.map((p) => lab.pod(`p${p}`));
        const results = await Promise.all([
          ...pods.map((from) => ping(from, GATEWAY)),
          ...pods.flatMap((from, i) => podPorts.filter((_, j) => j !== i).map((to) => ping(from, addressOf(to)))),
        ]);
        for (const r of results) expect(r).toMatch(/5 packets transmitted, 5 received$/);

        const pid = lab.nodeplane!.pid!;
        const idleRss = rss(pid);
        let peakRss = idleRss;
        const sampler = setInterval(() => {
          try {
            peakRss = Math.max(peakRss, rss(pid));
          } catch {
            /* exiting */
          }
        }, 100);
        try {
          const t = await tcpTransfer(lab.pod('p108'), lab.pod('p109'), addressOf(109), addressOf(109), TRANSFER_BYTES);
          process.stdout.write(`110 pods, ${mode.name}: TCP p108 → p109 ${t.sent} bytes sent, ${t.received} received; nodeplane RSS idle ${MiB(idleRss)}, peak ${MiB(Math.max(peakRss, rss(pid)))}\n`);
          expectIntact(t, TRANSFER_BYTES, addressOf(108));
        } finally {
          clearInterval(sampler);
        }
        if (mode.name === 'offload') {
          expect(idleRss).toBeLessThan(RSS_LIMIT);
          expect(peakRss).toBeLessThan(RSS_LIMIT);
        }

        const state = (await fetchState(lab.adminSocket, 'ports')) as PortsState;
        expect(state.ports).toHaveLength(110);
        expect(state.ports.filter((p) => !p.up).map((p) => p.name)).toEqual([]);
        expect(state.ports.filter((p) => p.rx.noBuffer > 0).map((p) => p.name)).toEqual([]);
        expect(state.pool.free).toBe(state.pool.slots - 1);
        expect(state.pool.slotBytes).toBe(mode.name === 'no offload' ? 4096 : 68 * 1024);
        expect(lab.nodeplaneStderr).not.toMatch(/no free frame slot/);
      } finally {
        await stopPods110Lab(big);
      }
    }, 120_000);
  }
});
