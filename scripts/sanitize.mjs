#!/usr/bin/env node
// `npm run test:sanitize`: the native-heavy part of the suite against the addon
// built with AddressSanitizer + UndefinedBehaviorSanitizer (docs/robustness.md).
//
//   1. cmake-js builds build/sanitize/Release/forksafe.node (CMakeLists.txt,
//      -DFORKSAFE_SANITIZE=ON); build/Release/forksafe.node, the one the normal
//      suite loads, is not touched (it is brought up to date first, as
//      `npm test` does; note that `npm run build:native`, a node-gyp rebuild,
//      deletes all of build/, this build too). dist/ and build/fixtures are
//      (re)built as `npm test` does.
//   2. scripts/run-tests.mjs (tap) runs the files below with libasan preloaded
//      into every node process (LD_PRELOAD: node itself is not instrumented, so
//      the ASan runtime must come first) and FORKSAFE_ADDON_PATH naming the
//      sanitized addon (lib/core/binding.ts). Both are inherited by every child that
//      keeps the environment: Process children, the forkserver and its workers,
//      fork() children. A child started with a fresh environment (`env -i`, or
//      Process({ env })) loses both together and runs the normal addon.
//   3. Every sanitizer report goes to a file in a fresh directory (log_path;
//      one file per reporting process, so a child's report is not lost with its
//      stderr). Each report file counts as one failure and is printed.
//
// Ends with `N passed, N failed` (the test points of run-tests.mjs plus one
// failure per report) and exits non-zero if anything failed.
//
// Usage: node scripts/sanitize.mjs [--no-build] [test files...]
//   (default files: FILES below). Needs g++ with libasan/libubsan, cmake.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

// The native-heavy files. Left out, and why:
//   arguments.ts, context.ts   argument and context checks in lib/; the native
//                              side of argument checking is fuzzed by handles.ts.
//   docs-examples.ts, package.ts
//                              run examples through `env -i` or an installed
//                              tarball: their processes load the normal addon.
//   pool.ts                    the Pool (lib/pool) on top of Process and Pipe:
//                              nothing native the files below do not run.
//   leaks.ts                   counts mappings, fds and /dev/shm entries, which
//                              no sanitizer checks (LeakSanitizer is off: node
//                              does not free everything at exit); ~35 s here.
// test/fork.ts's fixtures that start through `env -i` (the V8-pool tests) run
// the normal addon, as said above.
const FILES = [
  'test/lock.ts',
  'test/semaphore.ts',
  'test/event.ts',
  'test/condition.ts',
  'test/barrier.ts',
  'test/shared-memory.ts',
  'test/handles.ts',
  'test/async.ts',
  'test/fork.ts',
  'test/forkserver.ts',
  'test/process.ts',
  'test/fuzz-shared.ts',
  'test/pipe.ts', // native ownerAlive() and word waits from lib/ipc
];

