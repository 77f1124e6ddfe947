/**
 * The one capture parser: an incremental decoder for classic pcap and pcapng that both the
 * whole-file reader and the stream (pipe/FIFO) reader drive.
 *
 * Input is a window buf[pos, end) whose first byte sits at absolute file offset `abs`. Each
 * step() decodes at most one unit (file header, pcap record or pcapng block) and returns the
 * bytes it consumed, or 0 when the window is too short; `needed` then says how many bytes from
 * pos it must see. Headers are validated as soon as they are complete, so a corrupt length is
 * reported at once instead of making a stream reader wait for gigabytes that never come.
 * Records alias `buf`; nothing is copied.
 */
import { CaptureFormatError } from './errors.ts';
import {
  caplenLimit,
  fcsLenOf,
  linkTypeOf,
  PCAP_FILE_HEADER_LEN,
  PCAP_MAGIC_NS,
  PCAP_MAGIC_NS_SWAPPED,
  PCAP_MAGIC_US,
  PCAP_MAGIC_US_SWAPPED,
  PCAP_RECORD_HEADER_LEN,
} from './pcap-format.ts';
import {
  BlockType,
  BYTE_ORDER_MAGIC,
  MAX_BLOCK_LEN,
  MIN_BLOCK_LEN,
  MIN_EPB_LEN,
  MIN_IDB_LEN,
  MIN_OPB_LEN,
  MIN_SHB_LEN,
  MIN_SPB_LEN,
  OptionCode,
  optionString,
  pad4,
  walkOptions,
} from './pcapng-format.ts';
import type { CaptureInterface, CaptureRecord } from './record.ts';
import { MICROSECOND_SCALE, type SecNsec, type TickScale, tickScaleFromTsresol, ticksToTime } from './timestamp.ts';

export class CaptureDecoder {
  format: 'pcap' | 'pcapng' | undefined = undefined;
  /** Every interface seen so far; pcapng sections append to it. */
  readonly interfaces: CaptureInterface[] = [];
  /** The record decoded by the last step(), or null when that unit was not a packet. */
  record: CaptureRecord | null = null;
  /** Bytes from pos the last step() that returned 0 needs to see. */
  needed = 4;
  /** Records decoded so far (for messages: "record 7"). */
  count = 0;

  private le = true;
  // Classic pcap.
  private nanosecond = false;
  private limit = 0;
  // pcapng: interfaces of the current section start at sectionBase in `interfaces`.
  private sectionBase = 0;
  private readonly scales: TickScale[] = [];
  private readonly tsOffsets: number[] = [];
  private readonly time: SecNsec = { sec: 0, nsec: 0 };

  constructor(readonly name: string) {}

  step(buf: Buffer, pos: number, end: number, abs: number): number {
    this.record = null;
    if (this.format === 'pcap') return this.pcapRecord(buf, pos, end, abs);
    if (this.format === 'pcapng') return this.block(buf, pos, end, abs);
    return this.fileHeader(buf, pos, end, abs);
  }

  /** The error for input that ends with `avail` undecoded bytes (avail may be 0 only at start). */
  truncation(buf: Buffer, pos: number, end: number, abs: number): CaptureFormatError {
    const avail = end - pos;
    const fail = (reason: string) => new CaptureFormatError(this.name, abs, reason);
    if (this.format === undefined) {
      if (abs === 0 && avail === 0) return fail('empty file');
      if (avail < 4) return fail(`truncated file header (${avail} bytes, too short for a magic number)`);
      return fail(`truncated pcap file header (${avail} of ${PCAP_FILE_HEADER_LEN} bytes)`);
    }
    const n = this.count + 1;
    if (this.format === 'pcap') {
      if (avail < PCAP_RECORD_HEADER_LEN) {
        return fail(`truncated record header in record ${n} (${avail} of ${PCAP_RECORD_HEADER_LEN} bytes)`);
      }
      const caplen = this.u32(buf, pos + 8);
      const got = avail - PCAP_RECORD_HEADER_LEN;
      return fail(`truncated record data in record ${n} (${got} of ${caplen} bytes)`);
    }
    if (avail < 8) return fail(`truncated block header (${avail} of 8 bytes)`);
    return fail(`truncated block (${avail} of ${this.needed} bytes)`);
  }

  private u32(buf: Buffer, at: number): number {
    return this.le ? buf.readUInt32LE(at) : buf.readUInt32BE(at);
  }

  private u16(buf: Buffer, at: number): number {
    return this.le ? buf.readUInt16LE(at) : buf.readUInt16BE(at);
  }

  private fail(abs: number, reason: string): CaptureFormatError {
    return new CaptureFormatError(this.name, abs, reason);
  }

