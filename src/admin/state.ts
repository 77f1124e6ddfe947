/**
 * Admin state: snapshots of a dataplane's tables as plain JSON-able objects (`show --json`).
 *
 * Each function reads one table of a Dataplane and returns names instead of indices (port,
 * bridge and interface names), MACs and IPv4 addresses as text, and ages in seconds. They
 * run on request from the admin socket, between batches, never on the packet path; a
 * snapshot allocates freely. `format.ts` turns these objects into the text the Linux tools
 * print, so a field added here shows up in `--json` at once.
 *
 * Entries are sorted so two snapshots of the same state compare equal: FDB by bridge, port,
 * MAC; neighbours by interface, address; routes main table first, then the local table,
 * each by destination.
 */
import type { CaptureStreamStatus } from './capture-endpoint.ts';
import type { Dataplane } from '../dataplane/dataplane.ts';
import { RouteKind, ROUTE_KIND_NAMES } from '../tables/fib.ts';
import { NEIGH_STATE_NAMES, NeighState } from '../tables/neighbour-table.ts';
import { PortRole } from '../tables/port-table.ts';
import { formatIpv4, networkOf } from '../wire/ipv4-address.ts';
import { formatMac } from '../wire/mac.ts';

const TWO32 = 2 ** 32;

function mac(hi: number, lo: number): string {
  return formatMac(hi * TWO32 + (lo >>> 0));
}

/** µs → seconds, rounded to the millisecond (ages are shown, not computed with). */
function seconds(us: number): number {
  return Math.round(us / 1000) / 1000;
}

// ---- fdb ----

export interface FdbEntryState {
  /** The bridge; null for a VXLAN device's entry (`bridge fdb` shows those with `self`). */
  bridge: string | null;
  mac: string;
  /** The member port it was learned on; for `permanent`, the bridge itself; the VXLAN device. */
  port: string;
  /** A VXLAN device's entry: the remote VTEP's underlay address; absent for bridges. */
  dst?: string;
  /** dynamic: learned and ageing; static: configured; permanent: the bridge's own address. */
  type: 'dynamic' | 'static' | 'permanent';
  /** Seconds since the station was last seen (dynamic entries), else null. */
  ageSeconds: number | null;
  /** The bridge's ageing time, in seconds (when a dynamic entry is forgotten). */
  ageingSeconds: number;
}

export interface FdbState {
  entries: FdbEntryState[];
}

/** Every live FDB entry, plus each bridge's own MAC (as `bridge fdb` lists it, permanent). */
export function fdbState(dp: Dataplane): FdbState {
  const { ports, ifs, fdb, nowUs } = dp.ctx;
  const rows: { b: number; p: number; m: number; e: FdbEntryState }[] = [];
  ports.bridges.forEach((b, bi) => {
    if (b.ifIndex < 0) return;
    const m = ifs.macHi[b.ifIndex] * TWO32 + (ifs.macLo[b.ifIndex] >>> 0);
    rows.push({ b: bi, p: -1, m, e: { bridge: b.name, mac: formatMac(m), port: b.name, type: 'permanent', ageSeconds: null, ageingSeconds: b.ageingSeconds } });
  });
  for (const v of fdb.entries(nowUs)) {
    const b = ports.bridges[v.bridge];
    rows.push({
      b: v.bridge,
      p: v.port,
      m: v.macHi * TWO32 + v.macLo,
      e: {
        bridge: b?.name ?? `bridge${v.bridge}`,
        mac: mac(v.macHi, v.macLo),
        port: ports.names[v.port] ?? `port${v.port}`,
        type: v.isStatic ? 'static' : 'dynamic',
        ageSeconds: v.isStatic ? null : seconds(v.ageUs),
        ageingSeconds: b?.ageingSeconds ?? 0,
      },
    });
  }
  // VXLAN devices' entries (flanneld's `bridge fdb add <mac> dev flannel.1 dst <ip>`), after the bridges'.
  const vxBase = ports.bridges.length;
  for (const v of dp.ctx.vxlan.fdbEntries()) {
    const m = v.macHi * TWO32 + v.macLo;
    const e: FdbEntryState = { bridge: null, mac: formatMac(m), port: ifs.names[v.ifIndex] ?? `if${v.ifIndex}`, dst: formatIpv4(v.dst), type: 'permanent', ageSeconds: null, ageingSeconds: 0 };
    rows.push({ b: vxBase + v.ifIndex, p: -1, m, e });
  }
  rows.sort((x, y) => x.b - y.b || x.p - y.p || x.m - y.m);
  return { entries: rows.map((r) => r.e) };
}

