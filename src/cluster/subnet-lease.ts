/**
 * This node's subnet lease: taken as flanneld's LocalManager takes it, then kept alive.
 *
 * acquireLease, up to 10 tries (flannel's raceRetries) against nodes racing for the same keys:
 *   1. list the leases;
 *   2. one whose PublicIP is ours and that still fits the network config is reused (put
 *      again under a fresh etcd lease, if nobody changed it since the list); one that no
 *      longer fits is deleted;
 *   3. else the subnet of the previous run (FLANNEL_SUBNET of subnet.env, as flanneld reads
 *      its --subnet-file) if it is free and fits;
 *   4. else one of the first 100 free subnets at random;
 *   and create its key only if it does not exist. A lost race starts again at 1.
 *
 * LeaseKeeper renews the lease before it runs out. flanneld renews at expiry minus its
 * --subnet-lease-renew-margin (60 minutes) and retries a failed renewal every minute; with
 * the short TTLs of tests an hour would exceed the TTL, so the margin here is
 * min(1 hour, TTL/2) and a failed renewal is retried after min(1 minute, margin/2): with
 * flannel's TTL of 86400 s that is flanneld's schedule exactly. If the key vanished (it
 * expired while this node could not reach etcd) it is created again; if another node took
 * the subnet meanwhile the lease is lost: `onLost` is called and the node must stop, as
 * flanneld exits when its lease is revoked.
 */
import type { Logger } from '../log.ts';
import { UserError } from '../user-error.ts';
import { type Cidr, formatCidr } from '../wire/ipv4-address.ts';
import { type NetworkConfig, parseLeaseAttrs, pickSubnet, subnetFits } from './flannel-layout.ts';
import type { Held, SubnetEntry, SubnetRegistry } from './subnet-registry.ts';

/** A cluster-mode failure that stops the node (printed as it is, no stack). */
export class ClusterError extends UserError {
  override name = 'ClusterError';
}

const RACE_RETRIES = 10;
const FLANNEL_RENEW_MARGIN_S = 3600;
const FLANNEL_RENEW_RETRY_S = 60;

export interface SubnetLease {
  subnet: Cidr;
  /** The value of our key (flannel's LeaseAttrs JSON). */
  value: string;
  held: Held;
  /** When the etcd lease runs out unless renewed (ms since the epoch, by our clock). */
  expiresAt: number;
  /** Whether a lease this node held before (same PublicIP) was reused. */
  reused: boolean;
}

export interface AcquireOptions {
  registry: SubnetRegistry;
  network: NetworkConfig;
  publicIP: string;
  ttl: number;
  /** The lease value for a candidate subnet (the VTEP MAC may depend on it). */
  valueFor: (subnet: Cidr) => string;
  previous?: Cidr;
  random?: () => number;
  log: Logger;
}

function ownLease(entries: SubnetEntry[], publicIP: string): SubnetEntry | undefined {
  return entries.find((e) => {
    if (!e.subnet) return false;
    try {
      return parseLeaseAttrs(e.value).publicIP === publicIP;
    } catch {
      return false;
    }
  });
}

function leased(sn: Cidr, held: Held, value: string, reused: boolean): SubnetLease {
  return { subnet: sn, value, held, expiresAt: Date.now() + held.ttl * 1000, reused };
}

export async function acquireLease(o: AcquireOptions): Promise<SubnetLease> {
  const { registry, network, log } = o;
  for (let attempt = 0; attempt < RACE_RETRIES; attempt++) {
    const { entries } = await registry.list();
    const mine = ownLease(entries, o.publicIP);
    if (mine) {
      const sn = mine.subnet!;
      if (subnetFits(network, sn)) {
        const value = o.valueFor(sn);
        const held = await registry.replace(sn, value, o.ttl, mine.modRevision);
        if (held) {
          log.info({ subnet: formatCidr(sn), publicIP: o.publicIP }, 'reusing the lease held for this PublicIP');
          return leased(sn, held, value, true);
        }
        continue; // changed under us: list again
      }
      log.info({ subnet: formatCidr(sn) }, 'the lease held for this PublicIP does not fit the network config; deleting it');
      await registry.remove(sn, mine.modRevision);
      continue;
    }
    const taken = entries.flatMap((e) => (e.subnet ? [e.subnet] : []));
    let sn: Cidr | undefined;
    const prev = o.previous;
    if (prev && subnetFits(network, prev) && !taken.some((t) => t.addr === prev.addr && t.prefixLen === prev.prefixLen)) sn = prev;
    sn ??= pickSubnet(network, taken, o.random);
    if (!sn) throw new ClusterError(`no free subnet of /${network.subnetLen} left in the cluster network (${entries.length} leases)`);
    const value = o.valueFor(sn);
    const held = await registry.create(sn, value, o.ttl);
    if (held) {
      log.info({ subnet: formatCidr(sn), publicIP: o.publicIP, ttl: held.ttl }, 'leased a subnet');
      return leased(sn, held, value, false);
    }
    log.debug({ subnet: formatCidr(sn) }, 'another node took the subnet first; trying again');
  }
  throw new ClusterError(`could not lease a subnet in ${RACE_RETRIES} tries: other nodes kept taking the same ones`);
}

/** Seconds before expiry that renewal happens, and between failed renewals (see header). */
export function renewMarginS(ttl: number): number {
  return Math.min(FLANNEL_RENEW_MARGIN_S, ttl / 2);
}
export function renewRetryS(ttl: number): number {
  return Math.min(FLANNEL_RENEW_RETRY_S, renewMarginS(ttl) / 2);
}

export class LeaseKeeper {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private renewing = false;
  private failing = false;

  constructor(
    private readonly registry: SubnetRegistry,
    readonly lease: SubnetLease,
    private readonly log: Logger,
    private readonly onLost: (why: string) => void,
  ) {}

  start(): void {
    this.schedule(this.lease.expiresAt - renewMarginS(this.lease.held.ttl) * 1000 - Date.now());
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Renews now (the watch saw our key deleted, or a test asks). */
  renewNow(): void {
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.renew(), Math.max(0, ms));
  }

  private async renew(): Promise<void> {
    if (this.renewing || this.stopped) return;
    this.renewing = true;
    const l = this.lease;
    const ttl = l.held.ttl;
    try {
      const r = await this.registry.renew(l.subnet, l.value, ttl, l.held.lease);
      if (this.stopped) return;
      if (r.kind === 'lost') {
        this.stop();
        this.onLost(`subnet ${formatCidr(l.subnet)} expired and another node leased it`);
        return;
      }
      l.held = r.held;
      l.expiresAt = Date.now() + r.held.ttl * 1000;
      if (r.kind === 'recreated') this.log.warn({ subnet: formatCidr(l.subnet) }, 'our lease had expired; leased the same subnet again');
      else this.log.debug({ subnet: formatCidr(l.subnet), ttl: r.held.ttl }, 'lease renewed');
      this.failing = false;
      this.schedule(l.expiresAt - renewMarginS(r.held.ttl) * 1000 - Date.now());
    } catch (err) {
      if (this.stopped) return;
      // One warning per outage, not one per retry.
      if (!this.failing) this.log.warn({ err: (err as Error).message, retryS: renewRetryS(ttl) }, 'lease renewal failed; retrying');
      this.failing = true;
      this.schedule(renewRetryS(ttl) * 1000);
    } finally {
      this.renewing = false;
    }
  }
}
