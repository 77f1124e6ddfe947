/**
 * The probes of the differential Services test (differential-services.test.ts), run alike on
 * both twins: each pod's server (TCP and UDP, answering with the pod's name and the source it
 * saw), the client that asks a Service who answers, raw TCP with SYN and FIN, two datagrams
 * back to back, a UDP flow that keeps sending until answered, and conntrack rows in the
 * shape the test compares.
 */
import type { ConntrackRow } from './conntrack-listing.ts';
import { PODS, type Twin } from './kernel-twin.ts';
import { lineReader, withoutCounters } from './twin-probes.ts';

/** The port every pod serves TCP on, and UDP. */
export const TCP_PORT = 8080;
export const UDP_PORT = 5353;

/** A twin's conntrack rows that `pick` selects, without timeouts and counters, sorted by protocol. */
export async function flows(t: Twin, pick: (r: ConntrackRow) => boolean): Promise<Array<Omit<ConntrackRow, 'packets' | 'bytes' | 'timeout'>>> {
  return (await t.conntrack())
    .filter(pick)
    .map(withoutCounters)
    .map(({ timeout: _t, ...rest }) => rest)
    .sort((a, b) => a.proto.localeCompare(b.proto));
}

/** Starts POD_SERVER in every pod of the twin; resolves once each one listens. */
export async function startPodServers(t: Twin): Promise<void> {
  await Promise.all(
    PODS.map(async (p) => {
      const child = t.pod(p.name).spawn('python3', ['-u', '-c', POD_SERVER, p.name, String(TCP_PORT), String(UDP_PORT)], { stdio: ['ignore', 'pipe', 'pipe'] });
      const first = await lineReader(child, `the server in ${p.name} of the ${t.kind} twin`).next(15_000);
      if (first !== 'ready') throw new Error(`the server in ${p.name} of the ${t.kind} twin said "${first}"`);
    }),
  );
}

/**
 * Asks `dst:dport` from a pod (or 'ext', the external host) who answers: one line per
 * request, "<pod> saw <source>:<port>, reply from <address>:<port>", or ECONNREFUSED /
 * timeout. The port the server saw is written as a number when it is `sport`, else "another
 * port"; without `sport` as "same port" (the client's own) or "another port"; and for a
 * `masqueraded` flow as "masquerade port" (how the port is chosen is probe 20's).
 */
