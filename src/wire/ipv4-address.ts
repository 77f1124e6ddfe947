/**
 * IPv4 addresses and prefixes as unsigned 32-bit integers.
 *
 * An address is a JS number in 0 .. 2^32-1 (always normalised with `>>> 0`, so it is never
 * negative and compares with `===`). Text appears only at the edges: dotted quad, and
 * CIDR `a.b.c.d/len`.
 *
 * Special ranges used by the router's source checks (RFC 1812 §5.3.7, RFC 6890):
 *   0.0.0.0/8 "this network", 127.0.0.0/8 loopback, 224.0.0.0/4 multicast,
 *   240.0.0.0/4 reserved (255.255.255.255 limited broadcast included).
 */

const OCTET_RE = /^(0|[1-9][0-9]{0,2})$/;

/** Parses a dotted quad (exactly four decimal octets, no leading zeros). Throws on bad text. */
export function parseIpv4(s: string): number {
  const parts = s.split('.');
  if (parts.length !== 4) throw new Error(`invalid IPv4 address: ${JSON.stringify(s)}`);
  let v = 0;
  for (const p of parts) {
    if (!OCTET_RE.test(p)) throw new Error(`invalid IPv4 address: ${JSON.stringify(s)}`);
    const n = Number(p);
    if (n > 255) throw new Error(`invalid IPv4 address: ${JSON.stringify(s)}`);
    v = v * 256 + n;
  }
  return v >>> 0;
}

/** `a` as a dotted quad. */
export function formatIpv4(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;
}

/** The netmask of a prefix length (0..32) as a u32; 0 gives 0. */
export function prefixMask(len: number): number {
  return len <= 0 ? 0 : len >= 32 ? 0xffffffff : (0xffffffff << (32 - len)) >>> 0;
}

/** An address with its prefix length: `10.244.1.1/24`, or the subnet `10.244.1.0/24`. */
export interface Cidr {
  addr: number;
  prefixLen: number;
}

/** Parses `a.b.c.d/len` (a bare address means /32). Host bits may be set (as in `10.244.1.1/24`). */
export function parseCidr(s: string): Cidr {
  const slash = s.indexOf('/');
  if (slash < 0) return { addr: parseIpv4(s), prefixLen: 32 };
  const lenText = s.slice(slash + 1);
  if (!/^(0|[1-9][0-9]?)$/.test(lenText) || Number(lenText) > 32) {
    throw new Error(`invalid prefix length in ${JSON.stringify(s)}`);
  }
  return { addr: parseIpv4(s.slice(0, slash)), prefixLen: Number(lenText) };
}

/** `addr` and `net` agree on the first `len` bits. */
export function inPrefix(addr: number, net: number, len: number): boolean {
  const m = prefixMask(len);
  return ((addr & m) >>> 0) === ((net & m) >>> 0);
}

/** The network address of `addr/len`. */
export function networkOf(addr: number, len: number): number {
  return (addr & prefixMask(len)) >>> 0;
}

/** The directed broadcast address of `addr/len`. */
export function broadcastOf(addr: number, len: number): number {
  return (addr | ~prefixMask(len)) >>> 0;
}

/** `c` as `a.b.c.d/len`. */
export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.addr)}/${c.prefixLen}`;
}

/** The subnet `c` lies in: host bits cleared. */
export function subnetOf(c: Cidr): Cidr {
  return { addr: networkOf(c.addr, c.prefixLen), prefixLen: c.prefixLen };
}

export function cidrContains(c: Cidr, addr: number): boolean {
  return inPrefix(addr, c.addr, c.prefixLen);
}

/** Whether two prefixes share an address (then the shorter one holds the longer). */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.prefixLen <= b.prefixLen ? cidrContains(a, b.addr) : cidrContains(b, a.addr);
}

/** 127.0.0.0/8. */
export function isLoopback(a: number): boolean {
  return a >>> 24 === 127;
}

/** 224.0.0.0/4. */
export function isMulticast(a: number): boolean {
  return a >>> 28 === 0xe;
}

/** 240.0.0.0/4, the reserved class E (255.255.255.255 included). */
export function isReserved(a: number): boolean {
  return a >>> 28 === 0xf;
}

/** Multicast (224/4) or limited broadcast (255.255.255.255). */
export function isMulticastOrBroadcast(a: number): boolean {
  return (a >>> 28) === 0xe || a >>> 0 === 0xffffffff;
}

/** A source address a router must never accept: 0/8, 127/8, 224/4, 240/4 (broadcast included). */
export function isMartianSource(a: number): boolean {
  const top = a >>> 24;
  return top === 0 || top === 127 || top >= 224;
}
