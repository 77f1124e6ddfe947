/**
 * Dataplane: one node's packet path — tables, frame pool and stage graph — driven by ports.
 *
 * Port drivers push received frames in with `receive` (copying bytes: replay, tests) or by
 * handing over slots they filled themselves (`receiveSlot`: TAP batches), then call `run()`,
 * which sets the time, fires due timers and dispatches the graph until every queue is empty.
 * Transmitted frames reach the drivers through port-output. Live and replay differ only in
 * their ports and their clock. Ports beyond the config's come and go at run time through
 * `addPort`/`removePort` (runtime-ports.ts), between batches.
 */
import type { Config } from '../config/load.ts';
import type { Clock } from '../core/clock.ts';
import { FramePool, NO_PORT } from '../core/frame-pool.ts';
import type { Graph } from '../core/graph.ts';
import type { StageCounters } from '../core/stage.ts';
import type { DatagramTransmitter, DropObserver, PortObserver, PortTransmitter } from '../core/port-contract.ts';
import { Random } from '../core/random.ts';
import { TokenBucket } from '../core/token-bucket.ts';
import type { Context } from '../stages/context.ts';
import { Conntrack } from '../tables/conntrack.ts';
import { Fdb } from '../tables/fdb.ts';
import { IcmpRateLimits } from '../tables/icmp-rate-limits.ts';
import { DEFAULT_NEIGHBOUR_TIMERS, NeighbourTable } from '../tables/neighbour-table.ts';
import { applyConfig } from './apply-config.ts';
import { buildGraph, type Stages } from './build-graph.ts';
import { compileTopology } from './compile-topology.ts';
import { ConntrackHooks } from './conntrack-hooks.ts';
import { checkReload, type ReloadResult } from './reload.ts';
import { type RuntimePortRemoved, RuntimePorts, type RuntimePortSpec } from './runtime-ports.ts';
import type { ServiceSource, ServicesApplied } from './services.ts';
import type { ServiceSpec } from '../tables/service-spec.ts';
import { type VxlanPeerConfig, VxlanPeers, type VxlanPeersChange } from './vxlan-peers.ts';

/** Conntrack entries reclaimed at most per batch, so expiry never stalls forwarding. */
const CONNTRACK_EXPIRY_BUDGET = 4096;

export interface DataplaneOptions {
  clock: Clock;
  /** Frame slots; config.pool.slots when absent. */
  poolSize?: number;
  /** Bytes per slot (FramePool's default, or OFFLOAD_SLOT_SIZE for offloading TAPs). */
  slotSize?: number;
}

export class Dataplane {
  readonly ctx: Context;
  readonly graph: Graph;
  readonly stages: Stages;
  readonly clock: Clock;
  /** The config in force (replaced by a successful reload). */
  config: Config;
  /** Frames a port received that did not fit a slot (too long, or no slot free). */
  rxOverruns = 0;
  /**
   * Called at the end of each run(), once the graph is drained; null when unused. The admin
   * server's conntrack event stream reads new entries there, after their NAT bindings.
   */
  afterBatch: (() => void) | null = null;
  /** Conntrack and NAT at the hooks, or null when connection tracking is off. */
  readonly conntrackHooks: ConntrackHooks | null;
  /** The remote VTEPs of the VXLAN devices (vxlan-peers.ts). */
  readonly vxlanPeers: VxlanPeers;
  /** Ports added at run time (runtime-ports.ts). */
  readonly runtimePorts: RuntimePorts;

  constructor(config: Config, opts: DataplaneOptions) {
    this.config = config;
    this.clock = opts.clock;
    const topo = compileTopology(config);
    // Tables are made here at the sizes the config gives (changing one needs a restart);
    // applyConfig fills them, as it does again on every reload.
    this.ctx = {
      pool: new FramePool(opts.poolSize ?? config.pool.slots, opts.slotSize),
      ports: topo.ports,
      ifs: topo.ifs,
      fdb: new Fdb(config.fdb.maxEntries),
      fib: topo.fib,
      neigh: new NeighbourTable(config.arp.maxEntries, { ...DEFAULT_NEIGHBOUR_TIMERS, queueLen: config.arp.queueLen }),
      random: new Random(config.seed),
      icmpLimiter: new TokenBucket(),
      icmpPerHost: new IcmpRateLimits(),
      nowUs: opts.clock.nowUs(),
      ipIdent: 1,
      conntrack: null,
      vxlan: topo.vxlan,
      flowHashSeed: 0,
      udpTunnelGso: false,
    };
    this.ctx.flowHashSeed = this.ctx.random.nextU32() | 0;
    if (config.conntrackEnabled) {
      const ct = new Conntrack({ max: config.conntrack.max, timeouts: config.conntrack.timeouts, hashSeed: this.ctx.random.nextU32() | 0 });
      ct.nowUs = this.ctx.nowUs;
      this.ctx.conntrack = ct;
    }
    const { graph, stages } = buildGraph(this.ctx);
    this.graph = graph;
    this.stages = stages;
    this.conntrackHooks = this.ctx.conntrack === null ? null : new ConntrackHooks(this.ctx, stages, config.nat?.clusterCIDR ?? null, config.node.name);
    applyConfig(this.ctx, config, topo, this.conntrackHooks?.services ?? null);
    this.vxlanPeers = new VxlanPeers(this.ctx);
    this.applyStaticPeers(config);
    this.runtimePorts = new RuntimePorts(this.ctx, stages);
  }

