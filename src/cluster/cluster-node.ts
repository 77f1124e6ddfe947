/**
 * ClusterNode: a node of cluster mode from start to stop, in flanneld's order:
 *
 *   join    connect to etcd; read <prefix>/config (writing it from cluster.network and
 *           subnetLen only if it is absent — flanneld expects an administrator to have
 *           written it); check it agrees with this node's config; lease a subnet
 *           (subnet-lease.ts); write subnet.env; list the other leases as peers.
 *   then    the caller builds the dataplane from `dataplaneConfig()` — the addresses are the
 *           lease's, the peers those listed — and `attach`es it: from then on the watch
 *           replaces the vxlan device's peers live (vxlan-peers.ts) and the lease is renewed.
 *   close   stops the watch and the renewals and closes the client. The lease is left in
 *           etcd, as flanneld leaves it: a restart reuses it; a node that stays away is
 *           removed by the other nodes when it expires.
 *
 * An etcd that cannot be reached at start is waited for (retried with backoff, logged once),
 * as flanneld waits; a network config that disagrees with this node's, or a full network, is
 * an error that stops the node.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Etcd3 } from 'etcd3';
import type { Config, VxlanPeerConfig } from '../config/types.ts';
import type { Dataplane } from '../dataplane/dataplane.ts';
import type { ReloadResult } from '../dataplane/reload.ts';
import type { Logger } from '../log.ts';
import { UserError } from '../user-error.ts';
import { type Cidr, formatCidr, networkOf, parseCidr } from '../wire/ipv4-address.ts';
import { createEtcdClient } from './etcd-client.ts';
import { leaseText, LINUX_VXLAN_PORT, type NetworkConfig, networkConfigText, parseNetworkConfig, subnetEnvText } from './flannel-layout.ts';
import { leasedConfig, vtepMacOf } from './lease-config.ts';
import { PeerWatcher } from './peer-watch.ts';
import { acquireLease, ClusterError, LeaseKeeper, type SubnetLease } from './subnet-lease.ts';
import { SubnetRegistry } from './subnet-registry.ts';
import { peerConfig, setVxlanPeers } from './vxlan-peers.ts';

const JOIN_RETRY_FIRST_MS = 500;
const JOIN_RETRY_MAX_MS = 10_000;

export interface JoinOptions {
  /** Subnet choice among the free ones (tests make it deterministic). */
  random?: () => number;
  /** Aborts a join still waiting for etcd. */
  signal?: AbortSignal;
}

/** Reads FLANNEL_SUBNET of an existing subnet.env: the subnet this node had before, if any. */
export function previousSubnet(path: string): Cidr | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const m = /^FLANNEL_SUBNET=(\S+)$/m.exec(text);
  if (!m) return undefined;
  try {
    const c = parseCidr(m[1]!);
    return { addr: networkOf(c.addr, c.prefixLen), prefixLen: c.prefixLen };
  } catch {
    return undefined;
  }
}

/** Writes a file whole or not at all (a temporary file renamed over it, as flanneld's renameio). */
function writeAtomically(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, path);
}

/** Whether etcd's network config and this node's agree; the differences otherwise. */
function disagreements(net: NetworkConfig, config: Config): string[] {
  const cl = config.cluster!;
  const dev = config.vxlan.find((v) => v.name === cl.vxlan)!;
  const out: string[] = [];
  if (formatCidr(net.network) !== cl.network) out.push(`Network is ${formatCidr(net.network)}, cluster.network ${cl.network}`);
  if (net.subnetLen !== cl.subnetLen) out.push(`SubnetLen is ${net.subnetLen}, cluster.subnetLen ${cl.subnetLen}`);
  if (net.backendType !== 'vxlan') out.push(`Backend.Type is ${net.backendType}, not vxlan`);
  if (net.vni !== dev.vni) out.push(`Backend.VNI is ${net.vni}, ${dev.name}'s vni ${dev.vni}`);
  const port = net.port === 0 ? LINUX_VXLAN_PORT : net.port;
  if (port !== dev.port) out.push(`Backend.Port is ${port}, ${dev.name}'s port ${dev.port}`);
  return out;
}

async function networkConfig(registry: SubnetRegistry, config: Config, log: Logger): Promise<NetworkConfig> {
  const cl = config.cluster!;
  const key = `${registry.prefix}/config`;
  let text = await registry.networkConfig();
  if (text === undefined) {
    const dev = config.vxlan.find((v) => v.name === cl.vxlan)!;
    const ours = networkConfigText(parseCidr(cl.network), cl.subnetLen, dev.vni, dev.port);
    if (await registry.createNetworkConfig(ours)) log.info({ key, value: ours }, 'no network config in etcd; wrote one from cluster.network');
    text = (await registry.networkConfig()) ?? ours;
  }
  let net: NetworkConfig;
  try {
    net = parseNetworkConfig(text);
  } catch (err) {
    throw new ClusterError(`${key}: ${(err as Error).message}`);
  }
  const diff = disagreements(net, config);
  if (diff.length > 0) throw new ClusterError(`${key} disagrees with this node's config: ${diff.join('; ')}`);
  return net;
}

