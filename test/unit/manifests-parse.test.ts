// Kubernetes manifests to ServiceConfig: kubectl's List output, each Service type, named
// targetPorts through EndpointSlices, endpoint conditions, what is left out, and every
// error naming file, line and field; the fast reading (no positions) against the one with.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { joinService } from '../../src/config/manifest-map.ts';
import { ManifestError, type ManifestFile, parseManifestText, readManifestFast, readManifestWithPositions } from '../../src/config/manifests.ts';
import type { ServiceConfig } from '../../src/config/types.ts';

const FIXTURE = 'test/unit/fixtures/manifests/cluster.yaml';

/** Every Service of a file joined with the slices of the same file. */
function servicesOf(text: string, file = 'm.yaml'): Map<string, ServiceConfig> {
  const f = parseManifestText(text, file);
  return new Map(f.services.map((s) => [s.key, joinService(s, f.slices.filter((x) => x.serviceKey === s.key))]));
}

function errorsOf(text: string, file = 'bad.yaml'): string[] {
  try {
    parseManifestText(text, file);
  } catch (err) {
    if (err instanceof ManifestError) return err.errors;
    throw err;
  }
  throw new Error('expected a ManifestError');
}

describe('kubectl get svc,endpointslices -A -o yaml', () => {
  const text = readFileSync(FIXTURE, 'utf8');
  const services = servicesOf(text, FIXTURE);

  it('reads every Service with an IPv4 address and leaves the rest out with a note', () => {
    expect([...services.keys()]).toEqual(['default/web', 'kube-system/dns', 'default/shop', 'default/front', 'shop/api']);
    expect(parseManifestText(text, FIXTURE).notes).toEqual([
      'headless Services left out (clusterIP None, nothing to translate): default/db',
      'EndpointSlices of addressType IPv6 left out (nodeplane translates IPv4): kube-system/dns-v6xyz',
      '1 × ConfigMap objects left out (only Service v1 and EndpointSlice discovery.k8s.io/v1 are read)',
    ]);
  });

  it('resolves a named targetPort through the slices and merges the slices of a Service', () => {
    const web = services.get('default/web')!;
    expect(web).toEqual({
      name: 'web',
      namespace: 'default',
      type: 'ClusterIP',
      clusterIP: '10.96.0.10',
      externalIPs: [],
      sessionAffinity: 'None',
      sessionAffinityTimeoutSeconds: 10800,
      externalTrafficPolicy: 'Cluster',
      internalTrafficPolicy: 'Cluster',
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }],
      endpoints: [
        { ip: '10.244.1.2', ready: true, serving: true, terminating: false, nodeName: 'node1' },
        { ip: '10.244.1.3', ready: false, serving: false, terminating: false, nodeName: 'node1' },
        // Terminating but still serving: kube-proxy's fallback when no endpoint is ready.
        { ip: '10.244.2.5', ready: false, serving: true, terminating: true, nodeName: 'node2' },
        // conditions {}: ready and serving nil mean true, terminating nil false.
        { ip: '10.244.2.6', ready: true, serving: true, terminating: false, nodeName: 'node2' },
      ],
    });
  });

  it('maps each Service type with its policies, affinity, node ports and external addresses', () => {
    expect(services.get('kube-system/dns')).toMatchObject({
      sessionAffinity: 'ClientIP',
      sessionAffinityTimeoutSeconds: 600,
      internalTrafficPolicy: 'Local',
      ports: [
        { name: 'dns', protocol: 'UDP', port: 53, targetPort: 53 },
        { name: 'dns-tcp', protocol: 'TCP', port: 53, targetPort: 53 },
      ],
      endpoints: [{ ip: '10.244.1.20', ready: true, nodeName: 'node1' }],
    });
    expect(services.get('default/shop')).toMatchObject({
      type: 'NodePort',
      externalTrafficPolicy: 'Local',
      ports: [{ name: 'http', protocol: 'TCP', port: 8080, targetPort: 8080, nodePort: 30080 }],
      endpoints: [], // its slice says `endpoints: null`
    });
    const front = services.get('default/front')!;
    expect(front).toMatchObject({ type: 'LoadBalancer', loadBalancerIP: '192.168.50.200', externalIPs: ['192.168.50.77'] });
    expect(front.ports).toEqual([{ name: 'https', protocol: 'TCP', port: 443, targetPort: 8443, nodePort: 31443 }]);
  });

  it('gives an endpoint its own ports when its slice resolves a named port differently', () => {
    const api = services.get('shop/api')!;
    expect(api.clusterIP).toBe('10.96.3.3'); // the IPv4 one of a dual-stack Service
    expect(api.ports).toEqual([
      { name: 'grpc', protocol: 'TCP', port: 9000, targetPort: 9000 },
      { name: 'metrics', protocol: 'TCP', port: 9100, targetPort: 9100 },
    ]);
    expect(api.endpoints).toEqual([
      { ip: '10.244.1.40', ready: true, serving: true, terminating: false, nodeName: 'node1' },
      // Its pod names grpc 9001 and has no metrics port: it serves grpc there, metrics not at all.
      { ip: '10.244.2.41', ready: true, serving: true, terminating: false, nodeName: 'node2', ports: [{ name: 'grpc', protocol: 'TCP', port: 9001 }] },
    ]);
  });
});

