/**
 * nodeplane-cni: the CNI plugin's entry point, as a container runtime runs it — CNI_COMMAND
 * and the attachment's parameters in the environment, the network configuration on stdin,
 * the result on stdout, exit 0; or an error object on stdout (cniVersion, code, msg,
 * details) and exit 1. The commands are in plugin.ts.
 *
 * Started once per pod and per command, so it imports only what it needs: the admin socket's
 * client, the namespace reader and its own files — never the dataplane.
 */
import { CniCode, CniError, parseNetConf, readEnv } from './cni-types.ts';
import { cmdAdd, cmdCheck, cmdDel, cmdVersion } from './plugin.ts';

function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d: string) => (text += d));
    process.stdin.on('end', () => resolve(text));
    process.stdin.on('error', reject);
  });
}

function out(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

async function main(): Promise<number> {
  let cniVersion = '1.0.0';
  try {
    let stdin: string;
    try {
      stdin = await readStdin();
    } catch (err) {
      throw new CniError(CniCode.IO_FAILURE, 'cannot read the network configuration from stdin', (err as Error).message);
    }
    const env = readEnv(process.env);
    if (env.command === 'VERSION') {
      out(cmdVersion(stdin));
      return 0;
    }
    try {
      cniVersion = (JSON.parse(stdin) as { cniVersion?: string }).cniVersion ?? cniVersion;
    } catch {
      // parseNetConf says what is wrong with it.
    }
    const conf = parseNetConf(stdin);
    if (env.command === 'ADD') out(await cmdAdd(conf, env, process.env));
    else if (env.command === 'DEL') await cmdDel(conf, env, process.env);
    else await cmdCheck(conf, env, process.env);
    return 0;
  } catch (err) {
    const e = err instanceof CniError ? err : new CniError(999, 'internal error', (err as Error).stack ?? String(err));
    out(e.toJSON(typeof cniVersion === 'string' ? cniVersion : '1.0.0'));
    return 1;
  }
}

process.exitCode = await main();