  private fileHeader(buf: Buffer, pos: number, end: number, abs: number): number {
    if (end - pos < 4) return this.need(4);
    const magic = buf.readUInt32BE(pos);
    if (magic === BlockType.SHB) {
      this.format = 'pcapng';
      return this.block(buf, pos, end, abs);
    }
    if (magic === PCAP_MAGIC_US || magic === PCAP_MAGIC_NS) this.le = false;
    else if (magic === PCAP_MAGIC_US_SWAPPED || magic === PCAP_MAGIC_NS_SWAPPED) this.le = true;
    else {
      const hex = magic.toString(16).padStart(8, '0');
      throw this.fail(abs, `unknown magic number 0x${hex} (not a pcap or pcapng file)`);
    }
    if (end - pos < PCAP_FILE_HEADER_LEN) return this.need(PCAP_FILE_HEADER_LEN);
    this.nanosecond = magic === PCAP_MAGIC_NS || magic === PCAP_MAGIC_NS_SWAPPED;
    const snaplen = this.u32(buf, pos + 16);
    const word = this.u32(buf, pos + 20);
    const iface: CaptureInterface = { linkType: linkTypeOf(word), snaplen, tsResolNs: this.nanosecond ? 1 : 1000 };
    const fcs = fcsLenOf(word);
    if (fcs !== undefined) iface.fcsLen = fcs;
    this.interfaces.push(iface);
    this.limit = caplenLimit(snaplen);
    this.format = 'pcap';
    return PCAP_FILE_HEADER_LEN;
  }

  private pcapRecord(buf: Buffer, pos: number, end: number, abs: number): number {
    if (end - pos < PCAP_RECORD_HEADER_LEN) return this.need(PCAP_RECORD_HEADER_LEN);
    const caplen = this.u32(buf, pos + 8);
    if (caplen > this.limit) {
      throw this.fail(abs, `record length ${caplen} exceeds snaplen ${this.interfaces[0]!.snaplen}`);
    }
    const total = PCAP_RECORD_HEADER_LEN + caplen;
    if (end - pos < total) return this.need(total);
    let sec = this.u32(buf, pos);
    let frac = this.u32(buf, pos + 4);
    let nsec = this.nanosecond ? frac : frac * 1000;
    if (nsec >= 1e9) {
      // Out-of-range fractions exist in fuzzed files; carry them rather than emit tsNsec >= 1e9.
      sec += Math.floor(nsec / 1e9);
      nsec %= 1e9;
    }
    const start = pos + PCAP_RECORD_HEADER_LEN;
    this.record = {
      tsSec: sec,
      tsNsec: nsec,
      caplen,
      origLen: this.u32(buf, pos + 12),
      data: buf.subarray(start, start + caplen),
      interfaceId: 0,
    };
    this.count++;
    return total;
  }

  private need(n: number): 0 {
    this.needed = n;
    return 0;
  }

  /** One pcapng block: checks the framing, then hands the body to the block's parser. */
  private block(buf: Buffer, pos: number, end: number, abs: number): number {
    if (end - pos < 8) return this.need(8);
    const type = this.u32(buf, pos);
    if (type === BlockType.SHB) {
      if (end - pos < 12) return this.need(12);
      const bom = buf.readUInt32LE(pos + 8);
      if (bom === BYTE_ORDER_MAGIC) this.le = true;
      else if (bom === 0x4d3c2b1a) this.le = false;
      else {
        // Shown in file byte order, like the unknown-magic message, so it matches a hex dump.
        const raw = buf.readUInt32BE(pos + 8).toString(16).padStart(8, '0');
        throw this.fail(abs, `bad section header byte-order magic 0x${raw}`);
      }
    }
    const len = this.u32(buf, pos + 4);
    const min = type === BlockType.SHB ? MIN_SHB_LEN : MIN_BLOCK_LEN;
    if (len < min) throw this.fail(abs, `block length ${len} is too small (minimum ${min})`);
    if (len % 4 !== 0) throw this.fail(abs, `block length ${len} is not a multiple of 4`);
    if (len > MAX_BLOCK_LEN) throw this.fail(abs, `block length ${len} exceeds the ${MAX_BLOCK_LEN}-byte limit`);
    if (end - pos < len) return this.need(len);
    const trailer = this.u32(buf, pos + len - 4);
    if (trailer !== len) {
      throw this.fail(abs, `block trailer length ${trailer} does not match block length ${len}`);
    }
    switch (type) {
      case BlockType.SHB:
        this.sectionHeader(buf, pos, abs);
        break;
      case BlockType.IDB:
        this.interfaceDescription(buf, pos, len, abs);
        break;
      case BlockType.EPB:
      case BlockType.OPB:
        this.packet(type, buf, pos, len, abs);
        break;
      case BlockType.SPB:
        this.simplePacket(buf, pos, len, abs);
        break;
      default:
        // NRB, ISB, DSB, custom and unknown blocks: nothing nodeplane needs; the length skips them.
        break;
    }
    return len;
  }

  private sectionHeader(buf: Buffer, pos: number, abs: number): void {
    const major = this.u16(buf, pos + 12);
    if (major !== 1) throw this.fail(abs, `unsupported pcapng version ${major}.${this.u16(buf, pos + 14)}`);
    this.sectionBase = this.interfaces.length;
  }

