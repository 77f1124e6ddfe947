/**
 * `nodeplane extcap`: Wireshark's extcap interface (extcap(4), and Wireshark's developer
 * guide) to a running nodeplane, so its ports appear in Wireshark's capture dialog and in
 * `tshark -D`, and `tshark -i nodeplane-pa` captures from them live. Wireshark runs it with:
 *
 *   --extcap-interfaces [--extcap-version V]   one `interface` line per port of the running
 *        nodeplane (value `nodeplane-<port>`), and `nodeplane-drop`: the frames the stages drop,
 *        each with its stage and reason id as comment. Ports are read through the admin socket
 *        (--admin, the default given at install); none are listed when nothing answers there.
 *   --extcap-interface IF --extcap-dlts          Ethernet.
 *   --extcap-interface IF --extcap-config        the options Wireshark offers: the admin socket,
 *        the snapshot length, a capture filter (tcpdump syntax).
 *   --extcap-interface IF --extcap-capture-filter EXPR   checks a filter: nothing printed when
 *        libpcap compiles it, its message when not.
 *   --extcap-interface IF --capture --fifo PATH [--extcap-capture-filter EXPR]   streams pcapng
 *        from the running nodeplane (`GET /v1/capture` on the admin socket) into the FIFO until
 *        Wireshark closes it or stops the capture (SIGTERM/SIGINT); both filters apply.
 *
 * `nodeplane extcap install [--dir DIR] [--admin SOCKET]` writes a launcher script, `nodeplane`,
 * into Wireshark's personal extcap folder (the "Personal Extcap path" of `tshark -G folders`,
 * else ~/.local/lib/wireshark/extcap), which runs this command with this Node and this
 * package and the given admin socket as default. Wireshark 4.0 has no personal extcap folder:
 * it reads its global one (as root: install there with --dir) or WIRESHARK_EXTCAP_DIR (which it
 * ignores when run as root); the command says so when Wireshark will not find the launcher.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { request } from 'node:http';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchState } from '../admin/client.ts';
import type { PortsState } from '../admin/state.ts';
import { UserError } from '../user-error.ts';

/** Interface values are the port names with this prefix (a TAP device has the bare name). */
export const EXTCAP_PREFIX = 'nodeplane-';
/** The interface of the frames the stages drop. */
export const EXTCAP_DROP = `${EXTCAP_PREFIX}drop`;
const MAX_SNAPLEN = 262144;
/** The launcher's file name in the extcap folder. */
export const LAUNCHER_NAME = 'nodeplane';

export interface ExtcapOptions {
  admin: string;
  extcapInterfaces?: boolean;
  extcapInterface?: string;
  extcapDlts?: boolean;
  extcapConfig?: boolean;
  extcapCaptureFilter?: string;
  capture?: boolean;
  fifo?: string;
  snaplen?: string;
  filter?: string;
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0';
  } catch {
    return '0';
  }
}

/** A value inside an extcap sentence's braces: no braces, no line breaks. */
function sentenceValue(s: string): string {
  return s.replace(/[{}\r\n]/g, ' ');
}

export async function extcapCommand(opts: ExtcapOptions): Promise<number> {
  const out = (line: string): void => void process.stdout.write(`${line}\n`);
  if (opts.extcapInterfaces) {
    out(`extcap {version=${version()}}{display=nodeplane, a Kubernetes node's dataplane}`);
    let ports: PortsState;
    try {
      ports = (await fetchState(opts.admin, 'ports')) as PortsState;
    } catch (err) {
      // Nothing runs there: no interfaces (Wireshark lists none), and why on stderr.
      process.stderr.write(`nodeplane extcap: ${(err as Error).message}\n`);
      return 0;
    }
    for (const p of ports.ports) {
      if (EXTCAP_PREFIX + p.name === EXTCAP_DROP) continue; // a port named "drop": the drop stream's name wins
      out(`interface {value=${EXTCAP_PREFIX}${sentenceValue(p.name)}}{display=nodeplane port ${sentenceValue(p.name)}}`);
    }
    out(`interface {value=${EXTCAP_DROP}}{display=nodeplane dropped frames (stage and reason as comment)}`);
    return 0;
  }
  const iface = opts.extcapInterface;
  if (iface === undefined) throw new UserError('extcap: give --extcap-interfaces, or --extcap-interface with --extcap-dlts, --extcap-config or --capture');
  if (!iface.startsWith(EXTCAP_PREFIX)) throw new UserError(`extcap: "${iface}" is not a nodeplane interface (they start with ${EXTCAP_PREFIX})`);
  if (opts.extcapDlts) {
    out('dlt {number=1}{name=EN10MB}{display=Ethernet}');
    return 0;
  }
  if (opts.extcapConfig) {
    out(`arg {number=0}{call=--admin}{display=Admin socket}{type=string}{default=${sentenceValue(opts.admin)}}{tooltip=The admin unix socket of the running nodeplane (nodeplane run --admin)}`);
    out(`arg {number=1}{call=--snaplen}{display=Snapshot length}{type=unsigned}{range=1,${MAX_SNAPLEN}}{default=${MAX_SNAPLEN}}{tooltip=Bytes kept of each frame, as tcpdump -s}`);
    out('arg {number=2}{call=--filter}{display=nodeplane filter}{type=string}{tooltip=tcpdump filter syntax, run by nodeplane before frames leave it}');
    return 0;
  }
  if (!opts.capture) {
    if (opts.extcapCaptureFilter !== undefined) return checkFilter(opts.extcapCaptureFilter);
    throw new UserError('extcap: nothing to do (--extcap-dlts, --extcap-config, --extcap-capture-filter or --capture)');
  }
  if (opts.fifo === undefined) throw new UserError('extcap: --capture needs --fifo');
  const snaplen = opts.snaplen === undefined ? MAX_SNAPLEN : Number(opts.snaplen);
  if (!Number.isInteger(snaplen) || snaplen < 1 || snaplen > MAX_SNAPLEN) throw new UserError(`extcap: --snaplen must be a whole number in 1..${MAX_SNAPLEN}`);
  const filters = [opts.filter, opts.extcapCaptureFilter].filter((f): f is string => f !== undefined && f.trim() !== '');
  const filter = filters.length === 2 ? `(${filters[0]}) and (${filters[1]})` : (filters[0] ?? '');
  const q = new URLSearchParams({ snaplen: String(snaplen) });
  if (iface === EXTCAP_DROP) q.set('drops', '1');
  else q.set('port', iface.slice(EXTCAP_PREFIX.length));
  if (filter !== '') q.set('filter', filter);
  return streamToFifo(opts.admin, `/v1/capture?${q}`, opts.fifo);
}

