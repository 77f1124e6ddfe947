/**
 * The package as a user gets it: `npm pack` (compiled JavaScript, type declarations, the
 * prebuilt addon: TAP devices and libpcap's filters in one binary), installed with install scripts disabled into an empty temporary
 * project, then used there — a vitest file of the user's calling replay() and expectReplay(),
 * the `nodeplane` command's `replay --expect` on this repository's fixtures, and (as root,
 * an end-to-end test) `nodeplane demo`, which needs the prebuilt addon to load.
 *
 * Packing builds dist/ and the prebuild (the prepack script), in a copy of the sources; it and
 * the install happen once for this file. npm is asked to prefer its cache: `npm ci` has put every runtime dependency
 * there.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missingPrerequisite, skipUnlessReady } from '../e2e/e2e-prerequisites.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = join(REPO, 'captures', 'replay');
const VITEST = join(REPO, 'node_modules', 'vitest', 'vitest.mjs');
/** Virtual seconds each fixture case runs on after its last frame. */
const SETTLE: Record<string, number> = { 'neigh-fail': 5 };
/** Byte offset of frame 2's IPv4 TTL in ping-gateway's expected pa.pcap (pcap header, record 1, record 2's header, Ethernet). */
const TTL_OFFSET = 24 + 16 + 42 + 16 + 14 + 8;

let project = '';

function sh(cmd: string, args: string[], opts: { cwd?: string; timeout?: number; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', timeout: opts.timeout ?? 120_000, cwd: opts.cwd ?? project, env: opts.env ?? process.env });
}

function ok(r: SpawnSyncReturns<string>, what: string): SpawnSyncReturns<string> {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status ?? r.signal}): ${r.stdout}\n${r.stderr}${r.error ? `\n${r.error.message}` : ''}`);
  return r;
}

/** The installed `nodeplane` command, as npm linked it from the package's "bin". */
function nodeplane(args: string[]): SpawnSyncReturns<string> {
  return sh(process.execPath, [join(project, 'node_modules', '.bin', 'nodeplane'), ...args]);
}

function caseArgs(name: string): string[] {
  const dir = join(FIXTURES, name);
  const ins = readdirSync(dir)
    .filter((f) => f.endsWith('.pcap'))
    .flatMap((f) => ['--in', `${f.replace(/\.pcap$/, '')}=${join(dir, f)}`]);
  return ['replay', '--config', join(FIXTURES, 'lab.yaml'), ...ins, '--settle', String(SETTLE[name] ?? 1)];
}

/** A copy of ping-gateway's golden files whose pa.pcap has the reply's TTL changed from 64 to 63. */
function changedGolden(dir: string): string {
  cpSync(join(FIXTURES, 'ping-gateway', 'expected'), dir, { recursive: true });
  const pa = readFileSync(join(dir, 'pa.pcap'));
  expect(pa[TTL_OFFSET]).toBe(64);
  pa[TTL_OFFSET] = 63;
  writeFileSync(join(dir, 'pa.pcap'), pa);
  return dir;
}

/**
 * Packs a copy of the repository's sources (node_modules linked), so that building dist/,
 * prebuilds/ and node-gyp's build/ never touches the checkout while other test files load its
 * addon from build/Release.
 */
function packCopy(into: string): string {
  const stage = join(into, 'stage');
  mkdirSync(stage);
  for (const entry of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'binding.gyp', 'README.md', 'bin', 'native', 'scripts', 'src']) {
    cpSync(join(REPO, entry), join(stage, entry), { recursive: true });
  }
  symlinkSync(join(REPO, 'node_modules'), join(stage, 'node_modules'));
  const packDir = join(into, 'pack');
  mkdirSync(packDir);
  const packed = ok(sh('npm', ['pack', '--silent', '--pack-destination', packDir], { cwd: stage, timeout: 400_000 }), 'npm pack');
  return join(packDir, packed.stdout.trim().split('\n').pop()!);
}

beforeAll(() => {
  project = mkdtempSync(join(tmpdir(), 'nodeplane-package-'));
  const tarball = packCopy(mkdtempSync(join(tmpdir(), 'nodeplane-pack-')));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'uses-nodeplane', version: '1.0.0', type: 'module', private: true }));
  ok(sh('npm', ['install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', tarball], { timeout: 300_000 }), 'npm install of the tarball');
  rmSync(dirname(dirname(tarball)), { recursive: true, force: true });
}, 700_000);

afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('holds compiled JavaScript, declarations and the prebuilt addon; nothing transpiles TypeScript at run time', () => {
    const pkg = join(project, 'node_modules', 'nodeplane');
    expect(existsSync(join(pkg, 'dist', 'api', 'index.js'))).toBe(true);
    expect(existsSync(join(pkg, 'dist', 'api', 'index.d.ts'))).toBe(true);
    expect(existsSync(join(pkg, 'dist', 'cli', 'main.cjs'))).toBe(true);
    // One binary with every part of the addon: TAP devices, libpcap's filters (which find
    // libpcap at run time; this machine has it), the capture ring's copyRanges.
    const prebuilt = readdirSync(join(pkg, 'prebuilds', 'linux-x64')).filter((f) => f.endsWith('.node'));
    expect(prebuilt).toHaveLength(1);
    const addon = ok(
      sh(process.execPath, ['-e', `const a = require(${JSON.stringify(join(pkg, 'prebuilds', 'linux-x64', prebuilt[0]!))}); console.log(typeof a.open, typeof a.filterCompile, typeof a.copyRanges, a.filterLoad())`]),
      'loading the prebuilt addon',
    );
    expect(addon.stdout.trim()).toBe('function function function null');
    expect(existsSync(join(pkg, 'src'))).toBe(false);
    // Install scripts were off: nothing was compiled, and neither tsx nor typescript came along.
    expect(existsSync(join(pkg, 'build'))).toBe(false);
    expect(existsSync(join(project, 'node_modules', 'tsx'))).toBe(false);
    expect(existsSync(join(project, 'node_modules', 'typescript'))).toBe(false);
    const help = ok(nodeplane(['replay', '--help']), 'nodeplane replay --help');
    expect(help.stdout).toContain('--expect <dir>');
  });

  it('decodes a capture with the bundled command line, and reports a missing file without a stack trace', () => {
    const decoded = ok(nodeplane(['decode', join(FIXTURES, 'ping-gateway', 'pa.pcap')]), 'nodeplane decode');
    expect(decoded.stdout.split('\n')).toEqual([
      expect.stringMatching(/^2023-11-14 22:13:20\.000000 .* ARP, Request who-has 10\.244\.1\.1 tell 10\.244\.1\.2$/),
      expect.stringMatching(/^2023-11-14 22:13:20\.010000 .* IP 10\.244\.1\.2 > 10\.244\.1\.1: ICMP echo request, id 119, seq 1, length 64$/),
      '',
    ]);
    // The command's UserError is main's (one shared file): a message and status 1, no trace.
    const missing = nodeplane(['decode', join(project, 'missing.pcap')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toBe(`nodeplane: ${join(project, 'missing.pcap')}: no such file\n`);
  });

  it("runs a user's vitest file: a golden case passes, a changed golden file fails naming the frame and field", () => {
    cpSync(join(FIXTURES, 'lab.yaml'), join(project, 'lab.yaml'));
    cpSync(join(FIXTURES, 'ping-gateway'), join(project, 'ping-gateway'), { recursive: true });
    changedGolden(join(project, 'changed'));
    writeFileSync(
      join(project, 'golden.test.js'),
      `import { replay, expectReplay } from 'nodeplane';

