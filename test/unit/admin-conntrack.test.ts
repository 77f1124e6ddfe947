/**
 * `show conntrack`, `show conntrack --stats` and `conntrack flush` through the admin socket:
 * the text (conntrack -L) and JSON forms of TCP, UDP and ICMP entries, NAT'd ones included,
 * the UNREPLIED and ASSURED flags, filters, statistics, flush with filters (counts and what
 * remains), and the answers for a dataplane without conntrack and for bad parameters.
 * Entries are made through the table's API, as the NAT stages will make them.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { requestJson } from '../../src/admin/client.ts';
import { conntrackEntryJson, type ConntrackEntryJson } from '../../src/admin/conntrack-json.ts';
import { formatConntrackEntry, formatConntrackStats } from '../../src/admin/conntrack-format.ts';
import { parseConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import { TCP_ACK, TCP_SYN } from '../../src/tables/conntrack-tcp.ts';
import { ICMP, NODE, POD_A, POD_B, SERVER, TCP, UDP, ip, natNode, readObjects, serve, type NatNode, type Served } from '../helpers/conntrack-admin.ts';

const BIN = fileURLToPath(new URL('../../bin/nodeplane.js', import.meta.url));

function nodeplane(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

/**
 * Three flows: a masqueraded TCP connection that completed its handshake (ASSURED), an
 * unreplied UDP query to a Service (its internal service tag set, which no listing shows), and
 * a masqueraded ping whose identifier was remapped (7 → 1024), answered once. Then time
 * passes 5 s.
 */
function threeFlows(n: NatNode): { tcp: number; udp: number; icmp: number } {
  const { ct } = n;
  const tcp = ct.track(TCP, POD_A, SERVER, 40000, 80, TCP_SYN, 60) >> 1;
  expect(ct.bindSnat(tcp, NODE, 40000)).toBe(true);
  ct.track(TCP, SERVER, NODE, 80, 40000, TCP_SYN | TCP_ACK, 60);
  ct.track(TCP, POD_A, SERVER, 40000, 80, TCP_ACK, 52);
  const udp = ct.track(UDP, POD_B, ip('10.96.0.10'), 5353, 53, 0, 70) >> 1;
  const icmp = ct.track(ICMP, POD_B, SERVER, 7, 7, 8, 84) >> 1;
  expect(ct.bindSnat(icmp, NODE, 1024)).toBe(true);
  ct.track(ICMP, SERVER, NODE, 1024, 1024, 0, 84);
  ct.setServiceTag(udp, 42);
  ct.nowUs += 5_000_000;
  return { tcp, udp, icmp };
}

let served: Served | undefined;

afterEach(async () => {
  await served?.close();
  served = undefined;
});

