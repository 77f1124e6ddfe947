/**
 * Services: established ClusterIP DNAT through the whole graph, and the cost of applying
 * Services at scale. Forwarding rows use nat.bench.ts's node and workload (frames handed over
 * as a TAP batch does, 256 per run(), the bytes the path rewrites written back per frame).
 *
 *   nat.clusterip.l3-forward.64B  the node without nat (connection tracking off): this run's
 *                               baseline, as nat.l3-forward
 *   nat.clusterip.64B           256 established UDP flows from pod p0 to a ClusterIP
 *                               (10.96.0.10:80, three endpoints on another node, reached by the
 *                               uplink), each replied once: per packet conntrack-in (lookup, UDP
 *                               step), the destination rewrite (address, port, IPv4 and UDP
 *                               checksums), routing, the INVALID filter, the source manip
 *                               (nothing: pod to pod is not masqueraded), confirm
 *   nat.clusterip.64B.ratio     clusterip / l3-forward: wall clock, CPU time, and the median of
 *                               7 alternating CPU-time runs
 *   services.apply.add-or-remove-one.10k   Dataplane.applyServices with 10,000 Services x 10
 *                               endpoints applied, given the same 10,000 objects plus one new
 *                               Service, then without it again, alternately (one op = one apply
 *                               of the whole list, adding or removing one Service);
 *                               `cpuMsPerOp`: CPU time per apply over 400 more
 *   services.table.upsert-or-remove-one.10k   the table alone (ServiceTable.upsert, .remove):
 *                               what a caller that knows the one change pays
 *   services.apply.udp-flush-walk.1M   applying a UDP Service with endpoints (then removing
 *                               it) while 1,000,000 UDP entries are tracked: the conntrack walk
 *                               of the UDP cleanup in steps (udp-cleanup.ts) — the apply, then
 *                               run() until it is done: the longest of those pauses (wall clock
 *                               and CPU time), their median and their sum; medians (ms) of 5
 *                               adds and 4 removes
 *   services.manifests.parse.10k   a `kubectl get svc,endpointslices -A -o yaml` List of
 *                               10,000 Services and their slices (kubectl-list.ts) written to a
 *                               temporary file, read and parsed (parseManifestText), and the
 *                               same as JSON: median ms of 3 each
 *   services.memory             bytes per Service (one port, no endpoint) and per endpoint,
 *                               from the heap and array buffers before and after 10,000 Services
 *                               with and without 10 endpoints each (after full collections)
 *
 * TCP Services in the apply rows, so no UDP conntrack flush walks the table (services.ts).
 * The machine is shared: read `perCpuSecond` and the CPU-time ratios first.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { VirtualClock } from '../src/core/clock.ts';
import { loadAll } from 'js-yaml';
import { parseConfig } from '../src/config/load.ts';
import { parseManifestText } from '../src/config/manifests.ts';
import { Dataplane } from '../src/dataplane/dataplane.ts';
import type { ServiceSpec } from '../src/tables/service-spec.ts';
import { cpuRatio, r2, row } from './cpu-time.ts';
import { BATCH, BENCH_CONFIG, ROUTED_BYTES, forwarding, podMac } from './dataplane-setup.ts';
import { kubectlList } from './kubectl-list.ts';
import { type BenchResult, measure, toResult } from './harness.ts';
import { GATEWAY_MAC, POD1, UP_MAC, UP_PORT, UPSTREAM_MAC, makeDataplane, send, udpFrame } from './nat.bench.ts';

const VIP = 0x0a60000a; // 10.96.0.10
const REMOTE = 0x0af40200; // 10.244.2.0: pods of another node, behind the uplink's default route
const SERVICES = `nat: { clusterCIDR: 10.244.0.0/16 }
services:
  - name: web
    clusterIP: 10.96.0.10
    ports: [{ protocol: UDP, port: 80, targetPort: 8080 }]
    endpoints: [{ ip: 10.244.2.2, nodeName: node2 }, { ip: 10.244.2.3, nodeName: node2 }, { ip: 10.244.2.4, nodeName: node2 }]
`;
/** What DNAT rewrites besides routing: the destination address and port, the UDP checksum. */
const DNAT_BYTES = [...ROUTED_BYTES, 30, 31, 32, 33, 36, 37, 40, 41];

let sink = 0;

