// Cross-reference checks: one test per rule, asserting the exact `path: message` text.
import { describe, expect, it } from 'vitest';
import { validateConfigObject } from '../../src/config/load.ts';

/** The SPEC-like lab: bridge cni0 with pa/pb, an uplink, flannel.1. Tests change one thing. */
function lab(): Record<string, any> {
  return {
    node: { name: 'node1' },
    bridges: [{ name: 'cni0', address: '10.244.1.1/24' }],
    ports: [
      { name: 'pa', type: 'tap', bridge: 'cni0' },
      { name: 'pb', type: 'tap', bridge: 'cni0' },
      { name: 'up', type: 'tap', address: '192.168.50.11/24' },
    ],
    routes: [
      { dst: '0.0.0.0/0', via: '192.168.50.1' },
      { dst: '10.244.2.0/24', via: '10.244.2.0', dev: 'flannel.1', onlink: true },
    ],
    neighbors: [{ ip: '10.244.2.0', mac: '0e:00:00:00:00:02', dev: 'flannel.1' }],
    vxlan: [
      {
        name: 'flannel.1',
        vni: 1,
        local: '192.168.50.11',
        address: '10.244.1.0/32',
        peers: [{ vtep: '192.168.50.12', mac: '0e:00:00:00:00:02', subnet: '10.244.2.0/24' }],
      },
    ],
  };
}

function errorsOf(change: (c: Record<string, any>) => void): string[] {
  const c = lab();
  change(c);
  const r = validateConfigObject(c);
  return r.ok ? [] : r.errors;
}

/** Errors with the lab's Service added first. */
function serviceErrorsOf(change: (c: Record<string, any>) => void): string[] {
  return errorsOf((c) => {
    c.services = [{ name: 'web', clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, targetPort: 8080 }], endpoints: [{ ip: '10.244.1.2' }] }];
    change(c);
  });
}

