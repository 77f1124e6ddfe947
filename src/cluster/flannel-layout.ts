/**
 * flannel's etcd layout, as flanneld reads and writes it (pkg/subnet, pkg/lease and the vxlan
 * backend of flannel-io/flannel): pure text ↔ value functions, no etcd calls.
 *
 *   <prefix>/config                   {"Network":"10.244.0.0/16","SubnetLen":24,
 *                                      "Backend":{"Type":"vxlan","VNI":1,"Port":8472}}
 *   <prefix>/subnets/10.244.5.0-24    {"PublicIP":"192.168.50.11","PublicIPv6":null,
 *                                      "BackendType":"vxlan",
 *                                      "BackendData":{"VNI":1,"VtepMAC":"0e:58:0a:f4:05:00"}}
 *
 * The network config is written by an administrator for flanneld; it is read as Go's
 * encoding/json reads it (field names case-insensitive, unknown fields ignored) and
 * completed as flannel's CheckNetworkConfig does: SubnetLen 24 (or the network's prefix + 2
 * below a /22), SubnetMin the second subnet, SubnetMax the last one, Backend.Type "udp" when
 * no Backend is given, VNI 1. A lease's value is the JSON Go marshals for flannel's
 * LeaseAttrs, fields in declaration order, no spaces. Also here: picking a free subnet as
 * flannel's allocateSubnet does (the first 100 free ones between SubnetMin and SubnetMax,
 * one at random) and /run/flannel/subnet.env's text.
 */
import { type Cidr, cidrsOverlap, formatCidr, formatIpv4, inPrefix, networkOf, parseIpv4 } from '../wire/ipv4-address.ts';
import { formatMac, isMulticastMac, parseMac } from '../wire/mac.ts';

/** A network config or lease value that flannel would refuse too. */
export class FlannelLayoutError extends Error {
  override name = 'FlannelLayoutError';
}

/** `<prefix>/config`, completed with flannel's defaults. */
export interface NetworkConfig {
  network: Cidr;
  subnetLen: number;
  /** First and last subnet network addresses a node may lease. */
  subnetMin: number;
  subnetMax: number;
  backendType: string;
  /** Backend.VNI (flannel's default 1) and Backend.Port (0: the kernel's default, 8472). */
  vni: number;
  port: number;
}

/** A lease's value: flannel's LeaseAttrs with the vxlan backend's BackendData. */
export interface LeaseAttrs {
  publicIP: string;
  backendType: string;
  /** BackendData.VtepMAC and .VNI, for vxlan leases. */
  vtepMac?: string;
  vni?: number;
}

export const SUBNETS_DIR = 'subnets';
export const CONFIG_KEY = 'config';

/** The VNI and port flanneld's vxlan backend uses when the config names none. */
export const FLANNEL_DEFAULT_VNI = 1;
export const LINUX_VXLAN_PORT = 8472;

/** Go's encoding/json matches field names case-insensitively: the value of `name` in `obj`. */
function field(obj: Record<string, unknown>, name: string): unknown {
  if (name in obj) return obj[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(obj)) if (k.toLowerCase() === lower) return obj[k];
  return undefined;
}