describe('manifest files', () => {
  const svc = (name: string, ip: string, extra = ''): string =>
    `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\nspec:\n  clusterIP: ${ip}\n  ports:\n  - port: 80\n${extra}`;

  it('reads several documents, skips empty ones, and defaults the namespace and targetPort', () => {
    const s = servicesOf(`---\n${svc('a', '10.96.0.1')}---\n---\n${svc('b', '10.96.0.2', '    targetPort: 8080\n')}`);
    expect([...s.keys()]).toEqual(['default/a', 'default/b']);
    expect(s.get('default/a')!.ports).toEqual([{ protocol: 'TCP', port: 80, targetPort: 80 }]);
    expect(s.get('default/b')!.ports[0]!.targetPort).toBe(8080);
    expect(parseManifestText('', 'e.yaml')).toEqual({ services: [], slices: [], notes: [] });
    expect(parseManifestText('# nothing yet\n', 'e.yaml').services).toEqual([]);
  });

  it('reads JSON as kubectl -o json prints it', () => {
    const json = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'j', namespace: 'x' }, spec: { clusterIP: '10.96.1.1', ports: [{ port: 53, protocol: 'UDP' }] } }] });
    expect(servicesOf(json, 'svc.json').get('x/j')!.ports).toEqual([{ protocol: 'UDP', port: 53, targetPort: 53 }]);
  });

  it('names file, line and field of a bad port, an SCTP port and a bad address', () => {
    const text = [
      'apiVersion: v1', //         1
      'kind: Service', //          2
      'metadata:', //              3
      '  name: web', //            4
      '  namespace: shop', //      5
      'spec:', //                  6
      '  clusterIP: 10.96.0.10', // 7
      '  ports:', //               8
      '  - name: http', //         9
      '    port: 70000', //       10
      '  - name: assoc', //       11
      '    port: 9', //           12
      '    protocol: SCTP', //    13
      '  externalIPs: [10.1.1]', // 14
    ].join('\n');
    expect(errorsOf(text, 'svc.yaml')).toEqual([
      'svc.yaml:10: Service shop/web: spec.ports[0].port: must be at most 65535 (got 70000)',
      'svc.yaml:13: Service shop/web: spec.ports[1].protocol: SCTP is not supported: nodeplane translates TCP and UDP Service ports only',
      "svc.yaml:14: Service shop/web: spec.externalIPs[0]: '10.1.1' is not an IPv4 address (dotted quad, e.g. 10.0.0.1)",
    ]);
  });

  it('names the line inside a List, and the object, for a slice with a bad address', () => {
    const text = 'apiVersion: v1\nkind: List\nitems:\n- apiVersion: discovery.k8s.io/v1\n  kind: EndpointSlice\n  metadata: {name: s1, namespace: n}\n  addressType: IPv4\n  endpoints:\n  - addresses: [10.0.0.300]\n';
    expect(errorsOf(text)).toEqual(["bad.yaml:9: EndpointSlice n/s1: endpoints[0].addresses[0]: '10.0.0.300' is not an IPv4 address (dotted quad, e.g. 10.0.0.1)"]);
  });

  it('gives YAML syntax errors with file, line and column, and refuses the whole file', () => {
    expect(errorsOf(`${svc('a', '10.96.0.1')}---\nkind: [Service\n`, 'syn.yaml')).toEqual([
      "syn.yaml:11:1: Flow sequence in block collection must be sufficiently indented and end with a ]",
    ]);
    expect(errorsOf('a: 1\na: 2\n', 'dup.yaml')).toEqual(['dup.yaml:2:1: Map keys must be unique']);
  });

  it('refuses what it cannot program or cannot tell apart, naming the field', () => {
    expect(errorsOf('apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: 80}]\n')).toEqual([
      'bad.yaml:5: Service default/x: spec.clusterIP: required: nodeplane does not allocate Service addresses (write the one the cluster gave, as `kubectl get svc -o yaml` prints it)',
    ]);
    expect(errorsOf('apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: x}\naddressType: IPv4\n')).toEqual([
      'bad.yaml:1: EndpointSlice default/x: apiVersion: discovery.k8s.io/v1beta1 is not read; nodeplane reads EndpointSlice discovery.k8s.io/v1',
    ]);
    expect(errorsOf(`${svc('a', '10.96.0.1')}---\n${svc('a', '10.96.0.2')}`)).toEqual(['bad.yaml:10: Service default/a: defined twice in the file (first at line 1)']);
    expect(errorsOf(svc('a', '10.96.0.1', '    targetPort: "8080"\n'))).toEqual([
      "bad.yaml:9: Service default/a: spec.ports[0].targetPort: '8080' is not a port name (at most 15 characters of a-z 0-9 '-', with a letter; a number is written without quotes)",
    ]);
    expect(errorsOf(svc('a', '10.96.0.1', '  - port: 81\n'))).toEqual([
      'bad.yaml:8: Service default/a: spec.ports[0].name: required when a Service has more than one port',
      'bad.yaml:9: Service default/a: spec.ports[1].name: required when a Service has more than one port',
    ]);
    expect(errorsOf('- just\n- a list\n')).toEqual(['bad.yaml:1: expected a Kubernetes object (a mapping with apiVersion and kind)']);
    expect(errorsOf('kind: Service\nmetadata: {name: x}\n')).toEqual(['bad.yaml:1: apiVersion: required']);
  });

  it('leaves out, with a note, ExternalName and IPv6-only Services and slices of no Service', () => {
    const text = [
      'apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec: {type: ExternalName, externalName: example.com}',
      'apiVersion: v1\nkind: Service\nmetadata: {name: v6}\nspec: {clusterIP: "fd00::1", ports: [{port: 80}]}',
      'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: orphan}\naddressType: IPv4\nendpoints: []',
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}',
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: e}',
    ].join('\n---\n');
    const f = parseManifestText(text, 'n.yaml');
    expect(f.services).toEqual([]);
    expect(f.slices).toEqual([]);
    expect(f.notes).toEqual([
      'ExternalName Services left out (a DNS name, nothing to translate): default/ext',
      'IPv6-only Services left out (nodeplane translates IPv4): default/v6',
      'EndpointSlices without the label kubernetes.io/service-name left out (they belong to no Service): default/orphan',
      '2 × Deployment objects left out (only Service v1 and EndpointSlice discovery.k8s.io/v1 are read)',
    ]);
  });

  it('programs the first LoadBalancer address that is not proxied', () => {
    const lb = (ingress: string) =>
      `apiVersion: v1\nkind: Service\nmetadata: {name: lb}\nspec: {type: LoadBalancer, clusterIP: 10.96.0.5, ports: [{port: 80, nodePort: 30001}]}\nstatus: {loadBalancer: {ingress: ${ingress}}}\n`;
    expect(servicesOf(lb('[{ip: 192.168.50.9, ipMode: Proxy}, {ip: 192.168.50.10}]')).get('default/lb')!.loadBalancerIP).toBe('192.168.50.10');
    expect(servicesOf(lb('[{hostname: lb.example.com}]')).get('default/lb')!.loadBalancerIP).toBeUndefined();
    const f = parseManifestText(lb('[{ip: 192.168.50.9}, {ip: 192.168.50.11}]'), 'lb.yaml');
    expect(f.notes).toEqual(['LoadBalancer Services with several addresses: only the first is programmed: default/lb']);
  });

  it('counts an address once when it sits in two slices of a Service', () => {
    const slice = (name: string, ready: boolean) =>
      `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: ${name}, labels: {kubernetes.io/service-name: a}}\naddressType: IPv4\nports: [{port: 80}]\nendpoints: [{addresses: [10.244.0.9], conditions: {ready: ${ready}}}]\n`;
    const s = servicesOf(`${svc('a', '10.96.0.1')}---\n${slice('a-1', true)}---\n${slice('a-2', false)}`);
    // No nodeName: on no node, never local (kube-proxy compares it with its own).
    expect(s.get('default/a')!.endpoints).toEqual([{ ip: '10.244.0.9', ready: true, serving: true, terminating: false, nodeName: '' }]);
  });
});

