/**
 * Reading a configuration: file → text → YAML/JSON document → schema → cross checks.
 *
 * `loadConfig(path)` and `parseConfig(text, source)` return a complete `Config` or throw a
 * `ConfigError` that lists every problem as a `path: message` line (YAML syntax errors as
 * `line L, column C: message`). `validateConfigObject` is the pure core, for tests and for
 * a reload, where a running dataplane keeps its last good config when the new one fails.
 *
 * JSON is valid YAML 1.2, so one parser reads both; the format is never guessed from the
 * file name. Schema errors come first; cross checks run only on a schema-valid config,
 * since they need well-formed values to compare.
 */
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import { UserError } from '../user-error.ts';
import type { z } from 'zod';
import { type Config, configSchema } from './schema.ts';
import { crossCheck } from './validate.ts';

export type { Config } from './schema.ts';

/** An unusable configuration. `errors` are `path: message` lines; the message prefixes each
 * with the source so it can be printed as it is (the CLI shows it without a stack trace). */
export class ConfigError extends UserError {
  constructor(
    readonly source: string,
    readonly errors: string[],
  ) {
    super(errors.map((e) => `${source}: ${e}`).join('\n'));
    this.name = 'ConfigError';
  }
}

// ---- zod issues as `path: message` lines ----

/** `bridges[0].ageingSeconds` from ['bridges', 0, 'ageingSeconds']. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(String(key))) out += out === '' ? String(key) : `.${String(key)}`;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out === '' ? '(top level)' : out;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `'${value}'`;
  return String(value);
}

const EXPECTED: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
};

function issueLines(issue: z.core.$ZodIssue): string[] {
  const at = (extra: PropertyKey[] = []) => formatPath([...issue.path, ...extra]);
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((k) => `${at([k])}: unknown key`);
    case 'invalid_type':
      if (input === undefined) return [`${at()}: required`];
      return [`${at()}: expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${describe(input)}`];
    case 'invalid_value':
      return [`${at()}: must be one of ${issue.values.map(String).join(', ')} (got ${describe(input)})`];
    case 'too_small':
      if (issue.origin === 'array') return [`${at()}: needs at least ${issue.minimum} entr${issue.minimum === 1 ? 'y' : 'ies'}`];
      if (issue.origin === 'string') return [`${at()}: must not be empty`];
      return [`${at()}: must be at least ${issue.minimum} (got ${describe(input)})`];
    case 'too_big':
      return [`${at()}: must be at most ${issue.maximum} (got ${describe(input)})`];
    default:
      return [`${at()}: ${issue.message}`];
  }
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

/** Parses and validates configuration text; `source` names it in errors (a file name). */
export function parseConfig(text: string, source: string): Config {
  const parsed = parseText(text);
  if (!parsed.ok) throw new ConfigError(source, parsed.errors);
  const result = validateConfigObject(parsed.value);
  if (!result.ok) throw new ConfigError(source, result.errors);
  return result.config;
}

const READ_ERRORS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'is a directory, not a file',
  ENOTDIR: 'a part of the path is not a directory',
};

/** Reads and validates a configuration file. */
export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    throw new ConfigError(path, [`cannot read the file: ${READ_ERRORS[code] ?? (err as Error).message}`]);
  }
  return parseConfig(text, path);
}
