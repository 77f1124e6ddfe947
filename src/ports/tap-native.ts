// TypeScript face of the TAP half of the nodeplane addon (native/tap.c): open and configure
// a Linux TAP device, read frames in batches into memory JavaScript owns, write batches.
// The addon is loaded lazily (native-addon.ts) so that importing this module never fails;
// tapAvailable() says whether it can be used.
import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { isMulticastMac, parseMac, writeMac } from '../wire/mac.ts';
import { nativeAddon } from './native-addon.ts';

export interface TapHandle {
  readonly fd: number;
  readonly name: string;
  /**
   * Bytes of virtio-net header in front of every frame: 0 (opened without), 10 (struct
   * virtio_net_hdr: TCP offload) or 24 (the UDP-tunnel form, when `tunnelGso` was asked for
   * and the kernel accepted it).
   */
  readonly vnetHdrLen: number;
}

export interface TapOpenOptions {
  /** MTU of the device (68..65535); left as the kernel's default (1500) when absent. */
  mtu?: number;
  /** MAC address of the kernel side of the device, "aa:bb:cc:dd:ee:ff". */
  mac?: string;
  /** Bring the device up (IFF_UP). Default true. */
  up?: boolean;
  /** Transmit queue length, i.e. frames the kernel may queue for us. Default 1000. */
  txQueueLen?: number;
  /**
   * Open with IFF_VNET_HDR and TCP segmentation/checksum offload: every frame read or
   * written is preceded by a 10-byte virtio_net_hdr (wire/virtio-net.ts), and frames may be up to
   * 64 KiB (GSO). Default false.
   */
  vnetHdr?: boolean;
  /**
   * With `vnetHdr`: ask for UDP-tunnel GSO too (TUN_F_UDP_TUNNEL_GSO, Linux 6.17+), so that a
   * VXLAN packet carrying a TCP super-frame crosses the device whole, behind the 24-byte
   * tunnel header. A kernel without it refuses the flag; the device is then opened with TCP
   * offload and the 10-byte header, and `vnetHdrLen` says which it got. Default false.
   */
  tunnelGso?: boolean;
}

export interface TapStats {
  rxFrames: number;
  rxBatches: number;
  /** Frames longer than the slot capacity (delivered cut to the slot capacity). */
  rxTruncated: number;
  txFrames: number;
  txEagain: number;
  /** Frames read, and written, through io_uring batches (one system call for many; native/uring-batch.c). */
  rxUring: number;
  txUring: number;
}

/** An error from the addon or from argument checks, with a Node-style `code`. */
export interface TapError extends Error {
  code: string;
  errno?: number;
  syscall?: string;
}

interface NativeTap {
  open(name: string, mtu: number, mac: Uint8Array | null, up: boolean, txQueueLen: number, vnetHdr: boolean, tunnelGso: boolean): TapHandle;
  startReading(h: TapHandle, pool: Uint8Array, slotOffsets: Int32Array, lengths: Int32Array, slotCapacity: number, onReadable: (status: number) => void): void;
  readBatch(h: TapHandle, count: number): number;
  stopReading(h: TapHandle): void;
  writeBatch(h: TapHandle, pool: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): number;
  close(h: TapHandle): void;
  stats(h: TapHandle): TapStats;
  /** uv_hrtime() in ns (absent from an addon built before it). */
  nowNs?(): number;
  /** When the last readiness callback began, same clock. */
  lastPollNs?(): number;
  /** When the first read() of the last readBatch began (end false) or returned (end true), same clock. */
  lastReadNs?(end: boolean): number;
}

const IFNAMSIZ = 16;
const DEFAULT_TX_QUEUE_LEN = 1000;
const TUN_PATH = '/dev/net/tun';

let loadError: string | undefined;

/** The addon (native-addon.ts), or undefined with the reason in loadError. */
function tryLoad(): NativeTap | undefined {
  const r = nativeAddon();
  if ('error' in r) {
    loadError = r.error;
    return undefined;
  }
  return r.addon as NativeTap;
}

function addon(): NativeTap {
  const n = tryLoad();
  if (!n) throw tapError('ENOADDON', loadError ?? 'the nodeplane addon is unavailable');
  return n;
}

function tapError(code: string, message: string, errno?: number, syscall?: string): TapError {
  const e = new Error(message) as TapError;
  e.code = code;
  if (errno !== undefined) e.errno = errno;
  if (syscall !== undefined) e.syscall = syscall;
  return e;
}