describe('the fast reading and the one with positions', () => {
  /** A file's entries with their `at` as text (a fast reading's are found on demand). */
  const plain = (f: ManifestFile): unknown => ({
    services: f.services.map((e) => ({ ...e, at: String(e.at) })),
    slices: f.slices.map((e) => ({ ...e, at: String(e.at) })),
    notes: f.notes,
  });
  const fixture = readFileSync(FIXTURE, 'utf8');
  const multi = `${fixture}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n# a comment\n---\n${fixture.replace(/name: /g, 'name: x')}`;

  it('give the same entries, notes and lines for YAML (one List, several documents) and JSON', () => {
    const json = JSON.stringify(parse(fixture), null, 2);
    for (const [text, file] of [[fixture, FIXTURE], [multi, 'multi.yaml'], [json, 'cluster.json']]) {
      const fast = readManifestFast(text, file);
      expect(fast, file).not.toBeNull();
      expect(plain(fast!), file).toEqual(plain(readManifestWithPositions(text, file)));
    }
  });

  it('leave anchors, syntax errors, duplicate keys and every invalid object to the reading with positions', () => {
    expect(readManifestFast('apiVersion: v1\nkind: List\nitems: &i []\nmore: *i\n', 'a.yaml')).toBeNull();
    expect(readManifestFast('kind: [Service\n', 'b.yaml')).toBeNull();
    expect(readManifestFast('a: 1\na: 2\n', 'c.yaml')).toBeNull();
    expect(readManifestFast('apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: 80}]\n', 'd.yaml')).toBeNull();
    // And then every message still has its line, as parseManifestText gives it.
    expect(errorsOf('apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  clusterIP: 10.96.0.1\n  ports: [{port: 80}, {port: 81}]\n')).toEqual([
      'bad.yaml:6: Service default/x: spec.ports[0].name: required when a Service has more than one port',
      'bad.yaml:6: Service default/x: spec.ports[1].name: required when a Service has more than one port',
    ]);
  });
});