/** Wireshark's check of a capture filter: silence when libpcap compiles it, its message otherwise. */
async function checkFilter(expression: string): Promise<number> {
  if (expression.trim() === '') return 0;
  const { BpfFilter, filtersAvailable } = await import('../capture/bpf-filter.ts');
  if (!filtersAvailable()) return 0; // cannot tell here; the running nodeplane checks it at capture
  try {
    new BpfFilter(expression);
  } catch (err) {
    process.stdout.write(`${(err as Error).message}\n`);
  }
  return 0;
}

/**
 * Copies the stream at `path` on the admin socket into the FIFO Wireshark reads, until the
 * FIFO's reader goes away, SIGTERM/SIGINT, or the stream ends (nodeplane stopped: exit 1).
 */
function streamToFifo(socketPath: string, path: string, fifo: string): Promise<number> {
  return new Promise((resolveExit) => {
    let fd = -1;
    let done = false;
    const finish = (code: number, message?: string): void => {
      if (done) return;
      done = true;
      if (message !== undefined) process.stderr.write(`nodeplane extcap: ${message}\n`);
      req.destroy();
      if (fd >= 0) closeSync(fd);
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolveExit(code);
    };
    const onSignal = (): void => finish(0);
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    const req = request({ socketPath, path }, (res) => {
      if (res.statusCode !== 200) {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => {
          let msg = `status ${res.statusCode}`;
          try {
            msg = (JSON.parse(text) as { error?: string }).error ?? msg;
          } catch {
            // not JSON: the status says it
          }
          finish(1, msg);
        });
        return;
      }
      try {
        // Wireshark holds the FIFO open for reading before it starts us: this does not wait.
        fd = openSync(fifo, 'w');
      } catch (err) {
        finish(1, `cannot open the FIFO ${fifo}: ${(err as Error).message}`);
        return;
      }
      res.on('data', (chunk: Buffer) => {
        if (done) return;
        try {
          for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off);
        } catch (err) {
          // EPIPE: Wireshark stopped reading, the capture is over.
          const code = (err as NodeJS.ErrnoException).code;
          finish(code === 'EPIPE' ? 0 : 1, code === 'EPIPE' ? undefined : `writing the FIFO: ${(err as Error).message}`);
        }
      });
      res.on('end', () => finish(1, `the nodeplane at ${socketPath} ended the capture (stopped?)`));
      res.on('error', () => finish(1, `the stream from ${socketPath} broke off`));
    });
    req.on('error', (err: NodeJS.ErrnoException) => finish(1, `cannot reach a running nodeplane at ${socketPath}: ${err.code ?? err.message}`));
    req.end();
  });
}

/** Wireshark's folders, as `tshark -G folders` prints them (empty when tshark is not there). */
function wiresharkFolders(): Map<string, string> {
  const r = spawnSync('tshark', ['-G', 'folders'], { encoding: 'utf8', timeout: 20_000 });
  const m = new Map<string, string>();
  if (r.status !== 0 || typeof r.stdout !== 'string') return m;
  for (const line of r.stdout.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return m;
}

/** A word the shell takes literally. */
function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The launcher script: this Node, this package's command, the admin socket as default. */
export function launcherScript(admin: string): string {
  const bin = fileURLToPath(new URL('../../bin/nodeplane.cjs', import.meta.url));
  return [
    '#!/bin/sh',
    "# nodeplane's Wireshark extcap, written by `nodeplane extcap install`: lists a running",
    "# nodeplane's ports (through its admin socket) and captures from them live.",
    `exec ${shellQuote(process.execPath)} ${shellQuote(bin)} extcap --admin ${shellQuote(admin)} "$@"`,
    '',
  ].join('\n');
}

export function extcapInstall(opts: { dir?: string; admin: string }): number {
  const folders = wiresharkFolders();
  const personal = folders.get('Personal Extcap path');
  const dir = resolve(opts.dir ?? personal ?? join(homedir(), '.local', 'lib', 'wireshark', 'extcap'));
  const file = join(dir, LAUNCHER_NAME);
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, launcherScript(opts.admin), { mode: 0o755 });
    chmodSync(file, 0o755);
  } catch (err) {
    throw new UserError(`extcap install: cannot write ${file}: ${(err as Error).message}`);
  }
  process.stdout.write(`installed ${file} (admin socket ${opts.admin})\n`);
  const read = [personal, folders.get('Extcap path')].filter((d): d is string => d !== undefined);
  if (read.length > 0 && !read.some((d) => resolve(d) === dir)) {
    process.stdout.write(
      `note: this Wireshark reads extcaps from ${read.join(' and ')} (tshark -G folders): ` +
        `run it with WIRESHARK_EXTCAP_DIR=${dir} (not as root: Wireshark then ignores it), or install with --dir ${read[read.length - 1]}\n`,
    );
  }
  return 0;
}
