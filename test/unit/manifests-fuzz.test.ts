// Property tests: whatever a manifest file holds, reading it either gives Services the config
// schema accepts or fails with a ManifestError whose every line names the file and a line —
// never another exception. Objects are generated near the shape of Services and
// EndpointSlices so the checks behind the first fields are reached too.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { schemaCheck } from '../../src/config/load.ts';
import { joinService } from '../../src/config/manifest-map.ts';
import { ManifestError, parseManifestText } from '../../src/config/manifests.ts';

const FILE = 'fuzz.yaml';

const scalar = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: -5, max: 70000 }),
  fc.double({ noNaN: false }),
  fc.constantFrom('TCP', 'UDP', 'SCTP', 'None', '', '10.96.0.1', '10.244.1.2', '0.0.0.0', 'fd00::1', '1.2.3', 'http', 'web'),
  fc.constantFrom('ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName', 'Local', 'Cluster', 'ClientIP', 'IPv4', 'IPv6', 'Proxy'),
  fc.string({ maxLength: 6 }),
);

const KEYS = ['name', 'namespace', 'port', 'protocol', 'targetPort', 'nodePort', 'addresses', 'conditions', 'ready', 'serving', 'terminating', 'ip', 'ipMode', 'ingress', 'loadBalancer', 'clientIP', 'timeoutSeconds', 'kubernetes.io/service-name', '__proto__', 'x'];

const { value } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom(...KEYS), tie('value'), { maxKeys: 4 }),
  ),
}));

const port = fc.record(
  { name: fc.oneof(scalar, fc.constantFrom('http', 'dns')), protocol: scalar, port: fc.oneof(scalar, fc.integer({ min: 1, max: 65535 })), targetPort: scalar, nodePort: scalar },
  { requiredKeys: [] },
);

const object = fc.record(
  {
    apiVersion: fc.constantFrom('v1', 'discovery.k8s.io/v1', 'v2', 7),
    kind: fc.constantFrom('Service', 'EndpointSlice', 'ConfigMap', 'List', ''),
    metadata: fc.oneof(
      value,
      fc.record(
        { name: fc.constantFrom('a', 'b', 'web', 'A!', ''), namespace: fc.oneof(scalar, fc.constantFrom('default', 'x')), labels: fc.oneof(value, fc.record({ 'kubernetes.io/service-name': fc.constantFrom('a', 'b', 'web') })) },
        { requiredKeys: [] },
      ),
    ),
    spec: fc.oneof(
      value,
      fc.record(
        { type: scalar, clusterIP: scalar, clusterIPs: fc.array(scalar, { maxLength: 2 }), ports: fc.oneof(value, fc.array(port, { maxLength: 3 })), externalIPs: value, loadBalancerIP: scalar, sessionAffinity: scalar, sessionAffinityConfig: value, externalTrafficPolicy: scalar, internalTrafficPolicy: scalar },
        { requiredKeys: [] },
      ),
    ),
    status: value,
    addressType: fc.oneof(scalar, fc.constant('IPv4')),
    endpoints: fc.oneof(value, fc.array(fc.record({ addresses: fc.array(scalar, { maxLength: 2 }), conditions: value, nodeName: scalar }, { requiredKeys: [] }), { maxLength: 3 })),
    ports: fc.oneof(value, fc.array(port, { maxLength: 2 })),
    items: value,
  },
  { requiredKeys: [] },
);

/** How many reads gave at least one Service (the generators must reach that path too). */
let withServices = 0;

/** Sets `path` in `obj`, making the mappings and lists on the way (whatever was there). */
function setAt(obj: Record<string, unknown>, path: (string | number)[], v: unknown): void {
  let at: Record<string | number, unknown> = obj;
  for (const key of path.slice(0, -1)) {
    const next = at[key];
    at = typeof next === 'object' && next !== null ? (next as Record<string | number, unknown>) : (at[key] = {}) as Record<string | number, unknown>;
  }
  at[path.at(-1)!] = v;
}

