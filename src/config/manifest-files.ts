/**
 * Which files `manifests:` names, and their text.
 *
 * An entry of `manifests:` is a file or a directory, relative to the config file's directory
 * when not absolute (as kubelet reads the paths in its config file). A file is read whatever
 * its name; a directory as `kubectl apply -f DIR` reads one: its files ending in .yaml, .yml
 * or .json, not its subdirectories (kubectl recurses only with -R; nodeplane never does), in
 * name order. Symbolic links are followed, so a Kubernetes ConfigMap volume (files linked
 * through `..data`) works; a dangling link, such as an editor's lock file, is no file.
 *
 * `listManifestFiles` at start: a named path that does not exist is an error, as kubectl's
 * `-f` makes it. While running, a path that disappears simply holds no files any more.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { ManifestError } from './manifests.ts';

export const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json'] as const;

export const isManifestName = (name: string): boolean => MANIFEST_EXTENSIONS.some((e) => name.endsWith(e));

/** `path` of the config's `manifests:`, resolved against the config file's directory. */
export function resolveManifestPath(configDir: string, path: string): string {
  return isAbsolute(path) ? path : join(configDir, path);
}

const REASONS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  ENOTDIR: 'a part of the path is not a directory',
  ELOOP: 'too many symbolic links',
};

/** A reason for an errno, in words. */
export const fsReason = (err: unknown): string => {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  return REASONS[code] ?? (err as Error).message;
};

export type Kind = 'file' | 'dir' | 'none';

/** What `path` is now (following links); 'none' when it is nothing readable. */
export function kindOf(path: string): Kind {
  try {
    const st = statSync(path);
    return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'none';
  } catch {
    return 'none';
  }
}

/** The manifest files of directory `dir`, in name order; [] when it is gone. */
export function filesOfDir(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter(isManifestName)
    .sort()
    .map((n) => join(dir, n))
    .filter((p) => kindOf(p) === 'file');
}

/** The files a list of resolved paths names now; missing paths hold no file. */
export function currentManifestFiles(paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    const kind = kindOf(p);
    if (kind === 'file') out.push(p);
    else if (kind === 'dir') out.push(...filesOfDir(p));
  }
  return [...new Set(out)];
}

/** The files a list of resolved paths names, or errors for the paths that name nothing. */
export function listManifestFiles(paths: readonly string[]): { files: string[]; errors: string[] } {
  const errors: string[] = [];
  for (const p of paths) {
    try {
      const st = statSync(p);
      if (!st.isFile() && !st.isDirectory()) errors.push(`${p}: not a file or a directory`);
    } catch (err) {
      errors.push(`${p}: ${fsReason(err)}`);
    }
  }
  return { files: currentManifestFiles(paths), errors };
}

/** A file's text, or null when it is gone (removed, or replaced by a directory); a file that
 * is there but cannot be read is a ManifestError. */
export function readManifestFile(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') return null;
    throw new ManifestError([`${path}: cannot read the file: ${fsReason(err)}`]);
  }
}

/** Absolute form of a path, for comparing a watcher's names with the configured ones. */
export const absolute = (p: string): string => resolve(p);
