// Live manifests on a real filesystem: an edit is applied within a second, a bad edit keeps
// the last good Services, an editor's save by rename is seen, removed files take their
// Services with them, and an explicit reload reports what changed.
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManifestSet } from '../../src/config/manifest-set.ts';
import type { ServiceConfig } from '../../src/config/types.ts';
import type { Dataplane } from '../../src/dataplane/dataplane.ts';
import { LiveManifests } from '../../src/dataplane/live-manifests.ts';

const svc = (name: string, ip: string, endpoints: string[] = []): string =>
  `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}}\nspec: {clusterIP: ${ip}, ports: [{port: 80}]}\n` +
  (endpoints.length === 0
    ? ''
    : `---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: ${name}-1, labels: {kubernetes.io/service-name: ${name}}}\naddressType: IPv4\nports: [{port: 80}]\nendpoints:\n${endpoints.map((e) => `- addresses: [${e}]\n`).join('')}`);

interface Harness {
  live: LiveManifests;
  applied: ServiceConfig[][];
  logs: { msg: string; [k: string]: unknown }[];
}

let dir: string;
let harness: Harness | null = null;

/** LiveManifests over `paths` (loaded as at start), recording what it applies and logs. */
function start(paths: string[]): Harness {
  const logs: Harness['logs'] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const set = new ManifestSet([]);
  const loaded = set.load(paths);
  expect(loaded.errors).toEqual([]);
  const applied: ServiceConfig[][] = [];
  const live = new LiveManifests({} as Dataplane, { manifests: set, manifestPaths: paths }, { log, apply: (s) => applied.push(s) });
  live.start();
  // Starting applies the Services as loaded; the tests look at what comes after.
  expect(applied.length).toBe(1);
  applied.length = 0;
  harness = { live, applied, logs };
  return harness;
}

/** Waits until `cond` holds, at most `ms`; how long it took. */
async function within(ms: number, cond: () => boolean): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - t0;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const last = (h: Harness) => h.applied.at(-1)!;
const names = (list: ServiceConfig[]) => list.map((s) => `${s.name}:${s.endpoints.map((e) => e.ip).join(',')}`);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nodeplane-watch-'));
});

afterEach(() => {
  harness?.live.close();
  harness = null;
  rmSync(dir, { recursive: true, force: true });
});