// ---- neighbours ----

export interface NeighEntryState {
  ip: string;
  dev: string;
  /** The link-layer address, null while unresolved (NONE, INCOMPLETE, FAILED). */
  lladdr: string | null;
  /** Linux's state name: INCOMPLETE, REACHABLE, STALE, DELAY, PROBE, FAILED, PERMANENT (or NONE). */
  state: string;
  /** Seconds since last confirmed and since last used to send; null for PERMANENT entries. */
  confirmedSecondsAgo: number | null;
  usedSecondsAgo: number | null;
}

export interface NeighTableState {
  entries: NeighEntryState[];
}

function hasLladdr(state: number): boolean {
  return state !== NeighState.NONE && state !== NeighState.INCOMPLETE && state !== NeighState.FAILED;
}

/** Every neighbour entry, as `ip neigh` lists them. */
export function neighState(dp: Dataplane): NeighTableState {
  const { ifs, neigh, nowUs } = dp.ctx;
  const rows: { i: number; a: number; e: NeighEntryState }[] = [];
  for (const id of neigh.ids()) {
    const s = neigh.state[id];
    const ifIndex = neigh.ifIndexOf(id);
    const ip = neigh.ipOf(id) >>> 0;
    const permanent = s === NeighState.PERMANENT;
    rows.push({
      i: ifIndex,
      a: ip,
      e: {
        ip: formatIpv4(ip),
        dev: ifs.names[ifIndex] ?? `if${ifIndex}`,
        lladdr: hasLladdr(s) ? mac(neigh.macHi[id], neigh.macLo[id]) : null,
        state: NEIGH_STATE_NAMES[s] ?? `state${s}`,
        confirmedSecondsAgo: permanent ? null : seconds(nowUs - neigh.confirmedUs[id]),
        usedSecondsAgo: permanent ? null : seconds(nowUs - neigh.usedUs[id]),
      },
    });
  }
  rows.sort((x, y) => x.i - y.i || x.a - y.a);
  return { entries: rows.map((r) => r.e) };
}

// ---- routes ----

export interface RouteState {
  /** `default`, `a.b.c.d/len`, or `a.b.c.d` for a /32 (as `ip route` prints it). */
  dst: string;
  /** The FIB's kind: local, broadcast, connected, gateway. */
  kind: string;
  /** As `ip -j route`: unicast, local or broadcast. */
  type: 'unicast' | 'local' | 'broadcast';
  /** main, or local for local and broadcast routes (the kernel's two tables). */
  table: 'main' | 'local';
  gateway: string | null;
  dev: string | null;
  /** kernel: derived from an interface address; static: from the config. */
  protocol: 'kernel' | 'static';
  scope: 'host' | 'link' | 'global';
  /** The source address the router uses on that interface, if it has one. */
  prefsrc: string | null;
  onlink: boolean;
}

export interface RoutesState {
  routes: RouteState[];
}

