/**
 * The in-memory shape of a capture file's contents, shared by the readers and by everything
 * that consumes capture input (replay, decode): interfaces (one per pcapng IDB, exactly one for
 * classic pcap) and records (one per captured frame).
 *
 * Timestamps are split into whole seconds and nanoseconds so that nanosecond captures survive
 * a round trip: a float of seconds since 1970 only holds about 0.2 µs of precision.
 */

/** Link-layer header types (tcpdump.org/linktypes.html); only the ones nodeplane handles. */
export const enum LinkType {
  /** DLT_EN10MB: Ethernet II / 802.3 frames without preamble or FCS. */
  ETHERNET = 1,
}

/** pcapng EPB flags, direction bits 0-1 (section 4.3.1 of the pcapng draft). */
export const enum PacketDirection {
  UNKNOWN = 0,
  INBOUND = 1,
  OUTBOUND = 2,
}

export interface CaptureInterface {
  /** LINKTYPE_* value (the low 16 bits of a classic pcap header's link-type word). */
  linkType: number;
  /** Maximum captured bytes per record; 0 means "not set" (pcapng allows that). */
  snaplen: number;
  /** pcapng if_name. */
  name?: string;
  /**
   * Nanoseconds per timestamp tick: 1000 for microseconds, 1 for nanoseconds. Fractional for
   * resolutions finer than 1 ns or power-of-two resolutions (if_tsresol with the high bit set).
   */
  tsResolNs: number;
  /** pcapng if_description. */
  description?: string;
  /**
   * FCS bytes at the end of each frame, when the file says so (classic pcap's link-type word
   * with the F bit, or pcapng if_fcslen). Absent when unknown.
   */
  fcsLen?: number;
}

export interface CaptureRecord {
  /** Whole seconds since the epoch. */
  tsSec: number;
  /** Nanoseconds within the second (0..999_999_999). */
  tsNsec: number;
  /** Captured bytes (data.length). */
  caplen: number;
  /** Length of the frame on the wire. */
  origLen: number;
  /**
   * A view over the captured bytes. It may alias the reader's buffer, so it is only guaranteed
   * valid until the next record is requested; copy it to keep it longer.
   */
  data: Buffer;
  /** Index into the file's interfaces (0 for classic pcap; counted across pcapng sections). */
  interfaceId: number;
  /** pcapng EPB flags word (direction in bits 0-1: 1 inbound, 2 outbound). */
  flags?: number;
  /** pcapng opt_comment (the first one when a packet has several). */
  comment?: string;
}

/** Direction bits of an EPB flags word as a word, for text output. */
export function directionOf(flags: number | undefined): 'in' | 'out' | undefined {
  if (flags === undefined) return undefined;
  const d = flags & 3;
  return d === PacketDirection.INBOUND ? 'in' : d === PacketDirection.OUTBOUND ? 'out' : undefined;
}
