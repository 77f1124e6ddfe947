/**
 * ManifestSet: the Services a set of manifest files gives, with the config's own `services`,
 * kept up to date file by file at a cost proportional to what changed.
 *
 * State: the last good parse of every file, and indexes over them — Services by
 * namespace/name, EndpointSlices by the Service they belong to (a Service's slices may sit in
 * other files than the Service), ClusterIPs and NodePorts with their owners — and the joined
 * `ServiceConfig` of every Service. `update(changes)` takes new texts of some files (null: the
 * file is gone): only those are parsed (a ManifestCache keeps each file's parse by its text),
 * only the Services they touch are joined again, and the counts of Services added, removed and
 * updated say what changed. `list()` is the manifests' Services; the config's own are only
 * checked against (a manifest may not define one of them again, nor take its addresses).
 *
 * A file is taken whole or not at all: a file that does not parse, or whose objects clash with
 * another file's or the config's (the same Service or EndpointSlice defined twice, a ClusterIP
 * or NodePort taken), is refused with its errors and keeps its last good contents; the other
 * files of the same update still apply.
 */
import { joinService, type LazyWhere, type ServiceEntry, type SliceEntry } from './manifest-map.ts';
import { currentManifestFiles, listManifestFiles, readManifestFile } from './manifest-files.ts';
import { ManifestError, type ManifestFile, parseManifestText } from './manifests.ts';
import type { ServiceConfig } from './types.ts';

/** Each file's parse by its text: the same text is never parsed twice in a row. */
export class ManifestCache {
  private readonly byFile = new Map<string, { text: string; parsed: ManifestFile }>();

  /** The parse of `text` as `file` (the same object as last time when the text is the same). */
  parse(file: string, text: string): ManifestFile {
    const hit = this.byFile.get(file);
    if (hit !== undefined && hit.text === text) return hit.parsed;
    const parsed = parseManifestText(text, file);
    this.byFile.set(file, { text, parsed });
    return parsed;
  }

  forget(file: string): void {
    this.byFile.delete(file);
  }
}

export interface ManifestUpdate {
  /** Files whose new contents (or removal) took effect. */
  applied: string[];
  /** Every problem of the files refused, one complete line each (file and line first). */
  errors: string[];
  /** What newly read files hold that is left out, `FILE: note: ...`. */
  notes: string[];
  added: number;
  removed: number;
  updated: number;
}

export class ManifestSet {
  /** Labels of the config's own Services by namespace/name, for messages. */
  private readonly ownLabel = new Map<string, string>();
  private readonly files = new Map<string, ManifestFile>();
  private readonly fileErrors = new Map<string, string[]>();
  /** Files that parsed but were refused for a clash, tried again at every update. */
  private readonly clashed = new Map<string, ManifestFile>();
  private readonly services = new Map<string, ServiceEntry>();
  private readonly slicesOf = new Map<string, Map<string, SliceEntry>>();
  private readonly sliceAt = new Map<string, string | LazyWhere>();
  /** ClusterIP, and NodePort `port/protocol`, → the namespace/name of the Service holding it. */
  private readonly ipOwner = new Map<string, string>();
  private readonly nodePortOwner = new Map<string, string>();
  private readonly joined = new Map<string, ServiceConfig>();

  constructor(
    own: readonly ServiceConfig[],
    readonly cache = new ManifestCache(),
  ) {
    own.forEach((s, i) => {
      const key = `${s.namespace}/${s.name}`;
      this.ownLabel.set(key, `services[${i}] of the config (${key})`);
      this.ipOwner.set(s.clusterIP, key);
      if (s.type !== 'ClusterIP') for (const p of s.ports) if (p.nodePort !== undefined) this.nodePortOwner.set(`${p.nodePort}/${p.protocol}`, key);
    });
  }

  /**
   * The manifests' Services (the config's own are apart, only checked against). A Service
   * that did not change is the same object as in the previous list, so the service table
   * knows it unchanged by a pointer comparison.
   */
  list(): ServiceConfig[] {
    return [...this.joined.values()];
  }

