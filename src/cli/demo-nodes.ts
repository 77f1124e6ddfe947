/**
 * `nodeplane demo --nodes N`: a cluster of N nodeplane nodes in network namespaces. It starts
 * etcd (Debian's etcd-server, on a unix socket in a namespace of its own), then N nodes in
 * cluster mode, each with a pod, leasing 10.244.n.0/24 in flannel's layout and learning the
 * others from etcd; their underlay TAPs share one bridge (192.168.50.0/24). Pods ping each
 * other and fetch a page across nodes over the VXLAN overlay; the nodes capture every port
 * (captures keep the frames as a 1500-byte wire carries them), so each node's pcapng shows,
 * on `up`, the VXLAN with the inner ICMP and TCP. Everything it made goes at the end (also on
 * Ctrl-C); the captures stay.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fetchState } from '../admin/client.ts';
import type { RoutesState } from '../admin/state.ts';
import { formatState } from '../admin/format.ts';
import { EtcdServer, etcdMissing } from '../lab/etcd-server.ts';
import { Underlay, clusterFlannelConfig, subnetEnv } from '../lab/flannel-nodes.ts';
import { Lab } from '../lab/lab.ts';
import { netnsSupport } from '../lab/netns.ts';
import { UserError } from '../user-error.ts';

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function need(tool: string, pkg: string): void {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) throw new UserError(`demo --nodes needs \`${tool}\` (Debian package ${pkg})`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const podOf = (n: number): string => `10.244.${n}.2`;

export async function demoNodesCommand(opts: { nodes: number; out: string; keep?: boolean }): Promise<number> {
  const count = opts.nodes;
  if (!Number.isInteger(count) || count < 2 || count > 9) throw new UserError(`--nodes ${opts.nodes}: 2 to 9 nodes`);
  const support = netnsSupport({ tun: true });
  if (!support.ok) throw new UserError(`demo: ${support.reason}`);
  need('ping', 'iputils-ping');
  need('curl', 'curl');
  need('python3', 'python3');
  const noEtcd = etcdMissing();
  if (noEtcd) throw new UserError(`demo --nodes: ${noEtcd}`);
  const dir = resolve(opts.out);
  mkdirSync(dir, { recursive: true });
  const onInterrupt = (): void => {
    process.stdout.write('\ninterrupted: removing the lab\n');
    process.exit(130);
  };
  process.on('SIGINT', onInterrupt);
  const ids = Array.from({ length: count }, (_, i) => i + 1);
  say(`nodeplane demo — ${count} nodes in cluster mode on etcd, flannel's VXLAN overlay between them`);
  say(`  node n: pod 10.244.n.2 on cni0 (the leased 10.244.n.0/24), underlay 192.168.50.(10 + n) on one bridge`);
  let etcd: EtcdServer | undefined;
  let underlay: Underlay | undefined;
  const labs = new Map<number, Lab>();
  let failures = 0;
  const ok = (good: boolean, text: string): void => {
    if (!good) failures++;
    say(`  ${good ? 'ok  ' : 'FAIL'} ${text}`);
  };
  try {
    etcd = await EtcdServer.start();
    say(`  etcd: ${etcd.endpoint}`);
    underlay = Underlay.create();
    const started = await Promise.all(
      ids.map(async (n) => {
        const nodeDir = join(dir, `node${n}`);
        mkdirSync(nodeDir, { recursive: true });
        const subnetFile = join(nodeDir, 'subnet.env');
        writeFileSync(subnetFile, subnetEnv(n));
        const lab = await Lab.start({
          config: clusterFlannelConfig({ n, endpoint: etcd!.endpoint, subnetFile }),
          pods: [{ port: 'pa', address: `${podOf(n)}/24`, gateway: `10.244.${n}.1` }],
          dir: nodeDir,
          capture: true,
          startTimeoutMs: 60_000,
        });
        return [n, lab] as const;
      }),
    );
    for (const [n, lab] of started) {
      labs.set(n, lab);
      lab.pod('pa').ip(['link', 'set', 'eth0', 'mtu', '1450']);
      underlay.attach(lab, n);
    }

    say('\n== the cluster: every node learns the others\' leases from etcd');
    for (const n of ids) {
      const lab = labs.get(n)!;
      const want = ids.filter((m) => m !== n).map((m) => `10.244.${m}.0/24`);
      let routes: RoutesState['routes'] = [];
      for (let i = 0; i < 100; i++) {
        routes = ((await fetchState(lab.adminSocket, 'routes')) as RoutesState).routes;
        if (want.every((w) => routes.some((r) => r.dst === w))) break;
        await sleep(100);
      }
      ok(want.every((w) => routes.some((r) => r.dst === w)), `node${n} routes ${want.join(', ')} via flannel.1`);
    }

    say('\n== traffic across nodes');
    const pingSummary = (out: string): string => out.split('\n').find((l) => l.includes('packets transmitted'))?.trim() ?? '';
    for (const n of ids) {
      const m = (n % count) + 1;
      const r = await labs.get(n)!.pod('pa').run('ping', ['-c', '3', '-i', '0.2', '-W', '2', podOf(m)], { timeoutMs: 15_000 });
      ok(r.code === 0, `node${n} pod → node${m} pod ${podOf(m)} (ping): ${r.code === 0 ? pingSummary(r.stdout) : (r.stderr || r.stdout).trim().split('\n').pop()}`);
    }
    for (const n of ids) {
      const m = (n % count) + 1;
      const www = join(dir, `www-node${m}`);
      mkdirSync(www, { recursive: true });
      writeFileSync(join(www, 'index.html'), `the pod on node${m}\n`);
      const server = labs.get(m)!.pod('pa').spawn('python3', ['-m', 'http.server', '8080', '--bind', podOf(m), '--directory', www], { stdio: 'ignore' });
      try {
        let body = '';
        for (let i = 0; i < 50 && body === ''; i++) {
          const r = await labs.get(n)!.pod('pa').run('curl', ['-sS', '--max-time', '2', `http://${podOf(m)}:8080/`], { timeoutMs: 5000 });
          if (r.code === 0) body = r.stdout.trim();
          else await sleep(100);
        }
        ok(body === `the pod on node${m}`, `node${n} pod → node${m} pod HTTP GET http://${podOf(m)}:8080/: ${body || 'no answer'}`);
      } finally {
        server.kill();
      }
    }

    for (const what of ['routes', 'neigh', 'fdb'] as const) {
      say(`\n== nodeplane show ${what} on node1 (flannel's entries for the other nodes)`);
      say(formatState(what, await fetchState(labs.get(1)!.adminSocket, what)).trimEnd().replace(/^/gm, '  '));
    }
    if (opts.keep) {
      say(`\nThe cluster is up: pods ${ids.map((n) => `${labs.get(n)!.pod('pa').name} (${podOf(n)})`).join(', ')}.`);
      say(`Try: ip netns exec ${labs.get(1)!.pod('pa').name} ping ${podOf(2)}`);
      say('Press Ctrl-C to tear it down.');
      process.off('SIGINT', onInterrupt);
      await new Promise<void>((res) => process.once('SIGINT', () => res()));
    }
    for (const lab of labs.values()) await lab.stopNodeplane('SIGTERM');
    say('\n== captures, one per node: port `up` carries the VXLAN (UDP 8472; in Wireshark: Decode As… UDP port 8472 → VXLAN,');
    say('   or `tshark -r FILE -d udp.port==8472,vxlan`), with the inner ICMP and TCP between the pods');
    for (const [n, lab] of labs) for (const f of readdirSync(lab.captureDir).sort()) say(`  node${n}: ${resolve(lab.captureDir, f)}`);
  } finally {
    process.off('SIGINT', onInterrupt);
    for (const lab of labs.values()) lab.destroy();
    underlay?.remove();
    await etcd?.destroy();
    say('\nlab removed.');
  }
  return failures === 0 ? 0 : 1;
}
