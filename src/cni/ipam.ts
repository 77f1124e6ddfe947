/**
 * IPAM delegation (CNI SPEC section 4): the plugin named by `ipam.type` is looked up in the
 * directories of CNI_PATH, in order, and run with the same environment as nodeplane-cni
 * (CNI_COMMAND included, the command being delegated) and the same network configuration on
 * stdin, byte for byte; its stderr goes to ours. Success is exit 0 with a result on stdout
 * (ADD) or nothing (DEL, CHECK); failure is a non-zero exit with an error object on stdout,
 * which is passed on as ours, code and all.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { CniCode, CniError, type CniResult } from './cni-types.ts';

/** host-local answers in milliseconds; a plugin that hangs must not hold the runtime forever. */
const TIMEOUT_MS = 60_000;

/** The first executable file named `type` in `dirs`; a CniError when there is none. */
export function findPlugin(type: string, dirs: readonly string[]): string {
  for (const d of dirs) {
    const p = join(d, type);
    try {
      if (!statSync(p).isFile()) continue;
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // Not there, or not executable: the next directory.
    }
  }
  throw new CniError(CniCode.IPAM_FAILED, `IPAM plugin ${type} not found`, dirs.length === 0 ? 'CNI_PATH is empty' : `not in CNI_PATH (${dirs.join(':')})`);
}

/**
 * Runs the IPAM plugin for `command` (ADD, DEL or CHECK) with `netconf` on stdin; the parsed
 * result for ADD, null otherwise. Its error result, if it fails, is thrown as a CniError.
 */
export async function delegate(type: string, command: string, netconf: string, env: NodeJS.ProcessEnv, dirs: readonly string[]): Promise<CniResult | null> {
  const path = findPlugin(type, dirs);
  const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
    const child = spawn(path, [], { env: { ...env, CNI_COMMAND: command }, stdio: ['pipe', 'pipe', 'inherit'], timeout: TIMEOUT_MS });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', (err) => reject(new CniError(CniCode.IPAM_FAILED, `IPAM plugin ${type} could not be run`, err.message)));
    child.on('close', (c, signal) => resolve({ code: signal === null ? c : -1, stdout: out }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(netconf);
  });
  let result: unknown = null;
  if (stdout.trim() !== '') {
    try {
      result = JSON.parse(stdout);
    } catch {
      throw new CniError(CniCode.IPAM_FAILED, `IPAM plugin ${type} answered ${command} with something that is not JSON`, stdout.slice(0, 200));
    }
  }
  if (code !== 0) {
    const e = result as { code?: unknown; msg?: unknown; details?: unknown } | null;
    if (e !== null && typeof e.code === 'number' && typeof e.msg === 'string') {
      throw new CniError(e.code, `${type}: ${e.msg}`, typeof e.details === 'string' ? e.details : '');
    }
    throw new CniError(CniCode.IPAM_FAILED, `IPAM plugin ${type} failed on ${command}`, code === -1 ? 'killed (timed out?)' : `exit status ${code}`);
  }
  if (command !== 'ADD') return null;
  const r = result as CniResult | null;
  if (r === null || !Array.isArray(r.ips) || r.ips.length === 0) throw new CniError(CniCode.IPAM_FAILED, `IPAM plugin ${type} gave no address`, stdout.slice(0, 200));
  return r;
}