  private interfaceDescription(buf: Buffer, pos: number, len: number, abs: number): void {
    if (len < MIN_IDB_LEN) throw this.fail(abs, `interface description block length ${len} is too small`);
    const iface: CaptureInterface = {
      linkType: this.u16(buf, pos + 8),
      snaplen: this.u32(buf, pos + 12),
      tsResolNs: MICROSECOND_SCALE.nsPerTick,
    };
    let scale = MICROSECOND_SCALE;
    let tsOffset = 0;
    walkOptions(buf, pos + 16, pos + len - 4, this.le, (code, at, n) => {
      if (code === OptionCode.IF_NAME) iface.name = optionString(buf, at, n);
      else if (code === OptionCode.IF_DESCRIPTION) iface.description = optionString(buf, at, n);
      else if (code === OptionCode.IF_TSRESOL && n >= 1) {
        const s = tickScaleFromTsresol(buf[at]!);
        if (!s) throw this.fail(abs, `unsupported if_tsresol 0x${buf[at]!.toString(16)}`);
        scale = s;
      } else if (code === OptionCode.IF_FCSLEN && n >= 1) iface.fcsLen = buf[at]!;
      else if (code === OptionCode.IF_TSOFFSET && n >= 8) {
        tsOffset = Number(this.le ? buf.readBigInt64LE(at) : buf.readBigInt64BE(at));
      }
    }, this.name, abs);
    iface.tsResolNs = scale.nsPerTick;
    this.interfaces.push(iface);
    this.scales.push(scale);
    this.tsOffsets.push(tsOffset);
  }

  /** The global interface index for a section-local id, or an error naming the block. */
  private globalInterface(localId: number, abs: number): number {
    const inSection = this.interfaces.length - this.sectionBase;
    if (localId >= inSection) {
      throw this.fail(abs, `packet refers to interface ${localId} but the section has ${inSection} interface(s)`);
    }
    return this.sectionBase + localId;
  }

  private checkCaplen(caplen: number, ifId: number, abs: number): void {
    const snaplen = this.interfaces[ifId]!.snaplen;
    if (caplen > caplenLimit(snaplen)) throw this.fail(abs, `record length ${caplen} exceeds snaplen ${snaplen}`);
  }

  /** Enhanced Packet Block, or its obsolete predecessor (16-bit interface id, same layout after). */
  private packet(type: number, buf: Buffer, pos: number, len: number, abs: number): void {
    const min = type === BlockType.EPB ? MIN_EPB_LEN : MIN_OPB_LEN;
    if (len < min) throw this.fail(abs, `packet block length ${len} is too small (minimum ${min})`);
    const localId = type === BlockType.EPB ? this.u32(buf, pos + 8) : this.u16(buf, pos + 8);
    const ifId = this.globalInterface(localId, abs);
    const caplen = this.u32(buf, pos + 20);
    const dataStart = pos + 28;
    const bodyEnd = pos + len - 4;
    if (dataStart + caplen > bodyEnd) {
      throw this.fail(abs, `packet data of ${caplen} bytes runs past the end of a ${len}-byte block`);
    }
    this.checkCaplen(caplen, ifId, abs);
    const t = this.toTime(ifId, this.u32(buf, pos + 12), this.u32(buf, pos + 16));
    const rec: CaptureRecord = {
      tsSec: t.sec,
      tsNsec: t.nsec,
      caplen,
      origLen: this.u32(buf, pos + 24),
      data: buf.subarray(dataStart, dataStart + caplen),
      interfaceId: ifId,
    };
    const optStart = dataStart + pad4(caplen);
    if (optStart < bodyEnd) {
      walkOptions(buf, optStart, bodyEnd, this.le, (code, at, n) => {
        if (code === OptionCode.COMMENT && rec.comment === undefined) rec.comment = optionString(buf, at, n);
        else if (code === OptionCode.EPB_FLAGS && n >= 4) rec.flags = this.u32(buf, at);
      }, this.name, abs);
    }
    this.record = rec;
    this.count++;
  }

  /** Simple Packet Block: interface 0, no timestamp; caplen is bounded by block and snaplen. */
  private simplePacket(buf: Buffer, pos: number, len: number, abs: number): void {
    if (len < MIN_SPB_LEN) throw this.fail(abs, `simple packet block length ${len} is too small`);
    const ifId = this.globalInterface(0, abs);
    const origLen = this.u32(buf, pos + 8);
    const snaplen = this.interfaces[ifId]!.snaplen;
    let caplen = Math.min(origLen, len - MIN_SPB_LEN);
    if (snaplen !== 0 && snaplen < caplen) caplen = snaplen;
    this.record = {
      tsSec: 0,
      tsNsec: 0,
      caplen,
      origLen,
      data: buf.subarray(pos + 12, pos + 12 + caplen),
      interfaceId: ifId,
    };
    this.count++;
  }

  private toTime(ifId: number, hi: number, lo: number): SecNsec {
    const t = ticksToTime(hi, lo, this.scales[ifId]!, this.time);
    t.sec += this.tsOffsets[ifId]!;
    return t;
  }
}
