/**
 * LiveManifests: keeps a running dataplane's Services in step with its manifest files.
 *
 * It owns the ManifestSet a config load produced (manifest-set.ts) and a PathWatcher over
 * the manifest paths (watch-paths.ts). When files change it re-reads those, and if the
 * Services they give changed, hands the dataplane the full new list through
 * applyManifestServices (apply-services.ts) and logs what changed: Services added, removed and updated. A file that
 * is refused (bad YAML, a bad object, a clash with another file) is logged with every problem
 * and keeps its last good contents; the running Services stay as they were.
 *
 * Three things make it read: the watcher; `reload()`, which the admin server calls
 * (`nodeplane manifests reload`) to read every file again; and `adopt()` after SIGHUP, when
 * the whole config was loaded again (with this set's parse cache, so unchanged files are not
 * parsed again) and the dataplane took it.
 */
import type { LoadedConfig } from '../config/load.ts';
import type { ManifestSet, ManifestUpdate } from '../config/manifest-set.ts';
import type { ServiceConfig } from '../config/types.ts';
import type { Logger } from '../log.ts';
import type { Dataplane } from './dataplane.ts';
import { applyManifestServices } from './apply-services.ts';
import { PathWatcher } from './watch-paths.ts';

/** What `nodeplane manifests reload` reports. */
export interface ManifestReport {
  /** Manifest files read (with good contents now). */
  files: number;
  /** Services the manifests give now. */
  services: number;
  added: number;
  removed: number;
  updated: number;
  /** Problems of every file refused and not fixed since, one line each. */
  errors: string[];
}

export interface LiveManifestsOptions {
  log: Logger;
  debounceMs?: number;
  /** Where the full list goes; applyManifestServices on the dataplane by default (tests watch it). */
  apply?: (services: ServiceConfig[]) => void;
}

export class LiveManifests {
  private set: ManifestSet;
  private paths: string[];
  private watcher: PathWatcher | null = null;
  private readonly apply: (services: ServiceConfig[]) => void;

  constructor(
    dp: Dataplane,
    loaded: Pick<LoadedConfig, 'manifests' | 'manifestPaths'>,
    private readonly opts: LiveManifestsOptions,
  ) {
    this.set = loaded.manifests;
    this.paths = loaded.manifestPaths;
    this.apply = opts.apply ?? ((services) => applyManifestServices(dp, services));
  }

  /** The parse cache, for loading the config again on SIGHUP. */
  get cache(): ManifestSet['cache'] {
    return this.set.cache;
  }

  /** Applies the manifests' Services as loaded, and starts watching their paths. */
  start(): void {
    if (this.paths.length > 0) this.apply(this.set.list());
    this.watch();
  }

  private watch(): void {
    if (this.paths.length === 0 || this.watcher !== null) return;
    this.watcher = new PathWatcher(this.paths, {
      debounceMs: this.opts.debounceMs,
      onChange: (files) => this.refresh(files, 'files changed'),
      onError: (dir, err) => this.opts.log.warn({ dir, err: err.message }, 'cannot watch a manifest directory; changes there need SIGHUP or `nodeplane manifests reload`'),
    });
  }

  /** Takes (and applies) the manifests of a config the dataplane has just taken on reload. */
  adopt(loaded: Pick<LoadedConfig, 'manifests' | 'manifestPaths'>): void {
    const had = this.paths.length > 0;
    this.set = loaded.manifests;
    this.paths = loaded.manifestPaths;
    if (had || this.paths.length > 0) this.apply(this.set.list());
    if (this.paths.length === 0) {
      this.watcher?.close();
      this.watcher = null;
    } else if (this.watcher === null) {
      this.watch();
    } else {
      this.watcher.setPaths(this.paths);
    }
  }

  /** Reads every manifest file again (files whose text is unchanged are not parsed again). */
  reload(): ManifestReport {
    const r = this.refresh(undefined, 'reload asked for');
    return { files: this.set.fileCount, services: this.set.manifestServices, added: r.added, removed: r.removed, updated: r.updated, errors: this.set.errors() };
  }

  close(): void {
    this.watcher?.close();
    this.watcher = null;
  }

  private refresh(files: string[] | undefined, why: string): ManifestUpdate {
    const log = this.opts.log;
    let r: ManifestUpdate;
    try {
      r = this.set.refresh(this.paths, files);
    } catch (err) {
      // Not a user's mistake (those are ManifestErrors, inside r): keep running as we are.
      log.error({ err: (err as Error).message }, 'reading manifests failed; Services unchanged');
      return { applied: [], errors: [(err as Error).message], notes: [], added: 0, removed: 0, updated: 0 };
    }
    if (r.notes.length > 0) log.info({ notes: r.notes }, 'manifests: objects left out');
    if (r.errors.length > 0) log.error({ errors: r.errors }, 'manifest file refused; its last good contents stay');
    if (r.added + r.removed + r.updated > 0) {
      try {
        this.apply(this.set.list());
      } catch (err) {
        // A bug, not a user's mistake: say so and keep forwarding with the Services in force.
        log.error({ err: (err as Error).message }, 'applying the manifests\' Services failed');
        return { ...r, errors: [...r.errors, (err as Error).message] };
      }
      log.info({ why, files: r.applied, added: r.added, removed: r.removed, updated: r.updated, services: this.set.manifestServices }, 'manifests applied');
    } else if (r.applied.length > 0) {
      log.debug({ why, files: r.applied }, 'manifests read; no Service changed');
    }
    return r;
  }
}