  /** How many Services the manifests give. */
  get manifestServices(): number {
    return this.joined.size;
  }

  /** Files that hold good contents now. */
  get fileCount(): number {
    return this.files.size;
  }

  /** The problems of every file refused and not fixed since. */
  errors(): string[] {
    return [...this.fileErrors.values()].flat();
  }

  /** Reads every file the resolved `paths` name, as at start; a path naming nothing is an error. */
  load(paths: readonly string[]): ManifestUpdate {
    const listed = listManifestFiles(paths);
    const result = this.refresh(paths, listed.files);
    result.errors.unshift(...listed.errors);
    return result;
  }

  /**
   * Reads again the files of `paths` that `only` names (all of them when absent), and drops
   * the files no longer there. Files whose text did not change cost a read, not a parse.
   */
  refresh(paths: readonly string[], only?: readonly string[]): ManifestUpdate {
    const current = currentManifestFiles(paths);
    const present = new Set(current);
    const changes = new Map<string, string | null>();
    const readErrors: string[] = [];
    for (const f of [...this.files.keys(), ...this.fileErrors.keys()]) if (!present.has(f)) changes.set(f, null);
    const wanted = only === undefined ? current : only.filter((f) => present.has(f));
    for (const f of wanted) {
      try {
        changes.set(f, readManifestFile(f));
      } catch (err) {
        if (!(err instanceof ManifestError)) throw err;
        this.fileErrors.set(f, err.errors);
        readErrors.push(...err.errors);
      }
    }
    const result = this.update(changes);
    result.errors.unshift(...readErrors);
    return result;
  }

  /**
   * Applies new texts of files (null: gone); see the header for what is refused. Files refused
   * for a clash are tried again after the others (a Service moving from one file to another)
   * and at every later update (the file they clashed with may have changed since).
   */
  update(changes: ReadonlyMap<string, string | null>): ManifestUpdate {
    const result: ManifestUpdate = { applied: [], errors: [], notes: [], added: 0, removed: 0, updated: 0 };
    const affected = new Set<string>();
    const pending = new Map<string, ManifestFile | null>();
    for (const [file, text] of changes) {
      this.clashed.delete(file);
      if (text === null) {
        this.cache.forget(file);
        this.fileErrors.delete(file);
        pending.set(file, null);
        continue;
      }
      try {
        pending.set(file, this.cache.parse(file, text));
      } catch (err) {
        if (!(err instanceof ManifestError)) throw err;
        this.fileErrors.set(file, err.errors);
        result.errors.push(...err.errors);
      }
    }
    for (const [file, parsed] of this.clashed) if (!pending.has(file)) pending.set(file, parsed);
    this.clashed.clear();

    let progress = true;
    const refused = new Map<string, string[]>();
    while (progress) {
      progress = false;
      for (const [file, next] of pending) {
        const clashes = this.apply(file, next, affected, result);
        if (clashes === null) {
          pending.delete(file);
          refused.delete(file);
          progress = true;
        } else {
          refused.set(file, clashes);
        }
      }
    }
    for (const [file, clashes] of refused) {
      this.clashed.set(file, pending.get(file)!);
      this.fileErrors.set(file, clashes);
      if (changes.has(file)) result.errors.push(...clashes);
    }
    this.rejoin(affected, result);
    return result;
  }

  /** Puts `next` in place of `file`'s contents: null when done, else the clashes that stop it. */
  private apply(file: string, next: ManifestFile | null, affected: Set<string>, result: ManifestUpdate): string[] | null {
    const old = this.files.get(file);
    if (next === (old ?? null)) {
      this.fileErrors.delete(file);
      return null;
    }
    if (old !== undefined) this.detach(old, affected);
    const clashes = next === null ? [] : this.clashes(next);
    if (clashes.length > 0) {
      if (old !== undefined) this.attach(old, affected);
      return clashes;
    }
    this.fileErrors.delete(file);
    if (next === null) {
      this.files.delete(file);
    } else {
      this.attach(next, affected);
      this.files.set(file, next);
      for (const n of next.notes) result.notes.push(`${file}: note: ${n}`);
    }
    result.applied.push(file);
    return null;
  }