const run = () => replay({ config: 'lab.yaml', inputs: { pa: 'ping-gateway/pa.pcap' } });

test('ping to the gateway matches its golden pcaps', async () => {
  const r = await run();
  expect(r.ports.pa[1].decoded.icmp?.type).toBe(0);
  expectReplay(r, 'ping-gateway/expected');
});

test('ping to the gateway against a changed golden file', async () => {
  expectReplay(await run(), 'changed');
});
`,
    );
    const r = sh(process.execPath, [VITEST, 'run', '--globals', '--root', project, 'golden.test.js'], { env: { ...process.env, CI: 'true', NO_COLOR: '1', FORCE_COLOR: '0' } });
    const out = r.stdout + r.stderr;
    expect(r.status, out).toBe(1);
    expect(out).toMatch(/Tests\s+1 failed \| 1 passed/);
    expect(out).toContain('ping to the gateway against a changed golden file');
    expect(out).toContain('ReplayMismatchError');
    expect(out).toMatch(/pa: 1 of 2 frames differ[\s\S]*frame 2 at 1700000000\.010000: .*ICMP echo reply/);
    expect(out).toContain('ip.ttl: expected 63, got 64');
  });

  it('replay --expect passes on every fixture case of the repository', () => {
    const cases = readdirSync(FIXTURES, { withFileTypes: true }).filter((e) => e.isDirectory());
    expect(cases.length).toBeGreaterThanOrEqual(9);
    for (const c of cases) {
      const r = nodeplane([...caseArgs(c.name), '--expect', join(FIXTURES, c.name, 'expected')]);
      expect(r.status, `${c.name}: ${r.stdout}${r.stderr}`).toBe(0);
      expect(r.stderr).toContain('every port matches');
    }
  });

  it('replay --expect fails, naming the frame and field, after one byte of a golden file changed', () => {
    const golden = changedGolden(join(project, 'changed-cli'));
    const r = nodeplane([...caseArgs('ping-gateway'), '--expect', golden]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^pa: 1 of 2 frames differ \(2 frames\)$/m);
    expect(r.stdout).toMatch(/^ {2}frame 2 at 1700000000\.010000: .*ICMP echo reply/m);
    expect(r.stdout).toMatch(/^ {4}ip\.ttl: expected 63, got 64$/m);
    expect(r.stderr).toContain(`output differs from ${golden}`);
  });
});

const problem = missingPrerequisite(['ping', 'curl', 'python3']);
const skipDemo = skipUnlessReady('nodeplane demo from the installed package', problem);

describe.skipIf(skipDemo)('the installed package, end to end (root)', () => {
  it('runs nodeplane demo with the prebuilt addon (installed with --ignore-scripts)', () => {
    if (problem) throw new Error(`end-to-end prerequisites missing: ${problem}`);
    const r = nodeplane(['demo', '--out', join(project, 'demo')]);
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('ok   pa → pb across cni0 (ping)');
    expect(r.stdout).toContain('ok   pa → pc through the router (ping)');
    expect(r.stdout).toMatch(/ok {3}pa → pb HTTP GET .*200 OK/);
    expect(r.stdout).toContain('lab removed.');
  });
});
