'use strict';
// The worker side of bench/forkserver.mjs: a module with a realistic heavy
// dependency (the `typescript` package, ~9 MB of JS) required at top level,
// started four ways. Every way stamps the monotonic clock (process.hrtime, the
// same clock in every process) at the top of this module, after
// require('typescript') and when the work function runs, so the parent can
// tell where the time went.
//
//   forksafe Process target (forkserver and spawn contexts):
//     { module: this file, export: 'up' }, args [shm, slot]
//         writes the stamps into the SharedMemory at `slot`, sets the slot's
//         word and notifies it; returns 0 (the worker exits).
//     { module: this file, export: 'idle' }, args [shm, event, use]
//         (with use: runs one ts.transpileModule first) counts itself in word 0
//         of the SharedMemory, notifies it, then blocks on the Event (bounded).
//   child_process.fork(this file, ['up'])     process.send({stamps}), then exits on any message
//   child_process.fork(this file, ['idle', use])   process.send({}), then idles until any message
//   new Worker(this file, { workerData: 'up' })    postMessage({stamps}), then ends
//
// CommonJS, so that `require('typescript')` in a forkserver worker is a cache
// hit: the forkserver preloaded the same resolved file into the same require cache.
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms, CLOCK_MONOTONIC
const tTop = now();
const ts = require('typescript');
const tTs = now();

// One realistic light use of the compiler (a worker that does something with
// what it preloaded touches part of the heap, so copy-on-write copies some).
const SOURCE = `
interface Point { x: number; y: number }
export function norm(p: Point): number { return Math.sqrt(p.x * p.x + p.y * p.y); }
export const origin: Point = { x: 0, y: 0 };
`;
function use() {
  const out = ts.transpileModule(SOURCE, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2020 } });
  if (!out.outputText.includes('function norm')) throw new Error('transpileModule produced no output');
  return out.outputText.length;
}

// Slot layout in the SharedMemory (Float64 index = slot * 8):
//   Int32 word slot*16: 1 once the stamps are written (the parent waits on it)
//   Float64 slot*8 + 1..3: module top, after require('typescript'), work function called
function up(shm, slot) {
  const tFn = now();
  const f64 = new Float64Array(shm.buffer);
  const i32 = new Int32Array(shm.buffer);
  f64[slot * 8 + 1] = tTop;
  f64[slot * 8 + 2] = tTs;
  f64[slot * 8 + 3] = tFn;
  Atomics.store(i32, slot * 16, 1);
  shm.notify(slot * 16);
  return 0;
}

function idle(shm, event, doUse) {
  if (doUse) use();
  const i32 = new Int32Array(shm.buffer);
  Atomics.add(i32, 0, 1);
  shm.notify(0);
  // Bounded: a parent that died without setting the event cannot leave us behind
  // (the forkserver's workers also die with it, PR_SET_PDEATHSIG).
  return event.wait({ timeout: 120_000 }) ? 0 : 3;
}

module.exports = { up, idle, use };

const wt = require('node:worker_threads');
if (!wt.isMainThread) {
  if (wt.workerData === 'up') wt.parentPort.postMessage({ top: tTop, ts: tTs, fn: now() });
} else if (require.main === module) {
  const mode = process.argv[2];
  if (mode === 'up') {
    process.send({ top: tTop, ts: tTs, fn: now() });
  } else if (mode === 'idle') {
    if (process.argv[3] === '1') use();
    process.send({});
  } else {
    process.stderr.write('usage: node bench/forkserver-child.cjs up|idle [use]\n');
    process.exit(2);
  }
  process.once('message', () => process.exit(0));
  process.once('disconnect', () => process.exit(0));
}
