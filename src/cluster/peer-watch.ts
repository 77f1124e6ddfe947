/**
 * PeerWatcher: the other nodes' leases, kept current from a watch on `<prefix>/subnets/`, as
 * the peer list of the vxlan device (flanneld's WatchLeases feeding the vxlan backend's
 * handleSubnetEvents).
 *
 * Each vxlan lease of another subnet becomes a peer { vtep: PublicIP, mac: BackendData.VtepMAC,
 * subnet }; a lease of another backend, one without a VtepMAC, and values that do not parse
 * are left out (logged once per key and revision), and so is a lease that claims our own
 * PublicIP or a subnet overlapping ours or an earlier peer's (leases of an older SubnetLen):
 * the dataplane refuses a peer set with such a peer whole. A put adds or updates a peer, a delete —
 * an etcd lease running out deletes its key — removes it; `onPeers` receives the whole list,
 * sorted by subnet, each time it changes.
 *
 * Every key keeps the etcd revision it was last seen at, and an older update never replaces
 * a newer one: so the snapshot listed after a reconnection and the events etcd replays from
 * the last revision seen may arrive in any order and still agree. While etcd cannot be reached
 * the list stays as it was (traffic to known peers goes on); the outage is logged once when it
 * starts and once when it ends, the client reconnecting with backoff meanwhile. A watch that
 * etcd cancels (its start revision compacted away) is replaced by a fresh list and watch.
 */
import type { Etcd3, IWatchResponse, Watcher } from 'etcd3';
import type { VxlanPeerConfig } from '../config/types.ts';
import type { Logger } from '../log.ts';
import { type Cidr, cidrsOverlap, formatCidr, networkOf, parseCidr } from '../wire/ipv4-address.ts';
import { parseLeaseAttrs, parseSubnetKey } from './flannel-layout.ts';
import type { SubnetRegistry } from './subnet-registry.ts';

interface Seen {
  rev: number;
  peer: VxlanPeerConfig | null;
}

const RESYNC_RETRY_MS = 1000;

export class PeerWatcher {
  private readonly seen = new Map<string, Seen>();
  private watcher: Watcher | null = null;
  private last = '[]';
  private outage = false;
  private stopped = false;
  private resyncTimer: NodeJS.Timeout | null = null;
  /** Called when this node's own key is deleted (its lease must be put back at once). */
  onOwnDeleted: () => void = () => {};

  private readonly warned = new Set<string>();

  constructor(
    private readonly client: Etcd3,
    private readonly registry: SubnetRegistry,
    private readonly own: Cidr,
    private readonly ownPublicIP: string,
    private readonly log: Logger,
    private readonly onPeers: (peers: VxlanPeerConfig[]) => void,
  ) {}

  /** The peers as last reported. */
  peers(): VxlanPeerConfig[] {
    return JSON.parse(this.last) as VxlanPeerConfig[];
  }

  /** Lists the leases (reporting the first peer list) and starts watching after them. */
  async start(): Promise<void> {
    const revision = await this.snapshot();
    this.watchFrom(revision + 1);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    const w = this.watcher;
    this.watcher = null;
    if (w) {
      w.removeAllListeners();
      w.on('error', () => {});
      await Promise.race([w.cancel().catch(() => undefined), new Promise((r) => setTimeout(r, 200))]);
    }
  }

  /** Lists every lease and applies the list as of its revision; returns that revision. */
  private async snapshot(): Promise<number> {
    const { entries, revision } = await this.registry.list();
    const rev = Number(revision);
    const present = new Set<string>();
    for (const e of entries) {
      present.add(e.key);
      this.apply(e.key, Number(e.modRevision), e.value);
    }
    for (const [key, s] of this.seen) if (!present.has(key) && s.rev < rev) this.apply(key, rev, null);
    this.report();
    return rev;
  }

