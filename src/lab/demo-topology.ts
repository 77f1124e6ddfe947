/**
 * The demo's node: two pods on cni0, a third on cni1 (another subnet, reached through the
 * router), as `nodeplane demo` and the end-to-end tests build it. The demo runs it with a
 * Service as well (DEMO_SERVICE_CONFIG): a ClusterIP backed by pb and pc.
 */
import type { PodSpec } from './lab.ts';

export const DEMO_CONFIG = `# nodeplane demo: one node, two bridges, three pods
node:
  name: demo-node
bridges:
  - name: cni0
    address: 10.244.1.1/24
    mac: 0a:58:0a:f4:01:01
  - name: cni1
    address: 10.244.2.1/24
    mac: 0a:58:0a:f4:02:01
ports:
  - { name: pa, type: tap, bridge: cni0 }
  - { name: pb, type: tap, bridge: cni0 }
  - { name: pc, type: tap, bridge: cni1 }
`;

/** The demo's Service: ClusterIP 10.96.0.10 port 80, served on port 8080 of pb and pc. */
export const DEMO_SERVICE = { clusterIP: '10.96.0.10', port: 80, targetPort: 8080, endpoints: ['pb', 'pc'] } as const;

export const DEMO_SERVICE_CONFIG = `${DEMO_CONFIG}services:
  - name: web
    clusterIP: ${DEMO_SERVICE.clusterIP}
    ports: [{ name: http, port: ${DEMO_SERVICE.port}, targetPort: ${DEMO_SERVICE.targetPort} }]
    endpoints:
      - { ip: 10.244.1.3 }
      - { ip: 10.244.2.2 }
`;

export const DEMO_PODS: PodSpec[] = [
  { port: 'pa', address: '10.244.1.2/24', gateway: '10.244.1.1' },
  { port: 'pb', address: '10.244.1.3/24', gateway: '10.244.1.1' },
  { port: 'pc', address: '10.244.2.2/24', gateway: '10.244.2.1' },
];

export const GATEWAY_MAC = '0a:58:0a:f4:01:01';
