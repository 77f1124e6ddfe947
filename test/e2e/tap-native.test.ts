// End-to-end tests of the TAP addon (native/tap.c through src/ports/tap-native.ts).
// Everything happens inside network namespaces created for this file; the side that
// opens the TAP runs as a child process inside the namespace (test/e2e/tap-fixture.ts)
// and reports as JSON lines. Needs root and /dev/net/tun: without them the tests are
// skipped, except in CI (CI=true), where that is a failure.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInterface } from 'node:readline';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createNetns, netnsSupport, type Netns } from '../../src/lab/netns.ts';
import { tapAvailable } from '../../src/ports/tap-native.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = 'test/e2e/tap-fixture.ts';

function support(): { ok: true } | { ok: false; reason: string } {
  const ns = netnsSupport({ tun: true });
  if (!ns.ok) return ns;
  return tapAvailable();
}
const sup = support();
if (!sup.ok && process.env.CI !== 'true') console.log(`skipping TAP end-to-end tests: ${sup.reason}`);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Ev = { ev: string; [k: string]: any };

/** The fixture child: events from its stdout, commands to its stdin. */
class Fixture {
  readonly events: Ev[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;
  private wake: (() => void)[] = [];

  constructor(ns: Netns, cfg: object, wrapper: string[] = []) {
    const argv = [process.execPath, 'bin/run-ts.js', FIXTURE, JSON.stringify(cfg)];
    const [cmd, ...args] = [...wrapper, ...argv];
    this.child = ns.spawn(cmd!, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      try {
        this.events.push(JSON.parse(line) as Ev);
      } catch {
        this.events.push({ ev: 'junk', line });
      }
      this.notify();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code) => {
        resolve(code);
        this.notify();
      }),
    );
  }

  private notify(): void {
    const w = this.wake;
    this.wake = [];
    for (const f of w) f();
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first event at index >= from that matches. */
  async waitFor(pred: (e: Ev) => boolean, timeoutMs = 15_000, from = 0): Promise<Ev> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.slice(from).find(pred);
      if (found) return found;
      if (!this.alive) throw new Error(`fixture exited (${this.child.exitCode}); stderr: ${this.stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for an event; got ${JSON.stringify(this.events)}; stderr: ${this.stderr}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Sends a command and waits for the reply event named `ev`. */
  request(cmd: object, ev: string, timeoutMs = 15_000): Promise<Ev> {
    const from = this.events.length;
    this.child.stdin!.write(JSON.stringify(cmd) + '\n');
    return this.waitFor((e) => e.ev === ev, timeoutMs, from);
  }

  /** Polls stats until `pred` holds. */
  async statsUntil(pred: (s: Ev) => boolean, timeoutMs = 10_000): Promise<Ev> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.request({ cmd: 'stats' }, 'stats');
      if (pred(s) || Date.now() > deadline) return s;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

// Sends `count` UDP datagrams from the namespace's kernel stack, one after the other.
const SENDER = `
const s = require('node:dgram').createSocket('udp4');
const [host, port, count] = process.argv.slice(1);
let i = 0;
const next = () => (i < +count ? s.send(String(i).padEnd(64, ' '), +port, host, (e) => { if (e) throw e; i++; next(); }) : s.close());
next();
`;
// Counts datagrams received on host:port, and those not in the order of their number ("datagram
// N"); prints the counts after `count` or `ms`.
const RECEIVER = `
const s = require('node:dgram').createSocket('udp4');
const [host, port, count, ms] = process.argv.slice(1);
let n = 0, outOfOrder = 0;
const done = () => { console.log(JSON.stringify({ received: n, outOfOrder })); process.exit(0); };
s.on('message', (m) => { if (m.toString() !== 'datagram ' + n) outOfOrder++; if (++n >= +count) done(); });
s.bind(+port, host, () => console.log('listening'));
setTimeout(done, +ms);
`;

// io_uring is there unless the kernel turns it off (a sandbox refusing it would show as 0 here
// and fail the io_uring assertions: the addon then falls back to read()/write()).
const URING = existsSync('/proc/sys/kernel/io_uring_disabled') ? readFileSync('/proc/sys/kernel/io_uring_disabled', 'utf8').trim() === '0' : true;

const TAP = 'nptap0';
const MTU = 1400;
const TAP_MAC = '02:5e:00:00:00:01';
const PEER_MAC = '02:5e:00:00:00:02';
const KERNEL_IP = '10.99.0.1';
const PEER_IP = '10.99.0.2';
const NEIGH_IP = '10.99.0.3';
const MAX_BATCH = 64;

function disableIpv6(ns: Netns): void {
  // Keeps IPv6 neighbour discovery and MLD noise off the TAP.
  ns.runSync('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
}

// Runs when the prerequisites are there, and in CI even when they are not (to fail there).
describe.runIf(sup.ok || process.env.CI === 'true')('TAP addon in a network namespace', () => {
  let ns: Netns;
  let fx: Fixture;

  beforeAll(async () => {
    if (!sup.ok) throw new Error(`TAP end-to-end tests cannot run: ${sup.reason}`);
    ns = createNetns('tap');
    disableIpv6(ns);
    fx = new Fixture(ns, {
      mode: 'serve',
      name: TAP,
      mtu: MTU,
      mac: TAP_MAC,
      ip: PEER_IP,
      peerMac: PEER_MAC,
      kernelIp: KERNEL_IP,
      maxBatch: MAX_BATCH,
    });
    const ready = await fx.waitFor((e) => e.ev === 'ready' || e.ev === 'open-failed');
    if (ready.ev !== 'ready') throw new Error(`tapOpen failed in the fixture: ${ready.message}`);
    ns.ip(['addr', 'add', `${KERNEL_IP}/24`, 'dev', TAP]);
  });

  afterAll(() => {
    ns?.remove();
  });

  it('creates the device up, with the MTU, MAC and queue length asked for', () => {
    const [link] = JSON.parse(ns.ip(['-j', 'link', 'show', 'dev', TAP])) as {
      ifname: string;
      flags: string[];
      mtu: number;
      address: string;
      txqlen: number;
    }[];
    expect(link!.ifname).toBe(TAP);
    expect(link!.flags).toContain('UP');
    expect(link!.mtu).toBe(MTU);
    expect(link!.address).toBe(TAP_MAC);
    expect(link!.txqlen).toBe(1000);
    expect(fx.events.find((e) => e.ev === 'ready')).toMatchObject({ name: TAP });
  });

  it('exchanges ARP and ICMP with the kernel in both directions', async () => {
    const ping = await ns.run('ping', ['-c', '3', '-i', '0.2', '-W', '1', PEER_IP], { timeoutMs: 10_000 });
    const arp = await fx.waitFor((e) => e.ev === 'arp-request');
    expect(arp).toMatchObject({ target: PEER_IP, sender: KERNEL_IP, senderMac: TAP_MAC });
    expect(ping.stdout).toMatch(/3 packets transmitted, 3 received/);
    expect(ping.code).toBe(0);
    expect(fx.events.filter((e) => e.ev === 'icmp-echo').map((e) => e.seq)).toEqual([1, 2, 3]);
    // The kernel learnt the fixture's MAC from the ARP reply written through tapWriteBatch.
    expect(ns.ip(['neigh', 'show', PEER_IP, 'dev', TAP])).toContain(PEER_MAC);
    const s = await fx.request({ cmd: 'stats' }, 'stats');
    expect(s.native.txFrames).toBeGreaterThanOrEqual(4);
    expect(s.native.rxFrames).toBe(s.frames);
    expect(s.native.rxBatches).toBe(s.batches);
  });

  it('hands a queued burst to JavaScript in batches of up to maxBatch', async () => {
    ns.ip(['neigh', 'replace', NEIGH_IP, 'lladdr', '02:5e:00:00:00:03', 'nud', 'permanent', 'dev', TAP]);
    await fx.request({ cmd: 'reset' }, 'reset');
    await fx.request({ cmd: 'pause' }, 'paused');
    const sent = await ns.run(process.execPath, ['-e', SENDER, NEIGH_IP, '9999', '200'], { timeoutMs: 10_000 });
    expect(sent.code, sent.stderr).toBe(0);
    await fx.request({ cmd: 'resume' }, 'resumed');
    const s = await fx.statsUntil((x) => x.udp >= 200);
    expect(s.udp).toBe(200);
    expect(s.udpOutOfOrder).toBe(0);
    expect(s.batches).toBeLessThan(s.frames);
    expect(s.batches).toBeLessThanOrEqual(Math.ceil(200 / MAX_BATCH) + 1);
    expect(s.maxBatchSeen).toBe(MAX_BATCH);
    // After a full batch, the next is read through io_uring where the kernel allows it.
    if (URING) expect(s.native.rxUring).toBeGreaterThan(0);
  });

  it('delivers every frame of a live burst', async () => {
    await fx.request({ cmd: 'reset' }, 'reset');
    const sent = await ns.run(process.execPath, ['-e', SENDER, NEIGH_IP, '9999', '200'], { timeoutMs: 10_000 });
    expect(sent.code, sent.stderr).toBe(0);
    const s = await fx.statsUntil((x) => x.udp >= 200);
    expect(s.udp).toBe(200);
    expect(s.udpOutOfOrder).toBe(0);
    // No round was larger than asked for, so the burst took at least frames / maxBatch rounds.
    expect(s.maxBatchSeen).toBeGreaterThanOrEqual(1);
    expect(s.maxBatchSeen).toBeLessThanOrEqual(MAX_BATCH);
    expect(s.batches).toBeGreaterThanOrEqual(Math.ceil(s.frames / MAX_BATCH));
    console.log(`live burst: ${s.frames} frames in ${s.batches} batches (largest ${s.maxBatchSeen})`);
  });

  it('writes a batch of frames that the kernel stack receives', async () => {
    const rx = ns.spawn(process.execPath, ['-e', RECEIVER, KERNEL_IP, '9998', '50', '5000'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines = createInterface({ input: rx.stdout! });
    const output: string[] = [];
    const done = new Promise<void>((resolve) => rx.on('exit', () => resolve()));
    await new Promise<void>((resolve) =>
      lines.on('line', (l) => {
        output.push(l);
        if (l === 'listening') resolve();
      }),
    );
    const before = (await fx.request({ cmd: 'stats' }, 'stats')).native.txUring as number;
    const sent = await fx.request({ cmd: 'send-udp', count: 50 }, 'sent');
    expect(sent.written).toBe(50);
    await done;
    expect(JSON.parse(output.at(-1)!)).toEqual({ received: 50, outOfOrder: 0 });
    // One batch of 50: one io_uring_enter where the kernel allows it, else a write() each.
    const after = (await fx.request({ cmd: 'stats' }, 'stats')).native.txUring as number;
    expect(after - before).toBe(URING ? 50 : 0);
  });

  it('reports the removal of the device as -errno (EBADFD) once and keeps running', async () => {
    const from = fx.events.length;
    ns.ip(['link', 'del', TAP]);
    const err = await fx.waitFor((e) => e.ev === 'read-error', 10_000, from);
    expect(err.code).toBeLessThan(0);
    expect(err.name).toBe('EBADFD');
    const s = await fx.request({ cmd: 'stats' }, 'stats');
    expect(s.native.rxFrames).toBeGreaterThan(0);
    await fx.request({ cmd: 'close' }, 'closed');
    expect(await fx.exited).toBe(0);
  });

  it('keeps working when its namespace is deleted under it', async () => {
    const ns2 = createNetns('tapdel');
    try {
      disableIpv6(ns2);
      const fx2 = new Fixture(ns2, {
        mode: 'serve',
        name: 'nptap1',
        mac: TAP_MAC,
        ip: PEER_IP,
        peerMac: PEER_MAC,
        kernelIp: KERNEL_IP,
      });
      await fx2.waitFor((e) => e.ev === 'ready');
      // Only the name goes: the fixture, living in the namespace, keeps it (and the device).
      const del = spawnSync('ip', ['netns', 'del', ns2.name], { encoding: 'utf8', timeout: 5000 });
      expect(del.status, del.stderr).toBe(0);
      const s = await fx2.request({ cmd: 'stats' }, 'stats');
      expect(s.ev).toBe('stats');
      expect(fx2.events.some((e) => e.ev === 'read-error')).toBe(false);
      await fx2.request({ cmd: 'close' }, 'closed');
      expect(await fx2.exited).toBe(0);
    } finally {
      ns2.remove();
    }
  });

  it('explains invalid device names', async () => {
    const fx3 = new Fixture(ns, { mode: 'errors', name: 'x'.repeat(16) });
    expect(await fx3.exited).toBe(0);
    const [long, slash] = fx3.events;
    expect(long).toMatchObject({ ok: false, code: 'EINVAL' });
    expect(long!.message).toMatch(/at most 15/);
    expect(slash).toMatchObject({ ok: false, code: 'EINVAL' });
  });

  it.runIf(existsSync('/usr/bin/setpriv') || existsSync('/bin/setpriv'))(
    'explains a missing CAP_NET_ADMIN',
    async () => {
      const fx4 = new Fixture(ns, { mode: 'errors', name: 'nptperm0' }, [
        'setpriv',
        '--bounding-set',
        '-net_admin',
        '--inh-caps',
        '-net_admin',
      ]);
      expect(await fx4.exited).toBe(0);
      expect(fx4.events[0]).toMatchObject({ ok: false, code: 'EPERM' });
      expect(fx4.events[0]!.message).toBe('creating TAP device nptperm0 needs CAP_NET_ADMIN (run as root)');
    },
  );
});
