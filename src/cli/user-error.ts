/**
 * A mistake of the user's (bad flag, missing file, invalid config, malformed pcap).
 * The CLI prints its message alone on stderr and exits non-zero: never a stack trace.
 */
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'UserError';
  }
}
