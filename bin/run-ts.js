#!/usr/bin/env node
// Runs a TypeScript entry point in this process through tsx's ES module loader alone:
// `node bin/run-ts.js FILE [ARGS...]`, with process.argv as if FILE had been run by node
// (argv[1] is FILE, so `import.meta.url === file://argv[1]` holds in it).
//
// Not `tsx FILE` or `node --import tsx`: those also install tsx's CommonJS hooks, and with
// them the same compiled code runs 15-25% slower on the packet path (docs/benchmarks.md,
// "Running"). Modules loaded through this loader run as fast as tsc's output.
import { register } from 'tsx/esm/api';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

register();
const entry = resolve(process.argv[2]);
process.argv.splice(1, 2, entry);
await import(pathToFileURL(entry).href);
