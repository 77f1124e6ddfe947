/**
 * Metrics: `run --metrics ADDR:PORT` serves Prometheus' text format over HTTP (GET /metrics),
 * through prom-client. Every value is read from the dataplane's own counters when scraped —
 * nothing is counted per packet for it:
 *
 *   nodeplane_port_{rx,tx}_{packets,bytes}_total{port}, nodeplane_port_{rx,tx}_dropped_total{port}
 *   nodeplane_port_rx_batches_total{port}     TAP read rounds that returned frames
 *   nodeplane_rx_frames_per_batch{port}       frames per read round since start
 *   nodeplane_stage_packets_total{stage}
 *   nodeplane_drops_total{stage,reason}       reason = the drop reason id (drop-reason.ts)
 *   nodeplane_{fdb,neigh,conntrack}_entries   table occupancy (conntrack when tracking is on)
 *   nodeplane_capture_ring_drops_total        records a full capture ring did not write
 *   nodeplane_eventloop_delay_{p50,p99,max}_seconds   the packet thread's event-loop delay
 *
 * Loopback by default: `--metrics 9464` listens on 127.0.0.1:9464.
 */
import { createServer, type Server } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Dataplane } from '../dataplane/dataplane.ts';
import type { PortDriverStatus } from './state.ts';

export interface MetricsSources {
  /** What the port drivers report (TAP read rounds), by port name. */
  portStatus?: () => readonly PortDriverStatus[];
  /** Ring drops of the capture, when one runs. */
  captureRingDrops?: () => number | null;
}

/** `PORT`, `:PORT` or `ADDR:PORT` → host and port (host 127.0.0.1 when absent). */
export function parseListen(spec: string): { host: string; port: number } {
  const m = /^(?:(.*):)?(\d+)$/.exec(spec.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port > 0 && port < 65536)) throw new Error(`--metrics ${spec}: expected ADDR:PORT or PORT`);
  const host = m[1] === undefined || m[1] === '' ? '127.0.0.1' : m[1].replace(/^\[(.*)\]$/, '$1');
  return { host, port };
}

/** A registry whose metrics read `dp` on every scrape. */
export function dataplaneRegistry(dp: Dataplane, src: MetricsSources = {}): Registry {
  const register = new Registry();
  const { ports } = dp.ctx;
  const perPort = (name: string, help: string, read: (p: number) => number): void => {
    new Counter({
      name,
      help,
      labelNames: ['port'],
      registers: [register],
      collect() {
        this.reset();
        for (let p = 0; p < ports.count; p++) this.inc({ port: ports.names[p] }, read(p));
      },
    });
  };
  perPort('nodeplane_port_rx_packets_total', 'Frames received on the port.', (p) => ports.rxFrames[p]);
  perPort('nodeplane_port_rx_bytes_total', 'Bytes received on the port.', (p) => ports.rxBytes[p]);
  perPort('nodeplane_port_rx_dropped_total', 'Frames the port had for the dataplane, dropped for want of a frame slot.', (p) => ports.rxNoBuffer[p]);
  perPort('nodeplane_port_tx_packets_total', 'Frames transmitted on the port.', (p) => ports.txFrames[p]);
  perPort('nodeplane_port_tx_bytes_total', 'Bytes transmitted on the port.', (p) => ports.txBytes[p]);
  perPort('nodeplane_port_tx_dropped_total', 'Frames the port driver could not send.', (p) => ports.txDrops[p]);

  const tapStats = (): Map<string, { rxFrames: number; rxBatches: number }> => {
    const out = new Map<string, { rxFrames: number; rxBatches: number }>();
    for (const s of src.portStatus?.() ?? []) {
      const tap = s.tap as { rxFrames?: number; rxBatches?: number } | null | undefined;
      if (tap && typeof tap.rxBatches === 'number') out.set(s.name, { rxFrames: tap.rxFrames ?? 0, rxBatches: tap.rxBatches });
    }
    return out;
  };
  new Counter({
    name: 'nodeplane_port_rx_batches_total',
    help: 'Read rounds of the port that returned frames.',
    labelNames: ['port'],
    registers: [register],
    collect() {
      this.reset();
      for (const [port, s] of tapStats()) this.inc({ port }, s.rxBatches);
    },
  });
  new Gauge({
    name: 'nodeplane_rx_frames_per_batch',
    help: 'Frames per read round of the port since start.',
    labelNames: ['port'],
    registers: [register],
    collect() {
      this.reset();
      for (const [port, s] of tapStats()) this.set({ port }, s.rxBatches > 0 ? s.rxFrames / s.rxBatches : 0);
    },
  });
  new Counter({
    name: 'nodeplane_stage_packets_total',
    help: 'Frames each stage of the graph processed.',
    labelNames: ['stage'],
    registers: [register],
    collect() {
      this.reset();
      for (const s of dp.graph.stages) this.inc({ stage: s.name }, s.packets);
    },
  });
  new Counter({
    name: 'nodeplane_drops_total',
    help: 'Frames dropped, by stage and drop reason id.',
    labelNames: ['stage', 'reason'],
    registers: [register],
    collect() {
      this.reset();
      for (const s of dp.graph.stages) s.dropReasons.forEach((r, i) => this.inc({ stage: s.name, reason: r.id }, s.drops[i]));
      this.inc({ stage: 'graph', reason: 'graph.round-limit' }, dp.graph.roundLimitDrops);
    },
  });
  const gauge = (name: string, help: string, read: () => number | null): void => {
    new Gauge({
      name,
      help,
      registers: [register],
      collect() {
        const v = read();
        if (v !== null) this.set(v);
      },
    });
  };
  gauge('nodeplane_fdb_entries', 'Entries of the bridges\' forwarding databases.', () => dp.ctx.fdb.size);
  gauge('nodeplane_neigh_entries', 'Entries of the neighbour (ARP) table.', () => dp.ctx.neigh.size);
  if (dp.ctx.conntrack !== null) {
    const ct = dp.ctx.conntrack;
    gauge('nodeplane_conntrack_entries', 'Entries of the connection tracking table.', () => ct.count);
    gauge('nodeplane_conntrack_max', 'Entries the connection tracking table may hold.', () => dp.config.conntrack.max);
  }
  if (src.captureRingDrops) {
    const read = src.captureRingDrops;
    new Counter({
      name: 'nodeplane_capture_ring_drops_total',
      help: 'Capture records not written because the writer ring was full.',
      registers: [register],
      collect() {
        this.reset();
        this.inc(read() ?? 0);
      },
    });
  }
  // Event-loop delay, as Node measures it (perf_hooks), in seconds: the packet thread's stalls.
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  for (const [suffix, read] of [
    ['p50', () => delay.percentile(50)],
    ['p99', () => delay.percentile(99)],
    ['max', () => delay.max],
  ] as const) {
    gauge(`nodeplane_eventloop_delay_${suffix}_seconds`, `Event-loop delay of the packet thread since start, ${suffix} (perf_hooks.monitorEventLoopDelay).`, () => read() / 1e9);
  }
  return register;
}

/** Serves `register` on host:port; resolves once listening. */
export async function startMetricsServer(register: Registry, host: string, port: number): Promise<{ close(): Promise<void>; address: string }> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    register.metrics().then(
      (text) => res.writeHead(200, { 'content-type': register.contentType }).end(text),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    address: `${host}:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
