/**
 * Pod namespaces: what the CNI bridge plugin does with a veth's far end, done to a TAP — move
 * it into the pod's network namespace, give it the name the runtime asked for, its address,
 * bring it up and add the default route through the gateway. And the reading back that a
 * CNI CHECK needs: the interface, its addresses and routes as the pod sees them.
 *
 * Everything goes through iproute2, as a person would type it: `ip link set dev TAP netns
 * PATH` from nodeplane's namespace, then one `ip -batch` inside the pod's namespace (entered
 * with `nsenter --net=PATH`, which takes any namespace path: /run/netns/NAME as containerd
 * makes them, or /proc/PID/ns/net). The commands run asynchronously, so the packet path of
 * the nodeplane that calls this never waits for them. A failure is a PodNetnsError with
 * `ip`'s own message (an interface of that name already in the pod: "File exists").
 *
 * Imported by the CNI plugin too: keep it free of the dataplane.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface PodNetnsSpec {
  /** The namespace: a path (CNI_NETNS). */
  path: string;
  /** The interface name inside it (CNI_IFNAME). */
  ifname: string;
  /** Its address with prefix (10.244.1.5/24); none when absent. */
  ip?: string;
  /** The default route's next hop; none when absent. */
  gateway?: string;
  /** Further destinations (CIDR) routed through the gateway. */
  routes?: string[];
}

export class PodNetnsError extends Error {}

const TIMEOUT_MS = 10_000;

function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const why = stderr.trim() || (code === 'ENOENT' ? `${cmd} is not installed` : err.message);
        reject(new PodNetnsError(`${cmd} ${args.join(' ')}: ${why}`));
      } else {
        resolve(stdout);
      }
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

/** Runs `ip ARGS` inside the namespace at `path`. */
export function ipIn(path: string, args: string[], input?: string): Promise<string> {
  return run('nsenter', [`--net=${path}`, 'ip', ...args], input);
}

/** The commands that configure the interface once it is in the namespace (ip -batch syntax). */
export function plugCommands(tap: string, spec: PodNetnsSpec): string[] {
  const cmds = [`link set dev ${tap} name ${spec.ifname}`];
  if (spec.ip !== undefined) cmds.push(`addr add ${spec.ip} dev ${spec.ifname}`);
  cmds.push(`link set dev ${spec.ifname} up`);
  if (spec.gateway !== undefined) {
    cmds.push(`route add default via ${spec.gateway} dev ${spec.ifname}`);
    for (const r of spec.routes ?? []) if (r !== '0.0.0.0/0' && r !== 'default') cmds.push(`route add ${r} via ${spec.gateway} dev ${spec.ifname}`);
  }
  return cmds;
}

const NAME_RE = /^[^/:\s]{1,15}$/;
const WORD_RE = /^[0-9./a-z]+$/i;

/** Checks a spec's fields before anything runs (they end up on an `ip` command line). */
export function checkPodNetnsSpec(spec: PodNetnsSpec): string | null {
  if (typeof spec.path !== 'string' || !spec.path.startsWith('/')) return `netns ${spec.path}: an absolute path is needed`;
  if (!existsSync(spec.path)) return `netns ${spec.path}: no such network namespace`;
  if (typeof spec.ifname !== 'string' || !NAME_RE.test(spec.ifname) || spec.ifname === '.' || spec.ifname === '..') {
    return `ifname ${spec.ifname}: 1 to 15 bytes, no '/', ':' or whitespace`;
  }
  for (const [key, v] of [['ip', spec.ip], ['gateway', spec.gateway], ...(spec.routes ?? []).map((r) => ['route', r])] as const) {
    if (v !== undefined && (typeof v !== 'string' || !WORD_RE.test(v))) return `${key} ${String(v)}: not an IPv4 address or prefix`;
  }
  if (spec.gateway !== undefined && spec.ip === undefined) return 'a gateway needs an address (--ip)';
  return null;
}

/**
 * Moves TAP device `tap` (in the caller's namespace) into the namespace at spec.path, named
 * spec.ifname, with its address, up, and the default route (plus spec.routes) through the
 * gateway. On failure the device may be left half configured in the namespace: the caller
 * closes the TAP, which deletes it wherever it is.
 */
export async function plugIntoNetns(tap: string, spec: PodNetnsSpec): Promise<void> {
  const problem = checkPodNetnsSpec(spec);
  if (problem !== null) throw new PodNetnsError(problem);
  await run('ip', ['link', 'set', 'dev', tap, 'netns', spec.path]);
  await ipIn(spec.path, ['-batch', '-'], plugCommands(tap, spec).join('\n') + '\n');
}

/** An interface as the pod sees it. */
export interface PodInterface {
  ifname: string;
  mac: string;
  mtu: number;
  up: boolean;
  /** Its IPv4 addresses with prefix. */
  addresses: string[];
}

export interface PodRoute {
  /** `default` or a prefix, as `ip -j route` prints it. */
  dst: string;
  gateway: string | null;
  dev: string;
}

/** The interface `ifname` in the namespace at `path`, or null when it has none of that name. */
export async function readPodInterface(path: string, ifname: string): Promise<PodInterface | null> {
  let out: string;
  try {
    out = await ipIn(path, ['-j', 'addr', 'show', 'dev', ifname]);
  } catch (err) {
    if (/does not exist|Cannot find device/i.test((err as Error).message)) return null;
    throw err;
  }
  const links = JSON.parse(out || '[]') as Array<{ ifname: string; address?: string; mtu: number; flags?: string[]; addr_info?: Array<{ family: string; local: string; prefixlen: number }> }>;
  const l = links[0];
  if (l === undefined) return null;
  return {
    ifname: l.ifname,
    mac: l.address ?? '',
    mtu: l.mtu,
    up: (l.flags ?? []).includes('UP'),
    addresses: (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
  };
}

/** The IPv4 routes of the main table in the namespace at `path`. */
export async function readPodRoutes(path: string): Promise<PodRoute[]> {
  const out = await ipIn(path, ['-j', '-4', 'route', 'show']);
  const routes = JSON.parse(out || '[]') as Array<{ dst: string; gateway?: string; dev: string }>;
  return routes.map((r) => ({ dst: r.dst, gateway: r.gateway ?? null, dev: r.dev }));
}
