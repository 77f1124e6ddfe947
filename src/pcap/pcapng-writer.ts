/**
 * pcapng writer for live captures (SPEC section 4): one Section Header Block, one Interface
 * Description Block per port and direction or per port, and one Enhanced Packet Block per
 * frame with the direction in epb_flags and an optional opt_comment.
 *
 * Always little-endian. Every block is built in one reused scratch buffer (fields, options
 * padded to 32 bits, the total length at both ends) and passed to the sink in one write, so a
 * killed process leaves a file that ends at a block boundary. Interfaces are written when
 * added, which pcapng allows at any point of a section, so ports can appear at run time.
 *
 * Option `pageAligned` (off by default; live captures to a file turn it on). One write(2) is
 * not atomic under SIGKILL: Linux copies it into the page cache one 4096-byte file page at a
 * time and gives up between pages once a fatal signal is pending, so a block that crosses a
 * page boundary can be cut (sink.ts). A write within one page is copied in one piece. With
 * pageAligned, before a block that would cross a boundary (at the sink's `position`, or the
 * bytes this writer wrote when the sink does not know it) the writer first fills the rest of
 * the page with a padding block, so every write lies within one page and a kill leaves only
 * whole blocks. Details:
 *
 * - Padding is a block of the local-use type PAD_BLOCK_TYPE (0x80000BAD, "reserved for local
 *   use" range) with a zero body, at least 12 bytes. Our decoder skips it like any unknown
 *   block; tshark/capinfos 4.0 skip it silently and editcap drops it. A Custom Block
 *   (0x0BAD/0x40000BAD + PEN) is the official alternative, but tshark 4.0 lists each one as a
 *   frame, which would shift frame numbers.
 * - A gap of 4 or 8 bytes cannot hold a padding block, so a block that would leave one before
 *   the boundary goes to the next page instead (its padding is the whole gap).
 * - Cost: with 1514-byte frames (EPB of 1548 bytes, 1560 with epb_flags) two blocks fit in a
 *   page and the third is padded over: 976 of every 4096 bytes (24%). Padding is at most the
 *   next block's size plus 8, so for any mix of frames up to 1514 bytes the worst case is
 *   1568 bytes per page (38%); a seeded mix of 60..1514-byte frames costs about 13%
 *   (pcap-page-aligned.test.ts). Plus one write(2) of padding per page.
 * - Blocks that cannot lie within one page (over 4096 bytes, or 4088/4092 which would leave a
 *   gap of 4 or 8) are written as before and can still be cut; at most 12 bytes of padding are
 *   put in front so that the gap after them is usable again.
 * - The SHB and the IDBs added before the first packet are held back and written in one write
 *   (when they fit in a page) at the first packet, flush(), close(), or a microtask queued by
 *   the constructor, so a writer set up in one synchronous turn has its header on disk at once.
 */
import { MAX_PACKET_SIZE } from './pcap-format.ts';
import { FILE_PAGE_SIZE, MIN_PAD, PAD_BLOCK_TYPE, pagePadding } from './pcapng-epb.ts';
import { BlockType, BYTE_ORDER_MAGIC, OptionCode, pad4 } from './pcapng-format.ts';
import { LinkType, PacketDirection } from './record.ts';
import type { CaptureSink } from './sink.ts';
import { type HiLo, MICROSECOND_SCALE, NANOSECOND_SCALE, type TickScale, timeToTicks } from './timestamp.ts';

export interface PcapngWriterOptions {
  /** Section comment (opt_comment in the SHB). */
  comment?: string;
  /** shb_userappl; default "nodeplane". */
  application?: string;
  /**
   * Keep every write within one 4096-byte page of the file, padding where needed, so that a
   * SIGKILL cannot cut a block (see the header comment for the cost). Default false.
   */
  pageAligned?: boolean;
}

