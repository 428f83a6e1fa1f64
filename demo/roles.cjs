'use strict';
// Child-process roles of the demo (demo/run.mjs). Each export is a Process
// target: `new Process({ target: { module: ROLES, export: 'holdLock' }, args })`.
// forksafe's bootstrap attaches the primitives found in args, calls the export,
// and exits with its numeric result.
//
// Every wait here is bounded, so a child left behind by a crashed demo still ends.

const STRAY_MS = 20_000; // how long a holder "works" before giving up on being killed

function sleepMs(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function errorInfo(e) {
  return { name: e && e.name, code: e && e.code, message: e && e.message };
}

/** Row 1: takes the lock, says so, then "works" until the parent SIGKILLs it. */
exports.holdLock = function holdLock(lock, held) {
  if (!lock.acquire({ timeout: 5000 })) return 2;
  held.set();
  sleepMs(STRAY_MS);
  return 3; // not killed: the demo reports it
};

/** Row 2: the Python script's wait_for_event(). It never runs: start() refuses first. */
exports.waitForEvent = function waitForEvent(event) {
  return event.wait({ timeout: 5000 }) ? 0 : 2;
};

/**
 * Row 4: releases a lock this process never acquired (the parent holds it),
 * then tries to get in itself. Prints one JSON line on stdout.
 */
exports.releaseForeign = function releaseForeign(lock) {
  const out = { releaseOk: false, error: null, acquiredWhileHeld: false };
  const t0 = process.hrtime.bigint();
  try {
    lock.release();
    out.releaseOk = true;
  } catch (e) {
    out.error = errorInfo(e);
  }
  out.releaseMs = Number(process.hrtime.bigint() - t0) / 1e6;
  // The parent still holds it: a try-acquire must fail.
  out.acquiredWhileHeld = lock.acquire({ timeout: 0 });
  if (out.acquiredWhileHeld) lock.release();
  process.stdout.write(JSON.stringify(out) + '\n');
  return 0;
};

/** Row 5: takes the only unit of the semaphore, says so, then "works" until killed. */
exports.holdSemaphore = function holdSemaphore(sem, held) {
  if (!sem.acquire({ timeout: 5000 })) return 2;
  held.set();
  sleepMs(STRAY_MS);
  return 3;
};

/** Row 6: takes the lock, says so, holds it for `ms`, releases it. */
exports.holdFor = function holdFor(lock, held, ms) {
  if (!lock.acquire({ timeout: 5000 })) return 2;
  held.set();
  sleepMs(ms);
  lock.release();
  return 0;
};

/**
 * Row 8, run in a worker_thread (demo/run.mjs starts it with `eval`): takes a
 * 'fork'-context Lock, says so, holds it until the main thread says `go`
 * (after it has forked), then releases it. Handles come in workerData.
 */
exports.lockHolderThread = function lockHolderThread() {
  const { workerData } = require('node:worker_threads');
  const { attach } = require('forksafe');
  const lock = attach(workerData.lock);
  const held = attach(workerData.held);
  const go = attach(workerData.go);
  try {
    if (!lock.acquire({ timeout: 5000 })) return;
    held.set();
    go.wait({ timeout: 15_000 });
    lock.release();
  } finally {
    lock.close();
    held.close();
    go.close();
  }
};

/**
 * Row 10, a task of the example pool (examples/pool/): what the Python script's
 * task does. Task `bad` SIGKILLs its own worker, as the OOM killer would.
 */
exports.poolSquare = async function poolSquare({ x, bad }) {
  if (x === bad) process.kill(process.pid, 'SIGKILL');
  await new Promise((resolve) => setTimeout(resolve, 50));
  return x * x;
};

/** Row 11: the worker's first message back (start-up time), then it exits. */
exports.startupPing = function startupPing(up) {
  up.set();
  return 0;
};

// Row 11 with child_process.fork(): `fork(ROLES, ['--startup-ping'])` sends one
// IPC message as soon as it runs, then exits.
if (require.main === module && process.argv.includes('--startup-ping')) {
  process.send('up', () => process.disconnect());
}
