/**
 * VxlanSocket: the underlay of a VXLAN device with `underlay: socket` — a kernel UDP socket
 * (node:dgram) bound to the device's `local` address and port, the machine's own (say
 * 192.168.60.11:8472), so that two machines are joined through their own network stacks with
 * no interface of nodeplane's on the underlay: the kernel adds the outer IPv4 and UDP headers,
 * routes, resolves and sends, as for any socket.
 *
 * Sending (the DatagramTransmitter vxlan-socket-tx calls): each frame, from its VXLAN header
 * on, to the remote VTEP in the slot's nextHop at the device's port. The bytes are copied
 * into a Buffer first — Node keeps a datagram it could not send at once until it can, and the
 * slot is reused as soon as transmit returns — and sent one by one: Node has no sendmmsg, and
 * allocates per send whatever we do, so this path is for joining machines, not for speed.
 * The source port is the bound one (the device's), not a per-flow hash: a kernel socket
 * sends from where it is bound.
 *
 * Receiving: each datagram goes into a pool slot behind the IPv4 and UDP headers it came with
 * (source address and port from the kernel, destination the device's address and port), and
 * on to vxlan-decap, which checks it as it checks VXLAN from an L3 port (VNI, known VTEP,
 * inner MACs). Datagrams that arrive in one turn of the event loop run through the graph
 * together, on the next setImmediate. With the pool down to the ports' reserve (RxBudget), or
 * a datagram too large for a slot, it is dropped and counted.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import type { FramePool } from '../core/frame-pool.ts';
import type { DatagramTransmitter } from '../core/port-contract.ts';
import type { Dataplane } from '../dataplane/dataplane.ts';
import type { Logger } from '../log.ts';
import { formatIpv4, parseIpv4 } from '../wire/ipv4-address.ts';
import type { RxBudget } from './rx-budget.ts';

/** IPv4 (20) and UDP (8) headers written in front of a received datagram. */
const OUTER = 28;

export interface VxlanSocketStats {
  rxDatagrams: number;
  /** Dropped: no free slot above the reserve. */
  rxNoBuffer: number;
  /** Dropped: larger than a slot holds. */
  rxTooLarge: number;
  txDatagrams: number;
  txErrors: number;
}

export class VxlanSocket implements DatagramTransmitter {
  private sock: Socket | null = null;
  /** Remote VTEPs as text, by their int32 address (few: one per peer). */
  private readonly addrText = new Map<number, string>();
  private readonly addrValue = new Map<string, number>();
  private runScheduled = false;
  private readonly local: number;
  readonly stats: VxlanSocketStats = { rxDatagrams: 0, rxNoBuffer: 0, rxTooLarge: 0, txDatagrams: 0, txErrors: 0 };
  private readonly onSent = (err: Error | null): void => {
    if (err) this.stats.txErrors++;
  };
  private readonly runNow = (): void => {
    this.runScheduled = false;
    this.dp.run();
  };

  constructor(
    private readonly dp: Dataplane,
    readonly device: string,
    private readonly opts: { local: string; port: number; log: Logger; budget?: RxBudget },
  ) {
    this.local = parseIpv4(opts.local) | 0;
    dp.vxlanSocketDevice(device);
  }

  /** Binds the socket to local:port and starts receiving; rejects with the bind error. */
  async open(): Promise<void> {
    const sock = createSocket({ type: 'udp4' });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ address: this.opts.local, port: this.opts.port, exclusive: true }, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    sock.on('error', (err) => this.opts.log.warn({ device: this.device, err: err.message }, 'vxlan socket error'));
    sock.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    this.sock = sock;
    this.dp.setVxlanSocket(this.device, this);
  }

  transmit(pool: FramePool, slots: Int32Array, n: number): number {
    const sock = this.sock;
    if (sock === null) return 0;
    const data = pool.data;
    const port = this.opts.port;
    for (let i = 0; i < n; i++) {
      const slot = slots[i];
      const s = pool.start[slot];
      const len = pool.len[slot];
      const b = Buffer.allocUnsafe(len);
      data.copy(b, 0, s, s + len);
      sock.send(b, port, this.textOf(pool.nextHop[slot]), this.onSent);
    }
    this.stats.txDatagrams += n;
    return n;
  }

  private textOf(addr: number): string {
    let t = this.addrText.get(addr);
    if (t === undefined) {
      t = formatIpv4(addr >>> 0);
      this.addrText.set(addr, t);
    }
    return t;
  }

  private valueOf(text: string): number {
    let v = this.addrValue.get(text);
    if (v === undefined) {
      v = parseIpv4(text) | 0;
      // Bounded: senders are peers, but anyone can send to the port.
      if (this.addrValue.size >= 4096) this.addrValue.clear();
      this.addrValue.set(text, v);
    }
    return v;
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    this.stats.rxDatagrams++;
    const dp = this.dp;
    const pool = dp.pool;
    const total = OUTER + msg.length;
    if (total > pool.maxFrame || total > 0xffff) {
      this.stats.rxTooLarge++;
      return;
    }
    if (this.opts.budget !== undefined && this.opts.budget.roundSize(1) === 0) {
      this.stats.rxNoBuffer++;
      return;
    }
    const slot = placeDatagram(pool, msg, this.valueOf(rinfo.address), rinfo.port, this.local, this.opts.port);
    if (slot < 0) {
      this.stats.rxNoBuffer++;
      return;
    }
    dp.receiveVxlanDatagram(slot);
    if (!this.runScheduled) {
      this.runScheduled = true;
      setImmediate(this.runNow);
    }
  }

  close(): void {
    this.dp.setVxlanSocket(this.device, null);
    this.sock?.close();
    this.sock = null;
  }
}

/**
 * Puts a received datagram (VXLAN header on) into a new slot behind the IPv4 and UDP headers
 * it arrived with, from src:sport to dst:dport; start and l3 at the IPv4 header, l4 at UDP.
 * The slot, or -1 when the pool has none or the datagram does not fit one.
 */
export function placeDatagram(pool: FramePool, msg: Buffer, src: number, sport: number, dst: number, dport: number): number {
  const total = OUTER + msg.length;
  if (total > pool.maxFrame || total > 0xffff) return -1;
  const slot = pool.alloc();
  if (slot < 0) return -1;
  const data = pool.data;
  const ip = pool.start[slot];
  src |= 0;
  dst |= 0;
  data[ip] = 0x45;
  data[ip + 1] = 0;
  data[ip + 2] = total >>> 8;
  data[ip + 3] = total;
  data.fill(0, ip + 4, ip + 8);
  data[ip + 8] = 64;
  data[ip + 9] = 17;
  data.writeInt32BE(src, ip + 12);
  data.writeInt32BE(dst, ip + 16);
  let sum = 0x4500 + total + 0x4011 + (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff);
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = ~((sum & 0xffff) + (sum >>> 16));
  data[ip + 10] = sum >>> 8;
  data[ip + 11] = sum;
  const udp = ip + 20;
  data.writeUInt16BE(sport, udp);
  data.writeUInt16BE(dport, udp + 2);
  data.writeUInt16BE(total - 20, udp + 4);
  data[udp + 6] = 0;
  data[udp + 7] = 0;
  msg.copy(data, ip + OUTER);
  pool.len[slot] = total;
  pool.l3[slot] = ip;
  pool.l4[slot] = udp;
  return slot;
}