  /**
   * Adds a port at run time (a pod's, on a bridge; or an L3 port with an address) and returns
   * its number; the caller then gives it a driver. Throws RuntimePortError, with nothing
   * changed, for a request that does not fit the running tables. Call between batches.
   */
  addPort(spec: RuntimePortSpec): number {
    return this.runtimePorts.add(spec);
  }

  /**
   * Removes a port added at run time, with what belonged to it: FDB entries learned on it,
   * neighbours reached through it, conntrack entries of its addresses (runtime-ports.ts). The
   * caller closes its driver. Throws RuntimePortError for an unknown or config port.
   */
  removePort(name: string): RuntimePortRemoved {
    return this.runtimePorts.remove(name);
  }

  /**
   * Replaces the Services of one source — 'config' (applyConfig does it) or 'manifests' (the
   * manifest loader) — by diff, effective for the next packet. See src/dataplane/services.ts.
   * Throws when connection tracking is off (a config with no nat, conntrack, services or
   * manifests cannot run Services).
   */
  applyServices(services: readonly ServiceSpec[], source: ServiceSource = 'manifests'): ServicesApplied {
    const hooks = this.conntrackHooks;
    if (hooks === null) throw new Error('services need connection tracking, which this dataplane runs without');
    return hooks.services.apply(services, source);
  }

  get pool(): FramePool {
    return this.ctx.pool;
  }

  portIndex(name: string): number {
    return this.ctx.ports.indexOf(name);
  }

  setDriver(port: number, driver: PortTransmitter | null): void {
    this.stages.portOutput.drivers[port] = driver;
  }

  /**
   * Whether every port's device takes UDP-tunnel super-frames (the TAPs said so when they were
   * opened): a TCP super-frame bound for a VXLAN device then leaves encapsulated whole.
   */
  setUdpTunnelGso(on: boolean): void {
    this.ctx.udpTunnelGso = on;
  }

  /**
   * Gives the VXLAN device `name` (with `underlay: socket`) the socket its datagrams leave
   * by, or none (null). Throws for a name that is no such device.
   */
  setVxlanSocket(name: string, driver: DatagramTransmitter | null): number {
    const d = this.vxlanSocketDevice(name);
    this.stages.vxlanSocketTx.drivers[d] = driver;
    return d;
  }

  /** The device number of the VXLAN device `name` with `underlay: socket`; throws if none. */
  vxlanSocketDevice(name: string): number {
    const ifIndex = this.ctx.ifs.indexOf(name);
    const d = ifIndex < 0 ? -1 : this.ctx.vxlan.deviceOfIf[ifIndex];
    if (d < 0 || this.ctx.vxlan.socket[d] !== 1) throw new Error(`${name} is not a vxlan device with underlay: socket`);
    return d;
  }

  /**
   * Queues a datagram a VXLAN device's socket received, in a slot its driver filled: the
   * datagram (VXLAN header on) behind the IPv4 and UDP headers it arrived with (source and
   * destination address and port, lengths), start and l3 at the IPv4 header, l4 at the UDP
   * header, len set. vxlan-decap takes it from there as it takes VXLAN from an L3 port.
   */
  receiveVxlanDatagram(slot: number): void {
    const pool = this.ctx.pool;
    pool.inPort[slot] = NO_PORT;
    this.stages.vxlanDecap.enqueue(slot);
  }

  setObserver(observer: PortObserver | null): void {
    this.stages.portOutput.observer = observer;
  }

  /** Shows every frame a stage drops to `observer` (or with null, stops). */
  setDropObserver(observer: DropObserver | null): void {
    this.graph.setDropObserver(observer);
  }