describe('show conntrack', () => {
  it('prints each entry as conntrack -L does: TCP, UDP and ICMP, with NAT, flags, counters and mark (always 0)', async () => {
    const n = natNode();
    threeFlows(n);
    served = await serve(n.dp);
    const r = await nodeplane('show', 'conntrack', '--admin', served.sock);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        'tcp      6 86395 ESTABLISHED src=10.244.1.2 dst=203.0.113.7 sport=40000 dport=80 packets=2 bytes=112 src=203.0.113.7 dst=192.168.50.11 sport=80 dport=40000 packets=1 bytes=60 [ASSURED] mark=0',
        'udp      17 25 src=10.244.1.3 dst=10.96.0.10 sport=5353 dport=53 packets=1 bytes=70 [UNREPLIED] src=10.96.0.10 dst=10.244.1.3 sport=53 dport=5353 packets=0 bytes=0 mark=0',
        'icmp     1 25 src=10.244.1.3 dst=203.0.113.7 type=8 code=0 id=7 packets=1 bytes=84 src=203.0.113.7 dst=192.168.50.11 type=0 code=0 id=1024 packets=1 bytes=84 mark=0',
        '',
      ].join('\n'),
    );
    expect(r.stderr).toBe('nodeplane: 3 flow entries have been shown.\n');
  });

  it('--json prints an array whose objects carry the same fields', async () => {
    const n = natNode();
    const { tcp, udp, icmp } = threeFlows(n);
    served = await serve(n.dp);
    const r = await nodeplane('show', 'conntrack', '--admin', served.sock, '--json');
    expect(r.code).toBe(0);
    const entries = JSON.parse(r.stdout) as ConntrackEntryJson[];
    expect(entries).toEqual([conntrackEntryJson(n.ct, tcp), conntrackEntryJson(n.ct, udp), conntrackEntryJson(n.ct, icmp)]);
    expect(entries[0]).toEqual({
      id: tcp,
      proto: 'tcp',
      protonum: 6,
      timeout: 86395,
      state: 'ESTABLISHED',
      orig: { src: '10.244.1.2', dst: '203.0.113.7', sport: 40000, dport: 80 },
      reply: { src: '203.0.113.7', dst: '192.168.50.11', sport: 80, dport: 40000 },
      unreplied: false,
      assured: true,
      snat: true,
      dnat: false,
      packets: { orig: 2, reply: 1 },
      bytes: { orig: 112, reply: 60 },
      mark: 0,
    });
    expect(entries[1]).toMatchObject({ proto: 'udp', protonum: 17, state: null, unreplied: true, assured: false, snat: false, mark: 0 });
    expect(entries[2]).toMatchObject({
      proto: 'icmp',
      orig: { src: '10.244.1.3', dst: '203.0.113.7', type: 8, code: 0, id: 7 },
      reply: { src: '203.0.113.7', dst: '192.168.50.11', type: 0, code: 0, id: 1024 },
      unreplied: false,
      assured: false,
    });
    // The text is the JSON formatted: one line per object.
    expect(entries.map((e) => formatConntrackEntry(e) + '\n').join('')).toBe((await nodeplane('show', 'conntrack', '--admin', served.sock)).stdout);
  });

  it('prints an empty array, and no lines, for an empty table', async () => {
    served = await serve(natNode().dp);
    expect(await nodeplane('show', 'conntrack', '--admin', served.sock, '--json')).toEqual({ code: 0, stdout: '[]\n', stderr: 'nodeplane: 0 flow entries have been shown.\n' });
    expect(await nodeplane('show', 'conntrack', '--admin', served.sock)).toEqual({ code: 0, stdout: '', stderr: 'nodeplane: 0 flow entries have been shown.\n' });
  });

  it('filters on protocol, original source and original destination, as conntrack -p -s -d', async () => {
    const n = natNode();
    const { tcp, udp, icmp } = threeFlows(n);
    served = await serve(n.dp);
    const ids = async (q: string): Promise<number[]> => (await readObjects<ConntrackEntryJson>(served!.sock, `/v1/conntrack${q}`)).map((e) => e.id);
    expect(await ids('')).toEqual([tcp, udp, icmp]);
    expect(await ids('?proto=udp')).toEqual([udp]);
    expect(await ids('?proto=1')).toEqual([icmp]);
    expect(await ids('?src=10.244.1.3')).toEqual([udp, icmp]);
    expect(await ids('?dst=203.0.113.7')).toEqual([tcp, icmp]);
    // The reply tuple's addresses do not select: the node's address is no original destination.
    expect(await ids('?dst=192.168.50.11')).toEqual([]);
    expect(await ids('?src=10.244.1.3&dst=203.0.113.7&proto=icmp')).toEqual([icmp]);
    const r = await nodeplane('show', 'conntrack', '--admin', served.sock, '--proto', 'tcp', '--dst', '203.0.113.7');
    expect(r.stdout.split('\n')).toHaveLength(2);
    expect(r.stdout).toMatch(/^tcp {6}6 /);
    expect(r.stderr).toBe('nodeplane: 1 flow entries have been shown.\n');
  });

  it('leaves out entries whose timeout has passed, and counts seconds down on the table clock', async () => {
    const n = natNode();
    const { udp } = threeFlows(n);
    served = await serve(n.dp);
    n.ct.nowUs += 24_500_000;
    const left = await readObjects<ConntrackEntryJson>(served.sock, '/v1/conntrack?proto=udp');
    expect(left.map((e) => [e.id, e.timeout])).toEqual([[udp, 0]]);
    n.ct.nowUs += 1_000_000;
    expect(await readObjects(served.sock, '/v1/conntrack?proto=udp')).toEqual([]);
  });

  it('refuses bad filters (the CLI names the flag) and methods a path does not take', async () => {
    served = await serve(natNode().dp);
    expect(await nodeplane('show', 'conntrack', '--admin', served.sock, '--proto', 'sctp')).toMatchObject({
      code: 1,
      stdout: '',
      stderr: "nodeplane: --proto sctp: unknown protocol 'sctp' (tcp, udp, icmp or 6, 17, 1)\n",
    });
    expect(await nodeplane('show', 'conntrack', '--admin', served.sock, '--src', '10.1')).toMatchObject({ code: 1, stderr: 'nodeplane: --src 10.1: expected an IPv4 address\n' });
    expect(await nodeplane('show', 'fdb', '--admin', served.sock, '--proto', 'tcp')).toMatchObject({ code: 1, stderr: 'nodeplane: show fdb: --proto is for show conntrack only\n' });
    await expect(requestJson(served.sock, 'GET', '/v1/conntrack/events?count=0')).rejects.toThrow(`${served.sock}: /v1/conntrack/events: count: expected a whole number ≥ 1, got '0'`);
    await expect(readObjects(served.sock, '/v1/conntrack?dst=nowhere')).rejects.toThrow(`${served.sock}: /v1/conntrack: dst: not an IPv4 address: 'nowhere'`);
    await expect(requestJson(served.sock, 'POST', '/v1/conntrack')).rejects.toThrow(`${served.sock}: method POST not allowed on /v1/conntrack`);
    await expect(requestJson(served.sock, 'DELETE', '/v1/conntrack/stats')).rejects.toThrow(`${served.sock}: method DELETE not allowed on /v1/conntrack/stats`);
  });

  it('says so when the dataplane has no connection tracking, for every conntrack command', async () => {
    const clock = new VirtualClock();
    const dp = new Dataplane(parseConfig('node: { name: n }\nbridges: [{ name: cni0, address: 10.244.1.1/24 }]\nports: [{ name: pa, bridge: cni0 }]\n', 'test'), { clock });
    expect(dp.ctx.conntrack).toBeNull();
    served = await serve(dp);
    const msg = `nodeplane: ${served.sock}: connection tracking is off in this dataplane: its config has no nat, conntrack or services section\n`;
    for (const args of [['show', 'conntrack'], ['show', 'conntrack', '--stats'], ['conntrack', 'flush'], ['conntrack', 'events', '--count', '1']]) {
      expect(await nodeplane(...args, '--admin', served.sock), args.join(' ')).toEqual({ code: 1, stdout: '', stderr: msg });
    }
  });
});

