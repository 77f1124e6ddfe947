/**
 * What the CNI end-to-end tests share: a node (a namespace running `nodeplane run` with cni0
 * and no port of its own), the network configuration a runtime would hand nodeplane-cni
 * (host-local IPAM with its data directory in the test's temporary directory, so no lease is
 * written elsewhere), and the plugin run exactly as a runtime runs it — the executable
 * itself, CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME and CNI_PATH in its
 * environment, the configuration on stdin.
 *
 * The plugin runs in the test's own namespace, as a runtime runs plugins in the host's: it
 * only talks to nodeplane's admin socket (a file), runs host-local (which writes to its data
 * directory) and reads the pod's namespace with `nsenter ... ip`; it configures nothing
 * outside the namespaces the test made.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../../src/lab/lab.ts';

export const HOST_LOCAL_DIR = '/usr/lib/cni';
export const PLUGIN = fileURLToPath(new URL('../../bin/nodeplane-cni.js', import.meta.url));
export const GATEWAY = '10.244.1.1';

/** Where host-local is, or why there is none. */
export function hostLocalProblem(): string | null {
  return existsSync(join(HOST_LOCAL_DIR, 'host-local')) ? null : `${HOST_LOCAL_DIR}/host-local is missing (Debian package containernetworking-plugins)`;
}

/** A node: nodeplane with cni0 (10.244.1.1/24) and no port of its own. */
export function startNode(dir: string): Promise<Lab> {
  const config = ['node: { name: cni-node }', 'bridges:', `  - { name: cni0, address: ${GATEWAY}/24, mac: 0a:58:0a:f4:01:01 }`, 'ports: []', ''].join('\n');
  return Lab.start({ config, pods: [], dir });
}

/** The network configuration of a runtime's conflist entry, with host-local in `dataDir`. */
export function netconf(adminSocket: string, dataDir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name: 'podnet',
    type: 'nodeplane-cni',
    bridge: 'cni0',
    adminSocket,
    ipam: {
      type: 'host-local',
      ranges: [[{ subnet: '10.244.1.0/24', rangeStart: '10.244.1.10', rangeEnd: '10.244.1.250', gateway: GATEWAY }]],
      routes: [{ dst: '0.0.0.0/0' }],
      dataDir,
    },
    ...extra,
  };
}

export interface PluginRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed, when it is JSON. */
  json: Record<string, unknown> | null;
}

export interface Attachment {
  containerId: string;
  netns: string;
  ifname?: string;
}

/** Runs the plugin `bin` for `command` on `att` with `conf` on stdin, as a runtime does. */
export function runPlugin(bin: string, command: string, att: Attachment, conf: Record<string, unknown>, timeoutMs = 60_000): Promise<PluginRun> {
  const env: NodeJS.ProcessEnv = {
    PATH: `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
    CNI_COMMAND: command,
    CNI_CONTAINERID: att.containerId,
    CNI_NETNS: att.netns,
    CNI_IFNAME: att.ifname ?? 'eth0',
    CNI_PATH: HOST_LOCAL_DIR,
  };
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      let json: Record<string, unknown> | null = null;
      try {
        json = stdout.trim() === '' ? null : (JSON.parse(stdout) as Record<string, unknown>);
      } catch {
        json = null;
      }
      resolve({ code, stdout, stderr, json });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(JSON.stringify(conf));
  });
}

/** The addresses host-local holds in `dataDir` for network `name` (one file per address). */
export function leases(dataDir: string, name = 'podnet'): string[] {
  const d = join(dataDir, name);
  if (!existsSync(d)) return [];
  return readdirSync(d)
    .filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f))
    .sort();
}
