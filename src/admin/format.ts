/**
 * Admin text: the snapshots of state.ts printed the way the Linux tools print theirs, so
 * anyone who reads `bridge fdb`, `ip neigh`, `ip route` and `ip -s link` reads these at once.
 *
 *   fdb        bridge fdb:   0a:58:0a:f4:01:02 dev pa master cni0 age 1.1s
 *                            0a:58:0a:f4:01:01 dev cni0 master cni0 permanent   (the bridge's own MAC)
 *                            ... static                                          (configured)
 *                            0e:00:00:00:00:02 dev flannel.1 dst 192.168.50.12 self permanent (a VXLAN peer)
 *              `age` (seconds since last seen, one decimal) is ours; bridge(8) has it only with -s.
 *   neigh      ip neigh:     10.244.1.2 dev cni0 lladdr 0a:58:0a:f4:01:02 REACHABLE
 *                            10.244.2.0 dev flannel.1 lladdr 0e:00:00:00:00:02 PERMANENT (a VXLAN peer)
 *                            192.168.50.99 dev up FAILED                         (no lladdr while unresolved)
 *   routes     ip route show table all: the main table, then the local table's local and
 *              broadcast routes, which carry `table local` as ip prints them there:
 *                            default via 192.168.50.1 dev up
 *                            10.244.1.0/24 dev cni0 proto kernel scope link src 10.244.1.1
 *                            10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink
 *                            local 10.244.1.1 dev cni0 table local proto kernel scope host src 10.244.1.1
 *                            broadcast 10.244.1.255 dev cni0 table local proto kernel scope link src 10.244.1.1
 *   ports      ip -s link: a header line, the routed port's link/ether and inet lines, then
 *              RX and TX counters in ip's columns (only those the dataplane counts; RX
 *              `nobuf`: dropped for want of a free frame slot), then what the port driver
 *              reports, if anything; then the frame pool's size and free slots; last, the
 *              capture's counters and each live capture stream's (records, dropped).
 *   stats      every stage's packets, its drops by reason (non-zero reasons only), then the
 *              receive overruns and table refusals.
 *   graph      one edge a line: `stage -next-> stage`.
 *   services   one block per Service port: type, frontends, endpoints and their connections
 *              (services-state.ts, which builds and prints it).
 *
 * Every formatter returns whole lines, each ending in a newline (empty string when empty).
 */
import type {
  FdbState,
  GraphState,
  NeighTableState,
  PortState,
  PortsState,
  RoutesState,
  RouteState,
  StatsState,
} from './state.ts';
import { formatServices } from './services-state.ts';

/** What `show` can print, and the admin endpoint each one reads (`/v1/<what>`). */
export const SHOW_WHATS = ['fdb', 'neigh', 'routes', 'services', 'conntrack', 'ports', 'stats', 'graph'] as const;
export type ShowWhat = (typeof SHOW_WHATS)[number];
/**
 * Names `show` takes (SPEC §1) that have no formatter here: conntrack, which is streamed and
 * formatted line by line (conntrack-format.ts).
 */
type NotYet = 'conntrack';

function lines(ls: string[]): string {
  return ls.length === 0 ? '' : ls.join('\n') + '\n';
}

export function formatFdb(s: FdbState): string {
  return lines(
    s.entries.map((e) => {
      if (e.bridge === null) return `${e.mac} dev ${e.port}${e.dst === undefined ? '' : ` dst ${e.dst}`} self ${e.type}`;
      const head = `${e.mac} dev ${e.port} master ${e.bridge}`;
      if (e.type === 'dynamic') return e.ageSeconds === null ? head : `${head} age ${e.ageSeconds.toFixed(1)}s`;
      return `${head} ${e.type}`;
    }),
  );
}

export function formatNeigh(s: NeighTableState): string {
  return lines(s.entries.map((e) => `${e.ip} dev ${e.dev}${e.lladdr === null ? '' : ` lladdr ${e.lladdr}`} ${e.state}`));
}

function formatRoute(r: RouteState): string {
  const w: string[] = [];
  if (r.type !== 'unicast') w.push(r.type);
  w.push(r.dst);
  if (r.gateway !== null) w.push('via', r.gateway);
  if (r.dev !== null) w.push('dev', r.dev);
  if (r.table !== 'main') w.push('table', r.table);
  if (r.protocol === 'kernel') w.push('proto', 'kernel');
  // ip omits the scope of a gateway route (global is the default).
  if (r.scope !== 'global') w.push('scope', r.scope);
  if (r.prefsrc !== null) w.push('src', r.prefsrc);
  if (r.onlink) w.push('onlink');
  return w.join(' ');
}

export function formatRoutes(s: RoutesState): string {
  return lines(s.routes.map(formatRoute));
}

/** ip's counter columns: `RX:  bytes` is 10 wide, every further column 7, one space apart. */
function counterLines(dir: 'RX' | 'TX', columns: [string, number][]): string[] {
  const head = [`${dir}:  ${columns[0][0]}`.padStart(10), ...columns.slice(1).map(([n]) => n.padStart(7))];
  const values = columns.map(([, v], i) => String(v).padStart(i === 0 ? 10 : 7));
  return [`    ${head.join(' ')}`, `    ${values.join(' ')}`];
}

