/**
 * zod issues as `path: message` lines, the form every configuration error takes: the config
 * file's (load.ts) and the Kubernetes manifests' (manifests.ts), whose lines also name the
 * file and line.
 */
import type { z } from 'zod';

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

export function issueLines(issue: z.core.$ZodIssue): string[] {
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
