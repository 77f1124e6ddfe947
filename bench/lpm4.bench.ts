/**
 * Benchmark of src/tables/lpm4.ts: build time and lookups/s of the IPv4 FIB table.
 *
 * Tables of 100,000 and 1,000,000 random prefixes (seeded) with a length mix shaped like a
 * BGP table — mostly /16../24, a /24 peak, a few short prefixes and ~3% host routes (/32) —
 * plus a 16-route table like a typical node's. Lookups run over pre-generated addresses (a
 * Uint32Array, 1M entries): uniform random addresses, and addresses drawn inside inserted
 * prefixes (which reach the deeper levels more often). Each measurement runs ~1.5 s. The
 * `.uniform` rows also carry build time (buildMs, insertsPerSec) and removeMs.
 *
 * benchLpm4() returns the rows; `npx tsx bench/lpm4.bench.ts` prints them as JSON lines.
 */
import { Lpm4 } from '../src/tables/lpm4.ts';

export interface Lpm4BenchRow {
  bench: string;
  pps?: number;
  lookupsPerSec: number;
  prefixes: number;
  nsPerLookup: number;
  /** Trie typed arrays plus the JS heap growth (route maps) while building. */
  heapBytes?: number;
  /** The trie's typed arrays alone. */
  trieBytes?: number;
  /** Time to insert all prefixes into an empty table. */
  buildMs?: number;
  insertsPerSec?: number;
  /** Time to remove all prefixes again, in insertion order. */
  removeMs?: number;
}

const MEASURE_MS = 1500;
const ADDRS = 1 << 20;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** [prefixLen, weight] — roughly the shape of a full Internet table, plus host routes. */
const LENGTH_MIX: ReadonlyArray<readonly [number, number]> = [
  [8, 0.02], [10, 0.05], [11, 0.1], [12, 0.3], [13, 0.5], [14, 0.9], [15, 1.2],
  [16, 4], [17, 1.5], [18, 2.5], [19, 4], [20, 5.5], [21, 6], [22, 10], [23, 9],
  [24, 50], [25, 0.3], [26, 0.3], [27, 0.3], [28, 0.3], [29, 0.3], [30, 0.3], [32, 3],
];

function lengthPicker(rnd: () => number): () => number {
  const total = LENGTH_MIX.reduce((s, [, w]) => s + w, 0);
  const cdf = new Float64Array(LENGTH_MIX.length);
  let acc = 0;
  LENGTH_MIX.forEach(([, w], i) => (cdf[i] = acc += w / total));
  return () => {
    const r = rnd() / 2 ** 32;
    let i = 0;
    while (i < cdf.length - 1 && cdf[i] < r) i++;
    return LENGTH_MIX[i][0];
  };
}

interface Routes {
  prefixes: Uint32Array;
  lens: Uint8Array;
}

function makeRoutes(n: number, seed: number): Routes {
  const rnd = mulberry32(seed);
  const pickLen = lengthPicker(rnd);
  const prefixes = new Uint32Array(n);
  const lens = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    prefixes[i] = rnd();
    lens[i] = pickLen();
  }
  return { prefixes, lens };
}

function build(routes: Routes): { table: Lpm4; buildMs: number; heapGrowth: number } {
  const heap0 = process.memoryUsage().heapUsed;
  const table = new Lpm4();
  const { prefixes, lens } = routes;
  const t0 = performance.now();
  for (let i = 0; i < prefixes.length; i++) table.insert(prefixes[i], lens[i], i & 0xffff);
  const buildMs = performance.now() - t0;
  const heapGrowth = Math.max(0, process.memoryUsage().heapUsed - heap0);
  return { table, buildMs, heapGrowth };
}

function uniformAddrs(seed: number): Uint32Array {
  const rnd = mulberry32(seed);
  const a = new Uint32Array(ADDRS);
  for (let i = 0; i < ADDRS; i++) a[i] = rnd();
  return a;
}

/** Addresses inside randomly chosen inserted prefixes. */
function inPrefixAddrs(routes: Routes, seed: number): Uint32Array {
  const rnd = mulberry32(seed);
  const a = new Uint32Array(ADDRS);
  const n = routes.prefixes.length;
  for (let i = 0; i < ADDRS; i++) {
    const k = rnd() % n;
    const len = routes.lens[k];
    const host = len === 0 ? rnd() : len === 32 ? 0 : rnd() >>> len;
    a[i] = (routes.prefixes[k] & (len === 0 ? 0 : -1 << (32 - len))) | host;
  }
  return a;
}

let sink = 0;

/** Lookups/s of table.lookup() over addrs, repeated for ~MEASURE_MS after a warm-up pass. */
function timeLookups(table: Lpm4, addrs: Uint32Array): number {
  let acc = 0;
  for (let i = 0; i < addrs.length; i++) acc ^= table.lookup(addrs[i]);
  let done = 0;
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < MEASURE_MS) {
    for (let i = 0; i < addrs.length; i++) acc ^= table.lookup(addrs[i]);
    done += addrs.length;
    now = performance.now();
  }
  sink ^= acc;
  return done / ((now - t0) / 1000);
}

function row(
  bench: string,
  lookupsPerSec: number,
  table: Lpm4,
  built?: { buildMs: number; heapGrowth: number },
): Lpm4BenchRow {
  const r: Lpm4BenchRow = {
    bench,
    lookupsPerSec: Math.round(lookupsPerSec),
    prefixes: table.size,
    nsPerLookup: Math.round((1e9 / lookupsPerSec) * 100) / 100,
    trieBytes: table.byteLength,
  };
  if (built) {
    r.heapBytes = table.byteLength + built.heapGrowth;
    r.buildMs = Math.round(built.buildMs);
    r.insertsPerSec = Math.round(table.size / (built.buildMs / 1000));
  }
  return r;
}

export async function benchLpm4(): Promise<Lpm4BenchRow[]> {
  const rows: Lpm4BenchRow[] = [];
  const uniform = uniformAddrs(7);

  // A node's FIB: a default route, pod CIDRs of a few nodes, a service range, a host route.
  const small = new Lpm4();
  small.insert(0, 0, 0);
  for (let i = 0; i < 12; i++) small.insert((10 << 24) | (244 << 16) | (i << 8), 24, i + 1);
  small.insert((10 << 24) | (96 << 16), 12, 20);
  small.insert((169 << 24) | (254 << 16) | (169 << 8) | 254, 32, 21);
  small.insert(192 << 24 | 168 << 16, 16, 22);
  rows.push(row('lpm4.lookup.16.uniform', timeLookups(small, uniform), small));

  for (const n of [100_000, 1_000_000]) {
    const label = n === 100_000 ? '100k' : '1M';
    const routes = makeRoutes(n, 1234 + n);
    const built = build(routes);
    const { table } = built;
    const uniformRate = timeLookups(table, uniform);
    const uniformRow = row(`lpm4.lookup.${label}.uniform`, uniformRate, table, built);
    rows.push(uniformRow);
    const inside = inPrefixAddrs(routes, 99);
    rows.push(row(`lpm4.lookup.${label}.in-prefix`, timeLookups(table, inside), table));

    // Remove every route again (the table must come back empty), timed like the build.
    const t0 = performance.now();
    for (let i = 0; i < n; i++) table.remove(routes.prefixes[i], routes.lens[i]);
    uniformRow.removeMs = Math.round(performance.now() - t0);
    if (table.size !== 0 || table.chunksInUse !== 0) throw new Error('lpm4 bench: table not empty');
  }
  if (sink === 0x7fffffff) console.log('');
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await benchLpm4()) console.log(JSON.stringify(r));
}
