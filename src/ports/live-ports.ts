/**
 * LivePorts: TAP ports added and removed while `nodeplane run` runs — the edge of
 * Dataplane.addPort/removePort (runtime-ports.ts) that owns the devices. Behind
 * `POST /v1/ports` and `DELETE /v1/ports/NAME` on the admin socket (`nodeplane port add|del`,
 * the CNI plugin).
 *
 * Adding: the dataplane takes the port (or refuses it, nothing changed), the TAP is created
 * in nodeplane's namespace (the same offload mode as the other ports), starts reading into
 * the shared pool, and the receive budget takes the bigger flood into account. With a
 * namespace (`netns`), the TAP then moves into it, renamed, addressed, up, with its default
 * route (pod-netns.ts) — while the other ports keep forwarding, since the `ip` commands run
 * asynchronously. Its kernel side gets a MAC derived from the pod's address (0a:58 + the
 * address, as Kubernetes' CNI plugins derive it), so the answer can name it. Anything that
 * fails after the dataplane took the port undoes it: the TAP is closed, which deletes the
 * device wherever it is, and the port is removed.
 *
 * Removing: the dataplane forgets the port and what belonged to it, then the TAP is closed
 * (the device disappears from the pod's namespace with it).
 */
import type { Dataplane } from '../dataplane/dataplane.ts';
import { RuntimePortError, type RuntimePortRemoved, type RuntimePortSpec } from '../dataplane/runtime-ports.ts';
import { derivedMac } from '../dataplane/compile-topology.ts';
import type { Logger } from '../log.ts';
import { formatIpv4, inPrefix, parseCidr } from '../wire/ipv4-address.ts';
import { formatMac } from '../wire/mac.ts';
import { checkPodNetnsSpec, plugIntoNetns, type PodNetnsSpec } from './pod-netns.ts';
import type { RxBudget } from './rx-budget.ts';
import type { TapDriver, TapStats } from './tap-native.ts';
import { TapPort } from './tap-port.ts';
import type { LatencyProbe } from './latency-probe.ts';

/** What `POST /v1/ports` takes (JSON). */
export interface PortAddRequest {
  name: string;
  bridge?: string;
  address?: string;
  mtu?: number;
  /** The kernel side's MAC (the pod's eth0); derived from netns.ip when absent. */
  mac?: string;
  netns?: PodNetnsSpec;
  /** Who asked, kept with the port and shown by `show ports` (the CNI plugin: network/container/ifname). */
  owner?: string;
}

/** The answer to an add. */
export interface PortAdded {
  name: string;
  port: number;
  mtu: number;
  /** The MAC of the kernel side of the TAP (the pod's interface). */
  mac: string;
  netns: { path: string; ifname: string; ip: string | null; gateway: string | null } | null;
}

/** A request refused: `status` is the HTTP status the admin server answers with. */
export class PortRequestError extends Error {
  constructor(
    readonly status: 400 | 404 | 409 | 500,
    message: string,
  ) {
    super(message);
  }
}

export interface LivePortsOptions {
  log: Logger;
  budget: RxBudget;
  /** Open TAPs with a virtio-net header (as the config's ports were). */
  vnetHdr: boolean;
  /** And ask for UDP-tunnel GSO (as the config's ports were); a port without it turns the dataplane's use of it off. */
  tunnelGso?: boolean;
  driver?: TapDriver;
  /** Moves a TAP into a namespace (tests replace it). */
  plug?: (tap: string, spec: PodNetnsSpec) => Promise<void>;
  /** Times the new ports' wake-ups too (NODEPLANE_LATENCY_FILE). */
  probe?: LatencyProbe | null;
}

const isStr = (v: unknown): v is string => typeof v === 'string';

/** Reads a request body into a PortAddRequest, or says what is wrong with it. */
export function parsePortAddRequest(body: unknown): PortAddRequest {
  const bad = (m: string): never => {
    throw new PortRequestError(400, m);
  };
  if (typeof body !== 'object' || body === null || Array.isArray(body)) bad('the request must be a JSON object');
  const b = body as Record<string, unknown>;
  const known = new Set(['name', 'bridge', 'address', 'mtu', 'mac', 'netns', 'owner']);
  for (const k of Object.keys(b)) if (!known.has(k)) bad(`unknown field ${k}`);
  if (!isStr(b.name)) bad('name: a string is needed');
  for (const k of ['bridge', 'address', 'mac', 'owner']) if (b[k] !== undefined && !isStr(b[k])) bad(`${k}: a string is needed`);
  if (b.mtu !== undefined && !Number.isInteger(b.mtu)) bad('mtu: a whole number is needed');
  let netns: PodNetnsSpec | undefined;
  if (b.netns !== undefined) {
    if (typeof b.netns !== 'object' || b.netns === null) bad('netns: an object is needed');
    const n = b.netns as Record<string, unknown>;
    for (const k of Object.keys(n)) if (!['path', 'ifname', 'ip', 'gateway', 'routes'].includes(k)) bad(`netns: unknown field ${k}`);
    if (!isStr(n.path) || !isStr(n.ifname)) bad('netns: path and ifname are needed');
    for (const k of ['ip', 'gateway']) if (n[k] !== undefined && !isStr(n[k])) bad(`netns.${k}: a string is needed`);
    if (n.routes !== undefined && !(Array.isArray(n.routes) && n.routes.every(isStr))) bad('netns.routes: a list of prefixes is needed');
    netns = { path: n.path as string, ifname: n.ifname as string, ip: n.ip as string | undefined, gateway: n.gateway as string | undefined, routes: n.routes as string[] | undefined };
  }
  return { name: b.name as string, bridge: b.bridge as string | undefined, address: b.address as string | undefined, mtu: b.mtu as number | undefined, mac: b.mac as string | undefined, netns, owner: b.owner as string | undefined };
}

