#!/usr/bin/env node
// nodeplane-cni, the CNI plugin (install it, or a link to it, as /opt/cni/bin/nodeplane-cni).
// An installed package runs the compiled JavaScript in dist/; a checkout of the repository
// runs the TypeScript sources through tsx's loader, as bin/nodeplane.js does.
import { existsSync } from 'node:fs';

const source = new URL('../src/cni/main.ts', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import('../dist/cni/main.js');
}
