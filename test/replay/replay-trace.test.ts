import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { replay } from '../../src/replay/replay.ts';
import { fixtures } from './replay-helpers.ts';

function traceOf(name: string, ports: string[]): string[] {
  const out = mkdtempSync(join(tmpdir(), 'nodeplane-trace-'));
  const lines: string[] = [];
  try {
    replay(
      loadConfig(join(fixtures, 'lab.yaml')),
      ports.map((port) => ({ port, file: join(fixtures, name, `${port}.pcap`) })),
      out,
      1,
      { trace: (l) => lines.push(l) },
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  return lines;
}

describe('replay --trace', () => {
  it('shows a routed packet hop by hop: waiting for ARP, released by the reply, sent with new MACs', () => {
    const lines = traceOf('routed-arp', ['pa', 'up']).map((l) => l.replace(/\(.*record/, '(… record'));
    const text = lines.join('\n');
    const hops = (slot: string): string[] => lines.filter((l) => l.startsWith(`  ${slot}   `)).map((l) => l.trim().slice(slot.length).trim());
    expect(lines[0]).toMatch(/^#1 at 1700000000\.000000 on pa/);
    expect(lines[1]).toMatch(/^  s0 rx pa: 0a:58:0a:f4:01:02 > 0a:58:0a:f4:01:01, .* IP 10\.244\.1\.2\.40000 > 203\.0\.113\.5\.53: UDP/);
    expect(hops('s0')).toEqual([
      'ethernet-input → bridge-forward',
      'bridge-forward → l3-input',
      'l3-input → ip4-input',
      'ip4-input → prerouting',
      'prerouting → ip4-lookup',
      'ip4-lookup → ip4-forward',
      'ip4-forward → postrouting',
      'postrouting → neighbour-output',
      'neighbour-output: waits for neighbour 192.168.50.1 on up',
      'arp-input → neighbour-output',
      'neighbour-output → interface-output',
      'interface-output → port-output',
    ]);
    expect(text).toMatch(/s1 made at neighbour-output from s0: 02:00:00:00:50:11 > ff:ff:ff:ff:ff:ff, .*ARP, Request who-has 192\.168\.50\.1 tell 192\.168\.50\.11/);
    expect(text).toMatch(/#2 at 1700000000\.050000 on up/);
    expect(lines[lines.length - 1]).toMatch(/^  s0 tx up: 02:00:00:00:50:11 > 02:00:00:00:50:01, .*IP 10\.244\.1\.2\.40000 > 203\.0\.113\.5\.53/);
  });

  it('names the reason of every drop', () => {
    const text = traceOf('malformed', ['pa']).join('\n');
    expect(text).toContain('ethernet-input: dropped eth.runt (runt frame (shorter than an ethernet header))');
    expect(text).toContain('ip4-input: dropped ip4.bad-checksum (bad ipv4 header checksum)');
    expect(text).toContain('ip4-input: dropped ip4.bad-version (bad ipv4 version)');
    expect(text).toContain('ip4-input: dropped ip4.bad-total-length (bad ipv4 total length)');
  });
});
