/**
 * The nodes of three paths whose behaviour end-to-end tests check and whose cost
 * `npm run bench -- e2e-paths` measures: masquerade (a pod on cni0 and a host outside the
 * cluster behind the node's L3 port), Services (pods on two bridges, the Service network and
 * a LoadBalancer IP routed to the node from outside) and a node with 110 TAP ports on one
 * bridge (kubelet's default maxPods). One definition, so that the tests and the bench run the
 * same node.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, type PodSpec } from './lab.ts';

/** Pods on cni0 (10.244.1.0/24) and cni1 (10.244.2.0/24). */
export const PA = '10.244.1.2';
export const PB = '10.244.1.3';
export const PC = '10.244.2.2';
/** The node's L3 port and the host outside the cluster behind it. */
export const NODE_UP = '192.168.50.11';
export const EXT = '192.168.50.1';

// ---------------------------------------------------------------------------------------
// Masquerade

/** A pod on cni0 and the L3 port; with `nat`, traffic from the pods leaves as NODE_UP's. */
export function masqueradeConfig(nat: boolean): string {
  return `node:
  name: masq-node
bridges:
  - { name: cni0, address: 10.244.1.1/24, mac: "0a:58:0a:f4:01:01" }
ports:
  - { name: pa, type: tap, bridge: cni0 }
  - { name: up, type: tap, address: ${NODE_UP}/24, mac: "02:00:00:00:50:11" }
${nat ? 'nat:\n  clusterCIDR: 10.244.0.0/16\n' : ''}`;
}

export const MASQUERADE_PODS: PodSpec[] = [
  { port: 'pa', address: `${PA}/24`, gateway: '10.244.1.1' },
  // Routed, the external host needs a way back to the pods; masqueraded, it answers the node.
  { port: 'up', address: `${EXT}/24`, routes: [{ dst: '10.244.0.0/16', via: NODE_UP }] },
];

// ---------------------------------------------------------------------------------------
// Services

export const LB_IP = '203.0.113.10';
/** ClusterIP of `web` (HTTP on pb and pc) and of `perf` (iperf3 on pc alone). */
export const SVC_WEB = '10.96.0.10';
export const SVC_PERF = '10.96.0.13';

export const SERVICES_PODS: PodSpec[] = [
  { port: 'pa', address: `${PA}/24`, gateway: '10.244.1.1' },
  { port: 'pb', address: `${PB}/24`, gateway: '10.244.1.1' },
  { port: 'pc', address: `${PC}/24`, gateway: '10.244.2.1' },
  {
    port: 'up',
    address: `${EXT}/24`,
    routes: [
      { dst: '10.96.0.0/12', via: NODE_UP },
      { dst: `${LB_IP}/32`, via: NODE_UP },
    ],
  },
];

/** The Services node with masquerade on; `extra` is appended (services, manifests). */
export function servicesTopology(extra: string): string {
  return `node:
  name: svc-node
bridges:
  - { name: cni0, address: 10.244.1.1/24, mac: "0a:58:0a:f4:01:01" }
  - { name: cni1, address: 10.244.2.1/24, mac: "0a:58:0a:f4:02:01" }
ports:
  - { name: pa, type: tap, bridge: cni0 }
  - { name: pb, type: tap, bridge: cni0 }
  - { name: pc, type: tap, bridge: cni1 }
  - { name: up, type: tap, address: ${NODE_UP}/24, mac: "02:00:00:00:50:11" }
nat:
  clusterCIDR: 10.244.0.0/16
${extra}`;
}

const both = `
    endpoints:
      - { ip: ${PB} }
      - { ip: ${PC} }`;

/** A ClusterIP, a NodePort and a LoadBalancer on pb and pc port 8080; `perf` on pc port 5201. */
export const SERVICES_CONFIG = servicesTopology(`services:
  - name: web
    clusterIP: ${SVC_WEB}
    ports: [{ name: http, port: 80, targetPort: 8080 }]${both}
  - name: np
    type: NodePort
    clusterIP: 10.96.0.11
    ports: [{ name: http, port: 80, targetPort: 8080, nodePort: 30080 }]${both}
  - name: lb
    type: LoadBalancer
    clusterIP: 10.96.0.12
    loadBalancerIP: ${LB_IP}
    ports: [{ name: http, port: 80, targetPort: 8080, nodePort: 30081 }]${both}
  - name: perf
    clusterIP: ${SVC_PERF}
    ports: [{ name: iperf, port: 5201, targetPort: 5201 }]
    endpoints:
      - { ip: ${PC} }
`);

// ---------------------------------------------------------------------------------------
// 110 ports on one bridge

export const PODS110_GATEWAY = '10.244.1.1';

/** The address of the pod on port p<port>. */
export const pods110Address = (port: number): string => `10.244.1.${port + 2}`;

/** A TAP mode of the 110-port node: offload (the default), `--no-offload`, a capture on. */
export interface Pods110Mode {
  name: 'offload' | 'no offload' | 'capture on';
  runArgs: string[];
  capture: boolean;
}

export const PODS110_MODES: readonly Pods110Mode[] = [
  { name: 'offload', runArgs: [], capture: false },
  { name: 'no offload', runArgs: ['--no-offload'], capture: false },
  { name: 'capture on', runArgs: [], capture: true },
];

/** `ports` TAP ports p0.. on cni0; a capture at snaplen 128 keeps iperf3's capture files small. */
export function pods110Config(ports: number, capture: boolean): string {
  const lines = ['node: { name: pods110 }', 'bridges:', `  - { name: cni0, address: ${PODS110_GATEWAY}/24, mac: 0a:58:0a:f4:01:01 }`, 'ports:'];
  for (let i = 0; i < ports; i++) lines.push(`  - { name: p${i}, bridge: cni0 }`);
  if (capture) lines.push('capture: { snaplen: 128 }');
  return lines.join('\n') + '\n';
}

export interface Pods110Lab {
  lab: Lab;
  dir: string;
}

/** A node of `ports` ports in `mode` with pods on `podPorts`; the other TAPs stay in the node. */
export async function startPods110Lab(ports: number, podPorts: number[], mode: Pods110Mode): Promise<Pods110Lab> {
  // Captures go to memory where there is a tmpfs: disk latency on a shared machine would
  // make the capture runs' figures noise.
  const base = mode.capture && existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = mkdtempSync(join(base, 'nodeplane-pods110-'));
  const pods = podPorts.map((p): PodSpec => ({ port: `p${p}`, address: `${pods110Address(p)}/24`, gateway: PODS110_GATEWAY }));
  try {
    const lab = await Lab.start({ config: pods110Config(ports, mode.capture), pods, dir, capture: mode.capture, runArgs: mode.runArgs });
    return { lab, dir };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Lab.shutdown() and the lab's directory removed. */
export async function stopPods110Lab(l: Pods110Lab | undefined): Promise<void> {
  if (!l) return;
  await l.lab.shutdown();
  rmSync(l.dir, { recursive: true, force: true });
}
