/**
 * The one error type every capture reader throws for malformed input.
 *
 * It names the file and the byte offset so the CLI can print one line that lets a user find
 * the problem with a hex editor (SPEC section 1: a malformed pcap gives one clear message,
 * never a stack trace). The offset is where the offending structure starts: 0 for the file
 * header, the first byte of the record header or pcapng block otherwise.
 */
export class CaptureFormatError extends Error {
  override readonly name = 'CaptureFormatError';

  constructor(
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`${file}: ${reason} at byte offset ${offset}`);
  }
}
