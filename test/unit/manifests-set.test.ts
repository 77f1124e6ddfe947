// ManifestSet: Services from several files kept up to date file by file — slices in other
// files than their Service, clashes refused with the last good contents kept, only changed
// files parsed, directories read as kubectl -f reads them.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ManifestCache, ManifestSet } from '../../src/config/manifest-set.ts';
import type { ManifestFile } from '../../src/config/manifests.ts';
import { schemaCheck } from '../../src/config/load.ts';

const svc = (name: string, ip: string, nodePort?: number): string =>
  `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}}\nspec:\n  type: ${nodePort ? 'NodePort' : 'ClusterIP'}\n  clusterIP: ${ip}\n  ports: [{name: http, port: 80, targetPort: web${nodePort ? `, nodePort: ${nodePort}` : ''}}]\n`;
const slice = (name: string, service: string, ips: string[], port = 8080): string =>
  `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: ${name}, labels: {kubernetes.io/service-name: ${service}}}\naddressType: IPv4\nports: [{name: http, port: ${port}}]\nendpoints:\n${ips.map((ip) => `- {addresses: [${ip}], nodeName: n1}\n`).join('')}`;

/** A cache that records the files it really parses (a cache hit returns an object seen before). */
class CountingCache extends ManifestCache {
  parses: string[] = [];
  private readonly seen = new WeakSet<ManifestFile>();
  override parse(file: string, text: string): ManifestFile {
    const r = super.parse(file, text);
    if (!this.seen.has(r)) this.parses.push(file);
    this.seen.add(r);
    return r;
  }
}

const endpointsOf = (set: ManifestSet, name: string) => set.list().find((s) => s.name === name)?.endpoints.map((e) => e.ip);

