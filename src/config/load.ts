/**
 * Reading a configuration: file → text → YAML/JSON document → schema → cross checks.
 *
 * `loadConfig(path)` and `parseConfig(text, source)` return a complete `Config` or throw a
 * `ConfigError` that lists every problem as a `path: message` line (YAML syntax errors as
 * `line L, column C: message`). `validateConfigObject` is the pure core, for tests and for
 * a reload, where a running dataplane keeps its last good config when the new one fails.
 *
 * The manifests a config names (`manifests:`, Kubernetes Services and EndpointSlices) are
 * read with it (`loadConfigParts` gives their Services, kept apart from the config's own:
 * the dataplane applies the two sets as two sources), and their problems are part of the
 * error, each line naming its file and line (manifests.ts).
 *
 * JSON is valid YAML 1.2, so one parser reads both; the format is never guessed from the
 * file name. Schema errors come first; cross checks run only on a schema-valid config,
 * since they need well-formed values to compare.
 */
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { UserError } from '../user-error.ts';
import { type Config, configSchema } from './schema.ts';
import { resolveManifestPath } from './manifest-files.ts';
import { type ManifestCache, ManifestSet } from './manifest-set.ts';
import { crossCheck } from './validate.ts';
import { issueLines } from './zod-issues.ts';

export type { Config } from './schema.ts';
export { formatPath } from './zod-issues.ts';

/** An unusable configuration. `errors` are `path: message` lines; the message prefixes each
 * with the source so it can be printed as it is (the CLI shows it without a stack trace).
 * `located` are the problems of the manifests it names, each a line naming its own file. */
export class ConfigError extends UserError {
  constructor(
    readonly source: string,
    readonly errors: string[],
    readonly located: string[] = [],
  ) {
    super([...errors.map((e) => `${source}: ${e}`), ...located].join('\n'));
    this.name = 'ConfigError';
  }
}

/** A loaded config with what its manifests gave. */
export interface LoadedConfig {
  /** The config; its `services` are the file's own. */
  config: Config;
  /** The manifests' state and Services (`list()`), kept up to date while running (manifest-set.ts). */
  manifests: ManifestSet;
  /** The manifest paths, resolved against the config file's directory. */
  manifestPaths: string[];
  /** What the manifests hold that is left out, `FILE: note: ...`. */
  notes: string[];
}

export interface LoadOptions {
  /** Parses of manifest files kept from an earlier load: files whose text is the same are not parsed again. */
  cache?: ManifestCache;
}

/** Runs the schema alone: every value problem at once, or the defaulted config. */
export function schemaCheck(obj: unknown): { ok: true; config: Config } | { ok: false; errors: string[] } {
  if (obj === null || obj === undefined) return { ok: false, errors: ['(top level): the file is empty'] };
  const result = configSchema.safeParse(obj, { reportInput: true });
  if (result.success) return { ok: true, config: result.data };
  return { ok: false, errors: result.error.issues.flatMap(issueLines) };
}

export type ValidationResult = { ok: true; config: Config } | { ok: false; errors: string[] };

/** Schema and cross checks on an already parsed object; never throws for bad input. */
export function validateConfigObject(obj: unknown): ValidationResult {
  const parsed = schemaCheck(obj);
  if (!parsed.ok) return parsed;
  const errors = crossCheck(parsed.config);
  return errors.length > 0 ? { ok: false, errors } : parsed;
}

/** YAML (or JSON) text to a parsed object, or the syntax errors with line and column. */
function parseText(text: string): { ok: true; value: unknown } | { ok: false; errors: string[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      errors: doc.errors.map((e) => {
        const pos = lines.linePos(e.pos[0]);
        return `line ${pos.line}, column ${pos.col}: ${e.message.split('\n')[0]}`;
      }),
    };
  }
  try {
    return { ok: true, value: doc.toJS({ maxAliasCount: 100 }) };
  } catch (err) {
    // An alias bomb (exponential expansion through anchors) is refused here.
    return { ok: false, errors: [`(top level): ${(err as Error).message}`] };
  }
}

/**
 * Parses and validates configuration text and reads the manifests it names (relative paths
 * from the directory of `source`, the config file's name); every problem at once.
 */
export function parseConfigParts(text: string, source: string, opts: LoadOptions = {}): LoadedConfig {
  const parsed = parseText(text);
  if (!parsed.ok) throw new ConfigError(source, parsed.errors);
  const result = schemaCheck(parsed.value);
  if (!result.ok) throw new ConfigError(source, result.errors);
  const config = result.config;
  const errors = crossCheck(config);
  const manifests = new ManifestSet(config.services, opts.cache);
  const manifestPaths = config.manifests.map((p) => resolveManifestPath(dirname(source), p));
  let located: string[] = [];
  let notes: string[] = [];
  if (manifestPaths.length > 0) {
    const loaded = manifests.load(manifestPaths);
    located = loaded.errors;
    notes = loaded.notes;
  }
  if (errors.length > 0 || located.length > 0) throw new ConfigError(source, errors, located);
  return { config, manifests, manifestPaths, notes };
}

/** Parses and validates configuration text; `source` names it in errors (a file name). */
export function parseConfig(text: string, source: string): Config {
  return parseConfigParts(text, source).config;
}

const READ_ERRORS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'is a directory, not a file',
  ENOTDIR: 'a part of the path is not a directory',
};

/** Reads and validates a configuration file and the manifests it names. */
export function loadConfigParts(path: string, opts: LoadOptions = {}): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    throw new ConfigError(path, [`cannot read the file: ${READ_ERRORS[code] ?? (err as Error).message}`]);
  }
  return parseConfigParts(text, path, opts);
}

/** Reads and validates a configuration file and the manifests it names (their Services: loadConfigParts). */
export function loadConfig(path: string): Config {
  return loadConfigParts(path).config;
}