function parseObject(text: string, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new FlannelLayoutError(`${what} is not JSON: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new FlannelLayoutError(`${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

function optionalIpv4(v: unknown, what: string): number {
  if (v === undefined || v === null || v === '') return 0;
  if (typeof v !== 'string') throw new FlannelLayoutError(`${what} must be a dotted-quad string`);
  try {
    return parseIpv4(v);
  } catch {
    throw new FlannelLayoutError(`${what} '${v}' is not an IPv4 address`);
  }
}

function optionalInt(v: unknown, what: string, min: number, max: number, dflt: number): number {
  if (v === undefined || v === null || v === 0) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new FlannelLayoutError(`${what} must be an integer ${min}..${max}`);
  return v;
}

/** Reads `<prefix>/config` as flanneld does, with CheckNetworkConfig's defaults and refusals. */
export function parseNetworkConfig(text: string): NetworkConfig {
  const o = parseObject(text, 'the network config');
  const netText = field(o, 'Network');
  if (typeof netText !== 'string' || !netText.includes('/')) throw new FlannelLayoutError('the network config has no Network (e.g. "10.244.0.0/16")');
  let network: Cidr;
  try {
    const [a, l] = netText.split('/');
    if (!/^\d{1,2}$/.test(l!) || Number(l) > 32) throw new Error();
    network = { addr: networkOf(parseIpv4(a!), Number(l)), prefixLen: Number(l) };
  } catch {
    throw new FlannelLayoutError(`the network config's Network '${netText}' is not an IPv4 prefix`);
  }
  let subnetLen = optionalInt(field(o, 'SubnetLen'), 'SubnetLen', 1, 32, 0);
  if (subnetLen > 0) {
    if (subnetLen > 30) throw new FlannelLayoutError('SubnetLen must be less than /31');
    if (subnetLen < network.prefixLen + 2) throw new FlannelLayoutError('the Network must be able to accommodate at least four subnets');
  } else {
    if (network.prefixLen > 28) throw new FlannelLayoutError('the Network is too small: the minimum useful prefix is /28');
    subnetLen = network.prefixLen <= 22 ? 24 : network.prefixLen + 2;
  }
  const size = 2 ** (32 - subnetLen);
  let subnetMin = optionalIpv4(field(o, 'SubnetMin'), 'SubnetMin');
  let subnetMax = optionalIpv4(field(o, 'SubnetMax'), 'SubnetMax');
  // The first subnet is skipped: its .0 would be the network's own address.
  if (subnetMin === 0) subnetMin = (network.addr + size) >>> 0;
  else if (!inPrefix(subnetMin, network.addr, network.prefixLen)) throw new FlannelLayoutError('SubnetMin is not in the range of the Network');
  if (subnetMax === 0) subnetMax = (network.addr + 2 ** (32 - network.prefixLen) - size) >>> 0;
  else if (!inPrefix(subnetMax, network.addr, network.prefixLen)) throw new FlannelLayoutError('SubnetMax is not in the range of the Network');
  if (networkOf(subnetMin, subnetLen) !== subnetMin) throw new FlannelLayoutError(`SubnetMin is not on a SubnetLen boundary: ${formatIpv4(subnetMin)}`);
  if (networkOf(subnetMax, subnetLen) !== subnetMax) throw new FlannelLayoutError(`SubnetMax is not on a SubnetLen boundary: ${formatIpv4(subnetMax)}`);

  const backend = field(o, 'Backend');
  let backendType = 'udp';
  let vni = FLANNEL_DEFAULT_VNI;
  let port = 0;
  if (backend !== undefined && backend !== null) {
    if (typeof backend !== 'object' || Array.isArray(backend)) throw new FlannelLayoutError('Backend must be a JSON object');
    const b = backend as Record<string, unknown>;
    const t = field(b, 'Type');
    backendType = typeof t === 'string' ? t : '';
    vni = optionalInt(field(b, 'VNI'), 'Backend.VNI', 0, 0xffffff, FLANNEL_DEFAULT_VNI);
    port = optionalInt(field(b, 'Port'), 'Backend.Port', 0, 65535, 0);
  }
  return { network, subnetLen, subnetMin, subnetMax, backendType, vni, port };
}

/** The network config nodeplane writes when `<prefix>/config` is absent (flanneld never writes one). */
export function networkConfigText(network: Cidr, subnetLen: number, vni: number, port: number): string {
  return JSON.stringify({ Network: formatCidr(network), SubnetLen: subnetLen, Backend: { Type: 'vxlan', VNI: vni, Port: port } });
}

/** flannel's MakeSubnetKey: `10.244.5.0-24`. */
export function subnetKey(subnet: Cidr): string {
  return `${formatIpv4(subnet.addr)}-${subnet.prefixLen}`;
}

/** flannel's ParseSubnetKey (IPv4 part): the subnet at the end of a key, or undefined. */
export function parseSubnetKey(key: string): Cidr | undefined {
  const m = /(\d+\.\d+\.\d+\.\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$/.exec(key);
  if (!m) return undefined;
  const len = Number(m[2]);
  if (len > 31) return undefined; // Go parses it as a 5-bit number
  try {
    return { addr: parseIpv4(m[1]!), prefixLen: len };
  } catch {
    return undefined;
  }
}

/** A lease's value exactly as flanneld's vxlan backend writes it (Go's json.Marshal of LeaseAttrs). */
export function leaseText(publicIP: string, vni: number, vtepMac: string): string {
  return `{"PublicIP":${JSON.stringify(publicIP)},"PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":${vni},"VtepMAC":${JSON.stringify(vtepMac)}}}`;
}

/** Reads a lease's value; throws FlannelLayoutError for what flannel could not use either. */
export function parseLeaseAttrs(text: string): LeaseAttrs {
  const o = parseObject(text, 'the lease');
  const publicIP = field(o, 'PublicIP');
  if (typeof publicIP !== 'string') throw new FlannelLayoutError('the lease has no PublicIP');
  try {
    parseIpv4(publicIP);
  } catch {
    throw new FlannelLayoutError(`the lease's PublicIP '${publicIP}' is not an IPv4 address`);
  }
  const t = field(o, 'BackendType');
  const attrs: LeaseAttrs = { publicIP, backendType: typeof t === 'string' ? t : '' };
  const data = field(o, 'BackendData');
  if (data !== null && typeof data === 'object' && !Array.isArray(data)) {
    const d = data as Record<string, unknown>;
    const mac = field(d, 'VtepMAC');
    if (typeof mac === 'string') {
      let m: number;
      try {
        m = parseMac(mac);
      } catch {
        throw new FlannelLayoutError(`the lease's VtepMAC '${mac}' is not a MAC address`);
      }
      if (isMulticastMac(m) || m === 0) throw new FlannelLayoutError(`the lease's VtepMAC '${mac}' is not a unicast MAC`);
      attrs.vtepMac = formatMac(m);
    }
    const vni = field(d, 'VNI');
    if (typeof vni === 'number') attrs.vni = vni;
  }
  return attrs;
}

/** Whether a leased subnet fits the network config (flannel's isSubnetConfigCompat). */
export function subnetFits(cfg: NetworkConfig, subnet: Cidr): boolean {
  return subnet.prefixLen === cfg.subnetLen && subnet.addr >= cfg.subnetMin && subnet.addr <= cfg.subnetMax;
}

/** The first `limit` subnets between SubnetMin and SubnetMax that overlap no lease, in order. */
export function freeSubnets(cfg: NetworkConfig, taken: readonly Cidr[], limit = 100): Cidr[] {
  const out: Cidr[] = [];
  const size = 2 ** (32 - cfg.subnetLen);
  for (let a = cfg.subnetMin; a <= cfg.subnetMax && out.length < limit; a += size) {
    const sn = { addr: a >>> 0, prefixLen: cfg.subnetLen };
    if (!taken.some((t) => cidrsOverlap(t, sn))) out.push(sn);
  }
  return out;
}

/** flannel's allocateSubnet: one of the first 100 free subnets at random; undefined when none is free. */
export function pickSubnet(cfg: NetworkConfig, taken: readonly Cidr[], random: () => number = Math.random): Cidr | undefined {
  const free = freeSubnets(cfg, taken);
  return free.length === 0 ? undefined : free[Math.min(free.length - 1, Math.floor(random() * free.length))];
}

/**
 * /run/flannel/subnet.env as flanneld writes it: the network, the subnet's first address
 * with its prefix (what the CNI bridge plugin gives cni0), the overlay MTU, and whether
 * flannel masquerades pod traffic leaving the network.
 */
export function subnetEnvText(network: Cidr, subnet: Cidr, mtu: number, ipMasq: boolean): string {
  const first = { addr: (subnet.addr + 1) >>> 0, prefixLen: subnet.prefixLen };
  return `FLANNEL_NETWORK=${formatCidr(network)}\nFLANNEL_SUBNET=${formatCidr(first)}\nFLANNEL_MTU=${mtu}\nFLANNEL_IPMASQ=${ipMasq}\n`;
}

/**
 * The VTEP MAC of a node whose config names none: 0e:58 and the leased subnet's address, so
 * it is unique in the cluster and stays the same when the lease is reused (flanneld keeps
 * the kernel's random MAC of flannel.1 for the same purpose).
 */
export function vtepMacFor(subnet: Cidr): string {
  return formatMac(0x0e58 * 2 ** 32 + (subnet.addr >>> 0));
}
