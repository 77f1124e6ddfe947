/**
 * Helpers of the conntrack admin tests: a dataplane whose config asks for NAT (so it has a
 * conntrack table), filled through the table's API; its admin server on a socket in a
 * temporary directory; and a reader that collects a streamed answer's lines.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { streamLines } from '../../src/admin/client.ts';
import { startAdminServer, type AdminServer } from '../../src/admin/server.ts';
import { parseConfig } from '../../src/config/load.ts';
import { VirtualClock } from '../../src/core/clock.ts';
import { Dataplane } from '../../src/dataplane/dataplane.ts';
import type { Conntrack } from '../../src/tables/conntrack.ts';
import { parseIpv4 } from '../../src/wire/ipv4-address.ts';

export const T0 = 1_700_000_000_000_000;

/** An address as the table takes it (int32). */
export function ip(s: string): number {
  return parseIpv4(s) | 0;
}

export const POD_A = ip('10.244.1.2');
export const POD_B = ip('10.244.1.3');
export const SERVER = ip('203.0.113.7');
export const NODE = ip('192.168.50.11');
export const TCP = 6;
export const UDP = 17;
export const ICMP = 1;

export interface NatNode {
  dp: Dataplane;
  ct: Conntrack;
  clock: VirtualClock;
}

/** A node with a bridge of pods, an uplink and `nat:` (so conntrack is on), its clock at T0. */
export function natNode(max = 4096, extra = ''): NatNode {
  const clock = new VirtualClock();
  clock.set(T0);
  const config = parseConfig(
    [
      'node: { name: n }',
      'bridges: [{ name: cni0, address: 10.244.1.1/24, mac: 0a:58:0a:f4:01:01 }]',
      'ports: [{ name: pa, bridge: cni0 }, { name: up, address: 192.168.50.11/24, mac: 02:00:00:00:50:11 }]',
      'nat: { clusterCIDR: 10.244.0.0/16 }',
      `conntrack: { max: ${max} }`,
      extra,
    ].join('\n'),
    'test',
  );
  const dp = new Dataplane(config, { clock });
  dp.ctx.ports.names.forEach((_, p) => dp.setDriver(p, { transmit: (_pool, _slots, n) => n }));
  dp.run();
  return { dp, ct: dp.ctx.conntrack!, clock };
}

export interface Served {
  sock: string;
  server: AdminServer;
  close(): Promise<void>;
}

export async function serve(dp: Dataplane): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'nodeplane-ct-'));
  const sock = join(dir, 'admin.sock');
  const server = await startAdminServer(dp, sock);
  return {
    sock,
    server,
    close: async () => {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every line of a streamed answer (empty lines dropped). */
export async function readLines(sock: string, path: string, method = 'GET'): Promise<string[]> {
  const out: string[] = [];
  await streamLines(sock, path, { onLines: (ls) => void out.push(...ls.filter((l) => l !== '')) }, method);
  return out;
}

/** A streamed answer's lines parsed as JSON. */
export async function readObjects<T = Record<string, unknown>>(sock: string, path: string): Promise<T[]> {
  return (await readLines(sock, path)).map((l) => JSON.parse(l) as T);
}