describe('ManifestSet', () => {
  it('joins a Service with slices from other files, and follows each file alone', () => {
    const set = new ManifestSet([]);
    let r = set.update(new Map([['svc.yaml', svc('web', '10.96.0.10')], ['eps-1.yaml', slice('web-1', 'web', ['10.244.1.2'])]]));
    expect(r).toMatchObject({ applied: ['svc.yaml', 'eps-1.yaml'], errors: [], added: 1, removed: 0, updated: 0 });
    expect(set.list()[0]!.ports[0]!.targetPort).toBe(8080); // the named targetPort, from the other file's slice
    r = set.update(new Map([['eps-2.yaml', slice('web-2', 'web', ['10.244.2.2'])]]));
    expect(r).toMatchObject({ added: 0, removed: 0, updated: 1 });
    expect(endpointsOf(set, 'web')).toEqual(['10.244.1.2', '10.244.2.2']);
    r = set.update(new Map([['eps-1.yaml', null]]));
    expect(r).toMatchObject({ applied: ['eps-1.yaml'], updated: 1 });
    expect(endpointsOf(set, 'web')).toEqual(['10.244.2.2']);
    // The same text again: nothing changes, nothing counted.
    expect(set.update(new Map([['eps-2.yaml', slice('web-2', 'web', ['10.244.2.2'])]]))).toMatchObject({ applied: [], added: 0, removed: 0, updated: 0 });
    r = set.update(new Map([['svc.yaml', null]]));
    expect(r).toMatchObject({ removed: 1 });
    expect(set.list()).toEqual([]);
  });

  it('refuses a bad edit whole and keeps the file\'s last good contents', () => {
    const set = new ManifestSet([]);
    set.update(new Map([['a.yaml', `${svc('a', '10.96.0.1')}---\n${slice('a-1', 'a', ['10.244.0.1'])}`]]));
    const before = set.list();
    // The second document is fine, the first has a bad port: nothing of the file is taken.
    const r = set.update(new Map([['a.yaml', `${svc('a', '10.96.0.1').replace('port: 80', 'port: 0')}---\n${slice('a-1', 'a', ['10.244.0.1', '10.244.0.2'])}`]]));
    expect(r.errors).toEqual(['a.yaml:7: Service default/a: spec.ports[0].port: must be at least 1 (got 0)']);
    expect(r).toMatchObject({ applied: [], added: 0, removed: 0, updated: 0 });
    expect(set.list()).toEqual(before);
    expect(set.errors()).toEqual(r.errors);
    // Fixed: taken, and the error is gone.
    expect(set.update(new Map([['a.yaml', `${svc('a', '10.96.0.1')}---\n${slice('a-1', 'a', ['10.244.0.1', '10.244.0.2'])}`]]))).toMatchObject({ updated: 1, errors: [] });
    expect(set.errors()).toEqual([]);
  });

  it('refuses a file that defines again what another file or the config holds, and takes it once that is gone', () => {
    const parsed = schemaCheck({ node: { name: 'n1' }, services: [{ name: 'dns', namespace: 'kube-system', clusterIP: '10.96.0.53', ports: [{ port: 53, protocol: 'UDP' }] }] });
    if (!parsed.ok) throw new Error(parsed.errors.join('\n'));
    const own = parsed.config.services;
    const set = new ManifestSet(own);
    set.update(new Map([['one.yaml', svc('web', '10.96.0.10', 30080)]]));
    const r = set.update(
      new Map([
        ['two.yaml', svc('web', '10.96.0.11')],
        ['three.yaml', svc('other', '10.96.0.53')],
        ['four.yaml', svc('np', '10.96.0.12', 30080)],
      ]),
    );
    expect(r.errors).toEqual([
      'two.yaml:1: Service default/web: already defined by Service default/web (one.yaml:1)',
      'three.yaml:1: Service default/other: spec.clusterIP: 10.96.0.53 is already the address of services[0] of the config (kube-system/dns)',
      'four.yaml:1: Service default/np: spec.ports: nodePort 30080/TCP is already used by Service default/web (one.yaml:1)',
    ]);
    expect(set.list().map((s) => s.name)).toEqual(['web']); // the config's own are a source apart
    // web leaves one.yaml: two.yaml and four.yaml, refused for it, come in without being touched
    // (web is updated to two.yaml's address, np added).
    expect(set.update(new Map([['one.yaml', null]]))).toMatchObject({ applied: ['one.yaml', 'two.yaml', 'four.yaml'], added: 1, removed: 0, updated: 1, errors: [] });
    expect(set.list().map((s) => `${s.name} ${s.clusterIP}`)).toEqual(['web 10.96.0.11', 'np 10.96.0.12']);
    expect(set.errors()).toEqual([expect.stringMatching(/^three\.yaml:1: /)]);
  });

  it('takes a Service moving from one file to another in one update', () => {
    const set = new ManifestSet([]);
    set.update(new Map([['b.yaml', svc('web', '10.96.0.10')]]));
    const r = set.update(new Map([['a.yaml', svc('web', '10.96.0.10')], ['b.yaml', '']]));
    expect(r).toMatchObject({ errors: [], applied: ['b.yaml', 'a.yaml'], added: 0, removed: 0, updated: 0 });
    expect(set.list().map((s) => s.name)).toEqual(['web']);
  });

  it('parses only the files that changed, whatever the number of Services', () => {
    const cache = new CountingCache();
    const set = new ManifestSet([], cache);
    const big = Array.from({ length: 2000 }, (_, i) => svc(`s${i}`, `10.96.${Math.floor(i / 250)}.${(i % 250) + 1}`)).join('---\n');
    set.update(new Map([['big.yaml', big], ['eps.yaml', slice('s7-1', 's7', ['10.244.0.7'])]]));
    expect(set.manifestServices).toBe(2000);
    cache.parses = [];
    const before = set.list();
    const r = set.update(new Map([['big.yaml', big], ['eps.yaml', slice('s7-1', 's7', ['10.244.0.7', '10.244.0.8'])]]));
    expect(cache.parses).toEqual(['eps.yaml']);
    expect(r).toMatchObject({ updated: 1, added: 0, removed: 0 });
    expect(endpointsOf(set, 's7')).toEqual(['10.244.0.7', '10.244.0.8']);
    // Every other Service is the same object as before: the service table skips it by identity.
    const after = set.list();
    expect(after.filter((s, i) => s !== before[i]).map((s) => s.name)).toEqual(['s7']);
  });

  it('reads directories as kubectl -f does: .yaml, .yml and .json files, not subdirectories, links followed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nodeplane-manifests-'));
    try {
      writeFileSync(join(dir, 'a.yaml'), svc('a', '10.96.0.1'));
      writeFileSync(join(dir, 'b.yml'), svc('b', '10.96.0.2'));
      writeFileSync(join(dir, 'c.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'c' }, spec: { clusterIP: '10.96.0.3', ports: [{ port: 80 }] } }));
      writeFileSync(join(dir, 'notes.txt'), 'not: [yaml');
      writeFileSync(join(dir, 'a.yaml~'), 'not: [yaml');
      mkdirSync(join(dir, 'sub'));
      writeFileSync(join(dir, 'sub', 'd.yaml'), svc('d', '10.96.0.4'));
      symlinkSync('user@host.1234:1700000000', join(dir, '.#a.yaml')); // an editor's lock: a dangling link
      const set = new ManifestSet([]);
      const r = set.load([dir]);
      expect(r.errors).toEqual([]);
      expect(set.list().map((s) => s.name)).toEqual(['a', 'b', 'c']);
      expect(new ManifestSet([]).load([join(dir, 'missing.yaml')]).errors).toEqual([`${join(dir, 'missing.yaml')}: no such file or directory`]);
      // A file removed since: its Services go.
      rmSync(join(dir, 'b.yml'));
      expect(set.refresh([dir])).toMatchObject({ removed: 1, applied: [join(dir, 'b.yml')] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
