/**
 * PathWatcher: tells which files of a set of listed files and directories may have changed,
 * debounced, with Linux inotify through `fs.watch`.
 *
 * Directories are watched, never files themselves: an editor that saves by writing a new
 * file and renaming it over the old one (vim, most IDEs, `kubectl ... > tmp && mv`) replaces
 * the inode, and a watch on the old inode would go deaf. So a listed file is seen through its
 * parent directory (events whose name is the file's), a listed directory through itself (names
 * of its manifest files) and through its parent (the directory itself removed or replaced).
 *
 * Events are gathered until none came for `debounceMs` (100 ms: an editor's truncate-then-
 * write is one change), and at most `maxDelayMs` after the first, so a file written without
 * pause is still read. `onChange(files)` then gets the files named by events, or undefined
 * when an event could not be tied to one file (a nameless event; a name that is not a
 * manifest file, such as the `..data` link a Kubernetes ConfigMap volume swaps): read them
 * all. Before each call the watches are set up again for what exists now, so a directory
 * created, removed or replaced after start is followed.
 */
import { type FSWatcher, statSync, watch } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isManifestName, kindOf } from '../config/manifest-files.ts';

export interface PathWatcherOptions {
  /** Quiet time before the changes are reported; default 100 ms. */
  debounceMs?: number;
  /** Longest wait after the first event; default 500 ms. */
  maxDelayMs?: number;
  /** The files that may have changed, or undefined: any of them. */
  onChange: (files: string[] | undefined) => void;
  /** A directory that cannot be watched (say, out of inotify watches). */
  onError?: (dir: string, err: Error) => void;
}

/** The inode of directory `dir`, or -1 when it is not one. */
function inodeOf(dir: string): number {
  try {
    const st = statSync(dir);
    return st.isDirectory() ? st.ino : -1;
  } catch {
    return -1;
  }
}

export class PathWatcher {
  private paths: string[] = [];
  /** Watches by directory, with the inode each watches (a directory replaced is a new inode). */
  private readonly watchers = new Map<string, { w: FSWatcher; ino: number }>();
  private pending = new Set<string>();
  private everything = false;
  private timer: NodeJS.Timeout | null = null;
  private firstEventAt = 0;
  private closed = false;
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;

  constructor(
    paths: readonly string[],
    private readonly opts: PathWatcherOptions,
  ) {
    this.debounceMs = opts.debounceMs ?? 100;
    this.maxDelayMs = opts.maxDelayMs ?? 500;
    this.setPaths(paths);
  }

  /** Watches `paths` (resolved) from now on instead of the earlier ones. */
  setPaths(paths: readonly string[]): void {
    this.paths = [...paths];
    this.rewatch();
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    for (const { w } of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  /** The directories to watch now: every listed path's parent, and listed paths that are directories. */
  private wantedDirs(): Set<string> {
    const dirs = new Set<string>();
    for (const p of this.paths) {
      dirs.add(dirname(p));
      if (kindOf(p) === 'dir') dirs.add(p);
    }
    return dirs;
  }

  private rewatch(): void {
    if (this.closed) return;
    const wanted = this.wantedDirs();
    for (const [dir, { w, ino }] of this.watchers) {
      if (!wanted.has(dir) || inodeOf(dir) !== ino) {
        w.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of wanted) {
      const ino = inodeOf(dir);
      if (this.watchers.has(dir) || ino < 0) continue;
      try {
        const w = watch(dir, { persistent: false }, (_event, name) => this.event(dir, name));
        w.on('error', (err) => {
          // The directory went away (or inotify gave up on it): forget the watch; the next
          // rewatch sets it up again if the directory is back.
          w.close();
          if (this.watchers.get(dir)?.w === w) this.watchers.delete(dir);
          this.everything = true;
          this.schedule();
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.opts.onError?.(dir, err);
        });
        this.watchers.set(dir, { w, ino });
      } catch (err) {
        this.opts.onError?.(dir, err as Error);
      }
    }
  }

  /** Which listed files an event in `dir` about `name` may concern. */
  private event(dir: string, name: string | Buffer | null): void {
    if (this.closed) return;
    const file = name === null ? null : name.toString();
    let known = false;
    for (const p of this.paths) {
      if (file !== null && dirname(p) === dir && basename(p) === file) {
        // A listed path itself: a file, or a directory removed, created or replaced.
        if (kindOf(p) === 'dir') this.everything = true;
        else this.pending.add(p);
        known = true;
      } else if (p === dir) {
        if (file !== null && isManifestName(file)) this.pending.add(join(dir, file));
        else this.everything = true;
        known = true;
      }
    }
    if (!known) return; // another file in the parent directory of a listed one
    this.schedule();
  }

  private schedule(): void {
    const now = Date.now();
    if (this.timer === null) this.firstEventAt = now;
    else clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.debounceMs, this.firstEventAt + this.maxDelayMs - now));
    this.timer = setTimeout(() => this.fire(), wait);
  }

  private fire(): void {
    this.timer = null;
    if (this.closed) return;
    const files = this.everything ? undefined : [...this.pending];
    this.pending = new Set();
    this.everything = false;
    this.rewatch();
    this.opts.onChange(files);
  }
}
