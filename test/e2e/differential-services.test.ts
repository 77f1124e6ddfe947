/**
 * Differential end to end for Services: the node of differential.test.ts built twice — by
 * nodeplane with `services:` and `nat:`, and by the Linux kernel with kube-proxy's iptables
 * rules for the same Services (kube-proxy-rules.ts), br_netfilter and hairpin mode on the
 * pods' bridge ports — and the same probes run against both. Every probe states what Linux
 * does (so both twins wrong alike still fails) and then expects nodeplane to match it.
 *
 * Topology (kernel-twin.ts): pa 10.244.1.2 and pb 10.244.1.3 on cni0, pc 10.244.2.2 on cni1,
 * the uplink 192.168.50.11/24 with the external host 192.168.50.1 behind it. The node's
 * default route points at the external host, which routes the Service network, the
 * LoadBalancer IP and the external IP to the node. Every pod serves TCP 8080 and UDP 5353,
 * answering "<pod> <the source it saw>" (the probes are in service-probes.ts).
 *
 * Endpoint choice is random in both: probes either use a Service with one endpoint and
 * compare exactly, or compare the set of endpoints reached.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';
import { NODE_NAME, UPLINK, brNetfilterProblem, startCapture, startKernelTwin, startNodeplaneTwin, type Twin, type TwinOptions } from './kernel-twin.ts';
import type { KubeService } from './kube-proxy-rules.ts';
import { SYN_FIN, TCP_PORT, UDP_PAIR, UDP_PORT, UDP_UNTIL_ANSWERED, ask, flows, startPodServers } from './service-probes.ts';
import { checkedFrames, lineReader, txChecksum } from './twin-probes.ts';

const problem = missingPrerequisite(['python3', 'tshark', 'tcpdump', 'iptables', 'iptables-restore', 'conntrack']) ?? brNetfilterProblem();
const skip = skipUnlessReady('differential Services tests', problem);

const PA = '10.244.1.2';
const PB = '10.244.1.3';
const PC = '10.244.2.2';
const GW0 = '10.244.1.1';
const GW1 = '10.244.2.1';
const NODE_UP = UPLINK.address.split('/')[0];
const EXT = '192.168.50.1';
const LB_IP = '203.0.113.10';
const EXTERNAL_IP = '198.51.100.20';

const http = (extra: Partial<KubeService['ports'][number]> = {}): KubeService['ports'][number] => ({ name: 'http', protocol: 'TCP', port: 80, targetPort: TCP_PORT, ...extra });
const dns = (extra: Partial<KubeService['ports'][number]> = {}): KubeService['ports'][number] => ({ name: 'dns', protocol: 'UDP', port: 53, targetPort: UDP_PORT, ...extra });
const ep = (ip: string, nodeName = NODE_NAME): KubeService['endpoints'][number] => ({ ip, ready: true, nodeName });

function service(name: string, clusterIP: string, fields: Partial<KubeService>): KubeService {
  return {
    name,
    namespace: 'default',
    type: 'ClusterIP',
    clusterIP,
    externalIPs: [],
    sessionAffinity: 'None',
    sessionAffinityTimeoutSeconds: 10800,
    externalTrafficPolicy: 'Cluster',
    ports: [http()],
    endpoints: [],
    ...fields,
  };
}

/** The Services both twins get. */
const SERVICES: KubeService[] = [
  service('web', '10.96.0.10', { endpoints: [ep(PB), ep(PC)] }),
  service('one', '10.96.0.11', { ports: [http(), dns()], endpoints: [ep(PC)] }),
  service('np', '10.96.0.12', { type: 'NodePort', ports: [http({ nodePort: 30080 })], endpoints: [ep(PC)] }),
  service('npl', '10.96.0.13', { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [http({ nodePort: 30081 })], endpoints: [ep(PC)] }),
  // Its only endpoint is on another node: Local policy has nothing to send external clients to.
  service('npr', '10.96.0.14', { type: 'NodePort', externalTrafficPolicy: 'Local', ports: [http({ nodePort: 30082 })], endpoints: [ep('10.244.3.5', 'other-node')] }),
  service('lb', '10.96.0.15', { type: 'LoadBalancer', loadBalancerIP: LB_IP, externalIPs: [EXTERNAL_IP], ports: [http({ nodePort: 30083 })], endpoints: [ep(PC)] }),
  service('hair', '10.96.0.16', { endpoints: [ep(PA)] }),
  service('empty', '10.96.0.17', { type: 'NodePort', ports: [http({ nodePort: 30084 }), dns()] }),
  service('sticky', '10.96.0.18', { sessionAffinity: 'ClientIP', sessionAffinityTimeoutSeconds: 60, endpoints: [ep(PB), ep(PC)] }),
  service('near', '10.96.0.19', { ports: [dns()], endpoints: [ep(PB)] }),
  service('pair', '10.96.0.20', { ports: [dns()], endpoints: [ep(PB), ep(PC)] }),
  service('unready', '10.96.0.21', { endpoints: [{ ...ep(PB), ready: false }, ep(PC)] }),
  // Changed by the last probes while traffic runs.
  service('late', '10.96.0.22', { ports: [dns()] }),
  service('shrink', '10.96.0.23', { ports: [dns()], endpoints: [ep(PB), ep(PC)] }),
];