/** The FIB as `ip route show table all` would print it: main table, then local. */
export function routesState(dp: Dataplane): RoutesState {
  const { ifs, fib } = dp.ctx;
  const rows: { t: number; p: number; l: number; r: RouteState }[] = [];
  for (const v of fib.routes()) {
    const prefix = v.prefix >>> 0;
    const limited = v.kind === RouteKind.BROADCAST && prefix === 0xffffffff;
    const hasIf = !limited && v.ifIndex >= 0 && v.ifIndex < ifs.count;
    const addressed = hasIf && ifs.hasAddress(v.ifIndex);
    const local = v.kind === RouteKind.LOCAL || v.kind === RouteKind.BROADCAST;
    // A connected route is the kernel's when it is exactly an interface's own subnet.
    const kernelSubnet =
      addressed && v.kind === RouteKind.CONNECTED && v.prefixLen === ifs.prefixLen[v.ifIndex] && networkOf(ifs.addr[v.ifIndex], v.prefixLen) === prefix;
    const r: RouteState = {
      dst: v.prefixLen === 0 ? 'default' : v.prefixLen === 32 ? formatIpv4(prefix) : `${formatIpv4(prefix)}/${v.prefixLen}`,
      kind: ROUTE_KIND_NAMES[v.kind] ?? `kind${v.kind}`,
      type: v.kind === RouteKind.LOCAL ? 'local' : v.kind === RouteKind.BROADCAST ? 'broadcast' : 'unicast',
      table: local ? 'local' : 'main',
      gateway: v.kind === RouteKind.GATEWAY ? formatIpv4(v.gateway) : null,
      dev: hasIf ? ifs.names[v.ifIndex] : null,
      protocol: local || kernelSubnet ? 'kernel' : 'static',
      scope: v.kind === RouteKind.LOCAL ? 'host' : v.kind === RouteKind.GATEWAY ? 'global' : 'link',
      prefsrc: (local || kernelSubnet) && addressed ? formatIpv4(ifs.addr[v.ifIndex]) : null,
      onlink: v.onlink,
    };
    rows.push({ t: local ? 1 : 0, p: prefix, l: v.prefixLen, r });
  }
  rows.sort((x, y) => x.t - y.t || x.p - y.p || x.l - y.l);
  return { routes: rows.map((x) => x.r) };
}

// ---- ports ----

/**
 * What a port driver reports about its device, by port name (live runs: the TAP's own
 * counters, why a port went down). Everything but `name` is passed through as `driver`.
 */
export interface PortDriverStatus {
  name: string;
  [key: string]: unknown;
}

export interface PortState {
  /** 1-based, as `ip link` numbers interfaces. */
  index: number;
  name: string;
  role: 'bridged' | 'routed';
  /** The bridge a bridged port is a member of. */
  master: string | null;
  up: boolean;
  /** Times the port went down since start. */
  linkDowns: number;
  mtu: number;
  /** A routed port's own MAC and address/prefix (a bridged port has none of its own). */
  mac: string | null;
  address: string | null;
  /** Added at run time (`nodeplane port add`, the CNI plugin) rather than by the config. */
  runtime: boolean;
  /** A runtime port's owner, as given when it was added (the CNI plugin: network/container/ifname). */
  owner?: string;
  /** noBuffer: frames the device had for us, dropped for want of a free frame slot. */
  rx: { bytes: number; packets: number; noBuffer: number };
  tx: { bytes: number; packets: number; dropped: number };
  /** From the port driver, when the server was given one (live runs). */
  driver?: Record<string, unknown>;
}

/** The pcapng capture's counters, when one runs. */
export interface CaptureStatus {
  /** Records written. */
  packets: number;
  /** Frames not written because the writer's ring was full (forwarding never waits). */
  ringDrops: number;
  /** Bytes of that ring (`--capture-buffer`). */
  ringBytes: number;
  /** Dropped frames recorded on the `drop` interface. */
  drops: number;
  /** The capture filter, if any, and the frames it matched and did not. */
  filter: { expression: string; matched: number; unmatched: number } | null;
}

export interface PortsState {
  ports: PortState[];
  /** The pcapng capture, when `run` has one. */
  capture?: CaptureStatus;
  /** Live capture streams open on the admin socket (`nodeplane extcap`), when any. */
  streams?: CaptureStreamStatus[];
  /** Frames any port received that found no free slot or did not fit one. */
  rxOverruns: number;
  /** The frame pool every port receives into: slots, bytes per slot, slots free now. */
  pool: { slots: number; slotBytes: number; free: number };
}