const args = process.argv.slice(2);
const noBuild = args.includes('--no-build');
const files = args.filter((a) => a !== '--no-build');

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit', ...opts });
  if (r.status !== 0) {
    console.log(`# ${cmd} ${argv.join(' ')} failed (${r.signal ?? `exit ${r.status}`})`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
}

function compilerFile(name) {
  const cxx = process.env.CXX || 'g++';
  const r = spawnSync(cxx, [`-print-file-name=${name}`], { encoding: 'utf8' });
  const p = (r.stdout ?? '').trim();
  return p.startsWith('/') && existsSync(p) ? p : null;
}

const addon = join(root, 'build', 'sanitize', 'Release', 'forksafe.node');
if (!noBuild) {
  // The normal addon first: children started with a fresh environment load it,
  // and a `node-gyp rebuild` (which ensure-addon may run) wipes all of build/.
  run(process.execPath, [join(root, 'scripts', 'ensure-addon.mjs')]);
  const cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
  run(process.execPath, [cmakeJs, 'build', '--out', 'build/sanitize', '--CDFORKSAFE_SANITIZE=ON']);
  run('npm', ['run', '--silent', 'build:ts']);
  run('npm', ['run', '--silent', 'build:fixtures']);
}
const libasan = compilerFile('libasan.so');
if (!libasan || !existsSync(addon)) {
  console.log(`# ${!libasan ? 'no libasan.so from the compiler (apt: libasan8 / gcc)' : `no ${addon}`}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const reports = mkdtempSync(join(tmpdir(), 'forksafe-sanitize-'));
const env = {
  ...process.env,
  LD_PRELOAD: [libasan, process.env.LD_PRELOAD].filter(Boolean).join(' '),
  FORKSAFE_ADDON_PATH: addon,
  // detect_leaks=0: node does not free everything at exit (by design), so
  //   LeakSanitizer would report node, not us.
  // abort_on_error=1: a report ends the process with SIGABRT, which every test
  //   sees as a crash (and the report file says why).
  // allow_user_segv_handler=1: V8 installs its own SIGSEGV handler (wasm trap
  //   handler) and passes other faults on.
  // log_path: one file per reporting process (<prefix>.<pid>).
  ASAN_OPTIONS: [
    'detect_leaks=0', 'abort_on_error=1', 'allow_user_segv_handler=1', 'print_legend=0', 'color=never',
    `log_path=${join(reports, 'asan')}`, process.env.ASAN_OPTIONS,
  ].filter(Boolean).join(':'),
  // -fno-sanitize-recover makes every UBSan check fatal; halt_on_error too.
  UBSAN_OPTIONS: [
    'print_stacktrace=1', 'halt_on_error=1', 'abort_on_error=1', 'color=never', process.env.UBSAN_OPTIONS,
  ].filter(Boolean).join(':'),
  // UBSAN_OPTIONS=log_path does not reach libubsan when libasan is preloaded
  // (native/sanitize.cc sets it from this instead).
  FORKSAFE_UBSAN_LOG_PATH: join(reports, 'ubsan'),
};

// The set-up works or nothing below means anything: a node started with this
// environment runs the ASan runtime and the sanitized addon.
{
  const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(join(root, 'dist', 'core', 'binding.js'))});
    const maps = require('fs').readFileSync('/proc/self/maps', 'utf8');
    process.stdout.write(JSON.stringify({ asan: maps.includes('libasan'), addon: maps.includes(${JSON.stringify(addon)}) }));`],
  { cwd: root, env, encoding: 'utf8' });
  let ok = false;
  try {
    const r = JSON.parse(probe.stdout);
    ok = r.asan && r.addon;
  } catch {
    /* reported below */
  }
  if (!ok) {
    console.log(`# a node with the sanitizer environment did not load libasan and ${addon}: ${probe.stdout} ${probe.stderr}`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
}

const started = Date.now();
let out = '';
const child = spawn(process.execPath, [join(root, 'scripts', 'run-tests.mjs'), ...(files.length ? files : FILES)], {
  cwd: root,
  env,
  stdio: ['inherit', 'pipe', 'inherit'],
});
child.stdout.on('data', (d) => {
  out += d;
  process.stdout.write(d);
});
const forward = (sig) => child.kill(sig);
process.on('SIGINT', forward).on('SIGTERM', forward);
const [code, signal] = await new Promise((resolve) => child.on('close', (c, s) => resolve([c, s])));

const m = /^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?\s*$/m.exec(out.split('\n').filter((l) => /^\d+ passed, /.test(l)).pop() ?? '');
let passed = m ? Number(m[1]) : 0;
let failed = m ? Number(m[2]) : 1;
const skipped = m && m[3] ? Number(m[3]) : 0;
if (!m) console.log(`# run-tests.mjs ended without its count line (${signal ?? `exit ${code}`})`);

const found = readdirSync(reports).sort();
for (const f of found) {
  console.log(`\n# ==== sanitizer report ${f} ====`);
  console.log(readFileSync(join(reports, f), 'utf8').trimEnd().split('\n').map((l) => `# ${l}`).join('\n'));
}
rmSync(reports, { recursive: true, force: true });
failed += found.length;
if (found.length) console.log(`# ${found.length} sanitizer report(s), each counted as a failure`);
console.log(`# sanitized run: ${((Date.now() - started) / 1000).toFixed(0)} s`);
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
process.exit(failed > 0 ? 1 : 0);
