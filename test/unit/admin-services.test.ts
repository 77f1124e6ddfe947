/**
 * `show services` through the admin server: each Service port with its frontends and
 * endpoints, and the active connections counted per endpoint by the chunked conntrack walk
 * (src/admin/services-state.ts), as JSON and as text.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fetchState } from '../../src/admin/client.ts';
import { formatState } from '../../src/admin/format.ts';
import { startAdminServer } from '../../src/admin/server.ts';
import type { ServicesState } from '../../src/admin/services-state.ts';
import * as F from '../helpers/frames.ts';
import { A, B, C, GW, Harness, LAB, introduce } from './stage-harness.test.ts';

const SERVICES = `nat: { clusterCIDR: 10.244.0.0/16 }
services:
  - name: web
    type: NodePort
    clusterIP: 10.96.0.10
    sessionAffinity: ClientIP
    ports: [{ name: http, protocol: TCP, port: 80, targetPort: 8080, nodePort: 30080 }]
    endpoints: [{ ip: ${B.ip} }, { ip: ${C.ip}, ready: false }, { ip: 10.244.2.5, nodeName: node2, ready: false, terminating: true }]
  - name: empty
    namespace: kube-system
    clusterIP: 10.96.0.40
    ports: [{ protocol: UDP, port: 53 }]
`;

const syn = (sport: number): Buffer =>
  F.ethernet(GW.mac, A.mac, 0x0800, F.ipv4({ src: A.ip, dst: '10.96.0.10', proto: 6 }, F.tcp(A.ip, '10.96.0.10', sport, 80, F.TCP_SYN, 1, 0)));

describe('show services', () => {
  it('lists each Service port with its frontends, endpoints, their state and active connections', async () => {
    const h = new Harness(LAB + SERVICES);
    introduce(h, A);
    introduce(h, B);
    for (let k = 0; k < 3; k++) h.rx('pa', syn(40000 + k));
    expect(h.take('pb')).toHaveLength(3);
    const dir = mkdtempSync(join(tmpdir(), 'nodeplane-admin-services-'));
    const sock = join(dir, 'admin.sock');
    const server = await startAdminServer(h.dp, sock);
    try {
      const state = (await fetchState(sock, 'services')) as ServicesState;
      expect(state.services.map((s) => `${s.namespace}/${s.name}:${s.port}`)).toEqual(['default/web:http', 'kube-system/empty:53/UDP']);
      const [web, empty] = state.services;
      expect(web).toMatchObject({ type: 'NodePort', protocol: 'TCP', targetPort: 8080, sessionAffinity: 'ClientIP', sessionAffinityTimeoutSeconds: 10800, rejecting: false });
      expect(web.frontends).toEqual([
        { address: '10.96.0.10:80', kind: 'clusterIP', waiting: false },
        { address: '10.244.1.1:30080', kind: 'nodePort', waiting: false },
        { address: '192.168.50.11:30080', kind: 'nodePort', waiting: false },
        { address: '10.9.0.1:30080', kind: 'nodePort', waiting: false },
      ]);
      expect(web.endpoints.map((e) => [e.ip, e.port, e.ready, e.local, e.candidate, e.connections])).toEqual([
        [B.ip, 8080, true, true, true, 3],
        [C.ip, 8080, false, true, false, 0],
        ['10.244.2.5', 8080, false, false, false, 0],
      ]);
      expect(empty).toMatchObject({ rejecting: true, endpoints: [] });
      expect(state.counters).toMatchObject({ translated: 3, rejected: 0, pinned: 2 });
      expect(formatState('services', state)).toBe(
        [
          'default/web:http  NodePort TCP  affinity ClientIP 10800s  policy external Cluster internal Cluster',
          '  10.96.0.10:80 (clusterIP)  10.244.1.1:30080 (nodePort)  192.168.50.11:30080 (nodePort)  10.9.0.1:30080 (nodePort)',
          '  -> 10.244.1.3:8080  node1 local  ready  connections 3',
          '  -> 10.244.1.4:8080  node1 local  not ready (unused)  connections 0',
          '  -> 10.244.2.5:8080  node2        terminating (unused)  connections 0',
          'kube-system/empty:53/UDP  ClusterIP UDP  policy external Cluster internal Cluster',
          '  10.96.0.40:53 (clusterIP)',
          '  no endpoints: rejected with icmp port unreachable',
          'flows translated 3, rejected 0, pinned by affinity 2, masqueraded 0, udp entries flushed 0',
          '',
        ].join('\n'),
      );
      // Connections end: the count follows the table.
      h.dp.ctx.conntrack!.remove(0);
      const after = (await fetchState(sock, 'services')) as ServicesState;
      expect(after.services[0].endpoints[0].connections).toBe(2);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