  private watchFrom(revision: number): void {
    if (this.stopped) return;
    const w = this.client.watch().prefix(this.registry.subnetsPrefix).startRevision(String(revision)).watcher();
    this.watcher = w;
    w.on('data', (res: IWatchResponse) => {
      for (const ev of res.events) {
        const key = ev.kv.key.toString();
        const rev = Number(ev.kv.mod_revision);
        this.apply(key, rev, ev.type === 'Put' ? ev.kv.value.toString() : null);
      }
      this.report();
    });
    w.on('disconnected', (err: Error) => {
      if (this.outage || this.stopped) return;
      this.outage = true;
      this.log.warn({ err: err.message, peers: this.seenPeers() }, 'etcd unreachable: keeping the known peers, reconnecting');
    });
    w.on('connected', () => {
      if (!this.outage || this.stopped) return;
      this.outage = false;
      this.log.info('etcd reachable again; watching the leases');
      this.resync(false);
    });
    w.on('error', (err: Error) => {
      if (this.stopped) return;
      this.log.warn({ err: err.message }, 'the lease watch was cancelled; listing the leases again');
      w.removeAllListeners();
      w.on('error', () => {});
      void w.cancel().catch(() => undefined);
      this.watcher = null;
      this.resync(true);
    });
  }

  /** Lists again (after a reconnection, or to replace a cancelled watch), retrying until it works. */
  private resync(rewatch: boolean): void {
    if (this.stopped) return;
    this.snapshot().then(
      (rev) => {
        if (rewatch) this.watchFrom(rev + 1);
      },
      () => {
        if (this.stopped) return;
        this.resyncTimer = setTimeout(() => this.resync(rewatch), RESYNC_RETRY_MS);
      },
    );
  }

  private apply(key: string, rev: number, value: string | null): void {
    const old = this.seen.get(key);
    if (old && old.rev >= rev) return;
    const subnet = parseSubnetKey(key);
    if (!subnet || networkOf(subnet.addr, subnet.prefixLen) !== subnet.addr) {
      this.seen.set(key, { rev, peer: null });
      return;
    }
    if (subnet.addr === this.own.addr && subnet.prefixLen === this.own.prefixLen) {
      this.seen.set(key, { rev, peer: null });
      if (value === null) this.onOwnDeleted();
      return;
    }
    this.seen.set(key, { rev, peer: value === null ? null : this.peerOf(key, subnet, value) });
  }

  private peerOf(key: string, subnet: Cidr, value: string): VxlanPeerConfig | null {
    let why: string;
    try {
      const a = parseLeaseAttrs(value);
      if (a.backendType === 'vxlan' && a.vtepMac !== undefined) return { vtep: a.publicIP, mac: a.vtepMac, subnet: formatCidr(subnet) };
      why = a.backendType !== 'vxlan' ? `backend ${a.backendType || '(none)'}, not vxlan` : 'no BackendData.VtepMAC';
    } catch (err) {
      why = (err as Error).message;
    }
    this.log.warn({ key, why }, 'ignoring a lease that is not a vxlan peer');
    return null;
  }

  private seenPeers(): number {
    let n = 0;
    for (const s of this.seen.values()) if (s.peer) n++;
    return n;
  }

  private report(): void {
    const candidates = [...this.seen.values()].flatMap((s) => (s.peer ? [s.peer] : []));
    candidates.sort((a, b) => subnetOrder(a.subnet) - subnetOrder(b.subnet));
    const peers: VxlanPeerConfig[] = [];
    const taken: Cidr[] = [this.own];
    for (const p of candidates) {
      const subnet = parseCidr(p.subnet);
      const why = p.vtep === this.ownPublicIP ? 'its PublicIP is ours' : taken.some((t) => cidrsOverlap(t, subnet)) ? 'its subnet overlaps ours or another peer\'s' : null;
      if (why === null) {
        peers.push(p);
        taken.push(subnet);
      } else if (!this.warned.has(`${p.subnet} ${p.vtep} ${why}`)) {
        this.warned.add(`${p.subnet} ${p.vtep} ${why}`);
        this.log.warn({ subnet: p.subnet, vtep: p.vtep, why }, 'ignoring a lease that cannot be a peer');
      }
    }
    const text = JSON.stringify(peers);
    if (text === this.last) return;
    this.last = text;
    this.onPeers(peers);
  }
}

function subnetOrder(subnet: string): number {
  const c = parseCidr(subnet);
  return (c.addr >>> 0) * 64 + c.prefixLen;
}
