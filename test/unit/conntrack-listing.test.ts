/**
 * The readers the differential test sets the kernel's and nodeplane's connection tracking
 * tables side by side with (test/e2e/conntrack-listing.ts): `conntrack -L` text as
 * conntrack-tools 1.4.7 printed it on Linux 6.18, and `show conntrack --json`.
 */
import { describe, expect, it } from 'vitest';
import { parseConntrackList, parseNodeplaneConntrack } from '../e2e/conntrack-listing.ts';

const LISTING = `udp      17 29 src=10.9.0.1 dst=10.9.0.2 sport=59609 dport=9 packets=1 bytes=30 [UNREPLIED] src=10.9.0.2 dst=10.9.0.1 sport=9 dport=59609 packets=0 bytes=0 mark=0 use=1
tcp      6 119 TIME_WAIT src=10.9.0.1 dst=10.9.0.2 sport=54096 dport=9000 packets=5 bytes=269 src=10.9.0.2 dst=10.9.0.1 sport=9000 dport=54096 packets=4 bytes=216 [ASSURED] mark=0 use=1
icmp     1 29 src=10.9.0.1 dst=10.9.0.2 type=8 code=0 id=18818 packets=1 bytes=84 src=10.9.0.2 dst=10.9.0.1 type=0 code=0 id=18818 packets=1 bytes=84 mark=0 use=1
`;

describe('conntrack -L text', () => {
  it('reads protocol, state, timeout, both tuples, flags and counters', () => {
    expect(parseConntrackList(LISTING)).toEqual([
      {
        proto: 'udp',
        state: '',
        timeout: 29,
        orig: { src: '10.9.0.1', dst: '10.9.0.2', sport: 59609, dport: 9 },
        reply: { src: '10.9.0.2', dst: '10.9.0.1', sport: 9, dport: 59609 },
        assured: false,
        unreplied: true,
        packets: [1, 0],
        bytes: [30, 0],
        mark: 0,
      },
      {
        proto: 'tcp',
        state: 'TIME_WAIT',
        timeout: 119,
        orig: { src: '10.9.0.1', dst: '10.9.0.2', sport: 54096, dport: 9000 },
        reply: { src: '10.9.0.2', dst: '10.9.0.1', sport: 9000, dport: 54096 },
        assured: true,
        unreplied: false,
        packets: [5, 4],
        bytes: [269, 216],
        mark: 0,
      },
      {
        proto: 'icmp',
        state: '',
        timeout: 29,
        orig: { src: '10.9.0.1', dst: '10.9.0.2', sport: 18818, dport: 18818 },
        reply: { src: '10.9.0.2', dst: '10.9.0.1', sport: 18818, dport: 18818 },
        assured: false,
        unreplied: false,
        packets: [1, 1],
        bytes: [84, 84],
        mark: 0,
      },
    ]);
  });

  it('without accounting there are no counters; the summary line and blank lines are skipped', () => {
    const rows = parseConntrackList(
      'tcp      6 86399 ESTABLISHED src=10.244.1.2 dst=192.168.50.1 sport=40030 dport=9000 src=192.168.50.1 dst=192.168.50.11 sport=9000 dport=40030 [ASSURED] mark=0 use=1\n\nconntrack v1.4.7 (conntrack-tools): 1 flow entries have been shown.\n',
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ state: 'ESTABLISHED', timeout: 86399, packets: null, bytes: null, reply: { dst: '192.168.50.11', dport: 40030 } });
  });

  it('a line without two tuples is an error, not a silent row', () => {
    expect(() => parseConntrackList('tcp      6 10 ESTABLISHED src=1.2.3.4 dst=5.6.7.8 sport=1 dport=2 mark=0\n')).toThrow(/cannot read the tuples/);
  });
});

describe('show conntrack --json', () => {
  const entry = {
    id: 3,
    proto: 'tcp',
    protonum: 6,
    timeout: 119,
    state: 'TIME_WAIT',
    orig: { src: '10.9.0.1', dst: '10.9.0.2', sport: 54096, dport: 9000 },
    reply: { src: '10.9.0.2', dst: '10.9.0.1', sport: 9000, dport: 54096 },
    unreplied: false,
    assured: true,
    snat: false,
    dnat: false,
    packets: { orig: 5, reply: 4 },
    bytes: { orig: 269, reply: 216 },
    mark: 0,
  };
  const icmp = {
    ...entry,
    proto: 'icmp',
    protonum: 1,
    timeout: 29,
    state: null,
    orig: { src: '10.9.0.1', dst: '10.9.0.2', type: 8, code: 0, id: 18818 },
    reply: { src: '10.9.0.2', dst: '10.9.0.1', type: 0, code: 0, id: 18818 },
    assured: false,
    packets: { orig: 1, reply: 1 },
    bytes: { orig: 84, reply: 84 },
  };

  it('reads the array, one entry a line, into the rows conntrack -L gives', () => {
    const rows = parseConntrackList(LISTING);
    expect(parseNodeplaneConntrack(`[\n${JSON.stringify(entry)},\n${JSON.stringify(icmp)}\n]\n`)).toEqual([rows[1], rows[2]]);
  });

  it('an empty table is an empty array', () => {
    expect(parseNodeplaneConntrack('[]\n')).toEqual([]);
  });

  it('anything but an array is an error', () => {
    expect(() => parseNodeplaneConntrack(JSON.stringify(entry))).toThrow(/expected an array/);
  });
});