export function portsState(
  dp: Dataplane,
  driverStatus: readonly PortDriverStatus[] = [],
  capture: CaptureStatus | null = null,
  streams: readonly CaptureStreamStatus[] = [],
): PortsState {
  const { ports, ifs } = dp.ctx;
  const drivers = new Map(driverStatus.map(({ name, ...rest }) => [name, rest]));
  const out: PortState[] = [];
  for (let p = 0; p < ports.count; p++) {
    if (!ports.inUse(p)) continue;
    const name = ports.names[p];
    const live = ports.runtime[p] === 1 ? dp.runtimePorts.get(name) : undefined;
    const routed = ports.role[p] === PortRole.ROUTED;
    const ifIndex = routed ? ports.ifOf[p] : -1;
    const hasIf = ifIndex >= 0;
    const bridge = ports.bridgeOf[p] >= 0 ? ports.bridges[ports.bridgeOf[p]] : undefined;
    const state: PortState = {
      index: p + 1,
      name,
      role: routed ? 'routed' : 'bridged',
      master: bridge?.name ?? null,
      up: ports.up[p] === 1,
      linkDowns: ports.linkDowns[p],
      mtu: hasIf ? ifs.mtu[ifIndex] : (live?.spec.mtu ?? dp.config.ports.find((c) => c.name === name)?.mtu ?? 1500),
      mac: hasIf ? mac(ifs.macHi[ifIndex], ifs.macLo[ifIndex]) : null,
      address: hasIf && ifs.hasAddress(ifIndex) ? `${formatIpv4(ifs.addr[ifIndex])}/${ifs.prefixLen[ifIndex]}` : null,
      runtime: live !== undefined,
      rx: { bytes: ports.rxBytes[p], packets: ports.rxFrames[p], noBuffer: ports.rxNoBuffer[p] },
      tx: { bytes: ports.txBytes[p], packets: ports.txFrames[p], dropped: ports.txDrops[p] },
    };
    if (live?.spec.owner !== undefined) state.owner = live.spec.owner;
    const d = drivers.get(name);
    if (d !== undefined) state.driver = d;
    out.push(state);
  }
  const pool = dp.pool;
  const state: PortsState = { ports: out, rxOverruns: dp.rxOverruns, pool: { slots: pool.capacity, slotBytes: pool.slotSize, free: pool.available } };
  if (capture !== null) state.capture = capture;
  if (streams.length > 0) state.streams = [...streams];
  return state;
}

// ---- stats ----

export interface StageStats {
  name: string;
  packets: number;
  /** Every drop reason the stage declares by its id, zero counts included. */
  drops: Record<string, number>;
  /** The text of each drop reason id. */
  reasons: Record<string, string>;
  /** The stage's own event counters (ICMP errors sent, ARP requests, ...), by name. */
  events: Record<string, number>;
}

export interface StatsState {
  stages: StageStats[];
  /** Frames dropped because a dispatch reached its round limit (a path that loops). */
  roundLimitDrops: number;
  rxOverruns: number;
  /** Table events that are not packet drops. */
  tables: {
    fdb: { entries: number; learned: number; moves: number; full: number };
    neigh: { entries: number; full: number };
  };
}

export function statsState(dp: Dataplane): StatsState {
  const stages = dp.graph.stages.map((s) => {
    const drops: Record<string, number> = {};
    const reasons: Record<string, string> = {};
    s.dropReasons.forEach((reason, i) => {
      drops[reason.id] = s.drops[i];
      reasons[reason.id] = reason.text;
    });
    return { name: s.name, packets: s.packets, drops, reasons, events: s.eventCounts() };
  });
  const { fdb, neigh } = dp.ctx;
  return {
    stages,
    roundLimitDrops: dp.graph.roundLimitDrops,
    rxOverruns: dp.rxOverruns,
    tables: {
      fdb: { entries: fdb.size, learned: fdb.learned, moves: fdb.moves, full: fdb.full },
      neigh: { entries: neigh.size, full: neigh.full },
    },
  };
}

// ---- graph ----

export interface GraphState {
  stages: string[];
  /** `from -next-> to`, one per connected output. */
  edges: string[];
}

export function graphState(dp: Dataplane): GraphState {
  return { stages: dp.graph.stages.map((s) => s.name), edges: dp.graph.describe() };
}