  private describe(key: string): string {
    const own = this.ownLabel.get(key);
    if (own !== undefined) return own;
    const e = this.services.get(key);
    return e === undefined ? key : `Service ${key} (${e.at})`;
  }

  /** What stops `f` from joining the others (its old contents already detached). */
  private clashes(f: ManifestFile): string[] {
    const out: string[] = [];
    const ips = new Map<string, string>();
    const nodePorts = new Map<string, string>();
    for (const e of f.services) {
      // A function, so that `e.at` (LazyWhere: maybe a slow reading) is printed only for a message.
      const what = (): string => `${e.at}: Service ${e.key}: `;
      if (this.services.has(e.key) || this.ownLabel.has(e.key)) out.push(`${what()}already defined by ${this.describe(e.key)}`);
      const ip = e.service.clusterIP;
      const ipOwner = this.ipOwner.get(ip) ?? ips.get(ip);
      if (ipOwner !== undefined) out.push(`${what()}spec.clusterIP: ${ip} is already the address of ${this.describe(ipOwner)}`);
      ips.set(ip, e.key);
      for (const p of e.ports) {
        if (p.nodePort === undefined) continue;
        const np = `${p.nodePort}/${p.protocol}`;
        const npOwner = this.nodePortOwner.get(np) ?? nodePorts.get(np);
        if (npOwner !== undefined && npOwner !== e.key) out.push(`${what()}spec.ports: nodePort ${np} is already used by ${this.describe(npOwner)}`);
        nodePorts.set(np, e.key);
      }
    }
    for (const s of f.slices) {
      const other = this.sliceAt.get(s.key);
      if (other !== undefined) out.push(`${s.at}: EndpointSlice ${s.key}: already defined at ${other}`);
    }
    return out;
  }

  private attach(f: ManifestFile, affected: Set<string>): void {
    for (const e of f.services) {
      this.services.set(e.key, e);
      this.ipOwner.set(e.service.clusterIP, e.key);
      for (const p of e.ports) if (p.nodePort !== undefined) this.nodePortOwner.set(`${p.nodePort}/${p.protocol}`, e.key);
      affected.add(e.key);
    }
    for (const s of f.slices) {
      let m = this.slicesOf.get(s.serviceKey);
      if (m === undefined) this.slicesOf.set(s.serviceKey, (m = new Map()));
      m.set(s.key, s);
      this.sliceAt.set(s.key, s.at);
      affected.add(s.serviceKey);
    }
  }

  private detach(f: ManifestFile, affected: Set<string>): void {
    for (const e of f.services) {
      this.services.delete(e.key);
      if (this.ipOwner.get(e.service.clusterIP) === e.key) this.ipOwner.delete(e.service.clusterIP);
      for (const p of e.ports) {
        const np = `${p.nodePort}/${p.protocol}`;
        if (p.nodePort !== undefined && this.nodePortOwner.get(np) === e.key) this.nodePortOwner.delete(np);
      }
      affected.add(e.key);
    }
    for (const s of f.slices) {
      const m = this.slicesOf.get(s.serviceKey);
      m?.delete(s.key);
      if (m?.size === 0) this.slicesOf.delete(s.serviceKey);
      this.sliceAt.delete(s.key);
      affected.add(s.serviceKey);
    }
  }

  /** Joins the Services of `keys` again and counts what changed. */
  private rejoin(keys: Set<string>, result: ManifestUpdate): void {
    for (const key of keys) {
      const entry = this.services.get(key);
      const before = this.joined.get(key);
      if (entry === undefined) {
        if (before !== undefined) {
          this.joined.delete(key);
          result.removed++;
        }
        continue;
      }
      const slices = [...(this.slicesOf.get(key)?.values() ?? [])].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      const after = joinService(entry, slices);
      if (before === undefined) result.added++;
      else if (JSON.stringify(before) !== JSON.stringify(after)) result.updated++;
      else continue;
      this.joined.set(key, after);
    }
  }
}
