/**
 * IPv4 options the router acts on (RFC 791 §3.1). Only Record Route is processed: a router
 * that forwards or sends a datagram carrying it writes its own address into the next free
 * slot, as Linux's ip_forward_options and ip_options_build do. Other options travel
 * untouched.
 *
 *   Record Route:  +--------+--------+--------+---------//--------+
 *                  |00000111| length | pointer|     route data    |
 *                  +--------+--------+--------+---------//--------+
 *   pointer: 1-based offset of the next free 4-byte slot (minimum 4); full when > length.
 */
import { wr16, wr32 } from './bytes.ts';
import { internetChecksum } from './checksum.ts';

export const IPOPT_END = 0;
export const IPOPT_NOOP = 1;
export const IPOPT_RR = 7;

/**
 * Records `addr` in the Record Route option of the header at `ip` (`hlen` bytes), if it has
 * one with room. Returns whether the header changed (its checksum must then be refilled).
 */
export function recordRoute(buf: Buffer, ip: number, hlen: number, addr: number): boolean {
  const end = ip + hlen;
  let p = ip + 20;
  while (p < end) {
    const type = buf[p];
    if (type === IPOPT_END) return false;
    if (type === IPOPT_NOOP) {
      p++;
      continue;
    }
    if (p + 1 >= end) return false;
    const len = buf[p + 1];
    if (len < 2 || p + len > end) return false;
    if (type === IPOPT_RR && len >= 3) {
      const ptr = buf[p + 2];
      if (ptr < 4 || ptr + 3 > len) return false;
      wr32(buf, p + ptr - 1, addr);
      buf[p + 2] = ptr + 4;
      return true;
    }
    p += len;
  }
  return false;
}

/** recordRoute on a whole IPv4 header, refilling its checksum when it changed. */
export function recordRouteInHeader(buf: Buffer, ip: number, addr: number): void {
  const hlen = (buf[ip] & 15) << 2;
  if (hlen > 20 && recordRoute(buf, ip, hlen, addr)) {
    wr16(buf, ip + 10, 0);
    wr16(buf, ip + 10, internetChecksum(buf, ip, hlen));
  }
}

/**
 * Rewrites the options of a received header for the reply built in place from it, as
 * Linux's ip_options_echo does for what we support: the Record Route option (with what it
 * recorded so far) moves to the front, everything else becomes end-of-options padding. The
 * header keeps its length. Returns whether anything changed.
 */
export function echoOptions(buf: Buffer, ip: number, hlen: number): boolean {
  const end = ip + hlen;
  let p = ip + 20;
  let rr = -1;
  while (p < end) {
    const type = buf[p];
    if (type === IPOPT_END) break;
    if (type === IPOPT_NOOP) {
      p++;
      continue;
    }
    if (p + 1 >= end) break;
    const len = buf[p + 1];
    if (len < 2 || p + len > end) break;
    if (type === IPOPT_RR) rr = p;
    p += len;
  }
  let at = ip + 20;
  if (rr >= 0) {
    const len = buf[rr + 1];
    buf.copy(buf, at, rr, rr + len);
    at += len;
  }
  if (at === end && rr === ip + 20) return false;
  buf.fill(IPOPT_END, at, end);
  return true;
}
