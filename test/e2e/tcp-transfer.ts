/**
 * A bulk TCP transfer as a behaviour check for the end-to-end tests: one connection carries
 * a fixed number of random bytes (enough for TCP's 64 KiB super-frames with offload), and
 * the receiver reports how many bytes arrived, their SHA-256 and the address it saw the
 * sender connect from; the sender reads that report back over the same connection. Bounded
 * in bytes and in time. How fast it went is left to the benchmarks
 * (`npm run bench -- e2e-paths`). (iperf3 does not do here: its server stops counting at the
 * client's end message, before the last data in its socket is read.)
 */
import { expect } from 'vitest';
import type { Netns } from '../../src/lab/netns.ts';

/** Waits until something in `ns` listens on TCP `port`. */
export async function listening(ns: Netns, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await ns.run('ss', ['-Hltn', `sport = :${port}`]);
    if (r.stdout.trim() !== '') return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`nothing listens on port ${port} in ${ns.name} after 10 s`);
}

export interface Transfer {
  /** Bytes the sender wrote, and their SHA-256. */
  sent: number;
  sentSha256: string;
  /** Bytes the receiver read until the sender's FIN, and their SHA-256. */
  received: number;
  receivedSha256: string;
  /** The sender's address as the receiver saw it. */
  peer: string;
  /** The receiver's report as the sender read it back: "BYTES SHA256". */
  reply: string;
}

/** The receiver: argv ADDR PORT SECONDS; one connection, read to EOF, report, exit. */
const SINK = `
import hashlib, json, os, socket, sys, threading
threading.Timer(float(sys.argv[3]), os._exit, [1]).start()
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], int(sys.argv[2])))
l.listen(1)
c, addr = l.accept()
h = hashlib.sha256()
n = 0
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    n += len(b)
    h.update(b)
c.sendall(('%d %s\\n' % (n, h.hexdigest())).encode())
c.close()
print(json.dumps({'bytes': n, 'sha256': h.hexdigest(), 'peer': addr[0]}), flush=True)
os._exit(0)
`;

/** The sender: argv ADDR PORT BYTES; random bytes in 1 MiB writes, FIN, the receiver's report. */
const SOURCE = `
import hashlib, json, os, socket, sys
n = int(sys.argv[3])
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
h = hashlib.sha256()
sent = 0
while sent < n:
    b = os.urandom(min(1 << 20, n - sent))
    s.sendall(b)
    h.update(b)
    sent += len(b)
s.shutdown(socket.SHUT_WR)
reply = s.makefile('rb').readline().decode().strip()
print(json.dumps({'bytes': sent, 'sha256': h.hexdigest(), 'reply': reply}), flush=True)
`;

/**
 * Sends `bytes` over one TCP connection from `client` to `connect`:`port`, received in
 * `server` on `bind` (a ClusterIP's client connects to an address the server does not
 * have). Fails when the sender fails or does not finish within `timeoutMs`.
 */
export async function tcpTransfer(client: Netns, server: Netns, bind: string, connect: string, bytes: number, port = 5201, timeoutMs = 30_000): Promise<Transfer> {
  const sink = server.spawn('python3', ['-u', '-c', SINK, bind, String(port), String(timeoutMs / 1000 + 15)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  sink.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  sink.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const sinkDone = new Promise<void>((resolve) => sink.on('close', () => resolve()));
  try {
    await listening(server, port);
    const r = await client.run('python3', ['-c', SOURCE, connect, String(port), String(bytes)], { timeoutMs });
    if (r.code !== 0) throw new Error(`sending ${bytes} bytes from ${client.name} to ${connect}:${port} failed (${r.code ?? `killed at ${timeoutMs / 1000} s`}): ${r.stdout}${r.stderr}`);
    const s = JSON.parse(r.stdout) as { bytes: number; sha256: string; reply: string };
    await sinkDone;
    let got: { bytes: number; sha256: string; peer: string };
    try {
      got = JSON.parse(out) as typeof got;
    } catch (e) {
      throw new Error(`the receiver's report in ${server.name} is unreadable (${(e as Error).message}): ${out}${err}`);
    }
    return { sent: s.bytes, sentSha256: s.sha256, received: got.bytes, receivedSha256: got.sha256, peer: got.peer, reply: s.reply };
  } finally {
    sink.kill('SIGKILL');
  }
}

/**
 * The transfer arrived whole: `bytes` sent and received, the same SHA-256 on both sides, the
 * receiver's report read back by the sender (so the way back works too), and the sender seen
 * from `peer` (the node's address after masquerade, the pod's own otherwise).
 */
export function expectIntact(t: Transfer, bytes: number, peer: string): void {
  expect(t.sent).toBe(bytes);
  expect(t.received).toBe(bytes);
  expect(t.receivedSha256).toBe(t.sentSha256);
  expect(t.reply).toBe(`${bytes} ${t.sentSha256}`);
  expect(t.peer).toBe(peer);
}
