/**
 * End to end across the VXLAN overlay: one iperf3 TCP stream from a pod on one node to a pod
 * on another, through two `nodeplane run` flannel nodes whose underlay TAPs share a bridge
 * (src/lab/flannel-nodes.ts), and, in the same run and on the same machine, through two
 * kernel flannel nodes (a `vxlan` device, cni0 and a veth pod each, on a veth underlay).
 * Three rounds, nodeplane and kernel interleaved, BENCH_E2E_SECONDS each (default 5); the
 * rows give the median round and every round.
 *
 * Rows: e2e.vxlan.nodeplane (gbps, rounds, offload: what the underlay TAPs got — `tcp+udp-
 * tunnel` where the kernel has UDP-tunnel GSO, so super-frames cross whole; `tcp` where they
 * are segmented in software first — and the sender's nodeplane CPU), e2e.vxlan.kernel,
 * e2e.vxlan.ratio (the medians'). Pods' MTU 1450, as flannel gives them. Without root,
 * namespaces, TAP support or iperf3: one row `{ bench: 'e2e.vxlan', skipped: REASON }`.
 *
 * Safety: every host is a namespace created here (src/lab/netns.ts), removed in a finally
 * block and on exit; iperf3 is bounded in time.
 *
 * Standalone: `npx tsx bench/e2e-vxlan.bench.ts`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchState } from '../src/admin/client.ts';
import { Underlay, flannelNodeId, kernelFlannelPair, peerOf, startFlannelNode } from '../src/lab/flannel-nodes.ts';
import type { Lab } from '../src/lab/lab.ts';
import { iperfTcp, median, medianRound, missing, seconds, skippedGroup, type Tcp, tcpRow } from './e2e.bench.ts';
import type { BenchResult } from './harness.ts';

const ROUNDS = 3;


export async function benchE2eVxlan(): Promise<BenchResult[]> {
  const reason = missing();
  if (reason) return skippedGroup('e2e.vxlan', reason);
  const secs = seconds();
  const dir = mkdtempSync(join(tmpdir(), 'nodeplane-bench-vxlan-'));
  const labs: Lab[] = [];
  let underlay: Underlay | undefined;
  let kernel: ReturnType<typeof kernelFlannelPair> | undefined;
  try {
    const [n1, n2] = [flannelNodeId(1), flannelNodeId(2)];
    labs.push(await startFlannelNode({ dir: join(dir, 'n1'), id: n1, peers: [peerOf(n2)] }));
    labs.push(await startFlannelNode({ dir: join(dir, 'n2'), id: n2, peers: [peerOf(n1)] }));
    underlay = Underlay.create();
    underlay.attach(labs[0], 1);
    underlay.attach(labs[1], 2);
    kernel = kernelFlannelPair();
    const [k1, k2] = kernel.nodes;
    const [a, b] = [labs[0].pod('pa'), labs[1].pod('pa')];
    for (const [from, to] of [[a, '10.244.2.2'], [k1.pod, k2.podIp]] as const) {
      const r = await from.run('ping', ['-c', '3', '-i', '0.2', '-W', '2', '-q', to], { timeoutMs: 15_000 });
      if (r.code !== 0) throw new Error(`${from.name} cannot ping ${to}: ${r.stdout}${r.stderr}`);
    }
    const ports = (await fetchState(labs[0].adminSocket, 'ports')) as { ports: Array<{ name: string; driver?: { offload?: string } }> };
    const offload = ports.ports.find((p) => p.name === 'up')?.driver?.offload ?? 'unknown';
    const np: Tcp[] = [];
    const kern: Tcp[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      np.push(await iperfTcp(a, b, '10.244.2.2', secs, labs[0].nodeplane?.pid));
      kern.push(await iperfTcp(k1.pod, k2.pod, k2.podIp, secs));
    }
    const npRow = { ...tcpRow('e2e.vxlan.nodeplane', medianRound(np), true), mtu: 1450, offload, rounds: np.map((r) => r.gbps) };
    const kRow = { ...tcpRow('e2e.vxlan.kernel', medianRound(kern), false), mtu: 1450, rounds: kern.map((r) => r.gbps) };
    return [npRow, kRow, { bench: 'e2e.vxlan.ratio', ratio: Math.round((median(np.map((r) => r.gbps)) / median(kern.map((r) => r.gbps))) * 10_000) / 10_000 }];
  } finally {
    kernel?.remove();
    for (const lab of labs) await lab.shutdown();
    underlay?.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchE2eVxlan()) console.log(JSON.stringify(r));
}
