/**
 * Admin snapshots and their text: dataplanes left by replay cases (and one built from a
 * small config for the routes the lab lacks), checked line by line against the formats
 * of `bridge fdb`, `ip neigh`, `ip route` and `ip -s link`.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatState } from '../../src/admin/format.ts';
import {
  fdbState,
  graphState,
  neighState,
  portsState,
  routesState,
  statsState,
} from '../../src/admin/state.ts';
import { loadConfig, parseConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import { replay } from '../../src/replay/replay.ts';

const fixtures = fileURLToPath(new URL('../../captures/replay/', import.meta.url));

function replayed(name: string, settle = 1): Dataplane {
  const config = loadConfig(join(fixtures, 'lab.yaml'));
  const dir = join(fixtures, name);
  const inputs = readdirSync(dir)
    .filter((f) => f.endsWith('.pcap'))
    .sort()
    .map((f) => ({ port: f.replace(/\.pcap$/, ''), file: join(dir, f) }));
  const out = mkdtempSync(join(tmpdir(), 'nodeplane-admin-'));
  try {
    return replay(config, inputs, out, settle).dataplane;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

function textLines(what: string, state: unknown): string[] {
  const text = formatState(what, state);
  expect(text.endsWith('\n') || text === '').toBe(true);
  return text === '' ? [] : text.slice(0, -1).split('\n');
}

describe('fdb', () => {
  it('lists the bridge address as permanent and learned stations with their port and age', () => {
    const dp = replayed('flood-learn');
    const s = fdbState(dp);
    expect(s.entries).toEqual([
      { bridge: 'cni0', mac: '0a:58:0a:f4:01:01', port: 'cni0', type: 'permanent', ageSeconds: null, ageingSeconds: 300 },
      { bridge: 'cni0', mac: '0a:58:0a:f4:01:02', port: 'pa', type: 'dynamic', ageSeconds: 1, ageingSeconds: 300 },
      { bridge: 'cni0', mac: '0a:58:0a:f4:01:03', port: 'pb', type: 'dynamic', ageSeconds: 1.1, ageingSeconds: 300 },
    ]);
    expect(textLines('fdb', s)).toEqual([
      '0a:58:0a:f4:01:01 dev cni0 master cni0 permanent',
      '0a:58:0a:f4:01:02 dev pa master cni0 age 1.0s',
      '0a:58:0a:f4:01:03 dev pb master cni0 age 1.1s',
    ]);
  });

  it('prints static entries as static', () => {
    const text = formatState('fdb', {
      entries: [{ bridge: 'cni0', mac: '0a:58:0a:f4:01:09', port: 'pc', type: 'static', ageSeconds: null, ageingSeconds: 300 }],
    });
    expect(text).toBe('0a:58:0a:f4:01:09 dev pc master cni0 static\n');
  });
});

describe('neigh', () => {
  it('shows REACHABLE with its lladdr and the static neighbour as PERMANENT', () => {
    const dp = replayed('routed-arp');
    expect(textLines('neigh', neighState(dp))).toEqual([
      '192.168.50.1 dev up lladdr 02:00:00:00:50:01 REACHABLE',
      '10.9.0.2 dev slow lladdr 02:00:00:00:09:02 PERMANENT',
    ]);
    const reachable = neighState(dp).entries[0];
    expect(reachable).toMatchObject({ ip: '192.168.50.1', dev: 'up', state: 'REACHABLE', confirmedSecondsAgo: 1 });
    expect(neighState(dp).entries[1]).toMatchObject({ confirmedSecondsAgo: null, usedSecondsAgo: null });
  });

  it('shows STALE, INCOMPLETE and, once resolution gave up, FAILED without lladdr', () => {
    expect(textLines('neigh', neighState(replayed('neigh-fail', 1)))).toEqual([
      '10.244.1.2 dev cni0 lladdr 0a:58:0a:f4:01:02 STALE',
      '192.168.50.99 dev up INCOMPLETE',
      '10.9.0.2 dev slow lladdr 02:00:00:00:09:02 PERMANENT',
    ]);
    const failed = neighState(replayed('neigh-fail', 5));
    expect(failed.entries.find((e) => e.ip === '192.168.50.99')).toEqual({
      ip: '192.168.50.99',
      dev: 'up',
      lladdr: null,
      state: 'FAILED',
      confirmedSecondsAgo: 5,
      usedSecondsAgo: 5,
    });
    expect(textLines('neigh', failed)).toContain('192.168.50.99 dev up FAILED');
  });
});

describe('routes', () => {
  it('prints the lab FIB as ip route show table all: main table, then local', () => {
    expect(textLines('routes', routesState(replayed('flood-learn')))).toEqual([
      '10.9.0.0/24 dev slow proto kernel scope link src 10.9.0.1',
      '10.200.0.0/16 via 10.9.0.2 dev slow',
      '10.244.1.0/24 dev cni0 proto kernel scope link src 10.244.1.1',
      '192.168.50.0/24 dev up proto kernel scope link src 192.168.50.11',
      '203.0.113.0/24 via 192.168.50.1 dev up',
      'local 10.9.0.1 dev slow table local proto kernel scope host src 10.9.0.1',
      'broadcast 10.9.0.255 dev slow table local proto kernel scope link src 10.9.0.1',
      'local 10.244.1.1 dev cni0 table local proto kernel scope host src 10.244.1.1',
      'broadcast 10.244.1.255 dev cni0 table local proto kernel scope link src 10.244.1.1',
      'local 192.168.50.11 dev up table local proto kernel scope host src 192.168.50.11',
      'broadcast 192.168.50.255 dev up table local proto kernel scope link src 192.168.50.11',
      'broadcast 255.255.255.255 table local proto kernel scope link',
    ]);
  });

  it('prints default, onlink, static device and host routes as ip does', () => {
    const config = parseConfig(
      `
node: { name: node1 }
bridges: [{ name: cni0, address: 10.244.1.1/24 }]
ports:
  - { name: pa, bridge: cni0 }
  - { name: up, address: 192.168.50.11/24 }
vxlan:
  - { name: flannel.1, vni: 1, local: 192.168.50.11, mac: 0e:00:00:00:00:01, peers: [] }
routes:
  - { dst: 0.0.0.0/0, via: 192.168.50.1 }
  - { dst: 10.244.2.0/24, via: 10.244.2.0, dev: flannel.1, onlink: true }
  - { dst: 172.16.0.0/16, dev: up }
  - { dst: 198.51.100.7/32, via: 192.168.50.1 }
`,
      'test.yaml',
    );
    const dp = new Dataplane(config, { clock: new VirtualClock() });
    const main = routesState(dp).routes.filter((r) => r.table === 'main');
    expect(main.map((r) => formatState('routes', { routes: [r] }).trimEnd())).toEqual([
      'default via 192.168.50.1 dev up',
      '10.244.1.0/24 dev cni0 proto kernel scope link src 10.244.1.1',
      '10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink',
      '172.16.0.0/16 dev up scope link',
      '192.168.50.0/24 dev up proto kernel scope link src 192.168.50.11',
      '198.51.100.7 via 192.168.50.1 dev up',
    ]);
    expect(main[0]).toEqual({
      dst: 'default',
      kind: 'gateway',
      type: 'unicast',
      table: 'main',
      gateway: '192.168.50.1',
      dev: 'up',
      protocol: 'static',
      scope: 'global',
      prefsrc: null,
      onlink: false,
    });
  });
});

describe('ports', () => {
  it('prints ip -s link blocks with the counters of the replay', () => {
    const dp = replayed('routed-arp');
    const s = portsState(dp);
    expect(s.ports.map((p) => [p.name, p.rx.packets, p.tx.packets])).toEqual([
      ['pa', 1, 0],
      ['pb', 0, 0],
      ['pc', 0, 0],
      ['up', 1, 2],
      ['slow', 0, 0],
    ]);
    const lines = textLines('ports', s);
    expect(lines.slice(0, 5)).toEqual([
      '1: pa: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master cni0 state UP',
      '    RX:  bytes packets   nobuf',
      `    ${String(s.ports[0].rx.bytes).padStart(10)}       1       0`,
      '    TX:  bytes packets dropped',
      '             0       0       0',
    ]);
    const up = lines.indexOf('4: up: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 state UP');
    expect(lines.slice(up + 1, up + 7)).toEqual([
      '    link/ether 02:00:00:00:50:11 brd ff:ff:ff:ff:ff:ff',
      '    inet 192.168.50.11/24',
      '    RX:  bytes packets   nobuf',
      `    ${String(s.ports[3].rx.bytes).padStart(10)}       1       0`,
      '    TX:  bytes packets dropped',
      `    ${String(s.ports[3].tx.bytes).padStart(10)}       2       0`,
    ]);
    expect(s.ports[3].tx.bytes).toBeGreaterThan(0);
    expect(lines).toContain('5: slow: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1000 state UP');
    expect(s.pool).toEqual({ slots: dp.pool.capacity, slotBytes: 4096, free: dp.pool.available });
    expect(lines.at(-1)).toBe(`frame pool: ${dp.pool.capacity} slots of 4 KiB, ${dp.pool.available} free`);
  });

  it('shows a port that is down and what its driver reports', () => {
    const dp = replayed('flood-learn');
    dp.setPortUp(dp.portIndex('pb'), false);
    const s = portsState(dp, [{ name: 'pb', downReason: 'ENODEV', tap: { rxFrames: 3, txEagain: 0 } }]);
    expect(s.ports[1]).toMatchObject({ name: 'pb', up: false, driver: { downReason: 'ENODEV', tap: { rxFrames: 3, txEagain: 0 } } });
    const lines = textLines('ports', s);
    const pb = lines.indexOf('2: pb: <BROADCAST,MULTICAST> mtu 1500 master cni0 state DOWN');
    expect(pb).toBeGreaterThan(0);
    expect(lines.slice(pb + 5, pb + 7)).toEqual(['    driver: downReason ENODEV', '    tap: rxFrames 3 txEagain 0']);
  });
});

describe('stats', () => {
  it('lists every stage and the drop reasons of the malformed case', () => {
    const s = statsState(replayed('malformed'));
    const eth = s.stages.find((st) => st.name === 'ethernet-input')!;
    expect(eth.drops['eth.runt']).toBe(1);
    // JSON keeps every declared reason, zeros included.
    expect(s.stages.find((st) => st.name === 'port-output')!.drops).toEqual({
      'port.tx-down': 0,
      'port.no-driver': 0,
      'port.tx-queue-full': 0,
    });
    const lines = textLines('stats', s);
    const w = Math.max(...s.stages.map((st) => st.name.length));
    const pad = ''.padEnd(w);
    const at = lines.indexOf(`${'ip4-input'.padEnd(w)}             4 packets`);
    expect(at).toBeGreaterThanOrEqual(0);
    expect(lines.slice(at + 1, at + 4).sort()).toEqual(
      [
        `${pad}             1 dropped ip4.bad-version: bad ipv4 version`,
        `${pad}             1 dropped ip4.bad-total-length: bad ipv4 total length`,
        `${pad}             1 dropped ip4.bad-checksum: bad ipv4 header checksum`,
      ].sort(),
    );
    expect(lines).toContain(`${'ethernet-input'.padEnd(w)}             6 packets`);
    expect(lines).toContain(`${pad}             1 dropped eth.runt: runt frame (shorter than an ethernet header)`);
    expect(lines.filter((l) => /^\s+\d+ dropped /.test(l))).toHaveLength(4);
    // The stages' event counters are shown beside their drops.
    expect(s.stages.find((st) => st.name === 'ip4-forward')!.events).toEqual({ ttlExpired: 0, fragNeeded: 0 });
    expect(s.stages.find((st) => st.name === 'ip4-input')!.reasons['ip4.bad-version']).toBe('bad ipv4 version');
    expect(lines.slice(-3)).toEqual([
      'rx overruns: 0',
      'fdb: 1 entries, 1 learned, 0 moved, 0 not learned (table full)',
      'neigh: 2 entries, 0 not created (table full)',
    ]);
  });
});

describe('graph', () => {
  it('graph lists stages and edges', () => {
    const g = graphState(replayed('flood-learn'));
    expect(g.stages[0]).toBe('ethernet-input');
    expect(g.edges).toContain('ethernet-input -bridge-> bridge-forward');
    expect(formatState('graph', g).split('\n')[0]).toBe(g.edges[0]);
  });

  it('refuses to format an unknown table', () => {
    expect(() => formatState('nope', {})).toThrow(/no text format/);
  });
});
