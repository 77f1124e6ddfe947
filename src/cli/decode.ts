/**
 * `nodeplane decode FILE [--json]`: one line per frame of a pcap or pcapng file.
 *
 * Text lines follow tcpdump -nn -e (see decode/format-text.ts); with --json each line is one
 * object: `n` (1-based), `ts` (seconds, float) and the fields of decode/types.ts (SPEC §5).
 * A missing/unreadable file or a malformed capture becomes a UserError: one line on stderr
 * naming the file, exit status 1, no stack trace. A reader that goes away (`| head`) ends the
 * decoding quietly, exit status 0 (stdout.ts).
 */

import { CaptureFormatError } from '../pcap/errors.ts';
import { readCaptureSync, type CaptureFile } from '../pcap/reader.ts';
import { decodeFrame } from '../decode/decode-frame.ts';
import { formatFrameText } from '../decode/format-text.ts';
import { LineWriter } from './stdout.ts';
import { UserError } from '../user-error.ts';

const FS_REASONS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'is a directory',
  ENOTDIR: 'a component of the path is not a directory',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'file name too long',
  EMFILE: 'too many open files',
  EIO: 'input/output error',
};

function openCapture(file: string): CaptureFile {
  try {
    return readCaptureSync(file);
  } catch (err) {
    throw toUserError(file, err);
  }
}

function toUserError(file: string, err: unknown): unknown {
  if (err instanceof CaptureFormatError) return new UserError(err.message);
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (typeof code === 'string') return new UserError(`${file}: ${FS_REASONS[code] ?? (err as Error).message}`);
  if (err instanceof RangeError) return new UserError(`${file}: ${err.message}`); // e.g. a file larger than a Buffer
  return err;
}

export async function decodeCommand(file: string, opts: { json?: boolean }): Promise<number> {
  const cap = openCapture(file);
  const w = new LineWriter();
  let n = 0;
  try {
    for (const rec of cap.records()) {
      n++;
      const iface = cap.interfaces[rec.interfaceId];
      const linkType = iface ? iface.linkType : 1;
      const frame = decodeFrame(rec.data, rec.caplen, rec.origLen, linkType);
      if (opts.json) {
        await w.line(JSON.stringify({ n, ts: rec.tsSec + rec.tsNsec / 1e9, ...frame }));
      } else {
        const nanos = iface !== undefined && iface.tsResolNs < 1000;
        await w.line(formatFrameText(frame, rec.tsSec, rec.tsNsec, nanos));
      }
      if (w.gone) break;
    }
  } catch (err) {
    await w.flush();
    throw toUserError(file, err);
  }
  await w.flush();
  return 0;
}
