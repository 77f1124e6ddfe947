#!/usr/bin/env node
// The nodeplane command. An installed package runs the compiled command line in dist/cli/:
// CommonJS files loaded with require(), synchronously, which starts faster on Node 20 than its
// asynchronous ES module loader (scripts/build-cli.mjs, docs/benchmarks.md). A checkout of the
// repository (src/ is there, dist/ is not shipped in it) runs the TypeScript sources through
// tsx's loader, in this process, so no build step stands between an edit and a run.
'use strict';
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

const source = join(__dirname, '..', 'src', 'cli', 'main.ts');
if (existsSync(source)) {
  // A failure here is an unhandled rejection: Node prints it and exits with status 1.
  import('tsx/esm/api').then(({ register }) => {
    register();
    return import(pathToFileURL(source).href);
  });
} else {
  require('../dist/cli/main.cjs');
}
