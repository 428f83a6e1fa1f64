'use strict';
// Where a forkserver start spends its time, for bench/forkserver.mjs: what
// the forkserver does per start, redone by hand in a process like it (CommonJS,
// `typescript` required, node --single-threaded), with forksafe's fork().
//
//   node --single-threaded bench/forkserver-zygote.cjs <n>
//
// Times (ms from the fork() call; the child stamps the monotonic clock):
//   first        the child's first statement (fork of a node holding typescript)
//   require      the child then require()s the benchmark's target module
//   import-cold  the child import()s it instead, in a parent that has never
//                run import() (each child then starts the ESM loader itself)
//   import-warm  the same after this process ran one import() of another file
// Prints one JSON line.
const path = require('node:path');
const fs = require('node:fs');
const { pathToFileURL } = require('node:url');

const tReq = process.hrtime.bigint();
require('typescript');
const require_ms = Number(process.hrtime.bigint() - tReq) / 1e6;
const { fork, getContext, ForkChildUnwind } = require('../dist/index.js');

const CHILD_PATH = path.join(__dirname, 'forkserver-child.cjs');
const CHILD = pathToFileURL(CHILD_PATH).href;
const WARMER = pathToFileURL(path.join(__dirname, 'util.mjs')).href; // any other module
const n = Number(process.argv[2] ?? 5);
const now = () => Number(process.hrtime.bigint()) / 1e6;
const errors = [];
const ctl = new (getContext('fork').SharedMemory)({ size: 4096 });
const i32 = new Int32Array(ctl.buffer);
const f64 = new Float64Array(ctl.buffer);

function oneFork(doImport) {
  Atomics.store(i32, 0, 0);
  const t0 = now();
  const c = fork(async () => {
    f64[1] = now(); // first statement
    if (doImport === 'require') require(CHILD_PATH);
    else if (doImport) await import(CHILD);
    f64[2] = now();
    Atomics.store(i32, 0, 1);
    ctl.notify(0);
    return 0;
  });
  const t1 = now();
  const deadline = Date.now() + 10_000;
  while (Atomics.load(i32, 0) === 0 && Date.now() < deadline) ctl.wait(0, 0, { timeout: 1000 });
  const t2 = now();
  const seen = Atomics.load(i32, 0) === 1;
  if (!c.join({ timeout: 10_000 })) {
    c.kill('SIGKILL');
    c.join({ timeout: 10_000 });
    errors.push(`child ${c.pid} did not exit`);
  } else if (c.exitCode !== 0) errors.push(`child exited with ${c.exitCode ?? c.signalCode}`);
  if (!seen) {
    errors.push(`child ${c.pid} never signalled`);
    return null;
  }
  return { call: t1 - t0, first: f64[1] - t0, done: f64[2] - t0, observed: t2 - t0 };
}

function med(xs) {
  const v = xs.filter((x) => x != null).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return Math.round((v.length & 1 ? v[m] : (v[m - 1] + v[m]) / 2) * 1000) / 1000;
}
function pick(runs) {
  const o = { n: runs.length };
  for (const k of ['call', 'first', 'done', 'observed']) o[k] = med(runs.map((r) => r[k]));
  return o;
}
const nap = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

async function main() {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const rss = Number(/^VmRSS:\s+(\d+)/m.exec(status)[1]) * 1024;
  const maps = fs.readFileSync('/proc/self/maps', 'utf8').split('\n').length - 1;
  const runs = { first: [], require: [], 'import-cold': [], 'import-warm': [] };
  for (let i = 0; i <= n; i++) {
    const a = oneFork(false);
    if (i > 0 && a) runs.first.push(a);
    nap(3);
    const r = oneFork('require');
    if (i > 0 && r) runs.require.push(r);
    nap(3);
    const b = oneFork(true);
    if (i > 0 && b) runs['import-cold'].push(b);
    nap(3);
  }
  await import(WARMER);
  await new Promise((r) => setImmediate(r));
  for (let i = 0; i <= n; i++) {
    const c = oneFork(true);
    if (i > 0 && c) runs['import-warm'].push(c);
    nap(3);
  }
  process.stdout.write(`${JSON.stringify({
    mode: 'zygote', require_ms, rss, maps_lines: maps, heap_used: process.memoryUsage().heapUsed,
    first: pick(runs.first), require: pick(runs.require), import_cold: pick(runs['import-cold']), import_warm: pick(runs['import-warm']),
    samples: runs, errors,
  })}\n`);
  ctl.close();
}

main().catch((e) => {
  if (e instanceof ForkChildUnwind) return; // a fork(main) child leaving this code: its main runs
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
