/**
 * `nodeplane demo`: the one-command lab (SPEC §1). Builds three pods in network namespaces,
 * runs nodeplane between them with captures on, pings across the bridge, to the gateway and
 * across subnets, fetches pages through a Service (a ClusterIP backed by pb and pc, showing
 * which pod answered each request and the connections `show conntrack` tracked for them),
 * prints what happened and where the pcaps are, and removes everything it created (also on
 * Ctrl-C).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchState, fetchTrace } from '../admin/client.ts';
import type { LiveTraceResult } from '../admin/live-trace.ts';
import { formatState } from '../admin/format.ts';
import { DEMO_PODS, DEMO_SERVICE, DEMO_SERVICE_CONFIG } from '../lab/demo-topology.ts';
import { Lab } from '../lab/lab.ts';
import { netnsSupport } from '../lab/netns.ts';
import { UserError } from '../user-error.ts';

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

const NODEPLANE = fileURLToPath(new URL('../../bin/nodeplane.cjs', import.meta.url));

function need(tool: string, pkg: string): void {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new UserError(`demo needs \`${tool}\` (Debian package ${pkg})`);
}

export async function demoCommand(opts: { out: string; keep?: boolean }): Promise<number> {
  const support = netnsSupport({ tun: true });
  if (!support.ok) throw new UserError(`demo: ${support.reason}`);
  need('ping', 'iputils-ping');
  need('curl', 'curl');
  need('python3', 'python3');
  const dir = resolve(opts.out);
  // Ctrl-C: say so and leave; the namespace helper removes the lab on the way out.
  const onInterrupt = (): void => {
    process.stdout.write('\ninterrupted: removing the lab\n');
    process.exit(130);
  };
  process.on('SIGINT', onInterrupt);
  say(`nodeplane demo — building a node with pods pa, pb (10.244.1.0/24 on cni0) and pc (10.244.2.0/24 on cni1)`);
  say(`with a Service: ClusterIP ${DEMO_SERVICE.clusterIP}:${DEMO_SERVICE.port} backed by ${DEMO_SERVICE.endpoints.join(' and ')}`);
  const lab = await Lab.start({ config: DEMO_SERVICE_CONFIG, pods: DEMO_PODS, dir, capture: true });
  let failures = 0;
  const step = async (title: string, port: string, cmd: string, args: string[], show: (out: string) => string): Promise<void> => {
    const r = await lab.pod(port).run(cmd, args, { timeoutMs: 15_000 });
    const ok = r.code === 0;
    if (!ok) failures++;
    say(`  ${ok ? 'ok  ' : 'FAIL'} ${title}: ${ok ? show(r.stdout) : (r.stderr || r.stdout).trim().split('\n').pop()}`);
  };
  const pingSummary = (out: string): string => out.split('\n').find((l) => l.includes('packets transmitted'))?.trim() ?? '';
  try {
    say('\n== traffic');
    await step('pa → pb across cni0 (ping)', 'pa', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.244.1.3'], pingSummary);
    await step('pa → gateway 10.244.1.1 (ping)', 'pa', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.244.1.1'], pingSummary);
    await step('pa → pc through the router (ping)', 'pa', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', '10.244.2.2'], pingSummary);
    // Each endpoint serves a page naming itself.
    const servers = DEMO_SERVICE.endpoints.map((pod) => {
      const www = join(dir, `www-${pod}`);
      mkdirSync(www, { recursive: true });
      writeFileSync(join(www, 'index.html'), `${pod}\n`);
      return lab.pod(pod).spawn('python3', ['-m', 'http.server', String(DEMO_SERVICE.targetPort), '--directory', www], { stdio: 'ignore' });
    });
    const curl = (url: string) => lab.pod('pa').run('curl', ['-sS', '-w', ' %{http_code}', '--max-time', '2', url], { timeoutMs: 5000 });
    // Each endpoint fetched straight until its server answers (python3 takes a moment to
    // listen), so that no Service request below lands on a pod not serving yet.
    for (const pod of DEMO_SERVICE.endpoints) {
      const url = `http://${DEMO_PODS.find((p) => p.port === pod)!.address.split('/')[0]}:${DEMO_SERVICE.targetPort}/`;
      let fetched = false;
      for (let i = 0; i < 50 && !fetched; i++) {
        const r = await curl(url);
        if (r.code === 0 && r.stdout.endsWith(' 200')) fetched = true;
        else await new Promise((res) => setTimeout(res, 100));
      }
      if (!fetched) failures++;
      say(`  ${fetched ? 'ok  ' : 'FAIL'} pa → ${pod} HTTP GET ${url}${fetched ? ': 200 OK' : ''}`);
    }
    say(`\n== HTTP to a Service: pa fetches http://${DEMO_SERVICE.clusterIP}/ (six times, more until both pods have answered)`);
    const answered = new Set<string>();
    for (let i = 1; i <= 6 || (i <= 12 && answered.size < DEMO_SERVICE.endpoints.length); i++) {
      const r = await curl(`http://${DEMO_SERVICE.clusterIP}:${DEMO_SERVICE.port}/`);
      const [body, status] = r.stdout.trim().split(/\s+/);
      const ok = r.code === 0 && status === '200';
      if (ok) answered.add(body);
      else failures++;
      say(`  ${ok ? 'ok  ' : 'FAIL'} request ${i}: ${ok ? `200 OK, answered by ${body}` : (r.stderr || r.stdout).trim()}`);
    }
    say(`  answered by: ${[...answered].sort().join(', ') || 'nobody'} (each request picks an endpoint at random, as kube-proxy does)`);
    say(`\n== nodeplane show conntrack --dst ${DEMO_SERVICE.clusterIP} (the original tuple to the ClusterIP, the reply from the pod)`);
    const ct = spawnSync(process.execPath, [NODEPLANE, 'show', 'conntrack', '--dst', DEMO_SERVICE.clusterIP, '--admin', lab.adminSocket], { encoding: 'utf8', timeout: 10_000 });
    say((ct.status === 0 ? ct.stdout : `show conntrack failed: ${ct.stderr}`).trimEnd().replace(/^/gm, '  '));
    for (const s of servers) s.kill();
    say('\n== one routed ping, hop by hop (nodeplane trace)');
    const traced = fetchTrace(lab.adminSocket, 2, 5, '10.244.2.2') as Promise<LiveTraceResult>;
    await new Promise((res) => setTimeout(res, 300));
    await lab.pod('pa').run('ping', ['-c', '1', '-W', '2', '10.244.2.2'], { timeoutMs: 10_000 });
    const trace = await traced;
    say(trace.lines.join('\n').replace(/^/gm, '  '));
    say('\n== what pod pa sees (ip neigh)');
    say(lab.pod('pa').ip(['neigh', 'show']).trimEnd().replace(/^/gm, '  '));
    for (const what of ['fdb', 'neigh', 'ports'] as const) {
      say(`\n== nodeplane show ${what}`);
      say(formatState(what, await fetchState(lab.adminSocket, what)).trimEnd().replace(/^/gm, '  '));
    }
    if (opts.keep) {
      say(`\nThe lab is up: namespaces ${[lab.node.name, ...[...lab.pods.values()].map((p) => p.name)].join(', ')}.`);
      say(`Try: ip netns exec ${lab.pod('pa').name} ping 10.244.2.2   or   nodeplane show stats --admin ${lab.adminSocket}`);
      say('Press Ctrl-C to tear it down.');
      process.off('SIGINT', onInterrupt);
      await new Promise<void>((res) => process.once('SIGINT', () => res()));
    }
    await lab.stopNodeplane('SIGTERM');
    say('\n== captures (open them in Wireshark)');
    for (const f of readdirSync(lab.captureDir).sort()) say(`  ${resolve(lab.captureDir, f)}`);
  } finally {
    process.off('SIGINT', onInterrupt);
    lab.destroy();
    say('\nlab removed.');
  }
  return failures === 0 ? 0 : 1;
}