  /** Copies a received frame into a slot and queues it; false if it could not be taken. */
  receive(port: number, bytes: Buffer): boolean {
    const slot = this.ctx.pool.fill(bytes, port);
    if (slot < 0) {
      this.rxOverruns++;
      return false;
    }
    this.receiveSlot(port, slot);
    return true;
  }

  /** Queues a slot that a driver filled itself (start and len set). */
  receiveSlot(port: number, slot: number): void {
    const { pool, ports } = this.ctx;
    pool.inPort[slot] = port;
    ports.rxFrames[port]++;
    ports.rxBytes[port] += pool.len[slot];
    const observer = this.stages.portOutput.observer;
    if (observer !== null) observer.onRx(port, pool, slot);
    const tracer = this.stages.ethernetInput.tracer;
    if (tracer !== null) tracer.received(port, slot);
    this.stages.ethernetInput.enqueue(slot);
  }

  /** Sets the time, fires due timers and processes everything queued. */
  run(): void {
    const now = this.clock.nowUs();
    this.ctx.nowUs = now;
    this.ctx.fdb.nowUs = now;
    this.stages.neighbourOutput.runTimers();
    this.stages.ip4Reassemble.runTimers();
    const ct = this.ctx.conntrack;
    if (ct !== null) {
      ct.nowUs = now;
      ct.expire(now, CONNTRACK_EXPIRY_BUDGET);
    }
    const observer = this.stages.portOutput.observer;
    if (observer !== null) observer.flush(this.ctx.pool);
    this.graph.dispatch();
    if (this.conntrackHooks !== null) this.conntrackHooks.afterDispatch();
    if (this.afterBatch !== null) this.afterBatch();
  }

  /** The earliest time a timer wants to run (µs), or Infinity; now while background work is pending. */
  nextTimerUs(): number {
    if (this.hasBackgroundWork()) return this.clock.nowUs();
    const ct = this.ctx.conntrack;
    const t = Math.min(this.ctx.neigh.nextDeadline(), this.stages.ip4Reassemble.nextDeadline());
    return ct === null ? t : Math.min(t, ct.nextDeadline());
  }

  /**
   * Whether run() has work left that is done in steps (a Service UDP cleanup walking conntrack:
   * services.ts): call run() again soon, even without frames.
   */
  hasBackgroundWork(): boolean {
    return this.conntrackHooks !== null && this.conntrackHooks.services.cleanup.pending;
  }

  /** Marks a port down or up; a port going down forgets what its bridge learned on it. */
  setPortUp(port: number, up: boolean): void {
    const ports = this.ctx.ports;
    if (!up && ports.up[port] === 1) ports.linkDowns[port]++;
    ports.up[port] = up ? 1 : 0;
    if (!up) this.ctx.fdb.flushPort(port);
  }

  /** Applies a validated config live, or refuses it whole (see reload.ts). */
  reload(next: Config): ReloadResult {
    const result = checkReload(this.config, next);
    if (!result.ok) return result;
    applyConfig(this.ctx, next, compileTopology(next), this.conntrackHooks?.services ?? null);
    // Ports added at run time are not the config's business: their routes go into the new FIB.
    this.runtimePorts.reinstall();
    // The new FIB and static neighbours lack the peers' entries: put them back, then apply
    // the config's static peers (a device run by cluster mode keeps the peers it was given).
    this.vxlanPeers.reinstall();
    this.applyStaticPeers(next);
    this.conntrackHooks?.setClusterCidr(next.nat?.clusterCIDR ?? null);
    this.config = next;
    return result;
  }

  /**
   * Replaces the peer set of a VXLAN device at run time (cluster mode calls this as leases
   * come and go): for each peer its route, permanent neighbour and FDB entry, as flanneld
   * installs them, changed by difference (see vxlan-peers.ts). Throws VxlanPeerError, with
   * nothing changed, for an unknown device or a bad peer set. Call between batches.
   */
  setVxlanPeers(device: string, peers: readonly VxlanPeerConfig[]): VxlanPeersChange {
    return this.vxlanPeers.set(device, peers);
  }

  /** Static `peers` of every device cluster mode does not run, at start and on reload. */
  private applyStaticPeers(config: Config): void {
    const clusterDevice = (config as { cluster?: { vxlan?: string } }).cluster?.vxlan;
    for (const v of config.vxlan) if (v.name !== clusterDevice) this.vxlanPeers.set(v.name, v.peers);
  }

  /** Counters of every stage, keyed by stage name. */
  stageCounters(): Record<string, StageCounters> {
    const out: Record<string, StageCounters> = {};
    for (const s of this.graph.stages) out[s.name] = s.counters();
    return out;
  }
}
