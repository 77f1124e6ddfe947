/**
 * The VXLAN peer API (Dataplane.setVxlanPeers, src/dataplane/vxlan-peers.ts): for each peer the
 * route, the permanent neighbour and the FDB entry flanneld installs, replaced by difference,
 * refused whole when bad, kept across a reload, and the config's static peers going through it.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { fdbState, neighState, routesState } from '../../src/admin/state.ts';
import { formatFdb, formatNeigh, formatRoutes } from '../../src/admin/format.ts';
import { VxlanPeerError } from '../../src/dataplane/vxlan-peers.ts';
import { parseIpv4 } from '../../src/wire/ipv4-address.ts';
import { macHi, macLo, parseMac } from '../../src/wire/mac.ts';
import { Harness } from './stage-harness.test.ts';
import { VXLAN_LAB as LAB_WITH_STATIC } from '../helpers/vxlan-lab.ts';

/** The lab without its static flannel.1 route and neighbour: only peers' entries remain. */
const VXLAN_LAB = LAB_WITH_STATIC.replace(/.*10\.244\.9\.0.*\n/g, '').replace('routes:\n', '');


const P2 = { vtep: '192.168.50.12', mac: '0e:00:00:00:00:02', subnet: '10.244.2.0/24' };
const P3 = { vtep: '192.168.50.13', mac: '0e:00:00:00:00:03', subnet: '10.244.3.0/24' };

function flannelRoutes(h: Harness): string[] {
  return routesState(h.dp).routes.filter((r) => r.dev === 'flannel.1' && r.table === 'main').map((r) => `${r.dst} via ${r.gateway}${r.onlink ? ' onlink' : ''}`);
}
function flannelNeigh(h: Harness): string[] {
  return neighState(h.dp).entries.filter((e) => e.dev === 'flannel.1').map((e) => `${e.ip} ${e.lladdr} ${e.state}`);
}
function vtepFdb(h: Harness): string[] {
  const { vxlan } = h.dp.ctx;
  return vxlan.fdbEntries().map((e) => `${e.macHi.toString(16)}:${e.macLo.toString(16)} ${e.dst >>> 24}.${(e.dst >>> 16) & 255}.${(e.dst >>> 8) & 255}.${e.dst & 255}`).sort();
}
function known(h: Harness, vtep: string): boolean {
  const ifIndex = h.dp.ctx.ifs.indexOf('flannel.1');
  return h.dp.ctx.vxlan.isKnownVtep(ifIndex, parseIpv4(vtep));
}

