#!/usr/bin/env node
// The nodeplane command. An installed package runs the compiled JavaScript in dist/; a checkout
// of the repository (src/ is there, dist/ is not shipped in it) runs the TypeScript sources
// through tsx's loader, in this process, so no build step stands between an edit and a run.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import('../dist/cli/main.js');
}