export class ClusterNode {
  private dp: Dataplane | null = null;
  private keeper: LeaseKeeper;
  private lostHandler: ((why: string) => void) | null = null;
  /** Why the lease was lost, if it was before anyone asked to be told. */
  private lostWhy: string | null = null;

  private constructor(
    private readonly client: Etcd3,
    readonly lease: SubnetLease,
    /** The leased config without peers (the file's, completed; replaced on reload). */
    private base: Config,
    private readonly watcher: PeerWatcher,
    registry: SubnetRegistry,
    private readonly log: Logger,
  ) {
    this.keeper = new LeaseKeeper(registry, lease, log, (why) => {
      if (this.lostHandler) this.lostHandler(why);
      else this.lostWhy = why;
    });
    watcher.onOwnDeleted = () => this.keeper.renewNow();
  }

  static async join(config: Config, log: Logger, opts: JoinOptions = {}): Promise<ClusterNode> {
    const cl = config.cluster;
    if (!cl) throw new Error('ClusterNode.join needs a config with a cluster section');
    const client = createEtcdClient(cl.etcd);
    const registry = new SubnetRegistry(client, cl.etcd.prefix);
    let delay = JOIN_RETRY_FIRST_MS;
    let waiting = false;
    for (;;) {
      let lease: SubnetLease | undefined;
      try {
        const network = await networkConfig(registry, config, log);
        const vni = config.vxlan.find((v) => v.name === cl.vxlan)!.vni;
        lease = await acquireLease({
          registry,
          network,
          publicIP: cl.publicIP,
          ttl: cl.leaseTTLSeconds,
          valueFor: (sn) => leaseText(cl.publicIP, vni, vtepMacOf(config, sn)),
          previous: previousSubnet(cl.subnetFile),
          random: opts.random,
          log,
        });
        const base = leasedConfig(config, lease.subnet);
        const mtu = base.vxlan.find((v) => v.name === cl.vxlan)!.mtu;
        writeAtomically(cl.subnetFile, subnetEnvText(network.network, lease.subnet, mtu, config.nat !== undefined));
        let node: ClusterNode | null = null;
        const watcher = new PeerWatcher(client, registry, lease.subnet, cl.publicIP, log, (peers) => node?.peersChanged(peers));
        await watcher.start();
        node = new ClusterNode(client, lease, base, watcher, registry, log);
        node.keeper.start();
        log.info({ subnet: formatCidr(lease.subnet), reused: lease.reused, peers: watcher.peers().length, subnetFile: cl.subnetFile }, 'joined the cluster');
        return node;
      } catch (err) {
        if (err instanceof UserError || opts.signal?.aborted) {
          client.close();
          throw opts.signal?.aborted ? new UserError('stopped while waiting for etcd') : err;
        }
        if (!waiting) log.warn({ err: (err as Error).message, endpoints: cl.etcd.endpoints }, 'cannot join the cluster through etcd yet; retrying');
        waiting = true;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          opts.signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
        });
        delay = Math.min(delay * 2, JOIN_RETRY_MAX_MS);
      }
    }
  }

  /** The peers the watch last reported (the other nodes' vxlan leases). */
  peers(): VxlanPeerConfig[] {
    return this.watcher.peers();
  }

  /** The config to build the dataplane from: the lease's addresses and the peers known now. */
  dataplaneConfig(): Config {
    return peerConfig(this.base, this.base.cluster!.vxlan, this.peers());
  }

  /** From now on, peer changes go to `dp`. */
  attach(dp: Dataplane): void {
    this.dp = dp;
    this.peersChanged(this.peers());
  }

  /**
   * Reloads `dp` with the file's config read again (SIGHUP), completed with the same lease and
   * the current peers; the cluster section itself needs a restart to change.
   */
  reload(dp: Dataplane, fileConfig: Config): ReloadResult {
    if (JSON.stringify(fileConfig.cluster) !== JSON.stringify(this.base.cluster)) {
      return { ok: false, errors: ['cluster: changed; needs a restart of nodeplane to change (the lease and the etcd connection hang on it)'] };
    }
    const base = leasedConfig(fileConfig, this.lease.subnet);
    const r = dp.reload(peerConfig(base, base.cluster!.vxlan, this.peers()));
    if (r.ok) this.base = base;
    return r;
  }

  /** Called once if the lease is lost for good (another node took the subnet), at once if it already was. */
  onLost(handler: (why: string) => void): void {
    this.lostHandler = handler;
    if (this.lostWhy !== null) handler(this.lostWhy);
  }

  private peersChanged(peers: VxlanPeerConfig[]): void {
    if (!this.dp) return;
    const r = setVxlanPeers(this.dp, this.base.cluster!.vxlan, peers);
    if (r.ok) this.log.info({ peers: peers.map((p) => `${p.subnet} via ${p.vtep}`) }, 'vxlan peers updated');
    else this.log.error({ errors: r.errors }, 'vxlan peers could not be applied');
  }

  async close(): Promise<void> {
    this.keeper.stop();
    await this.watcher.stop();
    this.client.close();
  }
}