describe('show conntrack --stats', () => {
  it('prints the counters of conntrack -S with the entries and the limit, and as JSON', async () => {
    const n = natNode(2);
    const { ct } = n;
    ct.track(UDP, POD_A, SERVER, 1, 53, 0, 60); // new
    expect(ct.create(UDP, POD_A, SERVER, 1, 53)).toBe(-1); // present: insert failed
    ct.track(UDP, SERVER, POD_A, 53, 1, 0, 60); // found
    ct.track(UDP, POD_A, SERVER, 1, 53, 0, 60); // found; assured now
    ct.track(TCP, POD_A, SERVER, 1, 80, TCP_ACK, 60); // invalid: starts nothing
    ct.track(UDP, POD_B, SERVER, 2, 53, 0, 60); // new: the table is full now
    ct.track(UDP, POD_B, SERVER, 3, 53, 0, 60); // new, by an early drop of the unassured entry above
    ct.track(UDP, SERVER, POD_B, 53, 3, 0, 60); // found
    ct.track(UDP, POD_B, SERVER, 3, 53, 0, 60); // found; assured now
    expect(ct.track(UDP, POD_B, SERVER, 4, 53, 0, 60)).toBe(-1); // dropped: nothing evictable
    served = await serve(n.dp);
    const stats = { entries: 2, max: 2, found: 4, new: 3, invalid: 1, insertFailed: 1, drop: 1, earlyDrop: 1, expired: 0 };
    expect(await requestJson(served.sock, 'GET', '/v1/conntrack/stats')).toEqual(stats);
    const text = await nodeplane('show', 'conntrack', '--stats', '--admin', served.sock);
    expect(text).toEqual({ code: 0, stdout: 'entries=2 max=2 found=4 new=3 invalid=1 insert_failed=1 drop=1 early_drop=1 expired=0\n', stderr: '' });
    expect(text.stdout).toBe(formatConntrackStats(stats));
    const json = await nodeplane('show', 'conntrack', '--stats', '--json', '--admin', served.sock);
    expect(JSON.parse(json.stdout)).toEqual(stats);
    expect((await nodeplane('show', 'conntrack', '--stats', '--proto', 'tcp', '--admin', served.sock)).stderr).toBe(
      'nodeplane: --stats counts the whole table: it takes no --proto, --src or --dst\n',
    );
  });
});

