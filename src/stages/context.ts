/**
 * Context: what every stage of one dataplane shares — the frame pool, the tables, the clock
 * and the random generator. Stages receive it at construction; nothing in it is global, so
 * tests and benchmarks can build as many dataplanes as they like side by side. It lives with
 * the stages that read it; the dataplane (the layer above) fills it in.
 */
import type { FramePool } from '../core/frame-pool.ts';
import type { Random } from '../core/random.ts';
import type { TokenBucket } from '../core/token-bucket.ts';
import type { Conntrack } from '../tables/conntrack.ts';
import type { Fdb } from '../tables/fdb.ts';
import type { IcmpRateLimits } from '../tables/icmp-rate-limits.ts';
import type { Fib } from '../tables/fib.ts';
import type { InterfaceTable } from '../tables/interface-table.ts';
import type { NeighbourTable } from '../tables/neighbour-table.ts';
import type { PortTable } from '../tables/port-table.ts';
import type { VxlanTable } from '../tables/vxlan-table.ts';

export interface Context {
  pool: FramePool;
  ports: PortTable;
  ifs: InterfaceTable;
  fdb: Fdb;
  fib: Fib;
  neigh: NeighbourTable;
  random: Random;
  /** All ICMP errors together (icmp_msgs_per_sec / icmp_msgs_burst). */
  icmpLimiter: TokenBucket;
  /** ICMP errors per destination (icmp_ratelimit). */
  icmpPerHost: IcmpRateLimits;
  /** The time of the batch being processed, in µs; set by the dataplane before each dispatch. */
  nowUs: number;
  /** Next IPv4 identification for packets the router originates. */
  ipIdent: number;
  /**
   * Connection tracking, or null when the config asks for none (no `nat`, `conntrack` or
   * services): the hooks then pass every frame untouched.
   */
  conntrack: Conntrack | null;
  /** VXLAN devices (flannel.1) and their FDBs: remote VTEP MAC → underlay address. */
  vxlan: VxlanTable;
  /** Seed of the hash that picks an encapsulated flow's UDP source port (Linux's hashrnd). */
  flowHashSeed: number;
  /**
   * Every port takes UDP-tunnel super-frames (TAPs opened with TUN_F_UDP_TUNNEL_GSO): a TCP
   * super-frame routed to a VXLAN device is encapsulated whole and left to the receiving
   * kernel to segment, instead of being cut into segments here first.
   */
  udpTunnelGso: boolean;
}
