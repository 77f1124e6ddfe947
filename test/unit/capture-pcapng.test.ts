/**
 * The pcapng capture tee (src/capture/port-capture.ts via createCaptures): a dataplane built
 * from the replay lab config is fed fixture frames in process, and the files it leaves are
 * read back with our reader and with tshark: one IDB per port, direction flags, timestamps,
 * port subsets, snaplen, rotation and wrapping like tcpdump -C/-W, and bad options.
 */
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { createCaptures, type CaptureOptions } from '../../src/capture/create-captures.ts';
import { FrameScratch } from '../../src/capture/frame-scratch.ts';
import { PortCapture } from '../../src/capture/port-capture.ts';
import { UserError } from '../../src/user-error.ts';
import { loadConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { FramePool } from '../../src/core/frame-pool.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import { readCaptureSync } from '../../src/pcap/reader.ts';
import type { CaptureSink } from '../../src/pcap/sink.ts';
import { describeWithTools, tsharkFields } from '../helpers/tshark.ts';

const FIXTURES = fileURLToPath(new URL('../../captures/replay/', import.meta.url));
const TMP = mkdtempSync(join(tmpdir(), 'nodeplane-capture-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));
const START = new Date(Date.UTC(2024, 0, 31, 12, 0, 0));
const PORTS = ['pa', 'pb', 'pc', 'up', 'slow'];

let dirs = 0;
/** A directory that does not exist yet (createCaptures creates it). */
function freshDir(): string {
  return join(TMP, `run${dirs++}`);
}

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

/** The lab dataplane with sink drivers, captures attached, fed `inputs` in order. */
function runLab(opts: CaptureOptions, inputs: Input[]) {
  const clock = new VirtualClock();
  const dp = new Dataplane(loadConfig(join(FIXTURES, 'lab.yaml')), { clock });
  for (let p = 0; p < dp.ctx.ports.count; p++) dp.setDriver(p, { transmit: (_pool, _slots, n) => n });
  const caps = createCaptures(dp, { startTime: START, ...opts });
  dp.setObserver(caps.observer);
  for (const f of inputs) {
    clock.set(f.tsUs);
    dp.receive(dp.portIndex(f.port), f.bytes);
    dp.run();
  }
  caps.close();
  return { dp, caps };
}

/** n copies of flood-learn's first UDP frame on pa, 1 ms apart: each is received + flooded twice. */
function udpBurst(n: number): Input[] {
  const [first] = fixture('flood-learn', 'pa');
  return Array.from({ length: n }, (_, i) => ({ port: 'pa', tsUs: first!.tsUs + i * 1000, bytes: first!.bytes }));
}

describe('pcapng capture, read back with our reader', () => {
  it('writes one file named nodeplane-<UTC stamp>.pcapng with one Ethernet IDB per port', () => {
    const dir = freshDir();
    const { caps } = runLab({ dir }, fixture('ping-gateway', 'pa'));
    expect(caps.files()).toEqual([join(dir, 'nodeplane-20240131T120000Z.pcapng')]);
    expect(readdirSync(dir)).toEqual(['nodeplane-20240131T120000Z.pcapng']);
    const f = readCaptureSync(caps.files()[0]!);
    expect(f.format).toBe('pcapng');
    expect(f.interfaces.map((i) => [i.name, i.linkType, i.snaplen, i.tsResolNs])).toEqual(
      PORTS.map((p) => [p, 1, 262144, 1000]),
    );
  });

  it('records rx as inbound and tx as outbound on the right port, at the clock time', () => {
    const dir = freshDir();
    const input = fixture('ping-gateway', 'pa');
    const { caps } = runLab({ dir }, input);
    const recs = [...readCaptureSync(caps.files()[0]!).records()].map((r) => ({
      port: PORTS[r.interfaceId],
      dir: r.flags! & 3,
      us: r.tsSec * 1e6 + r.tsNsec / 1000,
      len: r.origLen,
    }));
    const t0 = input[0]!.tsUs;
    const t1 = input[1]!.tsUs;
    expect(recs).toEqual([
      { port: 'pa', dir: 1, us: t0, len: 42 }, // ARP request received
      { port: 'pb', dir: 2, us: t0, len: 42 }, // flooded
      { port: 'pc', dir: 2, us: t0, len: 42 },
      { port: 'pa', dir: 2, us: t0, len: 42 }, // ARP reply from the gateway
      { port: 'pa', dir: 1, us: t1, len: 98 }, // echo request
      { port: 'pa', dir: 2, us: t1, len: 98 }, // echo reply
    ]);
  });

  it('captures only the chosen ports, with IDBs for those alone', () => {
    const dir = freshDir();
    const { caps } = runLab({ dir, ports: ['pb'] }, fixture('ping-gateway', 'pa'));
    const f = readCaptureSync(caps.files()[0]!);
    expect(f.interfaces.map((i) => i.name)).toEqual(['pb']);
    const recs = [...f.records()];
    expect(recs.map((r) => [r.interfaceId, r.flags])).toEqual([[0, 2]]);
  });

  it('cuts frames at the snaplen and keeps the length on the wire', () => {
    const dir = freshDir();
    const { caps } = runLab({ dir, snaplen: 64 }, fixture('ping-gateway', 'pa'));
    const f = readCaptureSync(caps.files()[0]!);
    expect(f.interfaces.every((i) => i.snaplen === 64)).toBe(true);
    expect([...f.records()].map((r) => [r.caplen, r.origLen])).toEqual([
      [42, 42],
      [42, 42],
      [42, 42],
      [42, 42],
      [64, 98],
      [64, 98],
    ]);
  });

  it('rotates like tcpdump -C/-W: at most W files, each under the limit, oldest overwritten', () => {
    const dir = freshDir();
    const max = 2000;
    const { caps } = runLab({ dir, maxFileMB: max / 1e6, maxFiles: 4 }, udpBurst(300));
    const pc = caps.pcapng!;
    expect(pc.packets).toBe(900);
    expect(pc.fileCount).toBeGreaterThan(8);
    const files = caps.files();
    expect(files).toHaveLength(4);
    expect(readdirSync(dir).sort()).toEqual(files.map((f) => basename(f)).sort());
    // The newest file is the last one started: number (fileCount - 1) mod 4.
    expect(basename(files[3]!)).toBe(`nodeplane-20240131T120000Z-${(pc.fileCount - 1) % 4}.pcapng`);
    let prevLast = -1;
    let total = 0;
    for (const file of files) {
      expect(statSync(file).size).toBeLessThanOrEqual(max);
      const f = readCaptureSync(file);
      expect(f.interfaces.map((i) => i.name)).toEqual(PORTS);
      const ts = [...f.records()].map((r) => r.tsSec * 1e6 + r.tsNsec / 1000);
      expect(ts.length).toBeGreaterThan(0);
      expect(ts[0]!).toBeGreaterThanOrEqual(prevLast); // files() is oldest first
      prevLast = ts[ts.length - 1]!;
      total += ts.length;
    }
    // The last file ends with the last frame flooded.
    expect(prevLast).toBe(udpBurst(300)[299]!.tsUs);
    expect(total).toBeLessThan(900);
  });

  it('without a file count, keeps every rotated file: -0, -1, … holding every packet once', () => {
    const dir = freshDir();
    const { caps } = runLab({ dir, maxFileMB: 0.003 }, udpBurst(100));
    const files = caps.files();
    expect(files.length).toBe(caps.pcapng!.fileCount);
    expect(files.map((f) => basename(f))).toEqual(files.map((_, k) => `nodeplane-20240131T120000Z-${k}.pcapng`));
    const total = files.reduce((n, f) => n + readCaptureSync(f).count, 0);
    expect(total).toBe(300);
  });

  it('never overwrites another run started in the same second', () => {
    const dir = freshDir();
    const a = runLab({ dir }, []).caps.files();
    const b = runLab({ dir }, []).caps.files();
    const c = runLab({ dir, maxFileMB: 1 }, []).caps.files();
    expect(a.map((f) => basename(f))).toEqual(['nodeplane-20240131T120000Z.pcapng']);
    expect(b.map((f) => basename(f))).toEqual(['nodeplane-20240131T120000Z_2.pcapng']);
    expect(c.map((f) => basename(f))).toEqual(['nodeplane-20240131T120000Z-0.pcapng']);
    // A run without traffic still leaves a readable file: SHB and IDBs.
    expect(readCaptureSync(b[0]!).count).toBe(0);
  });

  it('rejects unknown ports and inconsistent options with a UserError naming the problem', () => {
    const dir = freshDir();
    const bad = (o: CaptureOptions): unknown => {
      try {
        runLab(o, []);
      } catch (e) {
        return e;
      }
      return undefined;
    };
    const e1 = bad({ dir, ports: ['pa', 'pz'] });
    expect(e1).toBeInstanceOf(UserError);
    expect((e1 as Error).message).toMatch(/unknown port "pz"/);
    expect((bad({ fifo: { path: join(TMP, 'x'), port: 'nope' } }) as Error).message).toMatch(/unknown port "nope".*or all/);
    expect(bad({ dir, maxFiles: 3 })).toBeInstanceOf(UserError);
    expect(bad({ dir, maxFileMB: 0 })).toBeInstanceOf(UserError);
    expect(bad({ dir, snaplen: 0 })).toBeInstanceOf(UserError);
    expect(bad({ dir: join(freshDir(), 'nested') })).toBeUndefined(); // missing directories are created
    const aFile = join(TMP, 'a-file');
    writeFileSync(aFile, '');
    const e2 = bad({ dir: aFile });
    expect(e2).toBeInstanceOf(UserError);
    expect((e2 as Error).message).toMatch(/^capture: .*a-file/);
  });

  it('stops with one log line when a write fails, and the dataplane carries on', () => {
    const warnings: string[] = [];
    let writes = 0;
    const failing = (): CaptureSink => ({
      write() {
        if (++writes > 3) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      },
      close() {},
    });
    const clock = new VirtualClock();
    const dp = new Dataplane(loadConfig(join(FIXTURES, 'lab.yaml')), { clock });
    let sent = 0;
    for (let p = 0; p < dp.ctx.ports.count; p++) dp.setDriver(p, { transmit: (_pool, _slots, n) => ((sent += n), n) });
    const pc = new PortCapture({
      dir: freshDir(),
      portNames: dp.ctx.ports.names,
      clock,
      openSink: failing,
      log: { warn: (_o, msg) => warnings.push(msg) },
    });
    dp.setObserver(pc);
    for (const f of udpBurst(5)) {
      clock.set(f.tsUs);
      dp.receive(0, f.bytes);
      dp.run();
    }
    expect(pc.packets).toBe(2); // SHB and 5 IDBs in one write, then 2 EPBs: 3 writes
    expect(pc.error?.message).toMatch(/ENOSPC/);
    expect(warnings).toEqual(['capture stopped: write failed']);
    expect(sent).toBe(10);
  });

  it('hands the writer a reused view per length: no allocation per packet', () => {
    const pool = new FramePool(4);
    const s = new FrameScratch();
    const a = pool.fill(Buffer.alloc(60, 1), 0);
    const b = pool.fill(Buffer.alloc(60, 2), 0);
    const v1 = s.take(pool, a, 1000);
    expect(v1[0]).toBe(1);
    const v2 = s.take(pool, b, 1000);
    expect(v2).toBe(v1);
    expect(v2[59]).toBe(2);
    expect(s.take(pool, b, 20)).toHaveLength(20);
  });
});

describeWithTools(['tshark'], 'pcapng capture, read back with tshark', () => {
  it('shows the ARP request in on pa and flooded out on pb and pc, the ping in and its reply out on pa', () => {
    const dir = freshDir();
    const { caps } = runLab({ dir }, fixture('ping-gateway', 'pa'));
    const rows = tsharkFields(caps.files()[0]!, [
      'frame.interface_name',
      'frame.interface_id',
      'frame.packet_flags_direction',
      'arp.opcode',
      'icmp.type',
    ]);
    expect(rows).toEqual([
      ['pa', '0', '0x00000001', '1', ''],
      ['pb', '1', '0x00000002', '1', ''],
      ['pc', '2', '0x00000002', '1', ''],
      ['pa', '0', '0x00000002', '2', ''],
      ['pa', '0', '0x00000001', '', '8'],
      ['pa', '0', '0x00000002', '', '0'],
    ]);
  });

  it('reads truncated frames with their wire length', () => {
    const dir = freshDir();
    const { caps } = runLab({ dir, snaplen: 64 }, fixture('ping-gateway', 'pa'));
    const rows = tsharkFields(caps.files()[0]!, ['frame.cap_len', 'frame.len'], ['-Y', 'icmp']);
    expect(rows).toEqual([
      ['64', '98'],
      ['64', '98'],
    ]);
  });

  it('reads every rotated file on its own', () => {
    const dir = freshDir();
    const { caps } = runLab({ dir, maxFileMB: 0.002, maxFiles: 3 }, udpBurst(200));
    expect(caps.files()).toHaveLength(3);
    for (const file of caps.files()) {
      const rows = tsharkFields(file, ['frame.interface_name', 'frame.packet_flags_direction', 'udp.dstport']);
      expect(rows.length).toBe(readCaptureSync(file).count);
      for (const [name, dirn, port] of rows) {
        expect(port).toBe('2000');
        expect(name === 'pa' ? dirn === '0x00000001' : (name === 'pb' || name === 'pc') && dirn === '0x00000002').toBe(true);
      }
    }
  });
});
