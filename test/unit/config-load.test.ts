// Loading: files, YAML and JSON text, ConfigError shape, and the `check` command's exit codes.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/load.ts';

const dir = mkdtempSync(join(tmpdir(), 'nodeplane-config-'));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function thrown(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('loads the examples', () => {
    expect(loadConfig('examples/node1.yaml').ports.map((p) => p.name)).toEqual(['pa', 'pb', 'up']);
    expect(loadConfig('examples/full.yaml').services.map((s) => `${s.namespace}/${s.name}`)).toEqual(['default/web']);
  });

  it('reads JSON as well as YAML', () => {
    const c = parseConfig('{"node": {"name": "n1"}, "bridges": [{"name": "br0"}]}', 'x.json');
    expect(c.bridges[0]!.ageingSeconds).toBe(300);
  });

  it('names the file when it cannot be read', () => {
    const e = thrown(() => loadConfig(join(dir, 'missing.yaml')));
    expect(e.errors).toEqual(['cannot read the file: no such file']);
    expect(e.message).toBe(`${join(dir, 'missing.yaml')}: cannot read the file: no such file`);
    expect(thrown(() => loadConfig(dir)).errors).toEqual(['cannot read the file: is a directory, not a file']);
  });

  it('gives YAML syntax errors with line and column', () => {
    const e = thrown(() => parseConfig('node:\n  name: n1\nbridges: [\n  { name: cni0\n', 'bad.yaml'));
    expect(e.errors.length).toBeGreaterThan(0);
    for (const line of e.errors) expect(line).toMatch(/^line \d+, column \d+: \S/);
    const dup = thrown(() => parseConfig('node:\n  name: n1\nnode:\n  name: n2\n', 'dup.yaml'));
    expect(dup.errors).toEqual(['line 3, column 1: Map keys must be unique']);
  });

  it('collects every error, each `path: message`, and prefixes the source in the message', () => {
    const e = thrown(() => parseConfig('node: {name: n1}\nports:\n  - {name: pa, bridge: cni1}\n  - {name: pb, bridge: cni2}\n', 'two.yaml'));
    expect(e.errors).toEqual(['ports[0].bridge: no bridge named cni1', 'ports[1].bridge: no bridge named cni2']);
    expect(e.message).toBe('two.yaml: ports[0].bridge: no bridge named cni1\ntwo.yaml: ports[1].bridge: no bridge named cni2');
    expect(thrown(() => parseConfig('', 'empty.yaml')).errors).toEqual(['(top level): the file is empty']);
  });
});

describe('nodeplane check', () => {
  const check = (path: string) => spawnSync('node', ['bin/nodeplane.js', 'check', '--config', path], { encoding: 'utf8' });

  it('exits 0 with a summary for a valid file', () => {
    const r = check('examples/node1.yaml');
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(
      'examples/node1.yaml: OK (1 bridge, 3 ports, 1 route, 0 neighbors, 0 services, 0 vxlan devices)\n' +
        'examples/node1.yaml: frame pool with offload: 136 MiB (pool.offloadSlots 2048 × 68 KiB), largest flood 3 copies, reserve 67, reads of up to 64 frames a round (full rounds)\n' +
        'examples/node1.yaml: frame pool without offload: 32 MiB (pool.slots 8192 × 4 KiB), largest flood 3 copies, reserve 67, reads of up to 64 frames a round (full rounds)\n',
    );
    expect(r.status).toBe(0);
  });

  const bridgeOf = (n: number, extra = ''): string =>
    `node: { name: n1 }\nbridges:\n  - { name: cni0, address: 10.244.0.1/16 }\nports:\n${Array.from({ length: n }, (_, i) => `  - { name: p${i}, bridge: cni0 }\n`).join('')}${extra}`;

  it('says what the frame pool gives 110 pods: the same memory, smaller read rounds with offload', () => {
    const r = check(file('pods110.yaml', bridgeOf(110)));
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[1]).toMatch(/with offload: 136 MiB .*largest flood 111 copies, reserve 175, reads of up to 16 frames a round \(full rounds of 64 need 7280 slots\)$/);
    expect(lines[2]).toMatch(/without offload: 32 MiB .*reads of up to 64 frames a round \(full rounds\)$/);
  });

  it('warns, and still exits 0, when the pool cannot hold the largest flood above its reserve', () => {
    const path = file('big.yaml', bridgeOf(1000, 'capture: { dir: /tmp/caps }\npool: { slots: 2000 }\n'));
    const r = check(path);
    expect(r.status).toBe(0);
    // A capture directory keeps offload off: only the 4 KiB pool is planned.
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(2);
    expect(r.stderr).toBe(
      `${path}: warning: pool.slots: 2000 slots are too few for this config: its largest flood is 1001 copies of a frame, and a read round ` +
        'needs room for one flood above a reserve of 1065 slots, 2067 in all (the drain slot included); with fewer, a flood copy or an ICMP ' +
        'error may find no free slot (counted as drops) — raise pool.slots to at least 2067\n',
    );
    expect(check(file('enough.yaml', bridgeOf(1000, 'capture: { dir: /tmp/caps }\npool: { slots: 2067 }\n'))).stderr).toBe('');
  });

  it('accepts a config with Services, and one with manifests, counting and noting what they give', () => {
    const path = file('svc.yaml', 'node: {name: n1}\nnat: {clusterCIDR: 10.244.0.0/16}\nservices:\n  - {name: web, clusterIP: 10.96.0.10, ports: [{port: 80}]}\n');
    const r = check(path);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/OK \(.*1 service,/);
    mkdirSync(join(dir, 'kube'), { recursive: true });
    writeFileSync(join(dir, 'kube', 'web.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.11, ports: [{port: 80}]}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n');
    const manifests = file('manifests.yaml', 'node: {name: n1}\nservices:\n  - {name: own, clusterIP: 10.96.0.10, ports: [{port: 80}]}\nmanifests: [kube/]\n');
    const m = check(manifests);
    expect(m.status).toBe(0);
    expect(m.stdout).toMatch(/OK \(.*2 services \(1 from manifests\),/);
    expect(m.stderr).toBe(`${join(dir, 'kube', 'web.yaml')}: note: 1 × ConfigMap objects left out (only Service v1 and EndpointSlice discovery.k8s.io/v1 are read)\n`);
  });

  it('exits 1 listing every problem for an invalid file', () => {
    const path = file('invalid.yaml', 'node: {name: n1}\nbridges:\n  - {name: cni0, ageing: 30}\nports:\n  - {name: pa, bridge: cni0, mtu: 10}\n');
    const r = check(path);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`${path}: bridges[0].ageing: unknown key\n${path}: ports[0].mtu: must be at least 68 (got 10)\n`);
  });

  it('exits 1 for a missing file and a YAML syntax error, without a stack trace', () => {
    const missing = check(join(dir, 'nope.yaml'));
    expect(missing.status).toBe(1);
    expect(missing.stderr).toBe(`${join(dir, 'nope.yaml')}: cannot read the file: no such file\n`);

    const path = file('syntax.yaml', 'node:\n  name: n1\n bridges: [\n');
    const syntax = check(path);
    expect(syntax.status).toBe(1);
    for (const line of syntax.stderr.trimEnd().split('\n')) expect(line).toMatch(new RegExp(`^${path.replace(/[.]/g, '\\.')}: line \\d+, column \\d+: `));
    expect(syntax.stderr).not.toMatch(/\bat \S+ \(|Error:|\.ts:\d+/);
  });
});
