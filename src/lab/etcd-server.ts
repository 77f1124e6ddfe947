/**
 * A real etcd (Debian's etcd-server) for the lab (`nodeplane demo --nodes N`) and the cluster
 * tests: one member in a temporary directory, its client and peer URLs unix sockets there,
 * started in a network namespace of its own (`unshare -n`) so it never listens on the
 * machine's network. Nodes reach it through the
 * socket file from any namespace. `stop()` and `start()` again keep the data directory and
 * the socket path, so a test can take etcd away and bring it back; `destroy()` kills it and
 * removes the directory.
 *
 * With `tls`, the client socket speaks TLS (unixs://) with the given server certificate and
 * requires client certificates signed by the CA.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface EtcdTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** Why a real etcd cannot run here, or null. */
export function etcdMissing(): string | null {
  if (spawnSync('sh', ['-c', 'command -v etcd']).status !== 0) return '`etcd` is not installed (Debian package etcd-server)';
  if (spawnSync('unshare', ['-n', 'true']).status !== 0) return '`unshare -n` fails (needs root, for etcd in a network namespace of its own)';
  return null;
}

export class EtcdServer {
  private proc: ChildProcess | null = null;
  private log = '';

  private constructor(
    readonly dir: string,
    private readonly tls: EtcdTls | undefined,
  ) {}

  /** The endpoint for cluster.etcd.endpoints. */
  get endpoint(): string {
    return `${this.tls ? 'unixs' : 'unix'}://${join(this.dir, 'client.sock:1')}`;
  }

  static async start(opts: { tls?: EtcdTls } = {}): Promise<EtcdServer> {
    const server = new EtcdServer(mkdtempSync(join(tmpdir(), 'nodeplane-etcd-')), opts.tls);
    await server.start();
    return server;
  }

  /** Starts (or starts again) the member; resolves once it serves clients. */
  async start(): Promise<void> {
    if (this.proc) throw new Error('etcd is already running');
    // etcd reads unix://NAME:PORT as a socket file NAME:PORT in its working directory.
    const scheme = this.tls ? 'unixs' : 'unix';
    const args = [
      '-n', 'etcd',
      '--name', 'test',
      '--data-dir', join(this.dir, 'data'),
      '--listen-client-urls', `${scheme}://client.sock:1`,
      '--advertise-client-urls', `${scheme}://client.sock:1`,
      '--listen-peer-urls', 'unix://peer.sock:1',
      '--initial-advertise-peer-urls', 'unix://peer.sock:1',
      '--initial-cluster', 'test=unix://peer.sock:1',
      '--log-level', 'info',
      ...(this.tls ? ['--cert-file', this.tls.certFile, '--key-file', this.tls.keyFile, '--trusted-ca-file', this.tls.caFile, '--client-cert-auth'] : []),
    ];
    rmSync(join(this.dir, 'client.sock:1'), { force: true });
    rmSync(join(this.dir, 'peer.sock:1'), { force: true });
    const proc = spawn('unshare', args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    // Never outlive the test process, even if it dies before destroy().
    const killOnExit = (): void => void proc.kill('SIGKILL');
    process.once('exit', killOnExit);
    proc.once('exit', () => process.off('exit', killOnExit));
    this.log = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`etcd did not start in 20 s:\n${this.log}`)), 20_000);
      const onData = (b: Buffer): void => {
        this.log += b.toString();
        if (/ready to serve client requests/.test(this.log) && /serving (insecure )?client requests|serving client traffic/.test(this.log)) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', onData);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`etcd exited with ${code}:\n${this.log}`));
      });
    });
  }

  /** Stops the member (SIGTERM), keeping its data; resolves once it has exited. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p) return;
    this.proc = null;
    if (p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
      setTimeout(() => p.kill('SIGKILL'), 5000).unref();
    });
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A CA, a server certificate for etcd (localhost, 127.0.0.1: gRPC names a unix socket's
 * server "localhost") and a client certificate, made with openssl in `dir`.
 */
export function makeCertificates(dir: string): { server: EtcdTls; client: EtcdTls } {
  const run = (args: string[]): void => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  };
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=nodeplane test CA', '-keyout', 'ca.key', '-out', 'ca.pem']);
  const leaf = (name: string, ext: string): void => {
    run(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`]);
    run(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', `${name}.pem`, '-extfile', ext]);
  };
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  leaf('server', 'server.ext');
  leaf('client', 'client.ext');
  const at = (n: string): EtcdTls => ({ caFile: join(dir, 'ca.pem'), certFile: join(dir, `${n}.pem`), keyFile: join(dir, `${n}.key`) });
  return { server: at('server'), client: at('client') };
}
