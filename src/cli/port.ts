/**
 * `nodeplane port add NAME (--bridge BR | --address CIDR) [--mtu N] [--mac MAC]
 *  [--netns PATH --ifname IF [--ip CIDR] [--gateway IP] [--route CIDR]...] [--owner TEXT]`
 * and `nodeplane port del NAME`: adds a TAP port to a running dataplane, or removes one added
 * so, through its admin socket (`POST /v1/ports`, `DELETE /v1/ports/NAME`; live-ports.ts).
 *
 * With --netns the TAP goes into that network namespace as IF, with the address, up, and a
 * default route through the gateway (the bridge's own address when --gateway is absent and
 * the address is in its subnet): what the CNI bridge plugin does with a veth. Prints one line
 * (or the answer as JSON with --json); exit 0, or 1 with the dataplane's reason.
 */
import { requestJson, sendJson } from '../admin/client.ts';
import type { RuntimePortRemoved } from '../dataplane/runtime-ports.ts';
import type { PortAdded, PortAddRequest } from '../ports/live-ports.ts';
import { UserError } from '../user-error.ts';
import { print } from './stdout.ts';

/** Plugging into a namespace runs `ip` twice: more than a snapshot takes, on a busy node. */
const PORT_ADD_TIMEOUT_MS = 30_000;

export interface PortAddOptions {
  admin: string;
  bridge?: string;
  address?: string;
  mtu?: string;
  mac?: string;
  netns?: string;
  ifname?: string;
  ip?: string;
  gateway?: string;
  route: string[];
  owner?: string;
  json?: boolean;
}

/** The request `port add` sends, from its flags; a UserError for flags that do not go together. */
export function portAddRequest(name: string, o: PortAddOptions): PortAddRequest {
  if ((o.bridge === undefined) === (o.address === undefined)) throw new UserError('port add: give either --bridge or --address');
  let mtu: number | undefined;
  if (o.mtu !== undefined) {
    mtu = Number(o.mtu);
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new UserError(`port add: --mtu ${o.mtu}: expected a whole number in 68..65535`);
  }
  const inNetns = ['ifname', 'ip', 'gateway'] as const;
  if (o.netns === undefined) {
    for (const k of inNetns) if (o[k] !== undefined) throw new UserError(`port add: --${k} needs --netns`);
    if (o.route.length > 0) throw new UserError('port add: --route needs --netns');
  } else if (o.ifname === undefined) {
    throw new UserError('port add: --netns needs --ifname (the interface name in the namespace)');
  }
  const req: PortAddRequest = { name, bridge: o.bridge, address: o.address, mtu, mac: o.mac, owner: o.owner };
  if (o.netns !== undefined) req.netns = { path: o.netns, ifname: o.ifname!, ip: o.ip, gateway: o.gateway, routes: o.route.length > 0 ? o.route : undefined };
  return req;
}

export async function portAdd(name: string, o: PortAddOptions): Promise<number> {
  const r = (await sendJson(o.admin, 'POST', '/v1/ports', portAddRequest(name, o), PORT_ADD_TIMEOUT_MS)) as PortAdded;
  if (o.json) {
    print(`${JSON.stringify(r, null, 2)}\n`);
  } else {
    const where = r.netns === null ? '' : ` in ${r.netns.path} as ${r.netns.ifname}${r.netns.ip === null ? '' : ` ${r.netns.ip}`}${r.netns.gateway === null ? '' : ` via ${r.netns.gateway}`}`;
    print(`port ${r.name} added (number ${r.port + 1}, mtu ${r.mtu}, mac ${r.mac})${where}\n`);
  }
  return 0;
}

export async function portDel(name: string, o: { admin: string; json?: boolean }): Promise<number> {
  const r = (await requestJson(o.admin, 'DELETE', `/v1/ports/${encodeURIComponent(name)}`)) as RuntimePortRemoved;
  if (o.json) {
    print(`${JSON.stringify(r, null, 2)}\n`);
  } else {
    print(
      `port ${r.name} removed; flushed ${r.fdbEntries} fdb ${r.fdbEntries === 1 ? 'entry' : 'entries'}, ${r.neighbours} neighbour${r.neighbours === 1 ? '' : 's'}` +
        ` (${r.queuedFrames} queued frame${r.queuedFrames === 1 ? '' : 's'}), ${r.conntrackEntries} conntrack ${r.conntrackEntries === 1 ? 'entry' : 'entries'}\n`,
    );
  }
  return 0;
}
