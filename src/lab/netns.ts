// Network namespaces for the lab (nodeplane demo) and the end-to-end tests.
//
// Every namespace is named `npt-<pid>-<n>-<label>` so that it is unique to this process
// and recognisable. All namespaces created here, and the processes started in them, are
// removed by remove()/removeAllNetns(), and in any case when the process exits (an 'exit'
// handler, plus SIGINT/SIGTERM/SIGHUP). Namespaces left behind by a process that was
// killed outright are removed the next time a namespace is created (their pid is gone).
//
// Devices, addresses and routes belong inside these namespaces only: never configure
// the root namespace from a test.
import { execFileSync, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

export const NETNS_PREFIX = `npt-${process.pid}-`;
const STALE_RE = /^npt-(\d+)-/;

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface RunOptions {
  /** Kill the command after this long (default 10 s). */
  timeoutMs?: number;
  input?: string;
  /** Throw if the command does not exit with 0 (default false for run(), true for ip()). */
  check?: boolean;
}

export interface Netns {
  readonly name: string;
  /** Runs `ip -n <name> ...args` synchronously; throws with stderr on failure. */
  ip(args: string[], opts?: RunOptions): string;
  /** Runs a command inside the namespace synchronously. */
  runSync(cmd: string, args: string[], opts?: RunOptions): RunResult;
  /** Runs a command inside the namespace; resolves when it exits (or is killed at the timeout). */
  run(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
  /** Starts a long-running command inside the namespace; it is killed by remove(). */
  spawn(cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** Kills the processes in the namespace and deletes it. Idempotent. */
  remove(): void;
}

const live = new Map<string, NetnsImpl>();
let counter = 0;
let hooksInstalled = false;
let staleChecked = false;

/** Can this process create namespaces? (root, `ip` with netns support, /dev/net/tun for TAPs) */
export function netnsSupport(opts: { tun?: boolean } = {}): { ok: true } | { ok: false; reason: string } {
  if (process.platform !== 'linux') return { ok: false, reason: `network namespaces need Linux (this is ${process.platform})` };
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return { ok: false, reason: 'network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN)' };
  }
  const ip = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 5000 });
  if (ip.error || ip.status !== 0) {
    return { ok: false, reason: `\`ip netns\` does not work: ${ip.error?.message ?? ip.stderr.trim()}` };
  }
  if (opts.tun && !existsSync('/dev/net/tun')) {
    return { ok: false, reason: '/dev/net/tun is missing (load the tun module)' };
  }
  return { ok: true };
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', removeAllNetns);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      removeAllNetns();
      process.removeListener(sig, onSignal);
      // Keep the default behaviour (dying of the signal) unless someone else handles it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes `npt-<pid>-*` namespaces whose creating process no longer exists. */
export function removeStaleNetns(): void {
  let names: string[] = [];
  try {
    names = readdirSync('/run/netns');
  } catch {
    return;
  }
  for (const name of names) {
    const m = STALE_RE.exec(name);
    if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
    deleteNetns(name, []);
  }
}

function killNetnsPids(name: string, tracked: ChildProcess[]): void {
  for (const child of tracked) {
    if (child.exitCode === null && child.signalCode === null && child.pid) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
  // Anything else still running inside the namespace was started there by this test.
  const r = spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8', timeout: 5000 });
  for (const line of (r.stdout ?? '').split('\n')) {
    const pid = Number(line.trim());
    if (Number.isInteger(pid) && pid > 1 && pid !== process.pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

function deleteNetns(name: string, tracked: ChildProcess[]): void {
  killNetnsPids(name, tracked);
  spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore', timeout: 5000 });
}

class NetnsImpl implements Netns {
  private readonly children: ChildProcess[] = [];
  private removed = false;

  constructor(readonly name: string) {}

  ip(args: string[], opts: RunOptions = {}): string {
    const r = runSyncRaw('ip', ['-n', this.name, ...args], opts);
    if (opts.check !== false && r.code !== 0) {
      throw new Error(`ip -n ${this.name} ${args.join(' ')} failed (${r.code ?? r.signal}): ${r.stderr.trim()}`);
    }
    return r.stdout;
  }

  runSync(cmd: string, args: string[], opts: RunOptions = {}): RunResult {
    const r = runSyncRaw('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
    if (opts.check && r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} in ${this.name} failed: ${r.stderr.trim()}`);
    return r;
  }

  run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
    const child = this.spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    return new Promise((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, opts.timeoutMs ?? 10_000);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const r = { code, signal, stdout, stderr, timedOut };
        if (opts.check && code !== 0) reject(new Error(`${cmd} ${args.join(' ')} in ${this.name} failed: ${stderr.trim()}`));
        else resolve(r);
      });
      // A command that exits without reading its input closes the pipe first: not an error.
      child.stdin!.on('error', () => {});
      child.stdin!.end(opts.input ?? '');
    });
  }

  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    if (this.removed) throw new Error(`namespace ${this.name} was removed`);
    // `ip netns exec` execs the command, so the child's pid is the command's own.
    const child = spawn('ip', ['netns', 'exec', this.name, cmd, ...args], opts);
    this.children.push(child);
    return child;
  }

  remove(): void {
    if (this.removed) return;
    this.removed = true;
    live.delete(this.name);
    deleteNetns(this.name, this.children);
  }
}

function runSyncRaw(cmd: string, args: string[], opts: RunOptions): RunResult {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 10_000,
    input: opts.input,
    killSignal: 'SIGKILL',
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code !== 'ETIMEDOUT') throw r.error;
  return {
    code: r.status,
    signal: r.signal,
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? '',
    timedOut: (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT',
  };
}

/**
 * Creates a fresh namespace `npt-<pid>-<n>-<label>` with its loopback up.
 * Call remove() in afterAll/finally; it also goes away when the process exits.
 */
export function createNetns(label = 'ns'): Netns {
  if (!/^[a-z0-9-]{0,20}$/i.test(label)) throw new Error(`bad namespace label "${label}"`);
  installHooks();
  if (!staleChecked) {
    staleChecked = true;
    removeStaleNetns();
  }
  const name = `${NETNS_PREFIX}${++counter}-${label}`;
  execFileSync('ip', ['netns', 'add', name], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000 });
  const ns = new NetnsImpl(name);
  live.set(name, ns);
  try {
    ns.ip(['link', 'set', 'lo', 'up']);
  } catch (err) {
    ns.remove();
    throw err;
  }
  return ns;
}

/** Removes every namespace this process created (and kills the processes in them). */
export function removeAllNetns(): void {
  for (const ns of [...live.values()]) ns.remove();
}

/** Names of the namespaces currently created by this process. */
export function liveNetns(): string[] {
  return [...live.keys()];
}
