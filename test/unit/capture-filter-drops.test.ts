/**
 * Capture filters and dropped frames in the pcapng (src/capture): a tcpdump filter compiled
 * by libpcap picks what is recorded, on every capture; `drops` adds an interface `drop` whose
 * records are the frames stages dropped, each with a comment naming the stage and the reason
 * id, as Wireshark shows it in frame.comment.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createCaptures, type CaptureOptions } from '../../src/capture/create-captures.ts';
import { BpfFilter, filtersAvailable } from '../../src/capture/bpf-filter.ts';
import { loadConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { FramePool } from '../../src/core/frame-pool.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import { readCaptureSync } from '../../src/pcap/reader.ts';
import { decodeFrame } from '../../src/decode/decode-frame.ts';
import { UserError } from '../../src/user-error.ts';
import { inCI, missingTools, tsharkFields } from '../helpers/tshark.ts';

const FIXTURES = fileURLToPath(new URL('../../captures/replay/', import.meta.url));
const TMP = mkdtempSync(join(tmpdir(), 'nodeplane-filter-'));
let dirs = 0;

interface Input {
  port: string;
  tsUs: number;
  bytes: Buffer;
}

function fixture(c: string, port: string): Input[] {
  return [...readCaptureSync(join(FIXTURES, c, `${port}.pcap`)).records()].map((r) => ({
    port,
    tsUs: r.tsSec * 1e6 + Math.floor(r.tsNsec / 1000),
    bytes: Buffer.from(r.data),
  }));
}

function runLab(opts: CaptureOptions, inputs: Input[]): { file: string; dp: Dataplane } {
  const clock = new VirtualClock();
  const dp = new Dataplane(loadConfig(join(FIXTURES, 'lab.yaml')), { clock });
  for (let p = 0; p < dp.ctx.ports.count; p++) dp.setDriver(p, { transmit: (_pool, _slots, n) => n });
  const caps = createCaptures(dp, { dir: join(TMP, `run${dirs++}`), ...opts });
  dp.setObserver(caps.observer);
  for (const f of inputs) {
    clock.set(f.tsUs);
    dp.receive(dp.portIndex(f.port), f.bytes);
    dp.run();
  }
  caps.close();
  return { file: caps.files()[0]!, dp };
}

/** Every record: interface name, comment, decoded protocol summary. */
function records(file: string): { ifName: string; comment: string | undefined; proto: string }[] {
  const cap = readCaptureSync(file);
  return [...cap.records()].map((r) => {
    const d = decodeFrame(r.data);
    return { ifName: cap.interfaces[r.interfaceId]?.name ?? '', comment: r.comment, proto: d.arp ? 'arp' : d.icmp ? 'icmp' : d.udp ? 'udp' : d.tcp ? 'tcp' : 'other' };
  });
}

const available = filtersAvailable();
const describeFilters = available || inCI() ? describe : describe.skip;
if (!available && !inCI()) console.log('capture filter tests skipped: libpcap cannot be loaded by the addon');

describeFilters('capture filters (libpcap)', () => {
  it('compiles tcpdump syntax and matches a batch in one call; refuses what libpcap refuses', () => {
    const pool = new FramePool(8);
    const inputs = [...fixture('ping-gateway', 'pa'), ...fixture('flood-learn', 'pa')];
    const slots = new Int32Array(inputs.map((f) => pool.fill(f.bytes, 0)));
    const verdicts = new Uint8Array(slots.length);
    const icmp = new BpfFilter('icmp');
    const k = icmp.matchBatch(pool, slots, slots.length, verdicts);
    const expected = inputs.map((f) => (decodeFrame(f.bytes).icmp ? 1 : 0));
    expect([...verdicts]).toEqual(expected);
    expect(k).toBe(expected.filter((v) => v === 1).length);
    expect(k).toBeGreaterThan(0);
    expect(k).toBeLessThan(inputs.length);
    expect(() => new BpfFilter('tcp port')).toThrow(UserError);
    expect(() => new BpfFilter('icmp or')).toThrow(/capture filter "icmp or":/);
  });

  it('records only the frames the filter matches', () => {
    const inputs = [...fixture('flood-learn', 'pa'), ...fixture('ping-gateway', 'pa')].sort((a, b) => a.tsUs - b.tsUs);
    const all = records(runLab({}, inputs).file);
    const arpOnly = records(runLab({ filter: 'arp' }, inputs).file);
    expect(all.some((r) => r.proto !== 'arp')).toBe(true);
    expect(arpOnly.length).toBeGreaterThan(0);
    expect(arpOnly).toEqual(all.filter((r) => r.proto === 'arp'));
  });
});

describeFilters('dropped frames on the `drop` interface', () => {
  it('records a TTL-expired ping and malformed frames with stage and reason id as comment', () => {
    const inputs = [...fixture('ttl-expiry', 'pa'), ...fixture('malformed', 'pa')].sort((a, b) => a.tsUs - b.tsUs);
    const { file, dp } = runLab({ drops: true }, inputs);
    const drops = records(file).filter((r) => r.ifName === 'drop');
    const comments = drops.map((r) => r.comment ?? '');
    expect(comments.some((c) => c.startsWith('icmp-error: ip4.ttl-expired ('))).toBe(true);
    expect(comments.some((c) => c.startsWith('ip4-input: ip4.bad-checksum ('))).toBe(true);
    expect(comments.some((c) => c.startsWith('ethernet-input: eth.runt ('))).toBe(true);
    // One record per counted drop, over every stage.
    const counted = dp.graph.stages.reduce((sum, s) => sum + s.drops.reduce((a, b) => a + b, 0), 0);
    expect(drops).toHaveLength(counted);
    if (missingTools(['tshark']).length === 0) {
      const rows = tsharkFields(file, ['frame.interface_name', 'frame.comment'], ['-Y', 'frame.comment']);
      expect(rows.length).toBe(drops.length);
      expect(rows.every(([ifName]) => ifName === 'drop')).toBe(true);
      expect(rows.some(([, c]) => c!.startsWith('icmp-error: ip4.ttl-expired'))).toBe(true);
    }
  });

  it('needs a capture directory', () => {
    const dp = new Dataplane(loadConfig(join(FIXTURES, 'lab.yaml')), { clock: new VirtualClock() });
    expect(() => createCaptures(dp, { drops: true, stdoutPort: 'pa' })).toThrow(/--capture-drops needs a capture directory/);
  });
});