describe('conntrack flush', () => {
  function fill(n: NatNode): void {
    const { ct } = n;
    for (let i = 0; i < 10; i++) ct.track(TCP, POD_A, SERVER, 1000 + i, 80, TCP_SYN, 60);
    for (let i = 0; i < 5; i++) ct.track(UDP, POD_A, ip('10.96.0.10'), 2000 + i, 53, 0, 60);
    for (let i = 0; i < 3; i++) ct.track(UDP, POD_B, SERVER, 3000 + i, 53, 0, 60);
    for (let i = 0; i < 2; i++) ct.track(ICMP, POD_B, SERVER, 10 + i, 10 + i, 8, 84);
  }

  it('deletes what matches the filters, says how many, and leaves the rest', async () => {
    const n = natNode();
    fill(n);
    served = await serve(n.dp);
    const sock = served.sock;
    const flows = async (): Promise<string[]> => (await readObjects<ConntrackEntryJson>(sock, '/v1/conntrack')).map((e) => `${e.proto} ${e.orig.src} ${e.orig.dst}`);
    expect(await nodeplane('conntrack', 'flush', '--proto', 'udp', '--dst', '203.0.113.7', '--admin', sock)).toEqual({
      code: 0,
      stdout: 'nodeplane: 3 flow entries have been deleted.\n',
      stderr: '',
    });
    expect(n.ct.count).toBe(17);
    expect((await flows()).filter((f) => f.startsWith('udp'))).toEqual(Array(5).fill('udp 10.244.1.2 10.96.0.10'));
    expect((await nodeplane('conntrack', 'flush', '--dst', '203.0.113.7', '--admin', sock)).stdout).toBe('nodeplane: 12 flow entries have been deleted.\n');
    expect(await flows()).toEqual(Array(5).fill('udp 10.244.1.2 10.96.0.10'));
    expect((await nodeplane('conntrack', 'flush', '--src', '10.244.1.3', '--admin', sock)).stdout).toBe('nodeplane: 0 flow entries have been deleted.\n');
    expect(await requestJson(sock, 'DELETE', '/v1/conntrack')).toEqual({ deleted: 5 });
    expect(n.ct.count).toBe(0);
    // The deleted flows are gone from the index too: their next packet starts a new entry.
    expect(n.ct.lookup(UDP, POD_A, ip('10.96.0.10'), 2000, 53)).toBe(-1);
  });

  it('does not count entries whose timeout had passed (they were no longer shown)', async () => {
    const n = natNode();
    fill(n);
    n.ct.nowUs += 31_000_000; // UDP and ICMP (30 s) have timed out; TCP SYN_SENT (120 s) has not.
    served = await serve(n.dp);
    expect(await requestJson(served.sock, 'DELETE', '/v1/conntrack')).toEqual({ deleted: 10 });
    expect(n.ct.count).toBe(0);
  });
});