export async function ask(t: Twin, from: string, proto: 'tcp' | 'udp', dst: string, dport: number, opts: { sport?: number; count?: number; connected?: boolean; masqueraded?: boolean } = {}): Promise<string[]> {
  const ns = from === 'ext' ? t.external : t.pod(from);
  const args = [proto, dst, String(dport), String(opts.sport ?? 0), String(opts.count ?? 1), opts.connected ? '1' : '0'];
  const r = await ns.run('python3', ['-c', ASK, ...args], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`the ${proto} probe from ${from} to ${dst}:${dport} in the ${t.kind} twin failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout
    .trim()
    .split('\n')
    .map((line) => {
      const m = /^(\w+) saw ([\d.]+):(\d+) local (\d+), reply from (\S+)$/.exec(line);
      if (!m) return line;
      const port = opts.masqueraded ? 'masquerade port' : opts.sport === undefined ? (m[3] === m[4] ? 'same port' : 'another port') : m[3] === m[4] ? m[3] : 'another port';
      return `${m[1]} saw ${m[2]}:${port}, reply from ${m[5]}`;
    });
}

/**
 * A pod's server: TCP on argv[2] answers each connection with "<name> <peer ip>:<port>" and
 * closes; UDP on argv[3] answers each datagram the same way. Exits by itself after 300 s.
 */
const POD_SERVER = `
import os, socket, sys, threading
threading.Timer(300, os._exit, [0]).start()
name = sys.argv[1]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(('0.0.0.0', int(sys.argv[3])))
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('0.0.0.0', int(sys.argv[2])))
l.listen(64)
def udp():
    while True:
        d, peer = u.recvfrom(2048)
        u.sendto(('%s %s:%d' % (name, peer[0], peer[1])).encode(), peer)
def tcp():
    while True:
        c, peer = l.accept()
        try:
            c.sendall(('%s %s:%d' % (name, peer[0], peer[1])).encode())
        except OSError:
            pass
        c.close()
threading.Thread(target=udp, daemon=True).start()
threading.Thread(target=tcp, daemon=True).start()
print('ready', flush=True)
threading.Event().wait()
`;

/**
 * argv: proto dst dport sport count connected. For each of `count` requests: TCP connects
 * (from sport when not 0), reads the server's line; UDP sends one datagram, on a connected
 * socket when asked (to see ICMP errors as ECONNREFUSED), else unconnected so that the
 * reply's real source shows. Prints "<line> local <our port>, reply from <addr>:<port>",
 * ECONNREFUSED or timeout.
 */
const ASK = `
import socket, sys
proto, dst, dport, sport, count, connected = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == '1'
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(2)
    if sport: s.bind(('0.0.0.0', sport))
    try:
        if proto == 'tcp':
            s.connect((dst, dport))
            data, peer = b'', s.getpeername()
            while True:
                d = s.recv(2048)
                if not d: break
                data += d
        elif connected:
            s.connect((dst, dport))
            s.send(b'who')
            data, peer = s.recv(2048), s.getpeername()
        else:
            s.sendto(b'who', (dst, dport))
            data, peer = s.recvfrom(2048)
        name, seen = data.decode().split(' ')
        print('%s saw %s local %d, reply from %s:%d' % (name, seen, s.getsockname()[1], peer[0], peer[1]))
    except ConnectionRefusedError:
        print('ECONNREFUSED')
    except socket.timeout:
        print('timeout')
    s.close()
`;

/**
 * argv: dst dport sport. Sends two datagrams back to back from one new socket, then prints
 * each answer as "<pod> saw <source> from <reply address>:<port>" (at most 2 s of waiting).
 */
export const UDP_PAIR = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[3])))
s.settimeout(2)
s.sendto(b'A?', (sys.argv[1], int(sys.argv[2])))
s.sendto(b'AAAA?', (sys.argv[1], int(sys.argv[2])))
for i in range(2):
    try:
        d, a = s.recvfrom(2048)
        print('%s from %s:%d' % (d.decode().replace(' ', ' saw ', 1), a[0], a[1]))
    except socket.timeout:
        break
`;

/**
 * argv: dst dport sport seconds. From one unconnected socket bound to sport, sends a datagram
 * every 200 ms (saying so after the first) until the first answer, which it prints as "<pod>
 * saw <source> from <reply address>:<port>", or for at most argv[4] seconds (then timeout).
 */
export const UDP_UNTIL_ANSWERED = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[3])))
s.settimeout(0.2)
end = time.time() + float(sys.argv[4])
first = True
while time.time() < end:
    s.sendto(b'who', (sys.argv[1], int(sys.argv[2])))
    if first:
        print('sending, no answer yet', flush=True)
        first = False
    try:
        d, a = s.recvfrom(2048)
        print('%s from %s:%d' % (d.decode().replace(' ', ' saw ', 1), a[0], a[1]), flush=True)
        sys.exit(0)
    except (socket.timeout, ConnectionRefusedError):
        pass
print('timeout', flush=True)
`;

/**
 * argv: src dst dport sport. Sends three TCP segments with SYN and FIN both set (a flag
 * combination conntrack calls INVALID) from a raw socket, checksum computed here.
 */
export const SYN_FIN = `
import socket, struct, sys
src, dst, dport, sport = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def csum(b):
    if len(b) % 2: b += b'\\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    t += t >> 16
    return ~t & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
for seq in (1000, 2000, 3000):
    h = struct.pack('!HHIIBBHHH', sport, dport, seq, 0, 5 << 4, 0x03, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, 6, len(h))
    h = h[:16] + struct.pack('!H', csum(pseudo + h)) + h[18:]
    s.sendto(h, (dst, 0))
`;
