/**
 * Classic pcap writer: the format of replay outputs (SPEC section 3: DIR/P.pcap, classic
 * pcap, LINKTYPE_ETHERNET). Little-endian (host order on every platform Node runs on that we
 * target), microsecond magic a1b2c3d4 or, with `nanosecond`, a1b23c4d.
 *
 * The file header is written by the constructor, so a port that never transmits still gets a
 * valid, empty capture file. Each record is assembled in one reused scratch buffer and handed
 * to the sink in a single write: no per-record allocation, and no half-written records.
 */
import {
  MAX_PACKET_SIZE,
  PCAP_FILE_HEADER_LEN,
  PCAP_MAGIC_NS,
  PCAP_MAGIC_US,
  PCAP_RECORD_HEADER_LEN,
  PCAP_VERSION_MAJOR,
  PCAP_VERSION_MINOR,
} from './pcap-format.ts';
import { LinkType } from './record.ts';
import type { CaptureSink } from './sink.ts';

export interface PcapWriterOptions {
  /** Nanosecond timestamps (magic a1b23c4d). Default false: microseconds. */
  nanosecond?: boolean;
  /** Default 262144, libpcap's default. Longer frames are truncated to it. */
  snaplen?: number;
  /** Default LinkType.ETHERNET. */
  linkType?: number;
  /** Only little-endian output is supported; the option exists to make that explicit. */
  bigEndian?: false;
}

export class PcapWriter {
  readonly nanosecond: boolean;
  readonly snaplen: number;
  /** Records written so far. */
  records = 0;
  private scratch = Buffer.alloc(PCAP_RECORD_HEADER_LEN + 2048);

  constructor(
    private readonly sink: CaptureSink,
    opts: PcapWriterOptions = {},
  ) {
    this.nanosecond = opts.nanosecond ?? false;
    this.snaplen = opts.snaplen ?? MAX_PACKET_SIZE;
    if (!Number.isInteger(this.snaplen) || this.snaplen < 1 || this.snaplen > 0xffffffff) {
      throw new RangeError(`pcap snaplen must be a positive 32-bit integer, got ${this.snaplen}`);
    }
    const h = Buffer.alloc(PCAP_FILE_HEADER_LEN);
    h.writeUInt32LE(this.nanosecond ? PCAP_MAGIC_NS : PCAP_MAGIC_US, 0);
    h.writeUInt16LE(PCAP_VERSION_MAJOR, 4);
    h.writeUInt16LE(PCAP_VERSION_MINOR, 6);
    // thiszone and sigfigs stay 0, as every modern writer does.
    h.writeUInt32LE(this.snaplen, 16);
    h.writeUInt32LE(opts.linkType ?? LinkType.ETHERNET, 20);
    sink.write(h);
  }

  /**
   * Appends one record. `data` beyond the snaplen is cut off; origLen (default data.length)
   * records the length on the wire. tsNsec is truncated to µs in a microsecond file.
   */
  writeRecord(tsSec: number, tsNsec: number, data: Buffer, origLen: number = data.length): void {
    if (!Number.isInteger(tsSec) || tsSec < 0 || tsSec > 0xffffffff) {
      throw new RangeError(`pcap timestamp seconds out of range: ${tsSec}`);
    }
    if (!Number.isInteger(tsNsec) || tsNsec < 0 || tsNsec > 999_999_999) {
      throw new RangeError(`pcap timestamp nanoseconds out of range: ${tsNsec}`);
    }
    const caplen = Math.min(data.length, this.snaplen);
    if (!Number.isInteger(origLen) || origLen < caplen || origLen > 0xffffffff) {
      throw new RangeError(`pcap origLen ${origLen} is invalid for ${caplen} captured bytes`);
    }
    const total = PCAP_RECORD_HEADER_LEN + caplen;
    if (this.scratch.length < total) this.scratch = Buffer.alloc(Math.max(total, this.scratch.length * 2));
    const b = this.scratch;
    b.writeUInt32LE(tsSec, 0);
    b.writeUInt32LE(this.nanosecond ? tsNsec : Math.floor(tsNsec / 1000), 4);
    b.writeUInt32LE(caplen, 8);
    b.writeUInt32LE(origLen, 12);
    data.copy(b, PCAP_RECORD_HEADER_LEN, 0, caplen);
    this.sink.write(b.subarray(0, total));
    this.records++;
  }

  close(): void {
    this.sink.close();
  }
}