export { FILE_PAGE_SIZE, PAD_BLOCK_TYPE } from './pcapng-epb.ts';

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

  /** Raw bytes (n of them from `from`), zero-padded to 32 bits. */
  bytes(src: Buffer, n: number = src.length, from = 0): void {
    src.copy(this.buf, this.len, from, from + n);
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
  /** Padding bytes written by pageAligned so far (for stats and tests). */
  paddingBytes = 0;
  private readonly b = new BlockBuilder();
  private readonly ifaces: WriterInterface[] = [];
  private readonly ticks: HiLo = { hi: 0, lo: 0 };
  private readonly flagBytes = Buffer.alloc(4);
  private readonly pageAligned: boolean;
  /** Bytes this writer has written (the file offset when the sink does not report one). */
  private written = 0;
  /** pageAligned: SHB and early IDBs not yet written (copies); null once written. */
  private header: Buffer[] | null = null;
  /** pageAligned: an error from the constructor's deferred header write, thrown at the next call. */
  private deferredError: unknown = undefined;
  private padBuf: Buffer | undefined;
  private readonly pads = new Int32Array(2);

  constructor(
    private readonly sink: CaptureSink,
    opts: PcapngWriterOptions = {},
  ) {
    this.pageAligned = opts.pageAligned === true;
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
    if (!this.pageAligned) {
      this.put(b.finish());
      return;
    }
    this.header = [Buffer.from(b.finish())];
    queueMicrotask(() => {
      try {
        this.flush();
      } catch (e) {
        this.deferredError = e;
      }
    });
  }

  /** Writes an Interface Description Block; returns the interface id for writePacket. */
  addInterface(i: PcapngInterfaceOptions): number {
    this.throwDeferred();
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
    if (this.header) this.header.push(Buffer.from(b.finish()));
    else this.put(b.finish());
    this.ifaces.push({ snaplen, scale: ns ? NANOSECOND_SCALE : MICROSECOND_SCALE });
    return this.ifaces.length - 1;
  }

  /** Writes one Enhanced Packet Block. Frames longer than the interface's snaplen are cut. */
  writePacket(ifId: number, tsSec: number, tsNsec: number, data: Buffer, opts: PcapngPacketOptions = {}): void {
    this.writePacketFrom(ifId, tsSec, tsNsec, data, 0, data.length, opts);
  }

  /** writePacket for the `length` bytes of `src` at `start` (a frame in a pool: no copy first). */
  writePacketFrom(ifId: number, tsSec: number, tsNsec: number, src: Buffer, start: number, length: number, opts: PcapngPacketOptions = {}): void {
    const iface = this.ifaces[ifId];
    if (!iface) throw new RangeError(`pcapng interface ${ifId} was never added`);
    if (!Number.isInteger(tsSec) || tsSec < 0 || tsSec >= 2 ** 32) {
      throw new RangeError(`pcapng timestamp seconds out of range: ${tsSec}`);
    }
    if (!Number.isInteger(tsNsec) || tsNsec < 0 || tsNsec > 999_999_999) {
      throw new RangeError(`pcapng timestamp nanoseconds out of range: ${tsNsec}`);
    }
    const caplen = iface.snaplen === 0 ? length : Math.min(length, iface.snaplen);
    const origLen = opts.origLen ?? length;
    if (!Number.isInteger(origLen) || origLen < caplen || origLen > 0xffffffff) {
      throw new RangeError(`pcapng origLen ${origLen} is invalid for ${caplen} captured bytes`);
    }
    if (this.header) this.flush();
    else this.throwDeferred();
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
    b.bytes(src, caplen, start);
    if (comment) b.option(OptionCode.COMMENT, comment);
    if (dir) {
      this.flagBytes.writeUInt32LE(dir === 'in' ? PacketDirection.INBOUND : PacketDirection.OUTBOUND, 0);
      b.option(OptionCode.EPB_FLAGS, this.flagBytes);
    }
    if (optBytes > 0) b.u32(0); // opt_endofopt only follows options
    this.put(b.finish());
    this.packets++;
  }

  /**
   * pageAligned: writes the held-back SHB and IDBs now (one write when they fit in a page).
   * Otherwise, or once written, does nothing.
   */
  flush(): void {
    this.throwDeferred();
    const header = this.header;
    if (!header) return;
    this.header = null;
    const all = Buffer.concat(header);
    if (all.length <= FILE_PAGE_SIZE) this.put(all);
    else for (const block of header) this.put(block);
  }

  close(): void {
    try {
      this.flush();
    } finally {
      this.sink.close();
    }
  }

  private throwDeferred(): void {
    if (this.deferredError === undefined) return;
    const e = this.deferredError;
    this.deferredError = undefined;
    throw e;
  }

  /** Writes whole blocks (`unit`), with pageAligned first padding so the write stays in a page. */
  private put(unit: Buffer): void {
    if (this.pageAligned) this.placeInPage(unit.length);
    this.sink.write(unit);
    this.written += unit.length;
  }

  /** pageAligned: writes the padding, if any, that the next n-byte write needs (pagePadding). */
  private placeInPage(n: number): void {
    const pads = pagePadding(this.sink.position ?? this.written, n, this.pads);
    for (let i = 0; i < pads; i++) this.pad(this.pads[i]!);
  }

  /** Writes one padding block of `size` bytes (a multiple of 4, at least MIN_PAD). */
  private pad(size: number): void {
    if (!this.padBuf) this.padBuf = Buffer.alloc(FILE_PAGE_SIZE + MIN_PAD);
    const p = this.padBuf;
    p.writeUInt32LE(PAD_BLOCK_TYPE, 0);
    p.writeUInt32LE(size, 4);
    p.writeUInt32LE(size, size - 4);
    this.sink.write(p.subarray(0, size));
    p.fill(0, size - 4, size);
    this.written += size;
    this.paddingBytes += size;
  }
}
