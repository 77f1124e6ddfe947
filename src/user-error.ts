/**
 * A mistake of the user's (bad flag, missing file, invalid config, malformed pcap).
 * The CLI prints its message alone on stderr and exits non-zero: never a stack trace.
 * It sits at the bottom of src/, beside the logger, so every layer may throw it.
 */
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'UserError';
  }
}
