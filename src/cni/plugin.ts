/**
 * nodeplane-cni's commands: ADD, DEL, CHECK and VERSION of the CNI specification, wiring a
 * pod to a running nodeplane through its admin socket.
 *
 *   ADD    asks nodeplane whether it is there (no: error 11, "try again later", before any
 *          address is taken), delegates ADD to the IPAM plugin, then asks nodeplane for a port
 *          on `bridge` plugged into CNI_NETNS as CNI_IFNAME with the pod's first IPv4
 *          address, the default route through the IPAM gateway (or the bridge's address) and
 *          the IPAM plugin's other routes (POST /v1/ports). Any failure after the IPAM ADD
 *          releases the address (IPAM DEL) and removes whatever part of the port exists.
 *          Result: the pod's interface (with its sandbox), its address (interface 0), the
 *          routes and the DNS settings of the IPAM result or of the configuration.
 *   DEL    removes the port (already gone, or no nodeplane running — its TAPs went with it —
 *          is success), then delegates DEL to the IPAM plugin, which releases the address.
 *          Idempotent, as the specification requires.
 *   CHECK  delegates CHECK to the IPAM plugin, then checks against prevResult that nodeplane
 *          has the port, up, and that the pod's namespace has the interface with its MAC, up,
 *          every address and every route of the result.
 *   VERSION  the versions whose results this plugin prints.
 *
 * The port is named from the attachment, `np` + 13 hex digits of SHA-256 over
 * "CNI_CONTAINERID/CNI_IFNAME" (a TAP name, 15 bytes), so DEL and CHECK find what ADD made;
 * its owner, shown by `nodeplane show ports`, is "network/container/ifname".
 */
import { createHash } from 'node:crypto';
import { AdminRefused, AdminUnreachable, fetchState, requestJson, sendJson } from '../admin/client.ts';
import type { PortsState } from '../admin/state.ts';
import type { PortAdded } from '../ports/live-ports.ts';
import { readPodInterface, readPodRoutes } from '../ports/pod-netns.ts';
import { CniCode, CniError, type CniEnv, type CniResult, type CniRoute, type NetConf, SUPPORTED_VERSIONS } from './cni-types.ts';
import { delegate } from './ipam.ts';

/** Plugging a TAP runs `ip` twice inside nodeplane: allow for a loaded node. */
const ADD_TIMEOUT_MS = 30_000;

/** The port (TAP) name of an attachment. */
export function portName(containerId: string, ifname: string): string {
  return `np${createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 13)}`;
}

/** Admin client errors as CNI errors: nobody on the socket is "try again later". */
function fromAdmin(err: unknown, what: string): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof AdminUnreachable) return new CniError(CniCode.TRY_AGAIN_LATER, 'nodeplane is not answering on its admin socket', err.message);
  if (err instanceof AdminRefused) return new CniError(CniCode.PORT_REFUSED, `nodeplane refused to ${what}`, err.reason);
  return new CniError(CniCode.PORT_REFUSED, `cannot ${what}`, (err as Error).message);
}

const isV4 = (cidr: string): boolean => !cidr.includes(':');

/** Pre-1.0 results carry "version" on every address. */
function forVersion(r: CniResult, cniVersion: string): CniResult {
  if (cniVersion.startsWith('1.')) return r;
  return { ...r, ips: r.ips?.map((ip) => ({ ...ip, version: isV4(ip.address) ? '4' : '6' })) };
}

export async function cmdAdd(conf: NetConf, env: CniEnv, processEnv: NodeJS.ProcessEnv): Promise<CniResult> {
  if (conf.ipam === null) throw new CniError(CniCode.INVALID_CONFIG, 'invalid network configuration', 'ipam: nodeplane-cni needs an IPAM plugin (host-local, say)');
  const name = portName(env.containerId, env.ifname);
  try {
    await fetchState(conf.adminSocket, 'ports');
  } catch (err) {
    throw fromAdmin(err, 'list ports');
  }
  const ipam = (await delegate(conf.ipam.type, 'ADD', conf.raw, processEnv, env.path))!;
  try {
    const ip = ipam.ips!.find((a) => typeof a.address === 'string' && isV4(a.address));
    if (ip === undefined) throw new CniError(CniCode.IPAM_FAILED, `IPAM plugin ${conf.ipam.type} gave no IPv4 address`, JSON.stringify(ipam.ips));
    const extra = (ipam.routes ?? []).filter((r) => typeof r.dst === 'string' && isV4(r.dst) && r.dst !== '0.0.0.0/0').map((r) => r.dst);
    let added: PortAdded;
    try {
      added = (await sendJson(
        conf.adminSocket,
        'POST',
        '/v1/ports',
        {
          name,
          bridge: conf.bridge,
          mtu: conf.mtu,
          netns: { path: env.netns, ifname: env.ifname, ip: ip.address, gateway: ip.gateway, routes: extra.length > 0 ? extra : undefined },
          owner: `${conf.name}/${env.containerId}/${env.ifname}`,
        },
        ADD_TIMEOUT_MS,
      )) as PortAdded;
    } catch (err) {
      throw fromAdmin(err, 'add the port');
    }
    const gateway = added.netns?.gateway ?? ip.gateway ?? undefined;
    const routes: CniRoute[] = gateway === undefined ? [] : [{ dst: '0.0.0.0/0', gw: gateway }];
    for (const dst of extra) routes.push(gateway === undefined ? { dst } : { dst, gw: gateway });
    return forVersion(
      {
        cniVersion: conf.cniVersion,
        interfaces: [{ name: env.ifname, mac: added.mac, mtu: added.mtu, sandbox: env.netns }],
        ips: [gateway === undefined ? { address: ip.address, interface: 0 } : { address: ip.address, gateway, interface: 0 }],
        routes,
        dns: ipam.dns !== undefined && Object.keys(ipam.dns).length > 0 ? ipam.dns : (conf.dns ?? {}),
      },
      conf.cniVersion,
    );
  } catch (err) {
    // Undo: the port if any part of it exists, then the address.
    await requestJson(conf.adminSocket, 'DELETE', `/v1/ports/${name}`).catch(() => undefined);
    await delegate(conf.ipam.type, 'DEL', conf.raw, processEnv, env.path).catch((e: Error) => process.stderr.write(`nodeplane-cni: releasing the address after a failed ADD: ${e.message}\n`));
    throw err;
  }
}

