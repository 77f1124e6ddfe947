/**
 * NaiveLpm4 — the obviously-correct reference for differential tests of src/tables/lpm4.ts.
 *
 * A plain list of routes; lookup scans all of them and keeps the longest match. O(n) per
 * lookup, no shared code with the real table. Same API as Lpm4 (insert / remove / lookup /
 * size / entries / clear).
 */

export interface NaiveRoute {
  prefix: number;
  prefixLen: number;
  value: number;
}

function mask(len: number): number {
  return len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
}

export class NaiveLpm4 {
  private routes: NaiveRoute[] = [];

  get size(): number {
    return this.routes.length;
  }

  insert(prefix: number, prefixLen: number, value: number): void {
    const p = (prefix & mask(prefixLen)) >>> 0;
    const old = this.routes.find((r) => r.prefix === p && r.prefixLen === prefixLen);
    if (old) old.value = value;
    else this.routes.push({ prefix: p, prefixLen, value });
  }

  remove(prefix: number, prefixLen: number): boolean {
    const p = (prefix & mask(prefixLen)) >>> 0;
    const i = this.routes.findIndex((r) => r.prefix === p && r.prefixLen === prefixLen);
    if (i < 0) return false;
    this.routes.splice(i, 1);
    return true;
  }

  lookup(addr: number): number {
    const a = addr >>> 0;
    let bestLen = -1;
    let best = -1;
    for (const r of this.routes) {
      if (r.prefixLen > bestLen && ((a & mask(r.prefixLen)) >>> 0) === r.prefix) {
        bestLen = r.prefixLen;
        best = r.value;
      }
    }
    return best;
  }

  /** Routes sorted by prefix, then length. */
  entries(): NaiveRoute[] {
    return this.routes
      .map((r) => ({ ...r }))
      .sort((x, y) => x.prefix - y.prefix || x.prefixLen - y.prefixLen);
  }

  /** All current routes in insertion order (for picking boundary addresses and removals). */
  list(): readonly NaiveRoute[] {
    return this.routes;
  }

  clear(): void {
    this.routes = [];
  }
}
