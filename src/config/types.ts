/**
 * Names for the parts of a validated `Config`, for the code that compiles it into tables.
 * Every field name is the one in SPEC §2; defaults are already filled (see schema.ts).
 */
import type { Config, ConfigInput } from './schema.ts';

export type { Config, ConfigInput };
export type BridgeConfig = Config['bridges'][number];
export type PortConfig = Config['ports'][number];
export type PortType = PortConfig['type'];
export type RouteConfig = Config['routes'][number];
export type NeighborConfig = Config['neighbors'][number];
export type ServiceConfig = Config['services'][number];
export type ServiceType = ServiceConfig['type'];
export type ServicePortConfig = ServiceConfig['ports'][number];
export type EndpointConfig = ServiceConfig['endpoints'][number];
export type EndpointPortConfig = NonNullable<EndpointConfig['ports']>[number];
export type NatConfig = NonNullable<Config['nat']>;
export type ConntrackConfig = Config['conntrack'];
export type VxlanConfig = Config['vxlan'][number];
export type VxlanPeerConfig = VxlanConfig['peers'][number];
export type CaptureConfig = Config['capture'];
export type ArpConfig = Config['arp'];
export type FdbConfig = Config['fdb'];
export type IcmpConfig = Config['icmp'];
export type PoolConfig = Config['pool'];
