/**
 * Imports point down: every module of src/ imports only from its own layer and the layers
 * below it (docs/architecture.md, "Layers"). The layers, lowest first:
 *
 *   src/*.ts (log.ts, user-error.ts: usable from anywhere)
 *   wire → pcap → core → decode → tables → stages → config → dataplane
 *     → ports, capture, admin, replay, cluster (one layer) → api → lab → cli, cni
 *
 * Every import is read with the TypeScript parser: `import … from`, `import type`, `export …
 * from`, side-effect imports, `import('…')` calls and `import('…')` types. Package imports
 * (`node:fs`, `zod`) are not layered. A dynamic import whose argument is not a string
 * literal cannot be checked and fails too, as does a folder that has no layer yet: a new
 * folder must be placed in LAYERS.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** Lowest first; folders in one entry share a layer and may import each other. '.' is src/ itself. */
const LAYERS: readonly (readonly string[])[] = [
  ['.'],
  ['wire'],
  ['pcap'],
  ['core'],
  ['decode'],
  ['tables'],
  ['stages'],
  ['config'],
  ['dataplane'],
  ['ports', 'capture', 'admin', 'replay', 'cluster'],
  ['api'],
  ['lab'],
  ['cli', 'cni'],
];

/** The folder of src/ a path (relative to src/) belongs to: '.' for the files at the top. */
function folderOf(srcRelative: string): string {
  const parts = srcRelative.split(sep);
  return parts.length === 1 ? '.' : parts[0];
}

function layerOf(folder: string): number {
  return LAYERS.findIndex((l) => l.includes(folder));
}

interface Import {
  /** The module specifier, or null for a dynamic import of a computed name. */
  spec: string | null;
  line: number;
}

/** Every import of a module's source text, in order. */
function importsOf(fileName: string, text: string): Import[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const found: Import[] = [];
  const add = (node: ts.Node, spec: ts.Node | undefined): void => {
    const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
    found.push({ spec: spec !== undefined && ts.isStringLiteralLike(spec) ? spec.text : null, line });
  };
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined) {
      add(node, node.moduleSpecifier);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node, node.arguments[0]);
    } else if (ts.isImportTypeNode(node)) {
      add(node, ts.isLiteralTypeNode(node.argument) ? node.argument.literal : undefined);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

/**
 * What is wrong with the imports of `files` (paths relative to src/ → source text): one line
 * per upward import, per import that cannot be checked, per folder without a layer.
 */
function layerViolations(files: ReadonlyMap<string, string>): string[] {
  const problems: string[] = [];
  for (const [file, text] of files) {
    const folder = folderOf(file);
    const from = layerOf(folder);
    const where = `src/${file.split(sep).join('/')}`;
    if (from < 0) {
      problems.push(`${where}: folder src/${folder}/ has no layer (add it to LAYERS in test/unit/layering.test.ts and to docs/architecture.md)`);
      continue;
    }
    for (const imp of importsOf(file, text)) {
      if (imp.spec === null) {
        problems.push(`${where}:${imp.line}: dynamic import of a computed name cannot be checked`);
        continue;
      }
      if (!imp.spec.startsWith('.')) continue; // a package or node: builtin
      const target = relative(SRC, resolve(SRC, dirname(file), imp.spec));
      if (target.startsWith('..')) {
        problems.push(`${where}:${imp.line}: imports '${imp.spec}', outside src/`);
        continue;
      }
      const toFolder = folderOf(target);
      const to = layerOf(toFolder);
      if (to > from) {
        problems.push(`${where}:${imp.line}: imports '${imp.spec}' from ${toFolder} (layer ${to}), above its own ${folder} (layer ${from})`);
      }
    }
  }
  return problems;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

describe('layering of src/', () => {
  it('has no module that imports from a layer above its own', () => {
    const files = new Map(sourceFiles(SRC).map((p) => [relative(SRC, p), readFileSync(p, 'utf8')] as const));
    expect(files.size).toBeGreaterThan(50);
    expect(layerViolations(files)).toEqual([]);
  });

  it('sees every form of import and reports an upward one with file, line and layers', () => {
    const text = [
      "import type { A } from '../core/stage.ts';",
      'import {',
      '  b,',
      "} from '../cli/main.ts';",
      "export { c } from './c.ts';",
      "import 'zod';",
      "// import { d } from '../cli/run.ts';",
      "const e = await import('../admin/server.ts');",
      'type F = typeof import(\'../lab/lab.ts\');',
      'const g = await import(name);',
    ].join('\n');
    expect(importsOf('x.ts', text).map((i) => `${i.line} ${i.spec}`)).toEqual([
      '1 ../core/stage.ts',
      '2 ../cli/main.ts',
      '5 ./c.ts',
      '6 zod',
      '8 ../admin/server.ts',
      '9 ../lab/lab.ts',
      '10 null',
    ]);
    expect(layerViolations(new Map([[join('dataplane', 'x.ts'), text]]))).toEqual([
      "src/dataplane/x.ts:2: imports '../cli/main.ts' from cli (layer 12), above its own dataplane (layer 8)",
      "src/dataplane/x.ts:8: imports '../admin/server.ts' from admin (layer 9), above its own dataplane (layer 8)",
      "src/dataplane/x.ts:9: imports '../lab/lab.ts' from lab (layer 11), above its own dataplane (layer 8)",
      'src/dataplane/x.ts:10: dynamic import of a computed name cannot be checked',
    ]);
  });

  it('allows the same layer and the files at the top of src/ from anywhere, and refuses an unplaced folder', () => {
    const files = new Map([
      [join('replay', 'x.ts'), "import { ReplayPort } from '../ports/replay-port.ts';\nimport { UserError } from '../user-error.ts';"],
      [join('wire', 'y.ts'), "import { createLogger } from '../log.ts';"],
      ['log.ts', "import { Graph } from './core/graph.ts';"],
      [join('newthing', 'z.ts'), ''],
    ]);
    expect(layerViolations(files)).toEqual([
      "src/log.ts:1: imports './core/graph.ts' from core (layer 3), above its own . (layer 0)",
      'src/newthing/z.ts: folder src/newthing/ has no layer (add it to LAYERS in test/unit/layering.test.ts and to docs/architecture.md)',
    ]);
  });
});
