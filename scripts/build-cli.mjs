// Bundles the command line into dist/cli/ with esbuild, after tsc has compiled dist/ for the
// library API and its type declarations. Start-up time is what this is for
// (docs/benchmarks.md, "Start-up time of the command"):
//
// - main.cjs is src/cli/main.ts with commander inlined; each command (src/cli/<name>.ts, loaded
//   by main only when it runs) is one file, <name>.cjs, holding every module of this
//   repository it needs. So `decode` reads 4 files instead of ~35 (and commander's 7).
// - CommonJS, not ES modules: main.cjs and the command's file are loaded with require(),
//   synchronously, where Node 20 loads each ES module through its asynchronous loader.
// - The modules main and the commands share (user-error.ts: `instanceof UserError`;
//   stdout.ts: whether stdout's reader has gone) are files of their own, loaded once.
//
// The files sit at the depth of the modules they replace (dist/cli/), so the paths the sources
// compute from import.meta.url (the package root for the addon, bin/) still hold. npm
// dependencies other than commander stay external: pino-pretty, etcd3 and the rest load
// files of their own at run time.
import { build } from 'esbuild';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const cliSrc = join(root, 'src', 'cli');
const outdir = join(root, 'dist', 'cli');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const external = Object.keys(pkg.dependencies).filter((d) => d !== 'commander');

/** Modules with one instance per process: output file name by source path. */
const SHARED = new Map([
  [join(root, 'src', 'user-error.ts'), 'user-error'],
  [join(cliSrc, 'stdout.ts'), 'stdout'],
]);
/** The commands main.ts loads lazily, one file each. */
const COMMANDS = readdirSync(cliSrc)
  .filter((f) => f.endsWith('.ts') && f !== 'main.ts' && !SHARED.has(join(cliSrc, f)))
  .map((f) => basename(f, '.ts'));

/**
 * Imports of a shared module (from anywhere) and main's imports of a command become
 * require() calls of the file built for it.
 */
const ownFiles = {
  name: 'own-files',
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, (args) => {
      const target = resolve(dirname(args.importer), args.path);
      const shared = SHARED.get(target);
      if (shared !== undefined && args.importer !== target) return { path: `./${shared}.cjs`, external: true };
      if (args.importer === join(cliSrc, 'main.ts') && dirname(target) === cliSrc && COMMANDS.includes(basename(target, '.ts'))) {
        return { path: `./${basename(target, '.ts')}.cjs`, external: true };
      }
      return undefined;
    });
  },
};

/**
 * commander requires node:child_process at load time only to spawn executable subcommands,
 * which nodeplane has none of; loading it pulls in net, dgram and stream. This stand-in
 * loads it on first use instead.
 */
const lazyChildProcess = {
  name: 'lazy-child-process',
  setup(b) {
    b.onResolve({ filter: /^node:child_process$/ }, (args) =>
      /[\\/]node_modules[\\/]commander[\\/]/.test(args.importer) ? { path: 'child_process', namespace: 'lazy' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, () => ({
      contents: "module.exports = { spawn: (...args) => require('node:child_process').spawn(...args) };",
      loader: 'js',
    }));
  },
};

// tsc's one-module-per-file output of src/cli/ is replaced (the command line is not part of
// the library API: it ships no declarations).
rmSync(outdir, { recursive: true, force: true });

await build({
  entryPoints: [
    { in: join(cliSrc, 'main.ts'), out: 'main' },
    ...COMMANDS.map((c) => ({ in: join(cliSrc, `${c}.ts`), out: c })),
    ...[...SHARED].map(([path, name]) => ({ in: path, out: name })),
  ],
  outdir,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external,
  plugins: [ownFiles, lazyChildProcess],
  // `import()` of another file becomes a require() inside a promise.
  supported: { 'dynamic-import': false },
  // ES modules are strict; so are these files. import.meta.url is the file's own URL.
  banner: { js: "'use strict';\nconst __import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
  define: { 'import.meta.url': '__import_meta_url' },
  // Less to read and parse at every start (main.cjs: 136 kB to 66 kB, most of it commander's
  // doc comments); names are kept, so stack traces still name the functions.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
});
