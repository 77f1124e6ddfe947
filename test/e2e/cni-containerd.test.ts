/**
 * End to end: a real container runtime calls nodeplane-cni. containerd (Debian's) runs, with
 * its own root, state and socket in a temporary directory, a container from an image this
 * test builds by hand — busybox-static as its only layer, an OCI layout imported with `ctr
 * image import` — under `ctr run --cni`. The container gets its eth0, address and default
 * route from nodeplane-cni (host-local's lease in the test's directory) and pings a pod that
 * the plugin wired too; when it exits, ctr's DEL removes its port and frees its address.
 *
 * `ctr run --cni` reads the first network configuration in /etc/cni/net.d and runs plugins
 * from /opt/cni/bin (go-cni's defaults; ctr has no flag for either). The test puts its
 * conflist and two links (nodeplane-cni, host-local) there only where nothing of that name
 * exists — it never replaces a file — and removes exactly what it created, directories
 * included, even when the test fails. An existing host-local there is used as it is.
 *
 * Everything else lives in namespaces and directories this file creates, removed on exit.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchState } from '../../src/admin/client.ts';
import type { PortsState } from '../../src/admin/state.ts';
import type { Lab } from '../../src/lab/lab.ts';
import { createNetns, type Netns } from '../../src/lab/netns.ts';
import { GATEWAY, HOST_LOCAL_DIR, PLUGIN, hostLocalProblem, leases, netconf, runPlugin, startNode } from './cni-fixture.ts';
import { missingPrerequisite, skipUnlessReady } from './e2e-prerequisites.ts';

const CONF_DIR = '/etc/cni/net.d';
const BIN_DIR = '/opt/cni/bin';
const BUSYBOX = '/bin/busybox';
const IMAGE = 'docker.io/library/nodeplane-e2e-busybox:test';
const CONFLIST = `00-nodeplane-e2e-${process.pid}.conflist`;

function staticBusyboxProblem(): string | null {
  if (!existsSync(BUSYBOX)) return `${BUSYBOX} is missing (Debian package busybox-static)`;
  // A dynamic executable names its loader (/lib64/ld-linux-x86-64.so.2); busybox-static does not.
  if (readFileSync(BUSYBOX).includes('/ld-linux')) return `${BUSYBOX} is dynamically linked (install busybox-static)`;
  return null;
}

const problem = missingPrerequisite(['containerd', 'ctr', 'runc', 'tar', 'nsenter', 'ping']) ?? hostLocalProblem() ?? staticBusyboxProblem();
const skip = skipUnlessReady('containerd end-to-end test', problem);

/** What the test put under /etc/cni and /opt/cni, to take away again (last first). */
const placed: Array<{ path: string; dir: boolean }> = [];

function mkdirs(dir: string): void {
  if (existsSync(dir)) return;
  mkdirs(dirname(dir));
  mkdirSync(dir);
  placed.push({ path: dir, dir: true });
}