/** Reads `text`; a ManifestError is fine if each of its lines names the file and a line. */
function check(text: string): void {
  let parsed;
  try {
    parsed = parseManifestText(text, FILE);
  } catch (err) {
    if (!(err instanceof ManifestError)) throw err;
    expect(err.errors.length).toBeGreaterThan(0);
    for (const line of err.errors) expect(line).toMatch(/^fuzz\.yaml:\d+(:\d+)?: \S/);
    return;
  }
  // What is read is a Service the config schema itself would accept (nodeName '' aside:
  // only manifests say "on no node").
  const services = parsed.services.map((s) => joinService(s, parsed.slices.filter((x) => x.serviceKey === s.key)));
  const asConfig = services.map((s) => ({ ...s, endpoints: s.endpoints.map((e) => ({ ...e, nodeName: e.nodeName || 'elsewhere' })) }));
  const r = schemaCheck({ node: { name: 'n' }, services: asConfig });
  expect(r.ok ? [] : r.errors).toEqual([]);
  if (services.length > 0) withServices++;
}

describe('reading random manifests', () => {
  it('never throws anything but a ManifestError naming file and line (generated objects, one per document)', () => {
    fc.assert(
      fc.property(fc.array(object, { minLength: 1, maxLength: 3 }), (objs) => {
        check(objs.map((o) => stringify(o)).join('---\n'));
      }),
      { numRuns: 400, seed: 20261128 },
    );
  });

  it('never throws anything but a ManifestError for the fixture\'s objects with fields replaced', () => {
    const items = (parse(readFileSync('test/unit/fixtures/manifests/cluster.yaml', 'utf8')) as { items: Record<string, unknown>[] }).items;
    const paths: (string | number)[][] = [
      ['spec', 'ports', 0, 'port'],
      ['spec', 'ports', 0, 'targetPort'],
      ['spec', 'ports', 0, 'protocol'],
      ['spec', 'ports', 0, 'nodePort'],
      ['spec', 'ports', 1],
      ['spec', 'clusterIP'],
      ['spec', 'clusterIPs', 0],
      ['spec', 'type'],
      ['spec', 'externalIPs'],
      ['spec', 'sessionAffinityConfig', 'clientIP', 'timeoutSeconds'],
      ['status', 'loadBalancer', 'ingress'],
      ['endpoints', 0, 'addresses', 0],
      ['endpoints', 0, 'conditions'],
      ['endpoints', 1],
      ['ports', 0, 'port'],
      ['ports', 0, 'name'],
      ['metadata', 'labels'],
      ['metadata', 'name'],
      ['metadata', 'namespace'],
      ['addressType'],
    ];
    withServices = 0;
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(items.length - 1), fc.constantFrom(...paths), value), { maxLength: 3 }), (edits) => {
        const copy = structuredClone(items);
        for (const [i, path, v] of edits) setAt(copy[i]!, path, v);
        check(stringify({ apiVersion: 'v1', kind: 'List', items: copy }));
      }),
      { numRuns: 300, seed: 11 },
    );
    // The generator reaches the mapping too, not only the errors.
    expect(withServices).toBeGreaterThan(30);
  });

  it('never throws anything but a ManifestError for a List of generated objects', () => {
    fc.assert(
      fc.property(fc.array(object, { maxLength: 4 }), (items) => {
        check(stringify({ apiVersion: 'v1', kind: 'List', items }));
      }),
      { numRuns: 200, seed: 7 },
    );
  });

  it('never throws anything but a ManifestError for the fixture with random bytes changed', () => {
    const fixture = readFileSync('test/unit/fixtures/manifests/cluster.yaml', 'utf8');
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(fixture.length - 1), fc.constantFrom(' ', ':', '-', '\n', '[', '{', '"', '0', 'x', '&a', '*a', '\t')), { minLength: 1, maxLength: 4 }), (edits) => {
        let text = fixture;
        for (const [at, s] of edits) text = text.slice(0, at) + s + text.slice(at + 1);
        check(text);
      }),
      { numRuns: 200, seed: 42 },
    );
  });

  it('never throws anything but a ManifestError for arbitrary text', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200, unit: 'binary' }), (text) => check(text)),
      { numRuns: 300, seed: 3 },
    );
  });
});