describe('vxlan peers', () => {
  it('installs the static peers of the config: route onlink via the overlay address, permanent neighbour, fdb entry', () => {
    const h = new Harness(VXLAN_LAB);
    expect(flannelRoutes(h)).toEqual(['10.244.2.0/24 via 10.244.2.0 onlink']);
    expect(flannelNeigh(h)).toEqual(['10.244.2.0 0e:00:00:00:00:02 PERMANENT']);
    expect(vtepFdb(h)).toEqual(['e00:2 192.168.50.12']);
    expect(known(h, '192.168.50.12')).toBe(true);
    expect(h.dp.vxlanPeers.list('flannel.1')).toEqual([P2]);
  });

  it('replaces the peer set by difference: added, removed, changed, unchanged left alone', () => {
    const h = new Harness(VXLAN_LAB);
    const ifIndex = h.dp.ctx.ifs.indexOf('flannel.1');
    const fdbId = h.dp.ctx.vxlan.findFdb(ifIndex, macHi(parseMac(P2.mac)), macLo(parseMac(P2.mac)));
    expect(h.dp.setVxlanPeers('flannel.1', [P2, P3])).toEqual({ added: 1, removed: 0, changed: 0 });
    // P2's entry was not touched (same id).
    expect(h.dp.ctx.vxlan.findFdb(ifIndex, macHi(parseMac(P2.mac)), macLo(parseMac(P2.mac)))).toBe(fdbId);
    expect(flannelRoutes(h)).toEqual(['10.244.2.0/24 via 10.244.2.0 onlink', '10.244.3.0/24 via 10.244.3.0 onlink']);
    expect(vtepFdb(h)).toEqual(['e00:2 192.168.50.12', 'e00:3 192.168.50.13']);

    // P3 moves to another underlay address and MAC; P2 leaves.
    const P3b = { ...P3, vtep: '192.168.50.14', mac: '0e:00:00:00:00:33' };
    expect(h.dp.setVxlanPeers('flannel.1', [P3b])).toEqual({ added: 0, removed: 1, changed: 1 });
    expect(flannelRoutes(h)).toEqual(['10.244.3.0/24 via 10.244.3.0 onlink']);
    expect(flannelNeigh(h)).toEqual(['10.244.3.0 0e:00:00:00:00:33 PERMANENT']);
    expect(vtepFdb(h)).toEqual(['e00:33 192.168.50.14']);
    expect(known(h, '192.168.50.12')).toBe(false);
    expect(known(h, '192.168.50.13')).toBe(false);
    expect(known(h, '192.168.50.14')).toBe(true);

    expect(h.dp.setVxlanPeers('flannel.1', [])).toEqual({ added: 0, removed: 1, changed: 0 });
    expect([flannelRoutes(h), flannelNeigh(h), vtepFdb(h)]).toEqual([[], [], []]);
  });

  it('lets a MAC move from a leaving peer to a new one in one change', () => {
    const h = new Harness(VXLAN_LAB);
    const moved = { vtep: '192.168.50.13', mac: P2.mac, subnet: '10.244.3.0/24' };
    h.dp.setVxlanPeers('flannel.1', [moved]);
    expect(vtepFdb(h)).toEqual(['e00:2 192.168.50.13']);
    expect(flannelNeigh(h)).toEqual(['10.244.3.0 0e:00:00:00:00:02 PERMANENT']);
  });

  it('refuses a bad set whole, changing nothing', () => {
    const h = new Harness(VXLAN_LAB);
    const bad: [unknown[], RegExp][] = [
      [[P2, { ...P3, subnet: '10.244.2.128/25' }], /overlaps/],
      [[P2, { ...P3, mac: P2.mac }], /MAC/],
      [[{ ...P3, vtep: '192.168.50.11' }], /own address/],
      [[{ ...P3, subnet: '10.244.1.0/24' }], /subnet of cni0/],
      [[{ ...P3, mac: '01:00:5e:00:00:01' }], /unicast/],
      [[{ ...P3, vtep: '300.1.1.1' }], /peer 0/],
    ];
    for (const [peers, re] of bad) {
      expect(() => h.dp.setVxlanPeers('flannel.1', peers as typeof P2[])).toThrow(re);
    }
    expect(() => h.dp.setVxlanPeers('cni0', [P3])).toThrow(VxlanPeerError);
    expect(flannelRoutes(h)).toEqual(['10.244.2.0/24 via 10.244.2.0 onlink']);
    expect(vtepFdb(h)).toEqual(['e00:2 192.168.50.12']);
  });

  it('on reload applies the static peers again, and keeps run-time peers of a device cluster mode runs', () => {
    const h = new Harness(VXLAN_LAB);
    h.dp.setVxlanPeers('flannel.1', [P2, P3]);
    // A reload of the same config: the static set wins again.
    expect(h.dp.reload(parseConfig(VXLAN_LAB, 'test')).ok).toBe(true);
    expect(flannelRoutes(h)).toEqual(['10.244.2.0/24 via 10.244.2.0 onlink']);
    expect(vtepFdb(h)).toEqual(['e00:2 192.168.50.12']);
    // A device run by cluster mode keeps the peers it was given; a reload that brings a new
    // FIB and new static neighbours gets their routes and neighbours back.
    h.dp.setVxlanPeers('flannel.1', [P3]);
    const next = parseConfig(VXLAN_LAB.replace('vxlan:', 'routes:\n  - { dst: 10.50.0.0/16, via: 192.168.50.12 }\nvxlan:').replace(/    peers:\n.*\n/, ''), 'test');
    const clustered = { ...next, cluster: { vxlan: 'flannel.1' } } as typeof next;
    expect(h.dp.reload(clustered).ok).toBe(true);
    expect(flannelRoutes(h)).toEqual(['10.244.3.0/24 via 10.244.3.0 onlink']);
    expect(flannelNeigh(h)).toEqual(['10.244.3.0 0e:00:00:00:00:03 PERMANENT']);
    expect(vtepFdb(h)).toEqual(['e00:3 192.168.50.13']);
    expect(routesState(h.dp).routes.some((r) => r.dst === '10.50.0.0/16')).toBe(true);
    // Without cluster mode the config's (now empty) static set applies.
    expect(h.dp.reload(next).ok).toBe(true);
    expect([flannelRoutes(h), flannelNeigh(h), vtepFdb(h)]).toEqual([[], [], []]);
  });

  it('shows the entries as ip route, ip neigh and bridge fdb show them on a flannel node', () => {
    const h = new Harness(VXLAN_LAB);
    h.dp.setVxlanPeers('flannel.1', [P2, P3]);
    const routes = formatRoutes(routesState(h.dp)).split('\n');
    expect(routes).toContain('10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink');
    expect(routes).toContain('10.244.3.0/24 via 10.244.3.0 dev flannel.1 onlink');
    const neigh = formatNeigh(neighState(h.dp)).split('\n');
    expect(neigh).toContain('10.244.2.0 dev flannel.1 lladdr 0e:00:00:00:00:02 PERMANENT');
    expect(neigh).toContain('10.244.3.0 dev flannel.1 lladdr 0e:00:00:00:00:03 PERMANENT');
    const fdb = formatFdb(fdbState(h.dp)).split('\n');
    expect(fdb).toContain('0e:00:00:00:00:02 dev flannel.1 dst 192.168.50.12 self permanent');
    expect(fdb).toContain('0e:00:00:00:00:03 dev flannel.1 dst 192.168.50.13 self permanent');
    expect(fdbState(h.dp).entries.filter((e) => e.port === 'flannel.1')).toEqual([
      { bridge: null, mac: '0e:00:00:00:00:02', port: 'flannel.1', dst: '192.168.50.12', type: 'permanent', ageSeconds: null, ageingSeconds: 0 },
      { bridge: null, mac: '0e:00:00:00:00:03', port: 'flannel.1', dst: '192.168.50.13', type: 'permanent', ageSeconds: null, ageingSeconds: 0 },
    ]);
  });
});