/** The symbolic name of a positive or negative errno value, e.g. -77 -> 'EBADFD'. */
export function tapErrnoName(errno: number): string {
  const n = Math.abs(errno);
  for (const [name, value] of Object.entries(osConstants.errno)) if (value === n) return name;
  return LINUX_ERRNO_EXTRA[n] ?? `E${n}`;
}

// Linux errno values that os.constants.errno leaves out but TAP reads report.
const LINUX_ERRNO_EXTRA: Record<number, string> = { 77: 'EBADFD' };

// Turns the addon's errno-carrying errors into messages that say what to do.
function translate(err: unknown, name: string): never {
  const e = err as { errno?: unknown; syscall?: unknown; message?: string };
  if (typeof e?.errno !== 'number') throw err;
  const errno = e.errno;
  const syscall = typeof e.syscall === 'string' ? e.syscall : 'tap';
  const code = tapErrnoName(errno);
  let message: string;
  if (syscall === 'open' && code === 'ENOENT') {
    message = `cannot open ${TUN_PATH}: no such device (load the tun module or run on Linux with TUN/TAP support)`;
  } else if (syscall === 'open' && (code === 'EACCES' || code === 'EPERM')) {
    message = `cannot open ${TUN_PATH}: permission denied (TAP devices need root or CAP_NET_ADMIN)`;
  } else if (syscall === 'open' && code === 'ENODEV') {
    message = `cannot open ${TUN_PATH}: the tun driver is not loaded (modprobe tun)`;
  } else if (code === 'EPERM') {
    message = `creating TAP device ${name} needs CAP_NET_ADMIN (run as root)`;
  } else if (syscall === 'TUNSETIFF' && code === 'EBUSY') {
    message = `TAP device ${name} is busy (another process has it open)`;
  } else if (syscall === 'TUNSETIFF' && code === 'EINVAL') {
    message = `cannot create TAP device ${name}: invalid name, or a non-TAP device with that name exists`;
  } else if (syscall === 'SIOCSIFMTU' && code === 'EINVAL') {
    message = `cannot set the MTU of TAP device ${name}: out of range for the device`;
  } else {
    message = `TAP device ${name}: ${e.message ?? code}`;
  }
  throw tapError(code, message, errno, syscall);
}

function checkName(name: string): void {
  if (typeof name !== 'string') throw tapError('EINVAL', 'TAP device name must be a string');
  const bytes = Buffer.byteLength(name);
  if (bytes >= IFNAMSIZ) {
    throw tapError(
      'EINVAL',
      `invalid TAP device name "${name}": ${bytes} bytes long, at most ${IFNAMSIZ - 1} allowed`,
    );
  }
  if (name === '.' || name === '..' || /[/:\s]/.test(name)) {
    throw tapError('EINVAL', `invalid TAP device name "${name}": no '/', ':' or whitespace, not '.' or '..'`);
  }
}

/** The 6 bytes of a unicast MAC in text form, for the addon. */
function macBytes(text: string): Buffer {
  let mac: number;
  try {
    mac = parseMac(text);
  } catch {
    throw tapError('EINVAL', `invalid MAC address "${text}" (expected aa:bb:cc:dd:ee:ff)`);
  }
  if (isMulticastMac(mac)) throw tapError('EINVAL', `invalid MAC address "${text}": multicast bit set`);
  const b = Buffer.alloc(6);
  writeMac(b, 0, mac);
  return b;
}

/** Is the addon built and /dev/net/tun present? (No privilege check.) */
export function tapAvailable(): { ok: true } | { ok: false; reason: string } {
  if (!tryLoad()) return { ok: false, reason: loadError ?? 'the nodeplane addon is unavailable' };
  if (!existsSync(TUN_PATH)) {
    return { ok: false, reason: `${TUN_PATH} is missing (load the tun module or run on Linux with TUN/TAP support)` };
  }
  return { ok: true };
}

/**
 * Opens /dev/net/tun as a TAP device called `name` (created, or attached if it exists)
 * in the current network namespace, non-blocking, and configures it.
 */
