/**
 * Classic libpcap file format: constants and header layouts shared by the reader and writer.
 *
 *   file header (24 bytes)                    record header (16 bytes), then caplen bytes
 *   0  magic        u32                       0  ts_sec      u32
 *   4  version      u16 major, u16 minor      4  ts_frac     u32  (µs or ns, by magic)
 *   8  thiszone     i32 (always 0)            8  caplen      u32
 *   12 sigfigs      u32 (always 0)            12 origlen     u32
 *   16 snaplen      u32
 *   20 linktype     u32 (low 16 bits: LINKTYPE_*; bits 26-31: FCS info)
 *
 * The byte order of every field is the one in which the magic number reads correctly.
 */

export const PCAP_FILE_HEADER_LEN = 24;
export const PCAP_RECORD_HEADER_LEN = 16;

/** Magic numbers as the u32 a little-endian read of bytes 0-3 yields. */
export const PCAP_MAGIC_US = 0xa1b2c3d4;
export const PCAP_MAGIC_NS = 0xa1b23c4d;
export const PCAP_MAGIC_US_SWAPPED = 0xd4c3b2a1;
export const PCAP_MAGIC_NS_SWAPPED = 0x4d3cb2a1;

export const PCAP_VERSION_MAJOR = 2;
export const PCAP_VERSION_MINOR = 4;

/**
 * Largest record Wireshark accepts for most link types (WTAP_MAX_PACKET_SIZE_STANDARD), and
 * what current libpcap writes as the default snaplen.
 */
export const MAX_PACKET_SIZE = 262144;

/**
 * The caplen a reader must accept for a file or interface with this snaplen.
 *
 * Why not just the snaplen: real captures violate it. zeek's trunc-hdr.pcap says snaplen 1
 * and carries an 8-byte record; Wireshark and tcpdump read it. Wireshark ignores the header
 * snaplen and only rejects records above the link type's maximum (262144 for Ethernet), so
 * we do the same: a record is rejected only when it exceeds both the snaplen and 262144.
 */
export function caplenLimit(snaplen: number): number {
  return snaplen > MAX_PACKET_SIZE ? snaplen : MAX_PACKET_SIZE;
}

/** Splits the classic pcap link-type word (pcap draft section 4: LinkType and FCS bits). */
export function linkTypeOf(word: number): number {
  return word & 0xffff;
}

/** FCS length in bytes when the F bit (bit 26) is set, else undefined. */
export function fcsLenOf(word: number): number | undefined {
  return word & 0x04000000 ? ((word >>> 28) & 0xf) * 2 : undefined;
}
