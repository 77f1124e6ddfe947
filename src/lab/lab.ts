/**
 * Lab: a node and its pods built from network namespaces, with nodeplane between them.
 *
 * The node is a namespace in which `nodeplane run` creates its TAP devices; each pod is a
 * namespace that receives the kernel end of one TAP as its eth0 (as a CNI plugin moves a
 * veth end into a pod), with an address and a default route through the gateway. Everything
 * lives in namespaces this process creates, named with a unique prefix, and is removed by
 * `destroy()` — also when the process exits or is interrupted. Used by `nodeplane demo` and
 * the end-to-end tests.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchState } from '../admin/client.ts';
import { createNetns, type Netns } from './netns.ts';

/**
 * A host on one port of the node: a pod on an L2 port (default route through its gateway),
 * or a host outside the cluster behind an L3 port (an uplink's peer), which may have no
 * gateway at all and only the routes it is given.
 */
export interface PodSpec {
  /** The TAP/port name in the config, which becomes the host's eth0. */
  port: string;
  /** Address with prefix, e.g. 10.244.1.2/24. */
  address: string;
  /** The default route's next hop; none when absent. */
  gateway?: string;
  /** Further routes, e.g. { dst: '10.244.0.0/16', via: '192.168.50.11' } on an external host. */
  routes?: Array<{ dst: string; via: string }>;
}

export interface LabOptions {
  /** The nodeplane config (YAML text). */
  config: string;
  pods: PodSpec[];
  /** Working directory for the config file, admin socket and captures. */
  dir: string;
  capture?: boolean;
  /** Extra arguments for `nodeplane run`. */
  runArgs?: string[];
  /** nodeplane's stdout: ignored (default), or a pipe read through `nodeplane.stdout`. */
  stdout?: 'ignore' | 'pipe';
  /** Milliseconds to wait for nodeplane to come up. */
  startTimeoutMs?: number;
  /**
   * The node's namespace, made beforehand (say with an underlay interface and address that
   * nodeplane binds to at start); the lab takes it over and removes it. A new one when absent.
   */
  node?: Netns;
}

const NODEPLANE = fileURLToPath(new URL('../../bin/nodeplane.cjs', import.meta.url));

export class Lab {
  readonly node: Netns;
  readonly pods = new Map<string, Netns>();
  readonly adminSocket: string;
  readonly captureDir: string;
  nodeplane: ChildProcess | null = null;
  nodeplaneStderr = '';
  private exit: Promise<number | null> | null = null;
  private config: string;

  private constructor(readonly opts: LabOptions) {
    this.config = opts.config;
    this.node = opts.node ?? createNetns('node');
    this.adminSocket = join(opts.dir, 'admin.sock');
    this.captureDir = join(opts.dir, 'captures');
  }

  /** Builds the namespaces, starts nodeplane in the node and plugs every pod in. */
  static async start(opts: LabOptions): Promise<Lab> {
    const lab = new Lab(opts);
    try {
      for (const p of opts.pods) lab.pods.set(p.port, createNetns(p.port));
      await lab.startNodeplane();
      for (const p of opts.pods) lab.plug(p);
      return lab;
    } catch (err) {
      lab.destroy();
      throw err;
    }
  }

  pod(port: string): Netns {
    const ns = this.pods.get(port);
    if (!ns) throw new Error(`no pod on port ${port}`);
    return ns;
  }

  private async startNodeplane(): Promise<void> {
    const { dir } = this.opts;
    mkdirSync(dir, { recursive: true });
    const configFile = join(dir, 'nodeplane.yaml');
    writeFileSync(configFile, this.config);
    const args = [NODEPLANE, 'run', '--config', configFile, '--admin', this.adminSocket, ...(this.opts.capture ? ['--capture', this.captureDir] : []), ...(this.opts.runArgs ?? [])];
    const child = this.node.spawn(process.execPath, args, { stdio: ['ignore', this.opts.stdout ?? 'ignore', 'pipe'] });
    this.nodeplane = child;
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.nodeplaneStderr += d));
    this.exit = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 20_000);
    for (;;) {
      if (child.exitCode !== null) throw new Error(`nodeplane exited with ${child.exitCode}: ${this.nodeplaneStderr.trim()}`);
      try {
        await fetchState(this.adminSocket, 'ports');
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`nodeplane did not come up within the time limit: ${this.nodeplaneStderr.trim()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Moves the TAP `port` into its host's namespace as eth0 and configures it. */
  private plug(p: PodSpec): void {
    const pod = this.pod(p.port);
    this.node.ip(['link', 'set', 'dev', p.port, 'netns', pod.name]);
    pod.ip(['link', 'set', 'dev', p.port, 'name', 'eth0']);
    pod.ip(['addr', 'add', p.address, 'dev', 'eth0']);
    pod.ip(['link', 'set', 'eth0', 'up']);
    if (p.gateway) pod.ip(['route', 'add', 'default', 'via', p.gateway]);
    for (const r of p.routes ?? []) pod.ip(['route', 'add', r.dst, 'via', r.via]);
  }

  /**
   * Stops nodeplane and starts it again in the same namespaces, with `config` and `runArgs`
   * (the running ones when absent). Its TAP devices went with it, so every host gets a fresh eth0,
   * configured as at the start.
   */
  async restart(config?: string, runArgs?: string[]): Promise<void> {
    const code = await this.stopNodeplane('SIGTERM');
    if (code !== 0) throw new Error(`nodeplane exited with ${code} on SIGTERM: ${this.nodeplaneStderr.trim()}`);
    // A TAP is deleted when its last file descriptor closes; wait until each host's is gone.
    for (const p of this.opts.pods) {
      const pod = this.pod(p.port);
      for (let i = 0; pod.ip(['link', 'show', 'dev', 'eth0'], { check: false }) !== ''; i++) {
        if (i === 50) throw new Error(`eth0 of ${pod.name} is still there after nodeplane exited`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (config !== undefined) this.config = config;
    if (runArgs !== undefined) this.opts.runArgs = runArgs;
    this.nodeplaneStderr = '';
    await this.startNodeplane();
    for (const p of this.opts.pods) this.plug(p);
  }

  /** Sends `signal` to nodeplane and waits for it to exit; returns its exit code. */
  async stopNodeplane(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<number | null> {
    const child = this.nodeplane;
    if (!child || !this.exit) return null;
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref());
    const result = await Promise.race([this.exit, timer]);
    if (result === 'timeout') {
      child.kill('SIGKILL');
      throw new Error(`nodeplane did not exit within ${timeoutMs} ms of ${signal}`);
    }
    return result;
  }

  /**
   * Stops nodeplane with SIGTERM, so that it writes what it writes on exit (captures, the
   * latency file), then destroy(): what a run ends with. A nodeplane that does not exit in
   * time is killed by destroy().
   */
  async shutdown(): Promise<void> {
    try {
      await this.stopNodeplane('SIGTERM');
    } catch {
      /* destroy() kills it */
    }
    this.destroy();
  }

  /** Kills everything the lab started and deletes its namespaces. Idempotent. */
  destroy(): void {
    for (const ns of this.pods.values()) ns.remove();
    this.node.remove();
  }
}
