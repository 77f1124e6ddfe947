/**
 * `nodeplane run`: the dataplane live on TAP devices (SPEC §1), until SIGINT/SIGTERM.
 *
 * Opens one TAP per port in the current network namespace, starts captures and the admin
 * socket, then lets the addon's readiness callbacks drive the graph; a 100 ms tick fires
 * timers (ARP retries, ageing) when no traffic does, and starts work done in steps (a
 * Service UDP cleanup), which then runs one step per turn of the event loop. On SIGHUP it reads the config file
 * (and its manifests) again and applies it live, or — if it is invalid or changes what needs
 * a restart — logs why and keeps running as it was. The manifest files are watched, and read
 * again when they change or `nodeplane manifests reload` asks (live-manifests.ts). Ports come
 * and go through the admin socket (`nodeplane port add|del`, the CNI plugin: live-ports.ts);
 * a reload leaves them alone. On SIGINT/SIGTERM it stops reading, flushes captures,
 * closes the devices and exits 0.
 *
 * In cluster mode (`cluster:` in the config) the node first joins through etcd — waiting for
 * it if it cannot be reached — and builds the dataplane only once its lease is known, since
 * addresses come from the lease (cluster/cluster-node.ts); the watch then changes the vxlan
 * peers live. A lease lost for good (another node took the subnet) stops the node with exit 1.
 *
 * With NODEPLANE_LATENCY_FILE set, every TAP wake-up is timed (ports/latency-probe.ts) and
 * the breakdown is written to that file on stop (the e2e bench's e2e.latency.* rows).
 */
import { CaptureTaps } from '../capture/capture-taps.ts';
import { ClusterNode } from '../cluster/cluster-node.ts';
import { ConfigError, type LoadedConfig, loadConfigParts } from '../config/load.ts';
import { SystemClock } from '../core/clock.ts';
import { OFFLOAD_SLOT_SIZE } from '../core/frame-pool.ts';
import { Dataplane } from '../dataplane/dataplane.ts';
import { LiveManifests } from '../dataplane/live-manifests.ts';
import { createLogger } from '../log.ts';
import { LatencyProbe } from '../ports/latency-probe.ts';
import { LivePorts } from '../ports/live-ports.ts';
import { tapAvailable, tapClock } from '../ports/tap-native.ts';
import { poolPlan } from '../ports/pool-plan.ts';
import { RxBudget } from '../ports/rx-budget.ts';
import { setRealtime } from '../ports/realtime.ts';
import { TapPort } from '../ports/tap-port.ts';
import { VxlanSocket } from '../ports/vxlan-socket.ts';
import { UserError } from '../user-error.ts';

export interface RunOptions {
  config: string;
  capture?: string;
  captureStdout?: string;
  captureFifo?: string;
  captureFifoPort?: string;
  captureMaxMb?: string;
  captureFiles?: string;
  snaplen?: string;
  captureFilter?: string;
  captureDrops?: boolean;
  captureBuffer?: string;
  /** SCHED_FIFO priority of the packet thread (1-99). */
  realtime?: string;
  /** Prometheus metrics at ADDR:PORT (loopback when only a port is given). */
  metrics?: string;
  admin: string;
  logLevel: string;
  /** commander's --no-offload. */
  offload: boolean;
}

const TICK_MS = 100;

function positiveInt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new UserError(`${flag} ${v}: expected a positive whole number`);
  return n;
}

