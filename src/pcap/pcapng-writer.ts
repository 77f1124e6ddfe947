/**
 * pcapng writer for live captures (SPEC section 4): one Section Header Block, one Interface
 * Description Block per port and direction or per port, and one Enhanced Packet Block per
 * frame with the direction in epb_flags and an optional opt_comment.
 *
 * Always little-endian. Every block is built in one reused scratch buffer (fields, options
 * padded to 32 bits, the total length at both ends) and passed to the sink in one write, so a
 * killed process leaves a file that ends at a block boundary. Interfaces are written when
 * added, which pcapng allows at any point of a section, so ports can appear at run time.
 */
import { MAX_PACKET_SIZE } from './pcap-format.ts';
import { BlockType, BYTE_ORDER_MAGIC, OptionCode, pad4 } from './pcapng-format.ts';
import { LinkType, PacketDirection } from './record.ts';
import type { CaptureSink } from './sink.ts';
import { type HiLo, MICROSECOND_SCALE, NANOSECOND_SCALE, type TickScale, timeToTicks } from './timestamp.ts';

export interface PcapngWriterOptions {
  /** Section comment (opt_comment in the SHB). */
  comment?: string;
  /** shb_userappl; default "nodeplane". */
  application?: string;
}

export interface PcapngInterfaceOptions {
  name: string;
  /** Default LinkType.ETHERNET. */
  linkType?: number;
  /** Default 262144. Longer frames are truncated to it. */
  snaplen?: number;
  /** Nanoseconds per tick: 1 writes if_tsresol 9, 1000 (default) writes no option (µs). */
  tsResolNs?: 1 | 1000;
  description?: string;
}

export interface PcapngPacketOptions {
  direction?: 'in' | 'out';
  comment?: string;
  /** Length on the wire; default data.length. */
  origLen?: number;
}

/** Assembles one block in a growable scratch buffer. */
class BlockBuilder {
  buf = Buffer.alloc(4096);
  len = 0;

  begin(type: number, maxBody: number): void {
    const need = 12 + maxBody;
    if (this.buf.length < need) this.buf = Buffer.alloc(Math.max(need, this.buf.length * 2));
    this.buf.writeUInt32LE(type, 0);
    this.len = 8;
  }

  u16(v: number): void {
    this.buf.writeUInt16LE(v, this.len);
    this.len += 2;
  }

  u32(v: number): void {
    this.buf.writeUInt32LE(v, this.len);
    this.len += 4;
  }

  /** Raw bytes, zero-padded to 32 bits. */
  bytes(src: Buffer, n: number = src.length): void {
    src.copy(this.buf, this.len, 0, n);
    const padded = pad4(n);
    this.buf.fill(0, this.len + n, this.len + padded);
    this.len += padded;
  }

  option(code: number, value: Buffer): void {
    this.u16(code);
    this.u16(value.length);
    this.bytes(value);
  }

  /** Writes the total length at both ends and returns the finished block. */
  finish(): Buffer {
    const total = this.len + 4;
    this.buf.writeUInt32LE(total, 4);
    this.buf.writeUInt32LE(total, this.len);
    this.len = total;
    return this.buf.subarray(0, total);
  }
}

/** Bytes an option with an n-byte value takes. */
function optionSize(n: number): number {
  return 4 + pad4(n);
}

interface WriterInterface {
  snaplen: number;
  scale: TickScale;
}

export class PcapngWriter {
  /** Packets written so far. */
  packets = 0;
  private readonly b = new BlockBuilder();
  private readonly ifaces: WriterInterface[] = [];
  private readonly ticks: HiLo = { hi: 0, lo: 0 };
  private readonly flagBytes = Buffer.alloc(4);