describe('config cross-reference checks', () => {
  it('accepts the lab as it is', () => {
    expect(errorsOf(() => {})).toEqual([]);
  });

  it('port.bridge must name a bridge', () => {
    expect(errorsOf((c) => c.ports.push({ name: 'pc', bridge: 'cni1' }))).toEqual(['ports[3].bridge: no bridge named cni1']);
  });

  it('a port cannot have both bridge and address, and needs one of them', () => {
    expect(errorsOf((c) => (c.ports[1].address = '10.9.9.1/24'))).toEqual([
      'ports[1].address: a port of bridge cni0 cannot have an address (give it to the bridge)',
    ]);
    expect(errorsOf((c) => c.ports.push({ name: 'pc' }))).toEqual(['ports[3]: needs bridge (an L2 port) or address (an L3 port)']);
  });

  it('bridges, ports and vxlan devices share one namespace', () => {
    expect(errorsOf((c) => (c.ports[0].name = 'cni0'))).toEqual(['ports[0].name: cni0 is already the name of bridges[0]']);
    expect(errorsOf((c) => (c.vxlan[0].name = 'up'))).toContain('vxlan[0].name: up is already the name of ports[2]');
  });

  it('route dev must be a router interface', () => {
    expect(errorsOf((c) => c.routes.push({ dst: '10.1.0.0/16', dev: 'eth9' }))).toEqual(['routes[2].dev: no interface named eth9']);
    expect(errorsOf((c) => c.routes.push({ dst: '10.1.0.0/16', dev: 'pa' }))).toEqual([
      'routes[2].dev: pa is an L2 port of bridge cni0; name the bridge instead',
    ]);
    expect(
      errorsOf((c) => {
        c.bridges.push({ name: 'br1' });
        c.routes.push({ dst: '10.1.0.0/16', dev: 'br1' });
      }),
    ).toEqual(['routes[2].dev: bridge br1 has no address, so it is not a router interface']);
    expect(errorsOf((c) => c.routes.push({ dst: '10.1.0.0/16', dev: 'up' }))).toEqual([]);
    expect(errorsOf((c) => c.routes.push({ dst: '10.1.0.0/16', dev: 'cni0' }))).toEqual([]);
  });

  it('route via must be reachable', () => {
    expect(errorsOf((c) => c.routes.push({ dst: '10.1.0.0/16', via: '10.9.0.1' }))).toEqual([
      'routes[2].via: 10.9.0.1 is not on any connected subnet',
    ]);
    expect(errorsOf((c) => c.routes.push({ dst: '10.1.0.0/16', via: '10.244.1.7', dev: 'up' }))).toEqual([
      'routes[2].via: 10.244.1.7 is not on a subnet of up (192.168.50.0/24); add onlink: true if it is reachable anyway',
    ]);
    expect(errorsOf((c) => (c.routes[1].onlink = false))).toEqual([
      'routes[1].via: 10.244.2.0 is not on a subnet of flannel.1 (only 10.244.1.0/32); add onlink: true if it is reachable anyway',
    ]);
    expect(errorsOf((c) => c.routes.push({ dst: '10.1.0.0/16', via: '10.9.0.1', onlink: true }))).toEqual([
      'routes[2].onlink: needs dev (the device the gateway is directly reachable on)',
    ]);
    expect(errorsOf((c) => c.routes.push({ dst: '10.1.0.0/16', via: '192.168.50.11' }))).toEqual([
      "routes[2].via: 192.168.50.11 is this node's own address (ports[2], up)",
    ]);
    expect(errorsOf((c) => c.routes.push({ dst: '10.1.0.0/16' }))).toEqual(['routes[2]: needs via or dev']);
    // A gateway on a link-scope route (dev, no via) is reachable, as in Linux.
    expect(
      errorsOf((c) => c.routes.push({ dst: '10.9.0.0/16', dev: 'up' }, { dst: '10.10.0.0/16', via: '10.9.0.1' })),
    ).toEqual([]);
  });

  it('route destinations are unique and host bits are refused', () => {
    expect(errorsOf((c) => c.routes.push({ dst: '0.0.0.0/0', via: '192.168.50.2' }))).toEqual([
      'routes[2].dst: 0.0.0.0/0 is already the destination of routes[0]',
    ]);
    expect(errorsOf((c) => c.routes.push({ dst: '192.168.50.0/24', dev: 'up' }))).toEqual([
      'routes[2].dst: 192.168.50.0/24 is already the connected subnet of up',
    ]);
    expect(errorsOf((c) => (c.routes[0].dst = '10.0.0.1/8'))).toEqual(['routes[0].dst: 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)']);
  });

  it('neighbor dev must exist and the ip lie on its subnet', () => {
    expect(errorsOf((c) => c.neighbors.push({ ip: '10.244.1.5', mac: '02:00:00:00:00:05', dev: 'cni9' }))).toEqual([
      'neighbors[1].dev: no interface named cni9',
    ]);
    expect(errorsOf((c) => c.neighbors.push({ ip: '10.244.3.5', mac: '02:00:00:00:00:05', dev: 'cni0' }))).toEqual([
      'neighbors[1].ip: 10.244.3.5 is not on a subnet of cni0 (10.244.1.0/24)',
    ]);
    expect(errorsOf((c) => c.neighbors.push({ ip: '10.244.1.5', mac: '02:00:00:00:00:05', dev: 'cni0' }))).toEqual([]);
    expect(errorsOf((c) => c.neighbors.push({ ip: '10.244.2.0', mac: '02:00:00:00:00:05', dev: 'flannel.1' }))).toEqual([
      'neighbors[1].ip: 10.244.2.0 on flannel.1 is already in neighbors[0]',
    ]);
  });

  it('subnets of different interfaces must not overlap', () => {
    expect(errorsOf((c) => c.ports.push({ name: 'up2', address: '10.244.1.129/25' }))).toEqual([
      'ports[3].address: 10.244.1.129/25 overlaps the subnet of bridges[0] (cni0, 10.244.1.0/24)',
    ]);
    // A wider subnet also swallows the peer's: both problems are named.
    expect(errorsOf((c) => c.ports.push({ name: 'up2', address: '10.244.0.1/16' }))).toEqual([
      'ports[3].address: 10.244.0.1/16 overlaps the subnet of bridges[0] (cni0, 10.244.1.0/24)',
      'vxlan[0].peers[0].subnet: 10.244.2.0/24 overlaps the subnet of ports[3] (up2, 10.244.0.0/16)',
    ]);
    expect(errorsOf((c) => c.ports.push({ name: 'up2', address: '192.168.50.11/24' }))).toEqual([
      'ports[3].address: 192.168.50.11 is already the address of ports[2] (up)',
    ]);
    // flannel's layout: the VTEP's /32 inside the bridge's subnet is fine.
    expect(errorsOf((c) => (c.vxlan[0].address = '10.244.1.0/32'))).toEqual([]);
  });

  it('vxlan local must be an L3 port address', () => {
    expect(errorsOf((c) => (c.vxlan[0].local = '192.168.50.99'))).toEqual(['vxlan[0].local: 192.168.50.99 is not the address of an L3 port']);
    expect(errorsOf((c) => (c.vxlan[0].local = '10.244.1.1'))).toEqual([
      'vxlan[0].local: 10.244.1.1 is not the address of an L3 port (it is the address of bridge cni0)',
    ]);
  });

  it('vxlan peer subnets must not overlap each other or local subnets', () => {
    expect(errorsOf((c) => c.vxlan[0].peers.push({ vtep: '192.168.50.13', mac: '0e:00:00:00:00:03', subnet: '10.244.2.0/23' }))).toEqual([
      'vxlan[0].peers[1].subnet: 10.244.2.0/23 overlaps vxlan[0].peers[0].subnet (10.244.2.0/24)',
    ]);
    expect(errorsOf((c) => c.vxlan[0].peers.push({ vtep: '192.168.50.13', mac: '0e:00:00:00:00:03', subnet: '10.244.1.0/24' }))).toEqual([
      'vxlan[0].peers[1].subnet: 10.244.1.0/24 overlaps the subnet of bridges[0] (cni0, 10.244.1.0/24)',
    ]);
    expect(errorsOf((c) => c.vxlan[0].peers.push({ vtep: '192.168.50.12', mac: '0e:00:00:00:00:03', subnet: '10.244.3.0/24' }))).toEqual([
      'vxlan[0].peers[1].vtep: 192.168.50.12 is already vxlan[0].peers[0]',
    ]);
  });

  it('service names, clusterIPs, ports and nodePorts are unique', () => {
    const svc = (name: string, clusterIP: string, ports: object[] = [{ port: 80 }]) => ({ name, clusterIP, ports });
    expect(serviceErrorsOf((c) => c.services.push(svc('web', '10.96.0.11')))).toEqual(['services[1].name: default/web is already defined by services[0]']);
    expect(serviceErrorsOf((c) => c.services.push(svc('api', '10.96.0.10')))).toEqual([
      'services[1].clusterIP: 10.96.0.10 is already used by services[0] (default/web)',
    ]);
    expect(serviceErrorsOf((c) => c.services[0].ports.push({ name: 'h2', port: 80, protocol: 'TCP' }))).toEqual([
      'services[0].ports[1].port: 80/TCP is already used by services[0].ports[0]',
    ]);
    expect(serviceErrorsOf((c) => c.services[0].ports.push({ name: 'dns', port: 80, protocol: 'UDP' }))).toEqual([]);
    expect(serviceErrorsOf((c) => c.services[0].ports.push({ port: 81 }))).toEqual([
      'services[0].ports[1].name: required when a Service has more than one port',
    ]);
    expect(
      serviceErrorsOf((c) =>
        c.services.push(
          { ...svc('a', '10.96.0.21', [{ port: 80, nodePort: 30080 }]), type: 'NodePort' },
          { ...svc('b', '10.96.0.22', [{ port: 80, nodePort: 30080 }]), type: 'LoadBalancer' },
        ),
      ),
    ).toEqual(['services[2].ports[0].nodePort: 30080/TCP is already used by services[1].ports[0]']);
  });

  it('accepts Services and manifests (whose files are read by the loader, not here)', () => {
    const web = { name: 'web', clusterIP: '10.96.0.10', ports: [{ port: 80 }] };
    expect(errorsOf((c) => (c.services = [web]))).toEqual([]);
    expect(errorsOf((c) => (c.manifests = ['kube/']))).toEqual([]);
    // An empty list asks for nothing; nat and conntrack are supported.
    expect(errorsOf((c) => Object.assign(c, { services: [], manifests: [], nat: { clusterCIDR: '10.244.0.0/16' }, conntrack: { max: 1000 } }))).toEqual([]);
  });

  it('reports every cross-reference error at once', () => {
    expect(
      errorsOf((c) => {
        c.ports.push({ name: 'pc', bridge: 'cni1' });
        c.routes.push({ dst: '10.1.0.0/16', dev: 'eth9' });
        c.vxlan[0].local = '192.168.50.99';
      }),
    ).toEqual([
      'ports[3].bridge: no bridge named cni1',
      'routes[2].dev: no interface named eth9',
      'vxlan[0].local: 192.168.50.99 is not the address of an L3 port',
    ]);
  });
});
