/**
 * Prometheus metrics (src/admin/metrics.ts): a replayed dataplane scraped over HTTP; Prometheus'
 * own `promtool check metrics` accepts the text, and the counters match what `show stats` and
 * `show ports` report.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { dataplaneRegistry, parseListen, startMetricsServer } from '../../src/admin/metrics.ts';
import { portsState, statsState } from '../../src/admin/state.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Dataplane } from '../../src/dataplane/dataplane.ts';
import { replay } from '../../src/replay/replay.ts';
import { inCI } from '../helpers/tshark.ts';

const fixtures = fileURLToPath(new URL('../../captures/replay/', import.meta.url));

function replayed(names: string[]): Dataplane {
  const config = loadConfig(join(fixtures, 'lab.yaml'));
  const out = mkdtempSync(join(tmpdir(), 'nodeplane-metrics-'));
  try {
    // The last case's dataplane.
    let dp: Dataplane | undefined;
    for (const name of names) {
      const dir = join(fixtures, name);
      const inputs = readdirSync(dir)
        .filter((f) => f.endsWith('.pcap'))
        .map((f) => ({ port: f.replace(/\.pcap$/, ''), file: join(dir, f) }));
      dp = replay(config, inputs, out, 1).dataplane;
    }
    return dp!;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}

/** The value of one sample line `name{labels} value`. */
function sample(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  if (line === undefined) throw new Error(`no sample ${name}{${labels}}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

const promtool = spawnSync('sh', ['-c', 'command -v promtool']).status === 0;
if (!promtool && !inCI()) console.log('promtool check skipped: promtool is not installed (Debian: prometheus)');

describe('metrics', () => {
  it('parses ADDR:PORT, loopback when only a port is given', () => {
    expect(parseListen('9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseListen(':9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseListen('0.0.0.0:80')).toEqual({ host: '0.0.0.0', port: 80 });
    expect(parseListen('[::1]:9464')).toEqual({ host: '::1', port: 9464 });
    expect(() => parseListen('localhost')).toThrow(/ADDR:PORT/);
  });

  it('serves Prometheus text that promtool accepts, counters matching show stats and show ports', async () => {
    const dp = replayed(['malformed']);
    const register = dataplaneRegistry(dp);
    const text = await register.metrics();
    const stats = statsState(dp);
    const ports = portsState(dp);
    // Every stage's drop counters, by reason id, as show stats has them.
    let checked = 0;
    for (const st of stats.stages) {
      for (const [id, n] of Object.entries(st.drops)) {
        expect(sample(text, 'nodeplane_drops_total', `stage="${st.name}",reason="${id}"`)).toBe(n);
        checked++;
      }
      expect(sample(text, 'nodeplane_stage_packets_total', `stage="${st.name}"`)).toBe(st.packets);
    }
    expect(checked).toBeGreaterThan(20);
    const ttl = await dataplaneRegistry(replayed(['ttl-expiry'])).metrics();
    expect(sample(ttl, 'nodeplane_drops_total', 'stage="icmp-error",reason="ip4.ttl-expired"')).toBeGreaterThan(0);
    expect(sample(text, 'nodeplane_drops_total', 'stage="ip4-input",reason="ip4.bad-checksum"')).toBe(1);
    for (const p of ports.ports) {
      expect(sample(text, 'nodeplane_port_rx_packets_total', `port="${p.name}"`)).toBe(p.rx.packets);
      expect(sample(text, 'nodeplane_port_tx_bytes_total', `port="${p.name}"`)).toBe(p.tx.bytes);
    }
    expect(text).toMatch(/^nodeplane_fdb_entries \d+$/m);
    expect(text).toMatch(/^nodeplane_eventloop_delay_p99_seconds /m);
    if (promtool || inCI()) {
      const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
      expect(r.status, `promtool: ${r.stdout}${r.stderr}`).toBe(0);
    }
  });

  it('answers GET /metrics over HTTP and 404 elsewhere', async () => {
    const dp = replayed(['ping-gateway']);
    // Pick a free port by listening on 0 through node:net, then serve there.
    const { createServer } = await import('node:net');
    const free = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const a = s.address();
        s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
      });
    });
    const server = await startMetricsServer(dataplaneRegistry(dp), '127.0.0.1', free);
    try {
      const ok = await get(free, '/metrics');
      expect(ok.status).toBe(200);
      expect(ok.body).toContain('nodeplane_port_rx_packets_total{port="pa"}');
      expect((await get(free, '/')).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});