export async function runCommand(opts: RunOptions): Promise<number> {
  const loaded = loadConfigParts(opts.config);
  let config = loaded.config;
  const maxFileMB = positiveInt('--capture-max-mb', opts.captureMaxMb);
  const maxFiles = positiveInt('--capture-files', opts.captureFiles);
  const realtime = positiveInt('--realtime', opts.realtime);
  if (realtime !== undefined && realtime > 99) throw new UserError(`--realtime ${realtime}: expected a priority from 1 to 99 (SCHED_FIFO, as chrt -f)`);
  const available = tapAvailable();
  if (!available.ok) throw new UserError(available.reason);
  const log = createLogger(opts.logLevel);
  let cluster: ClusterNode | null = null;
  if (config.cluster) {
    // SIGINT/SIGTERM while waiting for etcd end the wait.
    const abort = new AbortController();
    const stopJoin = (): void => abort.abort();
    process.once('SIGINT', stopJoin);
    process.once('SIGTERM', stopJoin);
    try {
      cluster = await ClusterNode.join(config, log, { signal: abort.signal });
    } finally {
      process.off('SIGINT', stopJoin);
      process.off('SIGTERM', stopJoin);
    }
    config = cluster.dataplaneConfig();
  }
  const captureDir = opts.capture ?? config.capture.dir;
  const capturing = Boolean(captureDir || opts.captureStdout || opts.captureFifo);
  const snaplen = positiveInt('--snaplen', opts.snaplen) ?? config.capture.snaplen;
  const captureFilter = opts.captureFilter ?? config.capture.filter;
  const captureDrops = opts.captureDrops === true || config.capture.drops;
  const bufferKiB = positiveInt('--capture-buffer', opts.captureBuffer) ?? config.capture.bufferKiB;
  if (bufferKiB < 1024 || bufferKiB > 4_194_304) throw new UserError(`--capture-buffer ${bufferKiB}: expected 1024 to 4194304 (KiB)`);
  if (realtime !== undefined) {
    try {
      setRealtime(realtime);
    } catch (err) {
      throw new UserError(`--realtime ${realtime}: cannot put the packet thread under SCHED_FIFO: ${(err as Error).message} (needs CAP_SYS_NICE)`);
    }
  }
  // TCP segmentation offload on the TAPs unless --no-offload. Captures record what crosses
  // the ports: with offload, TCP super-frames, as tcpdump on a veth shows GSO packets.
  const offload = opts.offload;
  const dp = new Dataplane(config, offload ? { clock: new SystemClock(), poolSize: config.pool.offloadSlots, slotSize: OFFLOAD_SLOT_SIZE } : { clock: new SystemClock() });
  // Every port receives into the one pool, a read round at a time (see rx-budget.ts).
  const budget = new RxBudget(dp.pool, dp.ctx.ports);

  // NODEPLANE_LATENCY_FILE: time each wake-up of the TAPs, written there on stop (latency-probe.ts).
  const latency = LatencyProbe.fromEnv(tapClock());
  if (latency.probe === null && latency.reason !== null) log.warn({ reason: latency.reason }, 'NODEPLANE_LATENCY_FILE ignored');
  const ports: TapPort[] = [];
  const sockets: VxlanSocket[] = [];
  // With a VXLAN device on an L3 port, UDP-tunnel GSO too where the kernel has it (6.17+): a
  // pod's TCP super-frame then crosses the overlay whole. Used only while every port has it.
  const tunnelGso = offload && config.vxlan.some((v) => v.underlay === 'port');
  // Ports added and removed at run time (`nodeplane port add|del`, the CNI plugin).
  const livePorts = new LivePorts(dp, { log, budget, vnetHdr: offload, tunnelGso, probe: latency.probe });
  const closeAll = (): void => {
    for (const p of ports) p.close();
    livePorts.closeAll();
    for (const s of sockets) s.close();
  };
  try {
    config.ports.forEach((p, i) => {
      const port = new TapPort(dp, i, p.name, { log, budget, vnetHdr: offload, tunnelGso, probe: latency.probe });
      port.open(p.mtu);
      ports.push(port);
      dp.setDriver(i, port);
    });
    dp.setUdpTunnelGso(tunnelGso && ports.length > 0 && ports.every((p) => p.tunnelGso));
    // VXLAN devices whose underlay is the machine's own stack: a UDP socket on local:port each.
    for (const v of config.vxlan) {
      if (v.underlay !== 'socket') continue;
      const sock = new VxlanSocket(dp, v.name, { local: v.local!, port: v.port, log, budget });
      try {
        await sock.open();
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new UserError(`${v.name}: cannot bind a UDP socket to ${v.local}:${v.port} (underlay: socket): ${e.code ?? e.message}${e.code === 'EADDRNOTAVAIL' ? ' — local must be an address of this machine (of the network namespace nodeplane runs in)' : ''}`);
      }
      sockets.push(sock);
    }
  } catch (err) {
    closeAll();
    await cluster?.close();
    const e = err as NodeJS.ErrnoException;
    if (e.code) throw new UserError(e.message);
    throw err;
  }

  // The run's captures, and the admin socket's live streams (nodeplane extcap), attach here.
  const taps = new CaptureTaps(dp);
  let captures: import('../capture/create-captures.ts').Captures | null = null;
  if (capturing) {
    const { createCaptures } = await import('../capture/create-captures.ts');
    try {
      const c = createCaptures(dp, {
        dir: captureDir,
        ports: config.capture.ports,
        snaplen,
        filter: captureFilter,
        drops: captureDrops,
        bufferKiB,
        offload,
        maxFileMB,
        maxFiles,
        stdoutPort: opts.captureStdout,
        fifo: opts.captureFifo ? { path: opts.captureFifo, port: opts.captureFifoPort ?? 'all' } : undefined,
        log,
      }, taps);
      captures = c;
    } catch (err) {
      closeAll();
      await cluster?.close();
      throw err;
    }
  }

  const manifests = new LiveManifests(dp, loaded, { log });
  const { startAdminServer } = await import('../admin/server.ts');
  let admin: { close(): Promise<void> };
  try {
    admin = await startAdminServer(dp, opts.admin, {
      portStatus: () => [...ports.map((p) => ({ name: p.name, offload: p.offload, downReason: p.downReason, tap: p.stats() })), ...livePorts.status()],
      reloadManifests: () => manifests.reload(),
      ports: livePorts,
      captureStatus: () => captures?.status() ?? null,
      taps,
    });
  } catch (err) {
    closeAll();
    captures?.close();
    await cluster?.close();
    const e = err as NodeJS.ErrnoException;
    throw new UserError(`admin socket ${opts.admin}: ${e.message}`);
  }

  let metrics: { close(): Promise<void>; address: string } | null = null;
  if (opts.metrics !== undefined) {
    const { dataplaneRegistry, parseListen, startMetricsServer } = await import('../admin/metrics.ts');
    try {
      const { host, port } = parseListen(opts.metrics);
      const register = dataplaneRegistry(dp, {
        portStatus: () => ports.map((p) => ({ name: p.name, tap: p.stats() })),
        captureRingDrops: () => captures?.status()?.ringDrops ?? null,
      });
      metrics = await startMetricsServer(register, host, port);
    } catch (err) {
      closeAll();
      captures?.close();
      await admin.close();
      await cluster?.close();
      throw new UserError(`metrics: ${(err as Error).message}`);
    }
  }

  const plan = poolPlan(config).find((m) => m.offload === offload);
  if (plan?.warning) log.warn({ pool: plan.key, slots: plan.slots, needed: plan.minimumSlots + 1 }, plan.warning);
  manifests.start();
  for (const p of ports) p.start();
  cluster?.attach(dp);
  // Work done in steps (a Service UDP cleanup walking conntrack) goes on between the ports'
  // reads, one step per turn of the event loop, until done.
  let stepping = false;
  let stopped = false;
  const background = (): void => {
    if (stopped) return;
    dp.run();
    stepping = dp.hasBackgroundWork();
    if (stepping) setImmediate(background);
  };
  const tick = setInterval(() => {
    if (!stepping) background();
  }, TICK_MS);
  log.info(
    {
      node: config.node.name,
      ports: config.ports.map((p) => p.name),
      ...(sockets.length > 0 ? { vxlanSockets: config.vxlan.filter((v) => v.underlay === 'socket').map((v) => `${v.name} ${v.local}:${v.port}`) } : {}),
      offload,
      ...(realtime !== undefined ? { realtime: `SCHED_FIFO ${realtime}` } : {}),
      ...(tunnelGso ? { udpTunnelGso: dp.ctx.udpTunnelGso } : {}),
      pool: { slots: dp.pool.capacity, slotBytes: dp.pool.slotSize, reserve: budget.reserve, floodFanOut: budget.fanOut },
      admin: opts.admin,
      metrics: metrics?.address,
      captures: captures?.files() ?? [],
      ...(loaded.manifestPaths.length > 0 ? { manifests: loaded.manifestPaths, manifestServices: loaded.manifests.manifestServices } : {}),
    },
    'nodeplane running',
  );
  if (loaded.notes.length > 0) log.info({ notes: loaded.notes }, 'manifests: objects left out');

  const reload = (): void => {
    let next: LoadedConfig;
    let r: ReturnType<Dataplane['reload']>;
    try {
      // Manifests are read again too; those whose text did not change are not parsed again.
      next = loadConfigParts(opts.config, { cache: manifests.cache });
      r = cluster ? cluster.reload(dp, next.config) : dp.reload(next.config);
    } catch (err) {
      const errors = err instanceof ConfigError ? [...err.errors, ...err.located] : [(err as Error).message];
      log.error({ config: opts.config, errors }, 'reload refused: invalid config; running config unchanged');
      return;
    }
    if (!r.ok) {
      log.error({ config: opts.config, errors: r.errors }, 'reload refused; running config unchanged');
      return;
    }
    manifests.adopt(next);
    const fromManifests = next.manifestPaths.length > 0 ? { manifestServices: next.manifests.manifestServices } : {};
    log.info({ config: opts.config, changes: r.changes, ...fromManifests }, 'config reloaded');
  };
  process.on('SIGHUP', reload);

  let exitCode = 0;
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      log.info({ signal }, 'stopping');
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    cluster?.onLost((why) => {
      log.error({ why }, 'the cluster lease is lost; stopping');
      exitCode = 1;
      resolve();
    });
  });
  clearInterval(tick);
  stopped = true;
  process.off('SIGHUP', reload);
  manifests.close();
  closeAll();
  if (latency.probe !== null) {
    latency.probe.write(latency.path);
    log.info({ file: latency.path, wakeups: latency.probe.summary().wakeups }, 'latency breakdown written');
  }
  captures?.flush();
  captures?.close();
  await admin.close();
  await metrics?.close();
  await cluster?.close();
  log.info({ captures: captures?.files() ?? [] }, 'stopped');
  return exitCode;
}