export class LivePorts {
  private readonly taps = new Map<string, TapPort>();
  private readonly plug: (tap: string, spec: PodNetnsSpec) => Promise<void>;

  constructor(
    private readonly dp: Dataplane,
    private readonly opts: LivePortsOptions,
  ) {
    this.plug = opts.plug ?? plugIntoNetns;
  }

  /** Adds a port with its TAP (and plugs it into a namespace); see the header. */
  async add(req: PortAddRequest): Promise<PortAdded> {
    const dp = this.dp;
    const netns = req.netns === undefined ? undefined : { ...req.netns };
    let podAddr: number | null = null;
    if (netns !== undefined) {
      const problem = checkPodNetnsSpec(netns);
      if (problem !== null) throw new PortRequestError(400, `port ${req.name}: ${problem}`);
      if (netns.ip !== undefined) {
        try {
          podAddr = parseCidr(netns.ip).addr;
        } catch (err) {
          throw new PortRequestError(400, `port ${req.name}: ip ${netns.ip}: ${(err as Error).message}`);
        }
        netns.gateway ??= this.bridgeGateway(req.bridge, netns.ip);
      }
    }
    const spec: RuntimePortSpec = { name: req.name, bridge: req.bridge, address: req.address, mtu: req.mtu, owner: req.owner, hostAddresses: netns?.ip === undefined ? [] : [netns.ip] };
    let p: number;
    try {
      p = dp.addPort(spec);
    } catch (err) {
      if (err instanceof RuntimePortError) throw new PortRequestError(/ exists$/.test(err.message) ? 409 : 400, err.message);
      throw err;
    }
    const mtu = req.mtu ?? 1500;
    const mac = req.mac ?? (podAddr !== null ? formatMac(derivedMac(podAddr)) : randomMac());
    const tap = new TapPort(dp, p, req.name, { log: this.opts.log, budget: this.opts.budget, vnetHdr: this.opts.vnetHdr, tunnelGso: this.opts.tunnelGso, driver: this.opts.driver, probe: this.opts.probe });
    try {
      tap.open(mtu, mac);
    } catch (err) {
      dp.removePort(req.name);
      throw new PortRequestError(500, `port ${req.name}: ${(err as Error).message}`);
    }
    // Tunnel super-frames may leave by any port: all of them take them, or none is sent.
    if (dp.ctx.udpTunnelGso && !tap.tunnelGso) {
      dp.setUdpTunnelGso(false);
      this.opts.log.warn({ port: req.name }, 'port opened without UDP-tunnel GSO: super-frames for the overlay are segmented from now on');
    }
    this.taps.set(req.name, tap);
    dp.setDriver(p, tap);
    this.opts.budget.refresh();
    tap.start();
    if (netns !== undefined) {
      try {
        await this.plug(req.name, netns);
      } catch (err) {
        // Removed meanwhile (a del that did not wait): nothing left to undo.
        if (this.taps.get(req.name) === tap) this.remove(req.name);
        throw new PortRequestError(500, `port ${req.name}: ${(err as Error).message}`);
      }
    }
    this.opts.log.info({ port: req.name, number: p, bridge: req.bridge, address: req.address, netns: netns?.path, ifname: netns?.ifname, ip: netns?.ip, owner: req.owner }, 'port added');
    return {
      name: req.name,
      port: p,
      mtu,
      mac,
      netns: netns === undefined ? null : { path: netns.path, ifname: netns.ifname, ip: netns.ip ?? null, gateway: netns.gateway ?? null },
    };
  }

  /** Removes a port added at run time and closes its TAP. */
  remove(name: string): RuntimePortRemoved {
    let removed: RuntimePortRemoved;
    try {
      removed = this.dp.removePort(name);
    } catch (err) {
      if (err instanceof RuntimePortError) throw new PortRequestError(/^no port /.test(err.message) ? 404 : 409, err.message);
      throw err;
    }
    const tap = this.taps.get(name);
    this.taps.delete(name);
    tap?.close();
    this.opts.budget.refresh();
    const { name: port, port: number, ...flushed } = removed;
    this.opts.log.info({ port, number, ...flushed }, 'port removed');
    return removed;
  }

  /** What `show ports` adds from the drivers, for the ports added here. */
  status(): Array<{ name: string; offload: string; downReason: string; tap: TapStats | null }> {
    return [...this.taps.values()].map((t) => ({ name: t.name, offload: t.offload, downReason: t.downReason, tap: t.stats() }));
  }

  /** Closes every TAP added here (nodeplane is stopping). */
  closeAll(): void {
    for (const t of this.taps.values()) t.close();
    this.taps.clear();
  }

  /** The bridge's router address, when the pod's address is in its subnet: the default gateway. */
  private bridgeGateway(bridge: string | undefined, ip: string): string | undefined {
    if (bridge === undefined) return undefined;
    const { ports, ifs } = this.dp.ctx;
    const b = ports.bridgeIndexOf(bridge);
    const i = b < 0 ? -1 : ports.bridges[b].ifIndex;
    if (i < 0 || !ifs.hasAddress(i)) return undefined;
    const addr = parseCidr(ip).addr;
    return inPrefix(addr, ifs.addr[i], ifs.prefixLen[i]) ? formatIpv4(ifs.addr[i]) : undefined;
  }
}

/** A random locally administered unicast MAC (02:xx:...). */
function randomMac(): string {
  const b = new Uint8Array(6);
  crypto.getRandomValues(b);
  b[0] = (b[0] & 0xfc) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
