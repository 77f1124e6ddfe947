/**
 * CNI's vocabulary for nodeplane-cni: the network configuration it reads on stdin, the
 * results it prints, and its errors — as the CNI specification (SPEC.md of
 * containernetworking/cni, sections 1 and 5) defines them.
 *
 * The plugin's own configuration keys, beside CNI's (`cniVersion`, `name`, `type`, `ipam`,
 * `dns`, `prevResult`, `runtimeConfig`, `args`, `capabilities`):
 *   bridge       the nodeplane bridge the pods join (default "cni0")
 *   adminSocket  the running nodeplane's admin socket (default "/run/nodeplane.sock")
 *   mtu          the pod interface's MTU (default 1500)
 * Other keys are passed through untouched, as the specification asks.
 */

/** Versions whose result format this plugin prints (0.3.x and 0.4.0 ips carry "version": "4"). */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] as const;

/** Error codes of the specification (section 5), and this plugin's own (100 and up). */
export const enum CniCode {
  INCOMPATIBLE_VERSION = 1,
  UNSUPPORTED_FIELD = 2,
  INVALID_ENVIRONMENT = 4,
  IO_FAILURE = 5,
  DECODE_FAILURE = 6,
  INVALID_CONFIG = 7,
  TRY_AGAIN_LATER = 11,
  /** nodeplane refused the port (name in use, bad address...). */
  PORT_REFUSED = 100,
  /** CHECK: the port is missing from nodeplane. */
  PORT_MISSING = 101,
  /** CHECK: the interface, an address or a route is missing in the pod's namespace. */
  NETNS_MISMATCH = 102,
  /** The IPAM plugin could not be found or run, or answered nonsense. */
  IPAM_FAILED = 103,
}

/** An error result: printed as JSON on stdout, exit status 1. */
export class CniError extends Error {
  constructor(
    readonly code: number,
    readonly msg: string,
    readonly details = '',
  ) {
    super(details === '' ? msg : `${msg}: ${details}`);
  }

  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    return this.details === '' ? { cniVersion, code: this.code, msg: this.msg } : { cniVersion, code: this.code, msg: this.msg, details: this.details };
  }
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniIp {
  address: string;
  gateway?: string;
  interface?: number;
  /** 0.3.x and 0.4.0 only. */
  version?: string;
}

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}

export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIp[];
  routes?: CniRoute[];
  dns?: CniDns;
}

/** The plugin configuration as read from stdin: what the plugin uses, and the text itself. */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  bridge: string;
  adminSocket: string;
  mtu: number;
  ipam: { type: string } | null;
  dns: CniDns | null;
  prevResult: CniResult | null;
  /** Exactly what came on stdin: delegated plugins get it unchanged. */
  raw: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads the configuration; a CniError (6: not JSON, 7: invalid, 1: version) when it cannot. */
export function parseNetConf(raw: string): NetConf {
  let j: unknown;
  try {
    j = JSON.parse(raw);
  } catch (err) {
    throw new CniError(CniCode.DECODE_FAILURE, 'network configuration is not JSON', (err as Error).message);
  }
  if (!isObject(j)) throw new CniError(CniCode.DECODE_FAILURE, 'network configuration is not a JSON object');
  const bad = (key: string, why: string): never => {
    throw new CniError(CniCode.INVALID_CONFIG, 'invalid network configuration', `${key}: ${why}`);
  };
  const str = (key: string, dflt?: string): string => {
    const v = j[key];
    if (v === undefined && dflt !== undefined) return dflt;
    if (typeof v !== 'string' || v === '') return bad(key, 'a non-empty string is needed');
    return v;
  };
  const cniVersion = str('cniVersion');
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(cniVersion)) {
    throw new CniError(CniCode.INCOMPATIBLE_VERSION, 'incompatible CNI version', `config version ${cniVersion}, plugin supports ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  const mtu = j.mtu === undefined ? 1500 : j.mtu;
  if (!Number.isInteger(mtu) || (mtu as number) < 68 || (mtu as number) > 65535) bad('mtu', 'a whole number in 68..65535 is needed');
  let ipam: { type: string } | null = null;
  if (j.ipam !== undefined) {
    if (!isObject(j.ipam) || typeof j.ipam.type !== 'string' || j.ipam.type === '') bad('ipam', 'an object with a type is needed');
    else if (!/^[A-Za-z0-9._-]+$/.test(j.ipam.type)) bad('ipam.type', `${j.ipam.type} is not a plugin name`);
    else ipam = { type: j.ipam.type };
  }
  if (j.dns !== undefined && !isObject(j.dns)) bad('dns', 'an object is needed');
  if (j.prevResult !== undefined && !isObject(j.prevResult)) bad('prevResult', 'an object is needed');
  return {
    cniVersion,
    name: str('name'),
    type: str('type'),
    bridge: str('bridge', 'cni0'),
    adminSocket: str('adminSocket', '/run/nodeplane.sock'),
    mtu: mtu as number,
    ipam,
    dns: (j.dns as CniDns | undefined) ?? null,
    prevResult: (j.prevResult as CniResult | undefined) ?? null,
    raw,
  };
}

/** The attachment's parameters from the environment (section 2). */
export interface CniEnv {
  command: string;
  containerId: string;
  netns: string;
  ifname: string;
  path: string[];
}

/** CNI_* from `env`; a CniError (4) naming what is missing or malformed for `command`. */
export function readEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND ?? '';
  const e: CniEnv = {
    command,
    containerId: env.CNI_CONTAINERID ?? '',
    netns: env.CNI_NETNS ?? '',
    ifname: env.CNI_IFNAME ?? '',
    path: (env.CNI_PATH ?? '').split(':').filter((d) => d !== ''),
  };
  const needs: Record<string, string[]> = {
    ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
    DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
    CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
    VERSION: [],
  };
  const required = needs[command];
  if (required === undefined) throw new CniError(CniCode.INVALID_ENVIRONMENT, 'invalid CNI_COMMAND', `CNI_COMMAND=${command}: one of ${Object.keys(needs).join(', ')}`);
  const missing = required.filter((k) => (env[k] ?? '') === '');
  if (missing.length > 0) throw new CniError(CniCode.INVALID_ENVIRONMENT, 'missing environment variables', missing.join(', '));
  if (e.containerId !== '' && !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(e.containerId)) {
    throw new CniError(CniCode.INVALID_ENVIRONMENT, 'invalid CNI_CONTAINERID', 'alphanumeric first, then alphanumerics, _ . -');
  }
  if (e.ifname !== '' && !/^[^/:\s]{1,15}$/.test(e.ifname)) throw new CniError(CniCode.INVALID_ENVIRONMENT, 'invalid CNI_IFNAME', `${e.ifname}: 1 to 15 bytes, no '/', ':' or whitespace`);
  if (e.netns !== '' && !e.netns.startsWith('/')) throw new CniError(CniCode.INVALID_ENVIRONMENT, 'invalid CNI_NETNS', `${e.netns}: an absolute path is needed`);
  return e;
}