export async function cmdDel(conf: NetConf, env: CniEnv, processEnv: NodeJS.ProcessEnv): Promise<void> {
  const name = portName(env.containerId, env.ifname);
  try {
    await requestJson(conf.adminSocket, 'DELETE', `/v1/ports/${name}`);
  } catch (err) {
    if (err instanceof AdminRefused && err.status === 404) {
      // Already gone: a second DEL, or a nodeplane restarted since.
    } else if (err instanceof AdminUnreachable) {
      // No nodeplane running: its TAPs, this one too, went with it.
      process.stderr.write(`nodeplane-cni: DEL ${name}: ${err.message}; the port went with it\n`);
    } else {
      throw fromAdmin(err, 'remove the port');
    }
  }
  if (conf.ipam !== null) await delegate(conf.ipam.type, 'DEL', conf.raw, processEnv, env.path);
}

export async function cmdCheck(conf: NetConf, env: CniEnv, processEnv: NodeJS.ProcessEnv): Promise<void> {
  if (conf.cniVersion === '0.3.0' || conf.cniVersion === '0.3.1') throw new CniError(CniCode.INCOMPATIBLE_VERSION, 'incompatible CNI version', `CHECK came with CNI 0.4.0; the config says ${conf.cniVersion}`);
  const prev = conf.prevResult;
  if (prev === null) throw new CniError(CniCode.INVALID_CONFIG, 'invalid network configuration', 'prevResult: CHECK needs the result of the ADD');
  if (conf.ipam !== null) await delegate(conf.ipam.type, 'CHECK', conf.raw, processEnv, env.path);
  const name = portName(env.containerId, env.ifname);
  let ports: PortsState;
  try {
    ports = (await fetchState(conf.adminSocket, 'ports')) as PortsState;
  } catch (err) {
    throw fromAdmin(err, 'list ports');
  }
  const port = ports.ports.find((p) => p.name === name);
  if (port === undefined) throw new CniError(CniCode.PORT_MISSING, 'nodeplane has no port for this attachment', `port ${name}`);
  if (!port.up) throw new CniError(CniCode.PORT_MISSING, 'the port of this attachment is down', `port ${name}`);

  const mismatch = (what: string): CniError => new CniError(CniCode.NETNS_MISMATCH, `${env.ifname} in ${env.netns}: ${what}`);
  const iface = await readPodInterface(env.netns, env.ifname).catch((err: Error) => {
    throw mismatch(err.message);
  });
  if (iface === null) throw mismatch('no such interface');
  if (!iface.up) throw mismatch('down');
  const at = (prev.interfaces ?? []).findIndex((i) => i.name === env.ifname && i.sandbox === env.netns);
  const mine = at < 0 ? undefined : prev.interfaces![at];
  if (mine?.mac !== undefined && mine.mac.toLowerCase() !== iface.mac.toLowerCase()) throw mismatch(`MAC ${iface.mac}, the result says ${mine.mac}`);
  for (const ip of prev.ips ?? []) {
    if (!isV4(ip.address) || (ip.interface !== undefined && ip.interface !== at)) continue;
    if (!iface.addresses.includes(ip.address)) throw mismatch(`address ${ip.address} missing (has ${iface.addresses.join(', ') || 'none'})`);
  }
  const routes = await readPodRoutes(env.netns);
  for (const r of prev.routes ?? []) {
    if (!isV4(r.dst)) continue;
    const dst = r.dst === '0.0.0.0/0' ? 'default' : r.dst;
    const gw = r.gw ?? prev.ips?.find((ip) => ip.gateway !== undefined)?.gateway;
    if (!routes.some((x) => x.dst === dst && x.dev === env.ifname && (gw === undefined || x.gateway === gw))) throw mismatch(`route ${r.dst}${gw === undefined ? '' : ` via ${gw}`} missing`);
  }
}

export function cmdVersion(stdin: string): { cniVersion: string; supportedVersions: string[] } {
  let cniVersion = '1.0.0';
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    if (typeof v === 'string' && v !== '') cniVersion = v;
  } catch {
    // No configuration, or not JSON: answer in our own version.
  }
  return { cniVersion, supportedVersions: [...SUPPORTED_VERSIONS] };
}