/** SERVICES with one Service's endpoints replaced. */
function withEndpoints(name: string, endpoints: KubeService['endpoints']): KubeService[] {
  return SERVICES.map((s) => (s.name === name ? { ...s, endpoints } : s));
}

const OPTIONS: TwinOptions = {
  services: SERVICES,
  routes: [{ dst: '0.0.0.0/0', via: EXT }],
  externalRoutes: [
    { dst: '10.96.0.0/12', via: NODE_UP },
    { dst: `${LB_IP}/32`, via: NODE_UP },
    { dst: `${EXTERNAL_IP}/32`, via: NODE_UP },
  ],
};

/** What a probe gives for a twin that could not run it. */
type Failed = { failed: string };

describe.skipIf(skip)('differential Services: kube-proxy on Linux and nodeplane', () => {
  let nodeplane: Twin | undefined;
  let nodeplaneError = '';
  let kernel: Twin | undefined;
  let dir: string | undefined;

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-diffsvc-'));
    kernel = startKernelTwin(OPTIONS);
    await startPodServers(kernel);
    // A nodeplane that refuses the config fails every comparison below with its message,
    // while the kernel's side of each probe is still checked.
    try {
      nodeplane = await startNodeplaneTwin(dir, OPTIONS);
      await startPodServers(nodeplane);
    } catch (err) {
      nodeplaneError = (err as Error).message;
    }
  }, 90_000);

  afterAll(() => {
    nodeplane?.destroy();
    kernel?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs a probe on both twins at once; nodeplane's failure becomes `{ failed }`, the kernel's throws. */
  async function both<T>(probe: (t: Twin) => Promise<T>): Promise<{ np: T | Failed; k: T }> {
    const [np, k] = await Promise.allSettled([nodeplane ? probe(nodeplane) : Promise.reject(new Error(`the nodeplane twin did not start: ${nodeplaneError}`)), probe(kernel!)]);
    if (k.status === 'rejected') throw k.reason;
    return { np: np.status === 'fulfilled' ? np.value : { failed: String((np.reason as Error)?.message ?? np.reason) }, k: k.value };
  }

  it('nodeplane runs the same Services (config accepted, twin up)', () => {
    expect(nodeplaneError).toBe('');
  });

  it('1. ClusterIP TCP from a pod to a one-endpoint Service: the endpoint sees the pod, port kept; the pod talks to the ClusterIP', async () => {
    const { np, k } = await both((t) => ask(t, 'pa', 'tcp', '10.96.0.11', 80, { sport: 41001 }));
    expect(k).toEqual([`pc saw ${PA}:41001, reply from 10.96.0.11:80`]);
    expect(np).toEqual(k);
  });

  it('2. ClusterIP UDP: the endpoint sees the pod; the reply comes from the ClusterIP and Service port', async () => {
    const { np, k } = await both((t) => ask(t, 'pa', 'udp', '10.96.0.11', 53, { sport: 41002 }));
    expect(k).toEqual([`pc saw ${PA}:41002, reply from 10.96.0.11:53`]);
    expect(np).toEqual(k);
  });

  it('3. a ClusterIP with two endpoints: 20 connections from pa reach both, each sees pa', async () => {
    const { np, k } = await both(async (t) => [...new Set(await ask(t, 'pa', 'tcp', '10.96.0.10', 80, { count: 20 }))].sort());
    expect(k).toEqual([`pb saw ${PA}:same port, reply from 10.96.0.10:80`, `pc saw ${PA}:same port, reply from 10.96.0.10:80`]);
    expect(np).toEqual(k);
  });

  it('4. sessionAffinity ClientIP: 10 connections from pa all reach one endpoint', async () => {
    const { np, k } = await both(async (t) => new Set((await ask(t, 'pa', 'tcp', '10.96.0.18', 80, { count: 10 })).map((l) => l.split(' ')[0])).size);
    expect(k).toBe(1);
    expect(np).toEqual(k);
  });

  it("5. NodePort from the external host, Cluster policy: the endpoint sees the node's address on its bridge", async () => {
    const { np, k } = await both((t) => ask(t, 'ext', 'tcp', NODE_UP, 30080, { sport: 41005, masqueraded: true }));
    expect(k).toEqual([`pc saw ${GW1}:masquerade port, reply from ${NODE_UP}:30080`]);
    expect(np).toEqual(k);
  });

  it("6. NodePort, Local policy with a local endpoint: the endpoint sees the client's own address and port", async () => {
    const { np, k } = await both((t) => ask(t, 'ext', 'tcp', NODE_UP, 30081, { sport: 41006 }));
    expect(k).toEqual([`pc saw ${EXT}:41006, reply from ${NODE_UP}:30081`]);
    expect(np).toEqual(k);
  });

  it('7. NodePort, Local policy without a local endpoint: dropped (no answer at all)', async () => {
    const { np, k } = await both((t) => ask(t, 'ext', 'tcp', NODE_UP, 30082, { sport: 41007 }));
    expect(k).toEqual(['timeout']);
    expect(np).toEqual(k);
  });

  it('8. the LoadBalancer IP and an external IP from the external host: reached, masqueraded (Cluster policy)', async () => {
    const { np, k } = await both(async (t) => [...(await ask(t, 'ext', 'tcp', LB_IP, 80, { sport: 41008, masqueraded: true })), ...(await ask(t, 'ext', 'tcp', EXTERNAL_IP, 80, { sport: 41009, masqueraded: true }))]);
    expect(k).toEqual([`pc saw ${GW1}:masquerade port, reply from ${LB_IP}:80`, `pc saw ${GW1}:masquerade port, reply from ${EXTERNAL_IP}:80`]);
    expect(np).toEqual(k);
  });

  it("9. a ClusterIP from outside the cluster CIDR (the external host, routed to the node) is masqueraded", async () => {
    const { np, k } = await both((t) => ask(t, 'ext', 'tcp', '10.96.0.11', 80, { sport: 41010, masqueraded: true }));
    expect(k).toEqual([`pc saw ${GW1}:masquerade port, reply from 10.96.0.11:80`]);
    expect(np).toEqual(k);
  });

  it('10. hairpin: pa through a Service backed only by itself sees the bridge address as the source', async () => {
    const { np, k } = await both((t) => ask(t, 'pa', 'tcp', '10.96.0.16', 80, { sport: 41011, masqueraded: true }));
    expect(k).toEqual([`pa saw ${GW0}:masquerade port, reply from 10.96.0.16:80`]);
    expect(np).toEqual(k);
  });

  it('11. UDP to a ClusterIP whose endpoint is on the same bridge: the reply comes back from the Service address', async () => {
    const { np, k } = await both((t) => ask(t, 'pa', 'udp', '10.96.0.19', 53, { sport: 41012 }));
    expect(k).toEqual([`pb saw ${PA}:41012, reply from 10.96.0.19:53`]);
    expect(np).toEqual(k);
  });

  it('12. no endpoints: TCP and UDP to the ClusterIP are refused with port unreachable from the gateway, quoting the ClusterIP; every checksum right', async () => {
    const { np, k } = await both(async (t) => {
      // pa computes its own UDP checksums here, so the quoted one is one the twin had to keep.
      await txChecksum(t.pod('pa'), false);
      const cap = await startCapture(t.pod('pa'), 'icmp');
      let result: string[] = [];
      let pcap: Buffer;
      try {
        result = [...(await ask(t, 'pa', 'tcp', '10.96.0.17', 80, { sport: 41013 })), ...(await ask(t, 'pa', 'udp', '10.96.0.17', 53, { sport: 41014, connected: true }))];
        await new Promise((r) => setTimeout(r, 300));
      } finally {
        pcap = await cap.stop();
        await txChecksum(t.pod('pa'), true);
      }
      return { result, icmp: await checkedFrames(pcap) };
    });
    const unreachable = (proto: 'tcp' | 'udp', sport: number, dport: number): Record<string, string> => ({
      'ip.src': `${GW0},${PA}`,
      'ip.dst': `${PA},10.96.0.17`,
      // The quote is the packet as it was refused: forwarded, its TTL already decremented.
      'ip.ttl': '64,63',
      'ip.checksum.status': '1,1',
      'icmp.type': '3',
      'icmp.code': '3',
      'icmp.checksum.status': '1',
      [`${proto}.srcport`]: String(sport),
      [`${proto}.dstport`]: String(dport),
      ...(proto === 'udp' ? { 'udp.checksum.status': '1' } : {}),
    });
    expect(k.result).toEqual(['ECONNREFUSED', 'ECONNREFUSED']);
    expect(k.icmp).toEqual([unreachable('tcp', 41013, 80), unreachable('udp', 41014, 53)]);
    expect(np).toEqual(k);
  });

  it("13. no endpoints: a NodePort from the external host is refused with port unreachable from the node's uplink address", async () => {
    const { np, k } = await both(async (t) => {
      const cap = await startCapture(t.external, 'icmp');
      let result: string[] = [];
      let pcap: Buffer;
      try {
        result = await ask(t, 'ext', 'tcp', NODE_UP, 30084, { sport: 41015 });
        await new Promise((r) => setTimeout(r, 300));
      } finally {
        pcap = await cap.stop();
      }
      return { result, icmp: (await checkedFrames(pcap)).map((f) => `${f['ip.src']} → ${f['ip.dst']} type ${f['icmp.type']} code ${f['icmp.code']} quoting ${f['tcp.srcport']}→${f['tcp.dstport']}`) };
    });
    expect(k).toEqual({ result: ['ECONNREFUSED'], icmp: [`${NODE_UP},${EXT} → ${EXT},${NODE_UP} type 3 code 3 quoting 41015→30084`] });
    expect(np).toEqual(k);
  });

  it('14. forwarded INVALID packets (TCP SYN+FIN) are dropped, bridged and routed; a normal connection passes', async () => {
    const { np, k } = await both(async (t) => {
      const caps = await Promise.all([startCapture(t.pod('pb'), 'tcp port 8080'), startCapture(t.pod('pc'), 'tcp port 8080')]);
      let pcaps: Buffer[];
      try {
        await t.pod('pa').run('python3', ['-c', SYN_FIN, PA, PB, String(TCP_PORT), '41016'], { timeoutMs: 10_000, check: true });
        await t.pod('pa').run('python3', ['-c', SYN_FIN, PA, PC, String(TCP_PORT), '41017'], { timeoutMs: 10_000, check: true });
        await new Promise((r) => setTimeout(r, 300));
      } finally {
        pcaps = await Promise.all(caps.map((c) => c.stop()));
      }
      const [pb, pc] = await Promise.all(pcaps.map(checkedFrames));
      return { pb: pb.length, pc: pc.length, control: await ask(t, 'pa', 'tcp', PC, TCP_PORT, { sport: 41018 }) };
    });
    expect(k).toEqual({ pb: 0, pc: 0, control: [`pc saw ${PA}:41018, reply from ${PC}:${TCP_PORT}`] });
    expect(np).toEqual(k);
  });

  it('15. conntrack after ClusterIP flows: the original tuple to the ClusterIP, the reply from the endpoint (TCP closed, UDP replied)', async () => {
    const { np, k } = await both(async (t) => {
      await ask(t, 'pa', 'tcp', '10.96.0.11', 80, { sport: 41020 });
      await ask(t, 'pa', 'udp', '10.96.0.11', 53, { sport: 41021 });
      await new Promise((r) => setTimeout(r, 300));
      return flows(t, (r) => r.orig.sport === 41020 || r.orig.sport === 41021);
    });
    expect(k).toEqual([
      { proto: 'tcp', state: 'TIME_WAIT', orig: { src: PA, dst: '10.96.0.11', sport: 41020, dport: 80 }, reply: { src: PC, dst: PA, sport: TCP_PORT, dport: 41020 }, assured: true, unreplied: false, mark: 0 },
      { proto: 'udp', state: '', orig: { src: PA, dst: '10.96.0.11', sport: 41021, dport: 53 }, reply: { src: PC, dst: PA, sport: UDP_PORT, dport: 41021 }, assured: false, unreplied: false, mark: 0 },
    ]);
    expect(np).toEqual(k);
  });

  it('16. conntrack after a masqueraded NodePort flow: the reply tuple names the endpoint and the bridge address', async () => {
    const { np, k } = await both(async (t) => {
      await ask(t, 'ext', 'tcp', NODE_UP, 30080, { sport: 41022 });
      await new Promise((r) => setTimeout(r, 300));
      return (await flows(t, (r) => r.orig.sport === 41022)).map((r) => ({ ...r, reply: { ...r.reply, dport: 'masquerade port' } }));
    });
    expect(k).toEqual([
      { proto: 'tcp', state: 'TIME_WAIT', orig: { src: EXT, dst: NODE_UP, sport: 41022, dport: 30080 }, reply: { src: PC, dst: GW1, sport: TCP_PORT, dport: 'masquerade port' }, assured: true, unreplied: false, mark: 0 },
    ]);
    expect(np).toEqual(k);
  });

  it('17. two datagrams of a new UDP flow sent back to back (as glibc sends A and AAAA): both answered, by one endpoint', async () => {
    const { np, k } = await both(async (t) => {
      const r = await t.pod('pa').run('python3', ['-c', UDP_PAIR, '10.96.0.20', '53', '41030'], { timeoutMs: 10_000 });
      const answers = r.stdout.trim().split('\n');
      return { answered: answers.length, endpoints: new Set(answers.map((a) => a.split(' ')[0])).size, from: [...new Set(answers.map((a) => a.split(' ').slice(1).join(' ')))] };
    });
    expect(k).toEqual({ answered: 2, endpoints: 1, from: [`saw ${PA}:41030 from 10.96.0.20:53`] });
    expect(np).toEqual(k);
  });

  it('18. an endpoint with ready: false is left out: 10 connections all reach the ready one', async () => {
    const { np, k } = await both(async (t) => [...new Set(await ask(t, 'pa', 'tcp', '10.96.0.21', 80, { count: 10 }))]);
    expect(k).toEqual([`pc saw ${PA}:same port, reply from 10.96.0.21:80`]);
    expect(np).toEqual(k);
  });

  it("19. a pod reaching a NodePort on the node's uplink address: translated and masqueraded like external traffic", async () => {
    const { np, k } = await both((t) => ask(t, 'pa', 'tcp', NODE_UP, 30080, { sport: 41031, masqueraded: true }));
    expect(k).toEqual([`pc saw ${GW1}:masquerade port, reply from ${NODE_UP}:30080`]);
    expect(np).toEqual(k);
  });

  it('20. Service masquerade picks source ports at random (MASQUERADE --random-fully): 5 NodePort connections, none keeps its port', async () => {
    const { np, k } = await both(async (t) => {
      let kept = 0;
      for (let i = 0; i < 5; i++) {
        const sport = 41040 + i;
        const [line] = await ask(t, 'ext', 'tcp', NODE_UP, 30080, { sport });
        if (line === `pc saw ${GW1}:${sport}, reply from ${NODE_UP}:30080`) kept++;
        else if (line !== `pc saw ${GW1}:another port, reply from ${NODE_UP}:30080`) return line;
      }
      return `${kept} of 5 kept the client's port`;
    });
    expect(k).toBe("0 of 5 kept the client's port");
    expect(np).toEqual(k);
  });

  it('21. a UDP flow that began while its Service had no endpoint reaches the endpoint once there is one (no black hole, kubernetes#48370)', async () => {
    const { np, k } = await both(async (t) => {
      // A datagram every 200 ms from one port for at most 15 s; the first answer ends it. Were
      // the flow black-holed, it would never be answered: its entry would live as long as it sends.
      const client = t.pod('pa').spawn('python3', ['-u', '-c', UDP_UNTIL_ANSWERED, '10.96.0.22', '53', '41050', '15'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const out = lineReader(client, `the UDP client in pa of the ${t.kind} twin`);
      const started = await out.next(15_000);
      await new Promise((r) => setTimeout(r, 1000));
      await t.setServices(withEndpoints('late', [ep(PC)]));
      return [started, await out.next(20_000)];
    });
    expect(k).toEqual(['sending, no answer yet', `pc saw ${PA}:41050 from 10.96.0.22:53`]);
    expect(np).toEqual(k);
  });

  it("22. an endpoint removed: its UDP flows are flushed, so the flow's next datagram reaches the remaining endpoint", async () => {
    const { np, k } = await both(async (t) => {
      const first = await ask(t, 'pa', 'udp', '10.96.0.23', 53, { sport: 41051 });
      const chosen = first[0]?.split(' ')[0];
      const remaining = chosen === 'pb' ? 'pc' : 'pb';
      await t.setServices(withEndpoints('shrink', [ep(remaining === 'pb' ? PB : PC)]));
      const second = await ask(t, 'pa', 'udp', '10.96.0.23', 53, { sport: 41051 });
      return { first: first.map((l) => l.replace(/^p[bc] /, 'an endpoint ')), second: second.map((l) => l.replace(remaining, 'the remaining endpoint')) };
    });
    expect(k).toEqual({
      first: [`an endpoint saw ${PA}:41051, reply from 10.96.0.23:53`],
      second: [`the remaining endpoint saw ${PA}:41051, reply from 10.96.0.23:53`],
    });
    expect(np).toEqual(k);
  });
});
