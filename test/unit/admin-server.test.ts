/**
 * Admin server and client: a round trip over a unix socket in a temporary directory, the
 * error answers, the socket file's life cycle (mode, stale file, live server, close).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fetchState } from '../../src/admin/client.ts';
import { startAdminServer } from '../../src/admin/server.ts';
import { NO_SERVICES } from '../../src/admin/services-state.ts';
import { fdbState, neighState, routesState, statsState } from '../../src/admin/state.ts';
import { UserError } from '../../src/user-error.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Dataplane } from '../../src/dataplane/dataplane.ts';
import { replay } from '../../src/replay/replay.ts';

const fixtures = fileURLToPath(new URL('../../captures/replay/', import.meta.url));

function replayed(name: string): Dataplane {
  const dir = join(fixtures, name);
  const inputs = readdirSync(dir)
    .filter((f) => f.endsWith('.pcap'))
    .sort()
    .map((f) => ({ port: f.replace(/\.pcap$/, ''), file: join(dir, f) }));
  const out = mkdtempSync(join(tmpdir(), 'nodeplane-admin-'));
  try {
    return replay(loadConfig(join(fixtures, 'lab.yaml')), inputs, out, 1).dataplane;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

function raw(socketPath: string, path: string, method = 'GET'): Promise<{ status: number; type: string; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end();
  });
}

let dir: string;
let sock: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nodeplane-admin-sock-'));
  sock = join(dir, 'admin.sock');
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('admin server and client', () => {
  it('serves every table as JSON, says which this config has not, answers unknown paths with 404 and removes its socket on close', async () => {
    const dp = replayed('routed-arp');
    const server = await startAdminServer(dp, sock, { portStatus: () => [{ name: 'up', downReason: '', tap: null }] });
    try {
      expect(lstatSync(sock).isSocket()).toBe(true);
      expect(statSync(sock).mode & 0o777).toBe(0o660);

      // What arrives is exactly the snapshot, after a trip through JSON.
      expect(await fetchState(sock, 'fdb')).toEqual(fdbState(dp));
      expect(await fetchState(sock, 'neigh')).toEqual(neighState(dp));
      expect(await fetchState(sock, 'routes')).toEqual(routesState(dp));
      expect(await fetchState(sock, 'stats')).toEqual(statsState(dp));
      const ports = (await fetchState(sock, 'ports')) as { ports: { name: string; driver?: unknown }[]; rxOverruns: number };
      expect(ports.ports.map((p) => p.name)).toEqual(['pa', 'pb', 'pc', 'up', 'slow']);
      expect(ports.ports[3].driver).toEqual({ downReason: '', tap: null });
      expect(ports.ports[0].driver).toBeUndefined();
      // No fake empty tables for what the dataplane does not have (yet, or in this config).
      const services = await raw(sock, '/v1/services');
      expect(services).toMatchObject({ status: 409, body: { error: NO_SERVICES } });
      expect(await raw(sock, '/v1/conntrack/stats')).toMatchObject({
        status: 409,
        body: { error: 'connection tracking is off in this dataplane: its config has no nat, conntrack or services section' },
      });
      const graph = (await fetchState(sock, 'graph')) as { edges: string[] };
      expect(graph.edges).toEqual(dp.graph.describe());

      // Built on request: a change in the tables shows in the next answer.
      dp.setPortUp(dp.portIndex('pa'), false);
      expect(((await fetchState(sock, 'fdb')) as { entries: unknown[] }).entries).toHaveLength(1);

      const ok = await raw(sock, '/v1/neigh?x=1');
      expect(ok.status).toBe(200);
      expect(ok.type).toBe('application/json');
      const missing = await raw(sock, '/v1/nothing');
      expect(missing.status).toBe(404);
      expect(missing.body).toMatchObject({ error: 'no such endpoint: /v1/nothing' });
      expect((missing.body as { endpoints: string[] }).endpoints).toEqual(expect.arrayContaining(['/v1/conntrack', '/v1/conntrack/stats', '/v1/conntrack/events']));
      expect((await raw(sock, '/')).status).toBe(404);
      expect((await raw(sock, '/v1/fdb', 'POST')).status).toBe(405);
      await expect(fetchState(sock, 'nothing')).rejects.toThrow(new UserError(`${sock}: no such endpoint: /v1/nothing`));
    } finally {
      await server.close();
    }
    expect(existsSync(sock)).toBe(false);
    await server.close();
  });

  it('says how to start nodeplane when nothing serves the socket', async () => {
    const err = await fetchState(sock, 'fdb').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(
      `cannot reach a running nodeplane at ${sock}: no such socket (is \`nodeplane run --admin ${sock}\` running?)`,
    );
  });

  it('replaces a stale socket file, and then says connection refused no more', async () => {
    // A process that dies without closing leaves its socket file behind.
    const r = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(r.signal).toBe('SIGKILL');
    expect(lstatSync(sock).isSocket()).toBe(true);
    const err = await fetchState(sock, 'fdb').catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      `cannot reach a running nodeplane at ${sock}: connection refused (is \`nodeplane run --admin ${sock}\` running?)`,
    );
    const server = await startAdminServer(replayed('flood-learn'), sock);
    try {
      expect(((await fetchState(sock, 'fdb')) as { entries: unknown[] }).entries).toHaveLength(3);
    } finally {
      await server.close();
    }
  });

  it('refuses a socket a live server answers on, and a path that is not a socket', async () => {
    const dp = replayed('flood-learn');
    const first = await startAdminServer(dp, sock);
    try {
      await expect(startAdminServer(dp, sock)).rejects.toThrow(/already listening/);
      expect(await fetchState(sock, 'fdb')).toEqual(fdbState(dp));
    } finally {
      await first.close();
    }
    const file = join(dir, 'not-a-socket');
    writeFileSync(file, 'precious');
    await expect(startAdminServer(dp, file)).rejects.toThrow(/not a socket/);
    expect(readFileSync(file, 'utf8')).toBe('precious');
  });
});
