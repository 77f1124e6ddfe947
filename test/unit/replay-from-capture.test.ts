/**
 * A `run --capture` pcapng as replay input (src/replay/from-capture.ts): inbound records are
 * replayed on their ports, outbound ones kept to compare with; the dropped frames of
 * `--capture-drops` (interface `drop`) are skipped and counted; a record cut by `--snaplen`
 * refuses the file, naming the record, and so does a capture made with offload on.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OFFLOAD_DESCRIPTION } from '../../src/capture/port-capture.ts';
import { PcapngWriter } from '../../src/pcap/pcapng-writer.ts';
import { fileSink } from '../../src/pcap/sink.ts';
import { readCaptureInput } from '../../src/replay/from-capture.ts';

const dir = mkdtempSync(join(tmpdir(), 'nodeplane-fromcap-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const frame = (n: number, fill: number): Buffer => Buffer.alloc(n, fill);

/** A capture with ports pa and pb and a `drop` interface, as run --capture --capture-drops writes. */
function write(name: string, cut: boolean, offload = false): string {
  const path = join(dir, name);
  const w = new PcapngWriter(fileSink(path));
  const description = offload ? OFFLOAD_DESCRIPTION : undefined;
  const pa = w.addInterface({ name: 'pa', snaplen: cut ? 64 : 262144, description });
  const pb = w.addInterface({ name: 'pb', description });
  const drop = w.addInterface({ name: 'drop' });
  w.writePacket(pa, 100, 0, frame(cut ? 64 : 98, 1), { direction: 'in', origLen: 98 });
  w.writePacket(drop, 100, 1000, frame(98, 2), { comment: 'ip4-forward: ip4.ttl-expired (ttl expired in transit)' });
  w.writePacket(pb, 100, 2000, frame(98, 3), { direction: 'out' });
  w.close();
  return path;
}

describe('a run --capture pcapng as replay input', () => {
  it('replays what the ports received, keeps what they sent, skips the dropped frames', () => {
    const input = readCaptureInput(write('drops.pcapng', false), ['pa', 'pb']);
    expect(input.rx.map((f) => [f.port, f.bytes[0], f.bytes.length])).toEqual([['pa', 1, 98]]);
    expect(input.tx.pb!.map((t) => t.bytes[0])).toEqual([3]);
    expect(input.tx).not.toHaveProperty('drop');
    expect(input.skipped).toBe(1);
  });

  it('refuses a capture cut by --snaplen, naming the record', () => {
    expect(() => readCaptureInput(write('cut.pcapng', true), ['pa', 'pb'])).toThrow(/record 1: cut to 64 of its 98 bytes/);
  });

  it('refuses a capture made with offload on (its port interfaces say so)', () => {
    expect(() => readCaptureInput(write('offload.pcapng', false, true), ['pa', 'pb'])).toThrow(/offload on .*run --no-offload/);
  });

  it('still refuses an interface that is not a port', () => {
    expect(() => readCaptureInput(write('other.pcapng', false), ['pa'])).toThrow(/interface "pb" is not a port/);
  });
});
