/**
 * The subnet registry: flannel's keys under `<prefix>` read and written in etcd, each write
 * a transaction with the condition that makes it safe when several nodes race.
 *
 *   networkConfig()          GET <prefix>/config
 *   createNetworkConfig(t)   PUT <prefix>/config only if it does not exist (Version == 0)
 *   list()                   GET <prefix>/subnets/ (prefix), with the revision of the read
 *   create(sn, value, ttl)   grant an etcd lease of ttl s; PUT the subnet's key with it only
 *                            if the key does not exist (Version == 0: flanneld's createSubnet),
 *                            so two nodes never hold one subnet; the lease is revoked if not
 *   replace(sn, value, ttl, modRevision)
 *                            grant; PUT only if the key was not modified since it was read
 *                            (reusing this node's own lease after a restart)
 *   renew(sn, value, ttl)    grant; PUT only if the key still holds this node's value; if the
 *                            key is gone (it expired), PUT only if it still does not exist
 *   remove(sn, modRevision)  DELETE only if unmodified (a lease of ours that no longer fits)
 *
 * Renewal is flanneld's: a fresh etcd lease and the same value put again (updateSubnet), not
 * a keepalive; unlike flanneld, the put is conditional (flanneld's plain put could overwrite
 * a subnet another node took after ours expired) and the old lease is revoked.
 */
import type { Etcd3 } from 'etcd3';
import { type Cidr } from '../wire/ipv4-address.ts';
import { CONFIG_KEY, parseSubnetKey, SUBNETS_DIR, subnetKey } from './flannel-layout.ts';

/** One key under <prefix>/subnets/ as read. */
export interface SubnetEntry {
  key: string;
  /** Undefined when the key's name is not a subnet (flannel skips such keys). */
  subnet: Cidr | undefined;
  value: string;
  modRevision: string;
  /** The etcd lease ID (decimal int64 text; '0' for none). */
  lease: string;
}

export interface Held {
  /** The etcd lease now holding the key, and its TTL in seconds as granted. */
  lease: string;
  ttl: number;
}

export type RenewResult = { kind: 'renewed' | 'recreated'; held: Held } | { kind: 'lost' };

export class SubnetRegistry {
  constructor(
    private readonly client: Etcd3,
    readonly prefix: string,
  ) {}

  get subnetsPrefix(): string {
    return `${this.prefix}/${SUBNETS_DIR}/`;
  }

  keyOf(subnet: Cidr): string {
    return `${this.subnetsPrefix}${subnetKey(subnet)}`;
  }

  async networkConfig(): Promise<string | undefined> {
    const v = await this.client.get(`${this.prefix}/${CONFIG_KEY}`).string();
    return v ?? undefined;
  }

  /** Writes the network config if there is none; false when one appeared meanwhile. */
  async createNetworkConfig(text: string): Promise<boolean> {
    const key = `${this.prefix}/${CONFIG_KEY}`;
    const r = await this.client.if(key, 'Version', '==', 0).then(this.client.put(key).value(text)).commit();
    return r.succeeded;
  }

  async list(): Promise<{ entries: SubnetEntry[]; revision: string }> {
    const r = await this.client.getAll().prefix(this.subnetsPrefix).exec();
    const entries = r.kvs.map((kv) => {
      const key = kv.key.toString();
      return { key, subnet: parseSubnetKey(key), value: kv.value.toString(), modRevision: kv.mod_revision, lease: kv.lease };
    });
    return { entries, revision: r.header.revision };
  }

  private async grant(ttl: number): Promise<Held> {
    const g = await this.client.leaseClient.leaseGrant({ TTL: ttl, ID: 0 });
    return { lease: String(g.ID), ttl: Number(g.TTL) };
  }

  /** Revokes a lease, ignoring failure (an unrevoked lease only runs out by itself). */
  async revoke(lease: string): Promise<void> {
    await this.client.leaseClient.leaseRevoke({ ID: lease }).catch(() => undefined);
  }

  /** Puts `value` at the subnet's key under a fresh lease if `guard` holds; the lease or null. */
  private async guardedPut(subnet: Cidr, value: string, ttl: number, guard: (key: string) => ReturnType<Etcd3['if']>): Promise<Held | null> {
    const held = await this.grant(ttl);
    const key = this.keyOf(subnet);
    let ok = false;
    try {
      const r = await guard(key).then(this.client.put(key).value(value).lease(held.lease)).commit();
      ok = r.succeeded;
    } finally {
      if (!ok) await this.revoke(held.lease);
    }
    return ok ? held : null;
  }

  /** Takes a free subnet: null when some node holds its key already. */
  create(subnet: Cidr, value: string, ttl: number): Promise<Held | null> {
    return this.guardedPut(subnet, value, ttl, (key) => this.client.if(key, 'Version', '==', 0));
  }

  /** Takes over a key read at `modRevision` (our own lease, after a restart): null if it changed. */
  replace(subnet: Cidr, value: string, ttl: number, modRevision: string): Promise<Held | null> {
    return this.guardedPut(subnet, value, ttl, (key) => this.client.if(key, 'Mod', '==', modRevision));
  }

  /** Renews our key holding `value` (see the header); revokes `oldLease` once renewed. */
  async renew(subnet: Cidr, value: string, ttl: number, oldLease: string): Promise<RenewResult> {
    const renewed = await this.guardedPut(subnet, value, ttl, (key) => this.client.if(key, 'Value', '==', value));
    if (renewed) {
      if (renewed.lease !== oldLease) await this.revoke(oldLease);
      return { kind: 'renewed', held: renewed };
    }
    const recreated = await this.create(subnet, value, ttl);
    return recreated ? { kind: 'recreated', held: recreated } : { kind: 'lost' };
  }

  async remove(subnet: Cidr, modRevision: string): Promise<boolean> {
    const key = this.keyOf(subnet);
    const r = await this.client.if(key, 'Mod', '==', modRevision).then(this.client.delete().key(key)).commit();
    return r.succeeded;
  }

  /** The remaining TTL of a lease in seconds (-1 when it has expired or never existed). */
  async timeToLive(lease: string): Promise<number> {
    const r = await this.client.leaseClient.leaseTimeToLive({ ID: lease, keys: false });
    return Number(r.TTL);
  }
}