function clusterIpFlows(size: number): { fn: (n: number) => void; entries: number } {
  const b = makeDataplane(SERVICES);
  const flows: Buffer[] = [];
  for (let i = 0; i < BATCH; i++) {
    const f = udpFrame(GATEWAY_MAC, podMac(1), POD1, VIP, 40000 + i, 80, size);
    flows.push(f);
    const before = b.sinks[UP_PORT].frames;
    send(b, 0, f);
    if (b.sinks[UP_PORT].frames !== before + 1) throw new Error('clusterip: the first packet did not leave');
    // The endpoint it went to answers once: ESTABLISHED both ways.
    const ct = b.dp.ctx.conntrack!;
    const id = ct.lookup(17, POD1 | 0, VIP | 0, 40000 + i, 80) >> 1;
    const ep = ct.srcOf((id << 1) | 1);
    if ((ep & 0xffffff00) !== (REMOTE | 0)) throw new Error('clusterip: not translated to an endpoint');
    send(b, UP_PORT, udpFrame(UP_MAC, UPSTREAM_MAC, ep >>> 0, POD1, 8080, 40000 + i, size));
  }
  const entries = b.dp.ctx.conntrack!.count;
  if (entries !== BATCH) throw new Error(`clusterip: ${entries} entries, expected ${BATCH}`);
  return { fn: forwarding(b, flows, 0, UP_PORT, DNAT_BYTES), entries };
}

