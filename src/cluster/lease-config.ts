/**
 * The config a cluster-mode node runs: the file's config completed with its lease, as SPEC §2
 * fixes it and as flanneld and the CNI bridge plugin configure a node:
 *
 *   - a bridge whose address is `lease` gets the subnet's first address with the subnet's
 *     prefix (10.244.N.1/24: FLANNEL_SUBNET, what the bridge plugin gives cni0);
 *   - the device named by cluster.vxlan gets the subnet's network address as a /32
 *     (10.244.N.0/32, as flanneld configures flannel.1) and, when the file names no MAC, the
 *     VTEP MAC derived from the subnet (flannel-layout.ts, vtepMacFor) that the lease publishes.
 *
 * The completed config goes through the cross checks again: with real addresses they can
 * now see, for instance, a static route that overlaps the leased subnet.
 */
import type { Config } from '../config/load.ts';
import { LEASE_ADDRESS } from '../config/schema.ts';
import { crossCheck } from '../config/validate.ts';
import { type Cidr, formatCidr } from '../wire/ipv4-address.ts';
import { vtepMacFor } from './flannel-layout.ts';
import { ClusterError } from './subnet-lease.ts';

/** The MAC the cluster's vxlan device has (and its lease publishes) once `subnet` is leased. */
export function vtepMacOf(config: Config, subnet: Cidr): string {
  const dev = config.vxlan.find((v) => v.name === config.cluster!.vxlan);
  return dev?.mac ?? vtepMacFor(subnet);
}

export function leasedConfig(config: Config, subnet: Cidr): Config {
  const cl = config.cluster;
  if (!cl) return config;
  const gateway = formatCidr({ addr: (subnet.addr + 1) >>> 0, prefixLen: subnet.prefixLen });
  const vtep = formatCidr({ addr: subnet.addr, prefixLen: 32 });
  const mac = vtepMacOf(config, subnet);
  const out: Config = {
    ...config,
    bridges: config.bridges.map((b) => (b.address === LEASE_ADDRESS ? { ...b, address: gateway } : b)),
    vxlan: config.vxlan.map((v) => (v.name === cl.vxlan ? { ...v, address: vtep, mac } : v)),
  };
  // The device's address is ours now, not the file's: the rule against it would refuse it.
  const errors = crossCheck(out).filter((e) => !/^vxlan\[\d+\]\.address: not allowed on .* in cluster mode/.test(e));
  if (errors.length > 0) {
    throw new ClusterError(`the config does not fit the leased subnet ${formatCidr(subnet)}:\n${errors.join('\n')}`);
  }
  return out;
}
