/**
 * Manifests from the command line, through the real launcher in a child process: `check` and
 * `run` name a bad manifest's file, line and field and exit 1 without a stack trace, and
 * `nodeplane manifests reload` asks a running dataplane (an admin server this test runs) to
 * read its manifests again, reporting what changed and what was refused.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { startAdminServer } from '../../src/admin/server.ts';
import { parseConfig } from '../../src/config/load.ts';
import { ManifestSet } from '../../src/config/manifest-set.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import { manifestServicesOf } from '../../src/dataplane/apply-services.ts';
import { LiveManifests } from '../../src/dataplane/live-manifests.ts';

const BIN = fileURLToPath(new URL('../../bin/nodeplane.js', import.meta.url));
const TMP = mkdtempSync(join(tmpdir(), 'nodeplane-manifests-cli-'));

function nodeplane(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

function file(name: string, text: string): string {
  const path = join(TMP, name);
  writeFileSync(path, text);
  return path;
}

const svc = (port: number, endpoints = ''): string =>
  `apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  clusterIP: 10.96.0.10\n  ports:\n  - name: http\n    port: ${port}\n${endpoints}`;

afterAll(() => rmSync(TMP, { recursive: true, force: true }));

describe('a bad manifest at start', () => {
  // Paths in `manifests:` are relative to the config file's directory.
  const config = file('node.yaml', 'node: { name: n1 }\nmanifests: [web.yaml]\n');
  file('web.yaml', svc(70000));
  const expected = `${join(TMP, 'web.yaml')}:9: Service default/web: spec.ports[0].port: must be at most 65535 (got 70000)`;

  it('check names its file, line and field, and exits 1', async () => {
    const r = await nodeplane('check', '--config', config);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n')).toContain(expected);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('run refuses to start with the same message, before opening any device', async () => {
    const r = await nodeplane('run', '--config', config, '--admin', join(TMP, 'never.sock'));
    expect(r.code).toBe(1);
    // The message as check prints it, after `nodeplane: ` when it is the first line.
    expect(r.stderr.split('\n').map((l) => l.replace(/^nodeplane: /, ''))).toContain(expected);
    expect(r.stderr).toMatch(/^nodeplane: /);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('check names a manifest path that does not exist', async () => {
    const r = await nodeplane('check', '--config', file('missing.yaml', 'node: { name: n1 }\nmanifests: [nowhere/]\n'));
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')).toContain(`${join(TMP, 'nowhere/')}: no such file or directory`);
  });
});

describe('nodeplane manifests reload', () => {
  it('reads the manifests again, says what changed, and exits 1 while a file is refused', async () => {
    const manifest = file('live.yaml', svc(80));
    const set = new ManifestSet([]);
    expect(set.load([manifest]).errors).toEqual([]);
    // Connection tracking on, as a config with manifests has it: the service table needs it.
    const dp = new Dataplane(parseConfig('node: { name: n1 }\nconntrack: {}\n', 'test'), { clock: new VirtualClock() });
    const live = new LiveManifests(dp, { manifests: set, manifestPaths: [manifest] }, { log: pino({ level: 'silent' }) });
    const sock = join(TMP, 'admin.sock');
    const server = await startAdminServer(dp, sock, { reloadManifests: () => live.reload() });
    try {
      let r = await nodeplane('manifests', 'reload', '--admin', sock);
      expect(r).toEqual({ code: 0, stdout: 'manifests: 1 file, 1 service; this reload: 0 added, 0 removed, 0 updated\n', stderr: '' });

      writeFileSync(manifest, svc(81));
      r = await nodeplane('manifests', 'reload', '--admin', sock);
      expect(r).toEqual({ code: 0, stdout: 'manifests: 1 file, 1 service; this reload: 0 added, 0 removed, 1 updated\n', stderr: '' });
      // Handed to the dataplane through the apply seam.
      expect(manifestServicesOf(dp).map((s) => s.ports[0]!.port)).toEqual([81]);

      writeFileSync(manifest, svc(81).replace('port: 81', 'port: 81\n    protocol: SCTP'));
      r = await nodeplane('manifests', 'reload', '--admin', sock, '--json');
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stdout)).toEqual({
        files: 1,
        services: 1,
        added: 0,
        removed: 0,
        updated: 0,
        errors: [`${manifest}:10: Service default/web: spec.ports[0].protocol: SCTP is not supported: nodeplane translates TCP and UDP Service ports only`],
      });
      expect(manifestServicesOf(dp).map((s) => s.ports[0]!.port)).toEqual([81]); // the last good state stays
    } finally {
      await server.close();
    }
  });

  it('says so when the dataplane reads no manifests', async () => {
    const dp = new Dataplane(parseConfig('node: { name: n1 }\n', 'test'), { clock: new VirtualClock() });
    const sock = join(TMP, 'admin2.sock');
    const server = await startAdminServer(dp, sock);
    try {
      const r = await nodeplane('manifests', 'reload', '--admin', sock);
      expect(r).toEqual({ code: 1, stdout: '', stderr: `nodeplane: ${sock}: this dataplane does not read manifests\n` });
    } finally {
      await server.close();
    }
  });
});