export function tapOpen(name: string, opts: TapOpenOptions = {}): TapHandle {
  checkName(name);
  const mtu = opts.mtu ?? 0;
  if (opts.mtu !== undefined && (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535)) {
    throw tapError('EINVAL', `invalid MTU ${opts.mtu} for TAP device ${name} (68..65535)`);
  }
  const txq = opts.txQueueLen ?? DEFAULT_TX_QUEUE_LEN;
  if (!Number.isInteger(txq) || txq < 1 || txq > 1 << 20) {
    throw tapError('EINVAL', `invalid txQueueLen ${opts.txQueueLen} for TAP device ${name}`);
  }
  const mac = opts.mac === undefined ? null : macBytes(opts.mac);
  const n = addon();
  try {
    return n.open(name, mtu, mac, opts.up ?? true, txq, opts.vnetHdr ?? false, (opts.vnetHdr ?? false) && (opts.tunnelGso ?? false));
  } catch (err) {
    translate(err, name);
  }
}

/**
 * Starts readiness-driven reading: `onReadable(0)` is called whenever the device has frames
 * (level-triggered: again on the next turn of the event loop while any are left), and
 * `onReadable(-errno)` once, after which reading has stopped, if the device goes away. The
 * frames themselves are read by `tapReadBatch` into `pool` at the offsets the caller puts in
 * `slotOffsets` (each up to `slotCapacity` bytes), their lengths into `lengths`.
 */
export function tapStartReading(
  h: TapHandle,
  pool: Buffer,
  slotOffsets: Int32Array,
  lengths: Int32Array,
  slotCapacity: number,
  onReadable: (status: number) => void,
): void {
  try {
    addon().startReading(h, pool, slotOffsets, lengths, slotCapacity, onReadable);
  } catch (err) {
    translate(err, h.name);
  }
}

/**
 * Reads up to `count` frames into the slots at slotOffsets[0..count) and returns how many it
 * read (0 when none was waiting), or -errno when reading has ended (EBADFD: the device was
 * deleted; reading is then stopped). Synchronous: the slots are free again when it returns.
 */
export function tapReadBatch(h: TapHandle, count: number): number {
  return addon().readBatch(h, count);
}

/** Writes frames pool[offsets[i] .. +lengths[i]] for i < count. Returns the number written,
 * fewer on EAGAIN (the caller counts the rest as drops), or -errno if none could be written. */
export function tapWriteBatch(h: TapHandle, pool: Buffer, offsets: Int32Array, lengths: Int32Array, count: number): number {
  return addon().writeBatch(h, pool, offsets, lengths, count);
}

export function tapStopReading(h: TapHandle): void {
  addon().stopReading(h);
}

/** Stops reading and closes the fd; a non-persistent device disappears. Idempotent. */
export function tapClose(h: TapHandle): void {
  addon().close(h);
}

export function tapStats(h: TapHandle): TapStats {
  return addon().stats(h);
}

/**
 * The addon's clock (uv_hrtime, ns), the time its last readiness callback began and when the
 * last batch's first read() began and returned, for a
 * latency probe (latency-probe.ts); null when the addon cannot load or predates them.
 */
export function tapClock(): { nowNs(): number; lastPollNs(): number; lastReadNs(end: boolean): number } | null {
  const n = tryLoad();
  if (!n || typeof n.nowNs !== 'function' || typeof n.lastPollNs !== 'function' || typeof n.lastReadNs !== 'function') return null;
  return { nowNs: n.nowNs, lastPollNs: n.lastPollNs, lastReadNs: n.lastReadNs };
}

/**
 * What a TAP port needs from its device, so that ports can be tested on a fake one: the
 * addon's functions above, or anything that behaves like them.
 */
export interface TapDriver {
  open(name: string, opts: TapOpenOptions): TapHandle;
  startReading(h: TapHandle, pool: Buffer, slotOffsets: Int32Array, lengths: Int32Array, slotCapacity: number, onReadable: (status: number) => void): void;
  readBatch(h: TapHandle, count: number): number;
  stopReading(h: TapHandle): void;
  writeBatch(h: TapHandle, pool: Buffer, offsets: Int32Array, lengths: Int32Array, count: number): number;
  close(h: TapHandle): void;
  stats(h: TapHandle): TapStats;
}

/** The real devices, through the addon. */
export const nativeTapDriver: TapDriver = {
  open: tapOpen,
  startReading: tapStartReading,
  readBatch: tapReadBatch,
  stopReading: tapStopReading,
  writeBatch: tapWriteBatch,
  close: tapClose,
  stats: tapStats,
};