/** Puts a file (or a link) where nothing is; never replaces one. */
function place(path: string, make: (path: string) => void): void {
  if (existsSync(path) || isLink(path)) throw new Error(`${path} exists; the test does not replace it`);
  mkdirs(dirname(path));
  make(path);
  placed.push({ path, dir: false });
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

function unplace(): void {
  for (const p of placed.splice(0).reverse()) {
    try {
      if (p.dir) rmdirSync(p.path);
      else unlinkSync(p.path);
    } catch {
      // A directory someone else put a file in meanwhile stays.
    }
  }
}

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** An OCI image archive of one layer: busybox-static and the applets the test uses. */
function buildImage(dir: string): string {
  const rootfs = join(dir, 'rootfs');
  mkdirSync(join(rootfs, 'bin'), { recursive: true });
  copyFileSync(BUSYBOX, join(rootfs, 'bin', 'busybox'));
  for (const applet of ['sh', 'ip', 'ping', 'cat', 'sleep']) symlinkSync('busybox', join(rootfs, 'bin', applet));
  const layout = join(dir, 'oci');
  const blobs = join(layout, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const layerTar = join(dir, 'layer.tar');
  const t = spawnSync('tar', ['-C', rootfs, '--owner=0', '--group=0', '--numeric-owner', '-cf', layerTar, '.'], { encoding: 'utf8' });
  if (t.status !== 0) throw new Error(`tar: ${t.stderr}`);
  const blob = (bytes: Buffer): { digest: string; size: number } => {
    const digest = sha256(bytes);
    writeFileSync(join(blobs, digest), bytes);
    return { digest: `sha256:${digest}`, size: bytes.length };
  };
  const layer = blob(readFileSync(layerTar));
  const config = blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: [layer.digest] } })));
  const manifest = blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
      }),
    ),
  );
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'io.containerd.image.name': IMAGE, 'org.opencontainers.image.ref.name': 'test' } }] }),
  );
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const archive = join(dir, 'image.tar');
  const a = spawnSync('tar', ['-C', layout, '-cf', archive, '.'], { encoding: 'utf8' });
  if (a.status !== 0) throw new Error(`tar: ${a.stderr}`);
  return archive;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe.skipIf(skip)('containerd runs a container on nodeplane-cni', () => {
  let dir = '';
  let dataDir = '';
  let lab: Lab | null = null;
  let pod: Netns | null = null;
  let containerd: ChildProcess | null = null;
  let containerdLog = '';
  let socket = '';

  beforeAll(async () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    dir = mkdtempSync(join(tmpdir(), 'nodeplane-containerd-'));
    dataDir = join(dir, 'ipam');
    lab = await startNode(dir);
    socket = join(dir, 'containerd.sock');
    const config = [
      'version = 2',
      `root = "${join(dir, 'containerd-root')}"`,
      `state = "${join(dir, 'containerd-state')}"`,
      // The CRI plugin would look for CNI itself; ctr does not need it.
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${socket}"`,
      '[ttrpc]',
      `  address = "${socket}.ttrpc"`,
      '[debug]',
      `  address = "${socket}.debug"`,
      '',
    ].join('\n');
    writeFileSync(join(dir, 'containerd.toml'), config);
    containerd = spawn('containerd', ['--config', join(dir, 'containerd.toml')], { stdio: ['ignore', 'ignore', 'pipe'] });
    containerd.stderr!.setEncoding('utf8').on('data', (d: string) => (containerdLog += d));
    for (let i = 0; !existsSync(socket); i++) {
      if (containerd.exitCode !== null || i === 150) throw new Error(`containerd did not start: ${containerdLog.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 90_000);

  afterAll(async () => {
    unplace();
    if (containerd !== null && containerd.exitCode === null) {
      const exited = new Promise((r) => containerd!.once('exit', r));
      containerd.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (containerd.exitCode === null) containerd.kill('SIGKILL');
    }
    pod?.remove();
    if (lab) {
      await lab.stopNodeplane().catch(() => undefined);
      lab.destroy();
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('ctr run --cni: the container gets its address from nodeplane-cni, pings another pod; its port and lease go when it exits', async () => {
    const conf = netconf(lab!.adminSocket, dataDir);
    // The conflist, the plugin and host-local where ctr looks for them.
    const { cniVersion, name, ...plugin } = conf;
    const before = existsSync(CONF_DIR) ? readdirSync(CONF_DIR).filter((f) => /\.(conf|conflist|json)$/.test(f) && f < CONFLIST) : [];
    if (before.length > 0) throw new Error(`${CONF_DIR} has ${before.join(', ')}, which ctr would read before the test's conflist`);
    place(join(CONF_DIR, CONFLIST), (p) => writeFileSync(p, JSON.stringify({ cniVersion, name, plugins: [plugin] }, null, 2)));
    place(join(BIN_DIR, 'nodeplane-cni'), (p) => symlinkSync(PLUGIN, p));
    if (!existsSync(join(BIN_DIR, 'host-local'))) place(join(BIN_DIR, 'host-local'), (p) => symlinkSync(join(HOST_LOCAL_DIR, 'host-local'), p));

    // Another pod, wired by the plugin as a runtime would.
    pod = createNetns('ctr-peer');
    const peer = await runPlugin(PLUGIN, 'ADD', { containerId: 'ctr-peer', netns: `/run/netns/${pod.name}` }, conf);
    expect(peer.code, peer.stdout).toBe(0);
    const peerAddr = String((peer.json as { ips: Array<{ address: string }> }).ips[0].address).split('/')[0];

    const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` };
    const ctr = (args: string[], timeoutMs = 60_000) => run('ctr', ['--address', socket, ...args], env, timeoutMs);
    const imported = await ctr(['images', 'import', '--snapshotter', 'native', buildImage(dir)]);
    expect(imported.code, imported.stderr).toBe(0);

    const id = `np-e2e-${process.pid}`;
    const script = 'cat /sys/class/net/eth0/address; ip -4 -o addr show dev eth0; ip -4 route show default; ' + `ping -c 3 -W 3 ${peerAddr} && echo PING-OK`;
    const r = await ctr(['run', '--rm', '--cni', '--snapshotter', 'native', IMAGE, id, '/bin/sh', '-c', script], 120_000);
    const out = r.stdout;
    expect(r.code, `ctr run: ${r.stderr}\n${out}\ncontainerd: ${containerdLog.slice(-1500)}`).toBe(0);
    const [mac] = out.split('\n');
    const addr = /inet (10\.244\.1\.\d+)\/24/.exec(out)?.[1];
    process.stdout.write(`containerd: container ${id} had eth0 ${mac} ${addr}/24, pinged ${peerAddr}\n`);
    expect(addr).toBeDefined();
    expect(addr).not.toBe(peerAddr);
    // The MAC nodeplane gives a pod: 0a:58 and its address.
    expect(mac).toBe(`0a:58:${addr!.split('.').map((x) => Number(x).toString(16).padStart(2, '0')).join(':')}`);
    expect(out).toMatch(new RegExp(`default via ${GATEWAY.replace(/\./g, '\\.')} dev eth0`));
    expect(out).toMatch(/3 packets transmitted, 3 (packets )?received/);
    expect(out).toContain('PING-OK');
    // nodeplane-cni asked for the port on the container's behalf (ctr's id is namespace-id).
    expect(lab!.nodeplaneStderr).toContain(`"owner":"podnet/default-${id}/eth0"`);
    expect(lab!.nodeplaneStderr).toMatch(/"msg":"port removed"/);

    // ctr's DEL at exit: the container's port and lease are gone, the peer's stay.
    const ports = (await fetchState(lab!.adminSocket, 'ports')) as PortsState;
    expect(ports.ports.map((p) => p.owner)).toEqual(['podnet/ctr-peer/eth0']);
    expect(leases(dataDir)).toEqual([peerAddr]);
    expect((await runPlugin(PLUGIN, 'DEL', { containerId: 'ctr-peer', netns: `/run/netns/${pod.name}` }, conf)).code).toBe(0);
    expect(leases(dataDir)).toEqual([]);
  }, 240_000);
});