function driverLines(driver: Record<string, unknown> | undefined): string[] {
  if (driver === undefined) return [];
  const out: string[] = [];
  const plain: string[] = [];
  for (const [k, v] of Object.entries(driver)) {
    if (v === null || v === undefined || v === '') continue;
    if (typeof v === 'object') {
      const pairs = Object.entries(v as Record<string, unknown>).map(([kk, vv]) => `${kk} ${String(vv)}`);
      out.push(`    ${k}: ${pairs.join(' ')}`);
    } else {
      plain.push(`${k} ${String(v)}`);
    }
  }
  if (plain.length > 0) out.unshift(`    driver: ${plain.join(' ')}`);
  return out;
}

function formatPort(p: PortState): string[] {
  const flags = p.up ? 'BROADCAST,MULTICAST,UP,LOWER_UP' : 'BROADCAST,MULTICAST';
  const out = [`${p.index}: ${p.name}: <${flags}> mtu ${p.mtu}${p.master === null ? '' : ` master ${p.master}`} state ${p.up ? 'UP' : 'DOWN'}`];
  if (p.mac !== null) out.push(`    link/ether ${p.mac} brd ff:ff:ff:ff:ff:ff`);
  if (p.address !== null) out.push(`    inet ${p.address}`);
  if (p.runtime) out.push(`    added at run time${p.owner === undefined ? '' : ` by ${p.owner}`}`);
  out.push(
    ...counterLines('RX', [
      ['bytes', p.rx.bytes],
      ['packets', p.rx.packets],
      ['nobuf', p.rx.noBuffer],
    ]),
    ...counterLines('TX', [
      ['bytes', p.tx.bytes],
      ['packets', p.tx.packets],
      ['dropped', p.tx.dropped],
    ]),
    ...driverLines(p.driver),
  );
  return out;
}

export function formatPorts(s: PortsState): string {
  const { slots, slotBytes, free } = s.pool;
  const out = [...s.ports.flatMap(formatPort), `frame pool: ${slots} slots of ${slotBytes / 1024} KiB, ${free} free`];
  const c = s.capture;
  if (c !== undefined) {
    const f = c.filter === null ? '' : `, filter "${c.filter.expression}" matched ${c.filter.matched} of ${c.filter.matched + c.filter.unmatched}`;
    out.push(`capture: ${c.packets} records, ${c.ringDrops} dropped (ring of ${Math.round(c.ringBytes / 1048576)} MiB full), ${c.drops} dropped frames recorded${f}`);
  }
  for (const st of s.streams ?? []) {
    const f = st.filter === null ? '' : `, filter "${st.filter}"`;
    out.push(`capture stream of ${st.port}: ${st.packets} records, ${st.dropped} dropped (slow reader), snaplen ${st.snaplen}${f}`);
  }
  return lines(out);
}

/**
 * Stage counters as `replay --stats` prints them: packets, each stage's event counters, and
 * drops by reason id with the reason's text; zero drops and events left out.
 */
export function formatStats(s: StatsState): string {
  const width = Math.max(0, ...s.stages.map((st) => st.name.length));
  const out: string[] = [];
  for (const st of s.stages) {
    out.push(`${st.name.padEnd(width)}  ${String(st.packets).padStart(12)} packets`);
    for (const [name, n] of Object.entries(st.events ?? {})) {
      if (n > 0) out.push(`${''.padEnd(width)}  ${String(n).padStart(12)} ${name}`);
    }
    for (const [id, n] of Object.entries(st.drops)) {
      if (n > 0) out.push(`${''.padEnd(width)}  ${String(n).padStart(12)} dropped ${id}: ${st.reasons?.[id] ?? ''}`);
    }
  }
  const { fdb, neigh } = s.tables;
  out.push(
    `graph round limit: ${s.roundLimitDrops} frames dropped (a path that loops)`,
    `rx overruns: ${s.rxOverruns}`,
    `fdb: ${fdb.entries} entries, ${fdb.learned} learned, ${fdb.moves} moved, ${fdb.full} not learned (table full)`,
    `neigh: ${neigh.entries} entries, ${neigh.full} not created (table full)`,
  );
  return lines(out);
}

export function formatGraph(s: GraphState): string {
  return lines(s.edges);
}

/** The formatter of each `what`; the type makes every entry of SHOW_WHATS but the NotYet ones have one. */
type Formatted = Exclude<ShowWhat, NotYet>;
const FORMATTERS: { [W in Formatted]: (state: never) => string } = {
  fdb: formatFdb,
  neigh: formatNeigh,
  routes: formatRoutes,
  ports: formatPorts,
  stats: formatStats,
  graph: formatGraph,
  services: formatServices,
};

/** Formats the state `what` (as fetched from `/v1/<what>`). */
export function formatState(what: string, state: unknown): string {
  if (!Object.hasOwn(FORMATTERS, what)) throw new Error(`no text format for '${what}'`);
  return (FORMATTERS[what as Formatted] as (state: unknown) => string)(state);
}
