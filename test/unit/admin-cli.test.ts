/**
 * `nodeplane show` as a user runs it: the real launcher in a child process, against an admin
 * server this test runs on a replayed dataplane; and against a socket nobody serves, which
 * gives one line on stderr, a non-zero exit and no stack trace.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatState } from '../../src/admin/format.ts';
import { NO_SERVICES } from '../../src/admin/services-state.ts';
import { startAdminServer, type AdminServer } from '../../src/admin/server.ts';
import { fdbState, neighState, routesState } from '../../src/admin/state.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Dataplane } from '../../src/dataplane/dataplane.ts';
import { replay } from '../../src/replay/replay.ts';

const BIN = fileURLToPath(new URL('../../bin/nodeplane.js', import.meta.url));
const fixtures = fileURLToPath(new URL('../../captures/replay/', import.meta.url));
const TMP = mkdtempSync(join(tmpdir(), 'nodeplane-show-'));
const SOCK = join(TMP, 'admin.sock');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function nodeplane(...args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

let dp: Dataplane;
let server: AdminServer;

beforeAll(async () => {
  const dir = join(fixtures, 'routed-arp');
  const inputs = readdirSync(dir)
    .filter((f) => f.endsWith('.pcap'))
    .sort()
    .map((f) => ({ port: f.replace(/\.pcap$/, ''), file: join(dir, f) }));
  dp = replay(loadConfig(join(fixtures, 'lab.yaml')), inputs, join(TMP, 'out'), 1).dataplane;
  server = await startAdminServer(dp, SOCK);
});

afterAll(async () => {
  await server?.close();
  rmSync(TMP, { recursive: true, force: true });
});

describe('nodeplane show', () => {
  it('prints the fdb as bridge fdb does', async () => {
    const r = await nodeplane('show', 'fdb', '--admin', SOCK);
    expect(r).toEqual({
      code: 0,
      stdout: '0a:58:0a:f4:01:01 dev cni0 master cni0 permanent\n0a:58:0a:f4:01:02 dev pa master cni0 age 1.1s\n',
      stderr: '',
    });
    expect(r.stdout).toBe(formatState('fdb', fdbState(dp)));
  });

  it('prints neigh and routes in their text forms, and JSON with --json', async () => {
    const neigh = await nodeplane('show', 'neigh', '--admin', SOCK);
    expect(neigh.stdout).toBe('192.168.50.1 dev up lladdr 02:00:00:00:50:01 REACHABLE\n10.9.0.2 dev slow lladdr 02:00:00:00:09:02 PERMANENT\n');
    const routes = await nodeplane('show', 'routes', '--admin', SOCK);
    expect(routes.stdout).toBe(formatState('routes', routesState(dp)));
    const json = await nodeplane('show', 'neigh', '--admin', SOCK, '--json');
    expect(json.code).toBe(0);
    expect(json.stdout).toBe(JSON.stringify(neighState(dp), null, 2) + '\n');
  });

  it('says that this node has no Services and tracks no connections, and exits non-zero', async () => {
    const services = await nodeplane('show', 'services', '--admin', SOCK);
    expect(services).toEqual({
      code: 1,
      stdout: '',
      stderr: `nodeplane: ${SOCK}: ${NO_SERVICES}\n`,
    });
    const conntrack = await nodeplane('show', 'conntrack', '--admin', SOCK, '--json');
    expect(conntrack).toEqual({
      code: 1,
      stdout: '',
      stderr: `nodeplane: ${SOCK}: connection tracking is off in this dataplane: its config has no nat, conntrack or services section\n`,
    });
  });

  it('says in one line on stderr that nothing runs at the socket, and exits non-zero', async () => {
    const missing = join(TMP, 'missing.sock');
    const r = await nodeplane('show', 'stats', '--admin', missing);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `nodeplane: cannot reach a running nodeplane at ${missing}: no such socket (is \`nodeplane run --admin ${missing}\` running?)\n`,
    );
  });
});