  constructor(
    private readonly sink: CaptureSink,
    opts: PcapngWriterOptions = {},
  ) {
    const app = Buffer.from(opts.application ?? 'nodeplane', 'utf8');
    const comment = opts.comment === undefined ? undefined : Buffer.from(opts.comment, 'utf8');
    const b = this.b;
    b.begin(BlockType.SHB, 16 + optionSize(app.length) + (comment ? optionSize(comment.length) : 0) + 4);
    b.u32(BYTE_ORDER_MAGIC);
    b.u16(1); // major
    b.u16(0); // minor
    b.u32(0xffffffff); // section length -1: not known while writing
    b.u32(0xffffffff);
    if (comment) b.option(OptionCode.COMMENT, comment);
    b.option(OptionCode.SHB_USERAPPL, app);
    b.u32(0); // opt_endofopt
    sink.write(b.finish());
  }

  /** Writes an Interface Description Block; returns the interface id for writePacket. */
  addInterface(i: PcapngInterfaceOptions): number {
    const snaplen = i.snaplen ?? MAX_PACKET_SIZE;
    const ns = i.tsResolNs === 1;
    const name = Buffer.from(i.name, 'utf8');
    const desc = i.description === undefined ? undefined : Buffer.from(i.description, 'utf8');
    const b = this.b;
    b.begin(BlockType.IDB, 8 + optionSize(name.length) + (desc ? optionSize(desc.length) : 0) + 8 + 4);
    b.u16(i.linkType ?? LinkType.ETHERNET);
    b.u16(0); // reserved
    b.u32(snaplen);
    b.option(OptionCode.IF_NAME, name);
    if (desc) b.option(OptionCode.IF_DESCRIPTION, desc);
    if (ns) b.option(OptionCode.IF_TSRESOL, Buffer.of(9));
    b.u32(0);
    this.sink.write(b.finish());
    this.ifaces.push({ snaplen, scale: ns ? NANOSECOND_SCALE : MICROSECOND_SCALE });
    return this.ifaces.length - 1;
  }

  /** Writes one Enhanced Packet Block. Frames longer than the interface's snaplen are cut. */
  writePacket(ifId: number, tsSec: number, tsNsec: number, data: Buffer, opts: PcapngPacketOptions = {}): void {
    const iface = this.ifaces[ifId];
    if (!iface) throw new RangeError(`pcapng interface ${ifId} was never added`);
    if (!Number.isInteger(tsSec) || tsSec < 0 || tsSec >= 2 ** 32) {
      throw new RangeError(`pcapng timestamp seconds out of range: ${tsSec}`);
    }
    if (!Number.isInteger(tsNsec) || tsNsec < 0 || tsNsec > 999_999_999) {
      throw new RangeError(`pcapng timestamp nanoseconds out of range: ${tsNsec}`);
    }
    const caplen = iface.snaplen === 0 ? data.length : Math.min(data.length, iface.snaplen);
    const origLen = opts.origLen ?? data.length;
    if (!Number.isInteger(origLen) || origLen < caplen || origLen > 0xffffffff) {
      throw new RangeError(`pcapng origLen ${origLen} is invalid for ${caplen} captured bytes`);
    }
    const comment = opts.comment === undefined ? undefined : Buffer.from(opts.comment, 'utf8');
    const dir = opts.direction;
    const optBytes = (comment ? optionSize(comment.length) : 0) + (dir ? optionSize(4) : 0);
    const t = timeToTicks(tsSec, tsNsec, iface.scale, this.ticks);
    const b = this.b;
    b.begin(BlockType.EPB, 20 + pad4(caplen) + optBytes + 4);
    b.u32(ifId);
    b.u32(t.hi);
    b.u32(t.lo);
    b.u32(caplen);
    b.u32(origLen);
    b.bytes(data, caplen);
    if (comment) b.option(OptionCode.COMMENT, comment);
    if (dir) {
      this.flagBytes.writeUInt32LE(dir === 'in' ? PacketDirection.INBOUND : PacketDirection.OUTBOUND, 0);
      b.option(OptionCode.EPB_FLAGS, this.flagBytes);
    }
    if (optBytes > 0) b.u32(0); // opt_endofopt only follows options
    this.sink.write(b.finish());
    this.packets++;
  }

  close(): void {
    this.sink.close();
  }
}
