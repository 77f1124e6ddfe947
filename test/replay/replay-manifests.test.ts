/**
 * Replay of Services that come from Kubernetes manifests instead of the config's `services`:
 * kubectl-style Service and EndpointSlice objects in a file the config names, on the lab node
 * (captures/replay/lab.yaml). A pod's TCP connection to the ClusterIP reaches the endpoint at
 * the number its EndpointSlice gives the Service port's name (a named targetPort), and the
 * answer comes back from the Service address; a not-ready endpoint of another slice is never
 * chosen. Two slices that give the named port different numbers: each pod is reached at its
 * own number.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as F from '../helpers/frames.ts';
import { type FrameIn, runFrames } from './replay-helpers.ts';

const T0 = 1_700_000_000_000_000;
const GW = { mac: '0a:58:0a:f4:01:01', ip: '10.244.1.1' };
const A = { port: 'pa', mac: '0a:58:0a:f4:01:02', ip: '10.244.1.2' };
const B = { port: 'pb', mac: '0a:58:0a:f4:01:03', ip: '10.244.1.3' };
const C = { port: 'pc', mac: '0a:58:0a:f4:01:04', ip: '10.244.1.4' };

const dir = mkdtempSync(join(tmpdir(), 'nodeplane-replay-manifests-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MANIFEST = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: default, uid: 9d1c, resourceVersion: "77"}
  spec:
    clusterIP: 10.96.0.10
    clusterIPs: [10.96.0.10]
    ports: [{name: http, port: 80, protocol: TCP, targetPort: http-web}]
    type: ClusterIP
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: web-a, namespace: default, labels: {kubernetes.io/service-name: web}}
  addressType: IPv4
  ports: [{name: http, port: 8080, protocol: TCP}]
  endpoints: [{addresses: [${B.ip}], conditions: {ready: true}, nodeName: node1}]
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: web-b, namespace: default, labels: {kubernetes.io/service-name: web}}
  addressType: IPv4
  ports: [{name: http, port: 8080, protocol: TCP}]
  endpoints: [{addresses: [${C.ip}], conditions: {ready: false, serving: false}, nodeName: node1}]
`;

const arpAsk = (p: typeof A): FrameIn => ({
  port: p.port,
  tsUs: T0,
  frame: F.ethernet('ff:ff:ff:ff:ff:ff', p.mac, 0x0806, F.arp(1, p.mac, p.ip, '00:00:00:00:00:00', GW.ip)),
});

const tcp = (from: typeof A, dstMac: string, dst: string, tsUs: number, sport: number, dport: number, flags: number, seq: number, ack: number): FrameIn => ({
  port: from.port,
  tsUs,
  frame: F.ethernet(dstMac, from.mac, 0x0800, F.ipv4({ src: from.ip, dst, proto: 6 }, F.tcp(from.ip, dst, sport, dport, flags, seq, ack))),
});

describe('replay: Services from manifests', () => {
  it('translates a pod\'s connection to a ClusterIP to the ready endpoint at its named port, and back', () => {
    const file = join(dir, 'cluster.yaml');
    writeFileSync(file, MANIFEST);
    const t = (ms: number): number => T0 + 1000 + ms * 1000;
    const frames: FrameIn[] = [arpAsk(A), arpAsk(B), arpAsk(C)];
    for (let i = 0; i < 8; i++) {
      frames.push(tcp(A, GW.mac, '10.96.0.10', t(i * 10), 40000 + i, 80, F.TCP_SYN, 100, 0));
      frames.push(tcp(B, A.mac, A.ip, t(i * 10 + 5), 8080, 40000 + i, F.TCP_SYN | F.TCP_ACK, 900, 101));
    }
    const run = runFrames(`nat: { clusterCIDR: 10.244.0.0/16 }\nmanifests: [${file}]\n`, frames);
    const toB = run.out.pb!.filter((f) => f.tcp !== undefined);
    expect(toB.map((f) => [f.ip!.src, f.ip!.dst, f.tcp!.dport, f.tcp!.flags, f.tcp!.checksumOk])).toEqual(
      Array.from({ length: 8 }, () => [A.ip, B.ip, 8080, 'S', true]),
    );
    expect(run.out.pc!.filter((f) => f.tcp !== undefined)).toEqual([]);
    const toA = run.out.pa!.filter((f) => f.tcp !== undefined);
    expect(toA.map((f) => [f.ip!.src, f.tcp!.sport, f.tcp!.dport, f.tcp!.flags, f.tcp!.checksumOk])).toEqual(
      Array.from({ length: 8 }, (_, i) => ['10.96.0.10', 80, 40000 + i, 'SA', true]),
    );
  });

  it('reaches each pod at the number its own slice gives the named port, and brings every answer back from the ClusterIP', () => {
    const file = join(dir, 'two-numbers.yaml');
    // One Service, targetPort named; slice web-a says 8080 for B, slice web-b 9090 for C.
    const twoNumbers = MANIFEST.replace(
      `  ports: [{name: http, port: 8080, protocol: TCP}]\n  endpoints: [{addresses: [${C.ip}], conditions: {ready: false, serving: false}`,
      `  ports: [{name: http, port: 9090, protocol: TCP}]\n  endpoints: [{addresses: [${C.ip}], conditions: {ready: true}`,
    );
    expect(twoNumbers).not.toBe(MANIFEST);
    writeFileSync(file, twoNumbers);
    const t = (ms: number): number => T0 + 1000 + ms * 1000;
    const intro: FrameIn[] = [arpAsk(A), arpAsk(B), arpAsk(C)];
    const N = 16;
    const syns = Array.from({ length: N }, (_, i) => tcp(A, GW.mac, '10.96.0.10', t(i * 10), 40000 + i, 80, F.TCP_SYN, 100, 0));
    const config = `nat: { clusterCIDR: 10.244.0.0/16 }\nmanifests: [${file}]\n`;
    // The endpoint of each flow is drawn at random (seeded): a first run says where each SYN
    // went, a second one, the same draws, adds the answer of the pod that got it.
    const first = runFrames(config, [...intro, ...syns]);
    const reached = new Map<number, { pod: typeof B; port: number }>();
    for (const pod of [B, C]) {
      for (const f of first.out[pod.port]!.filter((x) => x.tcp !== undefined)) {
        expect([f.ip!.src, f.ip!.dst, f.tcp!.flags, f.tcp!.checksumOk]).toEqual([A.ip, pod.ip, 'S', true]);
        reached.set(f.tcp!.sport!, { pod, port: f.tcp!.dport! });
      }
    }
    expect(reached.size).toBe(N);
    // B only ever at 8080, C only at 9090, and both used.
    const seen = new Set([...reached.values()].map((r) => `${r.pod.ip}:${r.port}`));
    expect([...seen].sort()).toEqual([`${B.ip}:8080`, `${C.ip}:9090`]);

    const answers = [...reached].map(([sport, r], k) => tcp(r.pod, A.mac, A.ip, t(N * 10 + k), r.port, sport, F.TCP_SYN | F.TCP_ACK, 900, 101));
    const second = runFrames(config, [...intro, ...syns, ...answers]);
    for (const pod of [B, C]) {
      const got = second.out[pod.port]!.filter((x) => x.tcp !== undefined).map((f) => `${f.tcp!.sport}>${f.ip!.dst}:${f.tcp!.dport}`);
      expect(got).toEqual([...reached].filter(([, r]) => r.pod === pod).map(([sport, r]) => `${sport}>${pod.ip}:${r.port}`));
    }
    const toA = second.out.pa!.filter((f) => f.tcp !== undefined);
    expect(toA.map((f) => [f.ip!.src, f.tcp!.sport, f.tcp!.flags, f.tcp!.checksumOk])).toEqual(Array.from({ length: N }, () => ['10.96.0.10', 80, 'SA', true]));
    expect(toA.map((f) => f.tcp!.dport)).toEqual([...reached.keys()]);
  });
});