function service(i: number, endpoints: number): ServiceSpec {
  return {
    name: `s${i}`,
    namespace: 'bench',
    type: 'ClusterIP',
    clusterIP: `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
    externalIPs: [],
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800,
    externalTrafficPolicy: 'Cluster',
    internalTrafficPolicy: 'Cluster',
    ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }],
    endpoints: Array.from({ length: endpoints }, (_, k) => ({ ip: `10.${128 + (i >> 16)}.${(i >> 8) & 255}.${(i & 255) ^ k}`, ready: true, serving: true, terminating: false, nodeName: `n${k}` })),
  };
}

function servicesDataplane(): Dataplane {
  const clock = new VirtualClock();
  clock.set(1_700_000_000_000_000);
  return new Dataplane(parseConfig(BENCH_CONFIG + 'nat: { clusterCIDR: 10.244.0.0/16 }\n', 'bench'), { clock, poolSize: 1024 });
}

function gc(): void {
  setFlagsFromString('--expose-gc');
  const collect = runInNewContext('gc') as () => void;
  collect();
  collect();
}

function memoryNow(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Bytes held by `n` Services of `endpoints` endpoints, applied to a fresh dataplane. */
function bytesFor(n: number, endpoints: number): number {
  const list = Array.from({ length: n }, (_, i) => service(i, endpoints));
  const dp = servicesDataplane();
  const before = memoryNow();
  dp.applyServices(list);
  const after = memoryNow();
  sink ^= dp.conntrackHooks!.services.table.endpointCount;
  // The specs themselves are the caller's (config or manifests): measured apart and taken off.
  return after - before;
}

/**
 * Reading a kubectl List of `n` Services and their slices from a file, as YAML and as JSON
 * (`kubectl -o json`): read and parse (parseManifestText), median of 3 each.
 */
function manifestParse(n: number): BenchResult {
  const dir = mkdtempSync(join(tmpdir(), 'nodeplane-bench-manifests-'));
  try {
    const yamlText = kubectlList(n);
    const yamlFile = join(dir, 'cluster.yaml');
    const jsonFile = join(dir, 'cluster.json');
    writeFileSync(yamlFile, yamlText);
    writeFileSync(jsonFile, JSON.stringify(loadAll(yamlText)[0], null, 4));
    const time = (file: string): number => {
      const runs: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        const f = parseManifestText(readFileSync(file, 'utf8'), file);
        runs.push(performance.now() - t0);
        if (f.services.length !== n || f.slices.length !== n) throw new Error(`manifests: ${f.services.length} Services and ${f.slices.length} slices read, expected ${n}`);
      }
      return Math.round(runs.sort((a, b) => a - b)[1]);
    };
    return {
      bench: 'services.manifests.parse.10k',
      yamlMs: time(yamlFile),
      jsonMs: time(jsonFile),
      yamlMB: r2(statSync(yamlFile).size / 1e6),
      jsonMB: r2(statSync(jsonFile).size / 1e6),
      services: n,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchServices(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const size = 64;
  const base = makeDataplane('');
  const baseFlows: Buffer[] = [];
  for (let i = 0; i < BATCH; i++) baseFlows.push(udpFrame(GATEWAY_MAC, podMac(1), POD1, 0x5db80005, 40000 + i, 443, size));
  const baseFn = forwarding(base, baseFlows, 0, UP_PORT, ROUTED_BYTES);
  baseFn(2_000_000);
  const l3 = row(`nat.clusterip.l3-forward.${size}B`, baseFn, { bytes: size, batch: BATCH });
  results.push(l3);
  const { fn, entries } = clusterIpFlows(size);
  const c = row(`nat.clusterip.${size}B`, fn, { bytes: size, batch: BATCH, flows: entries, endpoints: 3 });
  results.push(c);
  results.push({
    bench: `nat.clusterip.${size}B.ratio`,
    wallClock: r2((c.pps as number) / (l3.pps as number)),
    cpuTime: r2((c.perCpuSecond as number) / (l3.perCpuSecond as number)),
    cpuTimeAlternating: r2(cpuRatio(fn, baseFn, 7, 512_000)),
  });

  // Applying at 10,000 Services x 10 endpoints.
  const N = 10_000;
  const all = Array.from({ length: N }, (_, i) => service(i, 10));
  const withExtra = [...all, service(N, 10)];
  const dp = servicesDataplane();
  dp.applyServices(all);
  const svc = dp.conntrackHooks!.services;
  let flip = false;
  // One op: add the extra Service, or take it away again (alternating: the table keeps its size).
  const applyOne = (n: number): void => {
    for (let i = 0; i < n; i++) {
      flip = !flip;
      sink ^= dp.applyServices(flip ? withExtra : all).endpoints;
    }
  };
  const addRemove = toResult(measure('services.apply.add-or-remove-one.10k', applyOne, { alloc: false }), { services: N, endpointsPerService: 10 });
  // CPU time per apply (process.cpuUsage over 400 applies): what a loaded machine's wall clock hides.
  const c0 = process.cpuUsage();
  applyOne(400);
  const c1 = process.cpuUsage(c0);
  addRemove.cpuMsPerOp = r2((c1.user + c1.system) / 1000 / 400);
  results.push(addRemove);
  const table = svc.table;
  const extra = service(N + 1, 10);
  const upsertOne = (n: number): void => {
    for (let i = 0; i < n; i++) {
      flip = !flip;
      if (flip) sink ^= table.upsert(extra).sps.length;
      else sink ^= table.remove(extra.namespace, extra.name) ? 1 : 0;
    }
  };
  results.push(toResult(measure('services.table.upsert-or-remove-one.10k', upsertOne, { alloc: false }), { services: N, endpointsPerService: 10 }));
  if (table.serviceCount < N) throw new Error('services: the table lost Services');

  // A UDP Service with endpoints applied while 1,000,000 entries are tracked: the conntrack
  // walk of kube-proxy's UDP cleanup (services.ts), timed once per apply.
  const big = new Dataplane(parseConfig(BENCH_CONFIG + 'nat: { clusterCIDR: 10.244.0.0/16 }\nconntrack: { max: 1000000 }\n', 'bench'), {
    clock: new VirtualClock(),
    poolSize: 1024,
  });
  const ct = big.ctx.conntrack!;
  for (let i = 0; ct.count < 1_000_000; i++) ct.create(17, 0x0af40000 + (i >> 12), 0x5db80000 + (i & 4095), 1024 + (i & 0x3fff), 53);
  const udp = (i: number): ServiceSpec => ({ ...service(i, 10), ports: [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: 53 }] });
  // Each apply and each run() after it until the walk is done is one pause of the packet
  // thread: the longest of them, and their sum (the whole walk).
  const median = (xs: number[]): number => r2([...xs].sort((a, b) => a - b)[xs.length >> 1]);
  // Each pause also in CPU time (process.cpuUsage), which a shared machine's preemption does not inflate.
  const walks: { longest: number; longestCpu: number; typical: number; total: number; steps: number }[] = [];
  const cpuMs = (c: NodeJS.CpuUsage): number => (c.user + c.system) / 1000;
  for (let i = 0; i < 9; i++) {
    const pauses: number[] = [];
    const cpu: number[] = [];
    const pause = (fn: () => void): void => {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      fn();
      pauses.push(performance.now() - t0);
      cpu.push(cpuMs(process.cpuUsage(c0)));
    };
    pause(() => big.applyServices(i % 2 === 0 ? [udp(1)] : []));
    while (big.hasBackgroundWork()) pause(() => big.run());
    walks.push({ longest: Math.max(...pauses), longestCpu: Math.max(...cpu), typical: median(pauses), total: pauses.reduce((a, b) => a + b), steps: pauses.length });
  }
  const adds = walks.filter((_, i) => i % 2 === 0);
  const removes = walks.filter((_, i) => i % 2 === 1);
  results.push({
    bench: 'services.apply.udp-flush-walk.1M',
    // Adding a UDP Service with endpoints walks the table (entries made while it had none go);
    // removing it walks it too (its endpoints' entries go).
    addLongestPauseMs: median(adds.map((w) => w.longest)),
    addLongestPauseCpuMs: median(adds.map((w) => w.longestCpu)),
    addMedianPauseMs: median(adds.map((w) => w.typical)),
    addWalkMs: median(adds.map((w) => w.total)),
    removeLongestPauseMs: median(removes.map((w) => w.longest)),
    removeLongestPauseCpuMs: median(removes.map((w) => w.longestCpu)),
    removeMedianPauseMs: median(removes.map((w) => w.typical)),
    removeWalkMs: median(removes.map((w) => w.total)),
    pausesPerWalk: walks[0].steps,
    entries: ct.count,
  });

  results.push(manifestParse(N));

  const bare = bytesFor(N, 0);
  const full = bytesFor(N, 10);
  results.push({
    bench: 'services.memory',
    bytesPerService: Math.round(bare / N),
    bytesPerEndpoint: Math.round((full - bare) / (N * 10)),
    services: N,
    endpointsPerService: 10,
  });
  if (sink === 0.5) console.log(sink);
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchServices()) process.stdout.write(`${JSON.stringify(r)}\n`);
}
