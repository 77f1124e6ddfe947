/**
 * Helpers the differential tests share: reading a child's output line by line, switching a
 * pod's transmit checksum offload, dissecting captures with tshark's checksum verdicts, and
 * conntrack rows without their counters.
 */
import type { ChildProcess } from 'node:child_process';
import type { Netns } from '../../src/lab/netns.ts';
import { dissect } from './kernel-twin.ts';

/** One dissected frame: tshark field name → value(s), fields absent from the frame left out. */
export type Frame = Record<string, string>;

/** Reads a child's stdout line by line; `next` waits for the next unread line. */
export function lineReader(child: ChildProcess, what: string): { lines: string[]; next(timeoutMs: number): Promise<string> } {
  const lines: string[] = [];
  let read = 0;
  let buf = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return {
    lines,
    async next(timeoutMs: number): Promise<string> {
      const end = Date.now() + timeoutMs;
      while (lines.length <= read) {
        if (Date.now() > end || child.exitCode !== null) {
          // A line may have come with the exit.
          if (lines.length > read) break;
          throw new Error(`${what}: no line within ${timeoutMs} ms (exit ${child.exitCode}) ${stderr.trim()}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      return lines[read++];
    },
  };
}

/** Turns transmit checksum offload of eth0 in `ns` on or off (ethtool -K eth0 tx on|off, through its ioctl). */
export async function txChecksum(ns: Netns, on: boolean): Promise<void> {
  const r = await ns.run('python3', ['-c', TX_CHECKSUM, 'eth0', on ? '1' : '0'], { timeoutMs: 10_000 });
  if (r.code !== 0 || r.stdout.trim() !== (on ? '1' : '0')) throw new Error(`tx checksum offload of eth0 in ${ns.name}: ${r.stdout.trim()} ${r.stderr.trim()}`);
}

/** Outer and quoted headers with tshark's checksum verdicts (1: good, 0: bad, 2: not checked). */
const CHECKED_FIELDS = [
  'ip.src',
  'ip.dst',
  'ip.ttl',
  'ip.checksum.status',
  'icmp.type',
  'icmp.code',
  'icmp.checksum.status',
  'udp.srcport',
  'udp.dstport',
  'udp.checksum.status',
  'tcp.srcport',
  'tcp.dstport',
];
const CHECKSUM_PREFS = ['ip.check_checksum:TRUE', 'udp.check_checksum:TRUE', 'tcp.check_checksum:TRUE'];

/** The frames of `pcap` with the fields above (an ICMP error's quoted header joined with ','). */
export async function checkedFrames(pcap: Buffer): Promise<Frame[]> {
  const rows = await dissect(pcap, CHECKED_FIELDS, CHECKSUM_PREFS);
  return rows.map((r) => Object.fromEntries(CHECKED_FIELDS.map((f, j) => [f, r[j] ?? '']).filter(([, v]) => v !== '')));
}

/** A conntrack row without its counters (TCP's depend on when delayed ACKs fire). */
export function withoutCounters<R extends { packets: unknown; bytes: unknown }>(row: R): Omit<R, 'packets' | 'bytes'> {
  const { packets: _p, bytes: _b, ...rest } = row;
  return rest;
}

/**
 * Sets eth0's transmit checksum offload (ETHTOOL_STXCSUM through SIOCETHTOOL, as ethtool -K
 * eth0 tx on|off does) to argv[2], and prints what it reads back (ETHTOOL_GTXCSUM).
 */
const TX_CHECKSUM = `
import array, fcntl, socket, struct, sys
def ethtool(cmd, data):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    buf = array.array('B', struct.pack('II', cmd, data))
    fcntl.ioctl(s, 0x8946, struct.pack('16sP', sys.argv[1].encode(), buf.buffer_info()[0]))
    return struct.unpack('II', buf.tobytes())[1]
ethtool(0x17, int(sys.argv[2]))
print(ethtool(0x16, 0))
`;