describe('LiveManifests', () => {
  it('applies an edited file within a second and logs what changed', async () => {
    const file = join(dir, 'web.yaml');
    writeFileSync(file, svc('web', '10.96.0.10', ['10.244.1.2']));
    const h = start([file]);
    await sleep(50); // let inotify settle before the edit
    writeFileSync(file, svc('web', '10.96.0.10', ['10.244.1.2', '10.244.1.3']));
    const took = await within(1000, () => h.applied.length === 1);
    expect(took).toBeLessThan(1000);
    expect(names(last(h))).toEqual(['web:10.244.1.2,10.244.1.3']);
    expect(h.logs.find((l) => l.msg === 'manifests applied')).toMatchObject({ added: 0, removed: 0, updated: 1, services: 1, files: [file] });
  });

  it('keeps the last good Services when an edit is bad, and takes the fix', async () => {
    const file = join(dir, 'web.yaml');
    writeFileSync(file, svc('web', '10.96.0.10', ['10.244.1.2']));
    const h = start([dir]);
    await sleep(50);
    writeFileSync(file, svc('web', '10.96.0.10', ['10.244.1.2']).replace('port: 80}]}', 'port: 80, protocol: SCTP}]}'));
    await within(1000, () => h.logs.some((l) => l.msg.startsWith('manifest file refused')));
    expect(h.logs.find((l) => l.msg.startsWith('manifest file refused'))!.errors).toEqual([
      `${file}:4: Service default/web: spec.ports[0].protocol: SCTP is not supported: nodeplane translates TCP and UDP Service ports only`,
    ]);
    expect(h.applied).toEqual([]); // nothing handed to the dataplane: the running Services stay
    expect(h.live.reload()).toMatchObject({ files: 1, services: 1, added: 0, removed: 0, updated: 0, errors: [expect.stringContaining('SCTP')] });
    writeFileSync(file, svc('web', '10.96.0.11', ['10.244.1.2']));
    await within(1000, () => h.applied.length === 1);
    expect(last(h)[0]!.clusterIP).toBe('10.96.0.11');
    expect(h.live.reload().errors).toEqual([]);
  });

  it('sees an editor save by writing a new file and renaming it over the old one, twice', async () => {
    const file = join(dir, 'web.yaml');
    writeFileSync(file, svc('web', '10.96.0.10'));
    const h = start([file]);
    await sleep(50);
    for (const [i, ep] of ['10.244.1.7', '10.244.1.8'].entries()) {
      const tmp = join(dir, `.web.yaml.swp${i}`);
      writeFileSync(tmp, svc('web', '10.96.0.10', [ep]));
      renameSync(tmp, file);
      await within(1000, () => h.applied.length === i + 1);
      expect(names(last(h))).toEqual([`web:${ep}`]);
    }
  });

  it('follows files added to and removed from a listed directory', async () => {
    writeFileSync(join(dir, 'a.yaml'), svc('a', '10.96.0.1'));
    const h = start([dir]);
    await sleep(50);
    writeFileSync(join(dir, 'b.yml'), svc('b', '10.96.0.2'));
    writeFileSync(join(dir, 'ignored.txt'), 'not: [yaml');
    await within(1000, () => h.applied.length === 1);
    expect(names(last(h))).toEqual(['a:', 'b:']);
    rmSync(join(dir, 'a.yaml'));
    await within(1000, () => h.applied.length === 2);
    expect(names(last(h))).toEqual(['b:']);
    expect(h.logs.filter((l) => l.msg === 'manifests applied').map((l) => [l.added, l.removed])).toEqual([
      [1, 0],
      [0, 1],
    ]);
  });

  it('follows a listed directory replaced by another (a ConfigMap volume swaps a link the same way)', async () => {
    const data = join(dir, 'data');
    mkdirSync(data);
    writeFileSync(join(data, 'a.yaml'), svc('a', '10.96.0.1'));
    const h = start([data]);
    await sleep(50);
    const next = join(dir, 'data.new');
    mkdirSync(next);
    writeFileSync(join(next, 'a.yaml'), svc('a', '10.96.0.1', ['10.244.0.9']));
    rmSync(data, { recursive: true });
    renameSync(next, data);
    await within(1000, () => h.applied.length === 1);
    expect(names(last(h))).toEqual(['a:10.244.0.9']);
    // The new directory is watched: an edit inside it is seen.
    writeFileSync(join(data, 'a.yaml'), svc('a', '10.96.0.1', ['10.244.0.10']));
    await within(1000, () => h.applied.length === 2);
    expect(names(last(h))).toEqual(['a:10.244.0.10']);
  });

  it('takes the manifests of a reloaded config: applies them and watches their paths instead', async () => {
    const a = join(dir, 'a.yaml');
    const b = join(dir, 'b.yaml');
    writeFileSync(a, svc('a', '10.96.0.1'));
    writeFileSync(b, svc('b', '10.96.0.2'));
    const h = start([a]);
    const next = new ManifestSet([]);
    expect(next.load([b]).errors).toEqual([]);
    h.live.adopt({ manifests: next, manifestPaths: [b] });
    expect(names(last(h))).toEqual(['b:']);
    await sleep(50);
    writeFileSync(a, svc('a', '10.96.0.1', ['10.244.0.1'])); // no longer listed: not read
    writeFileSync(b, svc('b', '10.96.0.2', ['10.244.0.2']));
    await within(1000, () => h.applied.length === 2);
    await sleep(200);
    expect(h.applied.length).toBe(2);
    expect(names(last(h))).toEqual(['b:10.244.0.2']);
    // A config without manifests any more: its Services go, nothing is watched.
    h.live.adopt({ manifests: new ManifestSet([]), manifestPaths: [] });
    expect(last(h)).toEqual([]);
  });

  it('gathers a burst of writes into one read', async () => {
    const file = join(dir, 'web.yaml');
    writeFileSync(file, svc('web', '10.96.0.10'));
    const h = start([file]);
    await sleep(50);
    for (let i = 1; i <= 5; i++) {
      writeFileSync(file, svc('web', '10.96.0.10', Array.from({ length: i }, (_, k) => `10.244.0.${k + 1}`)));
      await sleep(5);
    }
    await within(1000, () => h.applied.length >= 1);
    await sleep(300);
    expect(h.applied.length).toBe(1);
    expect(last(h)[0]!.endpoints.length).toBe(5);
  });
});
