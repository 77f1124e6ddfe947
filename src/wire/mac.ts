/**
 * IEEE 802 MAC-48 addresses as plain numbers.
 *
 * A MAC is held as a 48-bit integer in a JS number: the first two bytes on the wire are
 * the high 16 bits, the last four the low 32 bits (`hi16 * 2^32 + lo32`). Every value in
 * 0 .. 2^48-1 is exact in a double, so MACs compare with `===` and key Maps directly.
 *
 *      0                   1                   2                   3
 *      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |   octet 0     |   octet 1     |   octet 2     |   octet 3     |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |   octet 4     |   octet 5     |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *      octet 0 bit 0 (0x01): I/G, group (multicast) address
 *      octet 0 bit 1 (0x02): U/L, locally administered
 *
 * Strings exist only at the edges (config, CLI, logs): lower-case, colon-separated.
 */

export const MAC_BROADCAST = 0xffffffffffff;
export const MAC_ZERO = 0;

const TWO32 = 0x100000000;

/** The 48-bit MAC at `buf[off .. off+6)`. */
export function readMac(buf: Buffer, off: number): number {
  const hi = (buf[off] << 8) | buf[off + 1];
  const lo = ((buf[off + 2] << 24) | (buf[off + 3] << 16) | (buf[off + 4] << 8) | buf[off + 5]) >>> 0;
  return hi * TWO32 + lo;
}

/** Writes the 48-bit `mac` at `buf[off .. off+6)`. */
export function writeMac(buf: Buffer, off: number, mac: number): void {
  const hi = Math.floor(mac / TWO32);
  const lo = mac >>> 0;
  buf[off] = hi >>> 8;
  buf[off + 1] = hi;
  buf[off + 2] = lo >>> 24;
  buf[off + 3] = lo >>> 16;
  buf[off + 4] = lo >>> 8;
  buf[off + 5] = lo;
}

/** High 16 bits (the first two octets). */
export function macHi(mac: number): number {
  return Math.floor(mac / TWO32);
}

/** Low 32 bits (the last four octets), unsigned. */
export function macLo(mac: number): number {
  return mac >>> 0;
}

const MAC_RE = /^([0-9a-fA-F]{1,2})([:-])([0-9a-fA-F]{1,2})\2([0-9a-fA-F]{1,2})\2([0-9a-fA-F]{1,2})\2([0-9a-fA-F]{1,2})\2([0-9a-fA-F]{1,2})$/;

/** Parses `aa:bb:cc:dd:ee:ff` (also `-` separated, one or two hex digits an octet). Throws on bad text. */
export function parseMac(s: string): number {
  const m = MAC_RE.exec(s);
  if (m === null) throw new Error(`invalid MAC address: ${JSON.stringify(s)}`);
  let v = 0;
  for (const i of [1, 3, 4, 5, 6, 7]) v = v * 256 + parseInt(m[i], 16);
  return v;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** `mac` as lower-case colon-separated text. */
export function formatMac(mac: number): string {
  const hi = Math.floor(mac / TWO32);
  const lo = mac >>> 0;
  return (
    HEX[(hi >>> 8) & 0xff] + ':' + HEX[hi & 0xff] + ':' + HEX[lo >>> 24] + ':' +
    HEX[(lo >>> 16) & 0xff] + ':' + HEX[(lo >>> 8) & 0xff] + ':' + HEX[lo & 0xff]
  );
}

/** The group bit (I/G) of the first octet: multicast, broadcast included. */
export function isMulticastMac(mac: number): boolean {
  return (Math.floor(mac / 0x10000000000) & 0x01) !== 0;
}

export function isBroadcastMac(mac: number): boolean {
  return mac === MAC_BROADCAST;
}

/** The U/L bit of the first octet. */
export function isLocalMac(mac: number): boolean {
  return (Math.floor(mac / 0x10000000000) & 0x02) !== 0;
}
