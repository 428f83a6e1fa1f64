#!/usr/bin/env node
// `npm run demo`: the real bugs of Python's multiprocessing and os.fork(), each run
// for real, next to the same scenario with forksafe.
//
// Each row runs twice:
//   - "the naive way": a small Python script in demo/python/ (python3 from PATH, or
//     $DEMO_PYTHON). Some of these scenarios hang forever by nature: every script
//     bounds its own wait, and this file also kills each one (its whole process group)
//     after a hard timeout, so the demo never hangs. Without python3 the column is skipped.
//   - forksafe: the same scenario in this process and in children started with
//     getContext('spawn').Process (their code is in demo/roles.cjs). The fork() rows
//     (7, 8) need `node --single-threaded`, which `npm run demo` is not: this file runs
//     them in a child `node --single-threaded demo/run.mjs --fork-scenario <name>` that
//     prints one JSON line (same hard timeout and process-group kill as the Python
//     scripts, so its forked children cannot outlive the demo either).
//     Rows 10, 11 and 14 use the default 'forkserver' context: rows 10 and 14 run the
//     package's Pool (its task module is demo/roles.cjs), row 11 times worker start-up
//     (its Python script runs alone, after the others, so that they do not disturb its
//     timings). Rows 12 and 13 pass messages between this process and spawn children
//     through a Queue and a JoinableQueue (in shared memory), killing a producer or a
//     consumer.
//
// Exit status: 0 when every forksafe cell behaved as expected, 1 otherwise (a regression).
// The Python column never changes the exit status: it shows what Python does here.
import { fork as forkChild, spawn, spawnSync } from 'node:child_process';
import nodeCrypto from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  getContext, fork, exit, forkSafety, forkFlags, startForkserver, Pool,
  ContextError, DeadlockError, ForkUnsafeError, NotOwnerError, OwnerDiedError, QueueEmptyError,
  TimeoutError, WorkerDiedError,
} from 'forksafe';
import { checkMessage, PRODUCER_WORDS } from './roles.cjs';

const SELF = fileURLToPath(import.meta.url);
const HERE = path.dirname(SELF);
const ROLES = path.join(HERE, 'roles.cjs');
const PYDIR = path.join(HERE, 'python');

// ---------------------------------------------------------------- small helpers

const nowNs = () => process.hrtime.bigint();
const msSince = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

function fmtMs(ms) {
  if (ms == null || !Number.isFinite(ms)) return '';
  if (ms >= 1000) return `${Math.round(ms).toLocaleString('en-US')} ms`;
  if (ms >= 10) return `${Math.round(ms)} ms`;
  if (ms >= 0.1) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(3)} ms`;
}

/** Resolves with the exit info, or null if the process is still alive after `ms`. */
async function exitedWithin(proc, ms) {
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  try {
    return await Promise.race([proc.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const liveChildren = new Set(); // forksafe Processes started by this demo, until reaped

/** Starts a forksafe Process and remembers it, so that an interrupted demo kills it. */
function startChild(proc) {
  proc.start();
  liveChildren.add(proc);
  return proc;
}

/** Kills a forksafe Process if it is still running and waits (bounded) for it. */
async function reap(proc) {
  liveChildren.delete(proc);
  if (proc.pid == null) return;
  try {
    proc.kill('SIGKILL');
  } catch {
    // already gone
  }
  await exitedWithin(proc, 3000);
}

function collect(stream) {
  const chunks = [];
  stream?.on('data', (c) => chunks.push(c));
  return () => Buffer.concat(chunks).toString('utf8');
}

const ok = (text, ms) => ({ ok: true, text, ms });
const bad = (text, ms = null) => ({ ok: false, text, ms });

// ---------------------------------------------------------------- forksafe side
// Each returns { ok, text, ms, message? }. `ok` is what the exit status checks.

const spawnCtx = getContext('spawn');

/** Row 1: a spawn child holds a Lock and is SIGKILLed; this process takes it over. */
async function fsLockHolderKilled() {
  const { Lock, Event, Process } = spawnCtx;
  const lock = new Lock();
  const held = new Event();
  const p = new Process({ target: { module: ROLES, export: 'holdLock' }, args: [lock, held], name: 'forksafe-demo-holder' });
  try {
    startChild(p);
    if (!held.wait({ timeout: 8000 })) return bad('the holder child never took the lock (8 s)');
    const t0 = nowNs();
    process.kill(p.pid, 'SIGKILL'); // what the OOM killer does
    let err = null;
    let got = false;
    try {
      got = lock.acquire({ timeout: 3000 }); // bounded only so that a regression cannot hang the demo
    } catch (e) {
      err = e;
    }
    const ms = msSince(t0);
    if (!(err instanceof OwnerDiedError)) {
      if (got) lock.release();
      return bad(err ? `unexpected ${err.name}: ${err.message}` : got ? 'acquired with no OwnerDiedError' : 'acquire() timed out after 3 s', ms);
    }
    if (err.pid !== p.pid) return bad(`OwnerDiedError names pid ${err.pid}, but the holder was pid ${p.pid}`, ms);
    // We hold the lock now. Repair what it protects (nothing here), then:
    lock.markConsistent();
    lock.release();
    const again = lock.acquire({ timeout: 0 });
    if (!again) return bad('the lock could not be taken again after markConsistent() + release()', ms);
    lock.release();
    return {
      ...ok(`waiter gets OwnerDiedError naming the dead pid ${err.pid} and holds the lock; markConsistent() + release(): lock usable again`, ms),
      message: err.message,
    };
  } finally {
    await reap(p);
    lock.close();
    held.close();
  }
}

/** Row 2: a getContext('fork') Event handed to a spawn Process. */
async function fsContextMismatch() {
  const event = new (getContext('fork').Event)();
  const p = new spawnCtx.Process({ target: { module: ROLES, export: 'waitForEvent' }, args: [event] });
  try {
    let err = null;
    const t0 = nowNs();
    try {
      startChild(p);
    } catch (e) {
      err = e;
    }
    const ms = msSince(t0);
    if (p.pid != null) return bad(`start() created a process (pid ${p.pid})${err ? ` and then threw ${err.name}` : ''}`, ms);
    if (!(err instanceof ContextError) || err.code !== 'ERR_FORKSAFE_CONTEXT_MISMATCH') {
      return bad(err ? `unexpected ${err.name}: ${err.message}` : 'start() did not throw', ms);
    }
    return { ...ok('start() throws ContextError before any process is created (message below)', ms), message: err.message };
  } finally {
    await reap(p);
    event.close();
  }
}

/** Row 3: acquire() on a Lock the calling thread already holds. */
async function fsSelfDeadlock() {
  const lock = new spawnCtx.Lock();
  try {
    lock.acquire();
    let err = null;
    let got = false;
    const t0 = nowNs();
    try {
      got = lock.acquire({ timeout: 3000 }); // bounded only so that a regression cannot hang the demo
    } catch (e) {
      err = e;
    }
    const ms = msSince(t0);
    if (!(err instanceof DeadlockError)) {
      return bad(err ? `unexpected ${err.name}: ${err.message}` : got ? 'second acquire() succeeded' : 'second acquire() blocked until its 3 s timeout', ms);
    }
    if (!lock.isOwned()) return bad('the lock is no longer held after DeadlockError', ms);
    lock.release();
    return { ...ok('second acquire() throws DeadlockError at once; the lock stays held', ms), message: err.message };
  } finally {
    lock.close();
  }
}

/** Row 4: a spawn child calls release() on a Lock this process holds. */
async function fsForeignRelease() {
  const lock = new spawnCtx.Lock();
  const p = new spawnCtx.Process({ target: { module: ROLES, export: 'releaseForeign' }, args: [lock], stdio: 'pipe' });
  try {
    lock.acquire();
    startChild(p);
    const out = collect(p.stdout);
    const err = collect(p.stderr);
    const exit = await exitedWithin(p, 8000);
    if (!exit) return bad('the child did not finish within 8 s');
    let r;
    try {
      r = JSON.parse(out().trim().split('\n').pop());
    } catch {
      return bad(`the child printed no result (exit ${exit.code ?? exit.signal}) ${err().trim().slice(0, 200)}`);
    }
    const ms = r.releaseMs;
    if (r.releaseOk) return bad("the child's release() succeeded: mutual exclusion is broken", ms);
    if (!r.error || r.error.code !== 'ERR_FORKSAFE_NOT_OWNER' || r.error.name !== NotOwnerError.name) {
      return bad(`unexpected ${r.error?.name}: ${r.error?.message}`, ms);
    }
    if (r.acquiredWhileHeld) return bad('the child acquired the lock while this process held it', ms);
    if (!lock.isOwned()) return bad('this process lost the lock', ms);
    lock.release();
    return {
      ...ok("child's release() throws NotOwnerError; its try-acquire fails; the parent still holds the lock", ms),
      message: r.error.message,
    };
  } finally {
    await reap(p);
    lock.close();
  }
}

/** Row 5: a spawn child holds the only unit of an undoOnExit Semaphore and is SIGKILLed. */
async function fsSemaphoreKilledHolder() {
  const { Semaphore, Event, Process } = spawnCtx;
  const sem = new Semaphore(1, { undoOnExit: true });
  const held = new Event();
  const p = new Process({ target: { module: ROLES, export: 'holdSemaphore' }, args: [sem, held], name: 'forksafe-demo-worker' });
  try {
    startChild(p);
    if (!held.wait({ timeout: 8000 })) return bad('the worker child never took the unit (8 s)');
    const t0 = nowNs();
    process.kill(p.pid, 'SIGKILL');
    const got = sem.acquire({ timeout: 3000 }); // bounded only so that a regression cannot hang the demo
    const ms = msSince(t0);
    if (!got) return bad('acquire() timed out after 3 s: the unit was lost', ms);
    sem.release();
    if (sem.value !== 1) return bad(`value is ${sem.value} after release, expected 1`, ms);
    return ok("the dead worker's unit is given back: acquire() succeeds", ms);
  } finally {
    await reap(p);
    sem.close();
    held.close();
  }
}

/** Row 6: wait for a lock held by another process for 1 s, with a 10 ms ticker running. */
async function fsAsyncTicker() {
  const { Lock, Event, Process } = spawnCtx;
  const lock = new Lock();
  const held = new Event();
  const p = new Process({ target: { module: ROLES, export: 'holdFor' }, args: [lock, held, 1000], name: 'forksafe-demo-worker' });
  let timer = null;
  try {
    startChild(p);
    if (!(await held.waitAsync({ timeout: 8000 }))) return bad('the worker child never took the lock (8 s)');
    let ticks = 0;
    timer = setInterval(() => ticks++, 10);
    const t0 = nowNs();
    const got = await lock.acquireAsync({ timeout: 5000 });
    const ms = msSince(t0);
    const during = ticks;
    clearInterval(timer);
    timer = null;
    if (!got) return bad('acquireAsync() timed out after 5 s', ms);
    lock.release();
    const expected = Math.floor(ms / 10);
    if (during < expected * 0.5) return bad(`the loop stalled: ${during} of ~${expected} ticks while waiting`, ms);
    return ok(`await lock.acquireAsync(): the ticker kept ticking (${during} of ~${expected} ticks while waiting)`, ms);
  } finally {
    if (timer) clearInterval(timer);
    await reap(p);
    lock.close();
    held.close();
  }
}

// ---------------------------------------------------------------- forksafe side: fork()
// Rows 7 and 8 call fork(), which needs `node --single-threaded`: they run in a child
// `node --single-threaded demo/run.mjs --fork-scenario <name>` (see forkScenario()).
// A forked child never prints (the parent reads stdout as one JSON line): it writes
// its findings into a getContext('fork') SharedMemory, which parent and child share.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Writes `value` as JSON into `shm` (u32 length, then the bytes). */
function putJson(shm, value) {
  const bytes = Buffer.from(JSON.stringify(value), 'utf8');
  if (bytes.length + 4 > shm.buffer.byteLength) throw new RangeError(`result too large (${bytes.length} bytes)`);
  new Uint8Array(shm.buffer).set(bytes, 4);
  new DataView(shm.buffer).setUint32(0, bytes.length, true);
}

function getJson(shm) {
  const n = new DataView(shm.buffer).getUint32(0, true);
  return n ? JSON.parse(Buffer.from(shm.buffer, 4, n).toString('utf8')) : null;
}

const overlap = (a, b) => {
  const seen = new Set(a);
  return b.filter((x) => seen.has(x)).length;
};

/** Kills a ForkedChild that is still running and waits (bounded) for it. */
async function reapForked(child) {
  if (!child) return;
  try {
    child.kill('SIGKILL');
  } catch {
    // already gone
  }
  await exitedWithin(child, 3000);
}

/**
 * Row 7 (runs under --single-threaded): fork(); the child draws 1,000 randomUUID()
 * and 1,000 Math.random() values, the parent its next 1,000 of each. Also measured
 * in the same child, what a fork without forksafe's fixups would give:
 *   - randomUUID(): Node serves it from a cached batch of 128, which fork copies.
 *     forksafe's child setup uses that batch up; the ids it discards are exactly the
 *     child's first randomUUID() results without the fixup. They are recorded here by
 *     wrapping crypto.randomUUID around fork() (the wrapper only records).
 *   - Math.random(): forksafe replaces it in the child; a reference to V8's own
 *     generator kept from before fork() still has the state fork copied.
 */
async function forkRandomIds() {
  const N = 1000;
  const shm = new (getContext('fork').SharedMemory)({ size: 1 << 17 });
  let child = null;
  try {
    nodeCrypto.randomUUID(); // the parent has used both generators before forking
    Math.random();
    const v8Random = Math.random;
    const discarded = [];
    const realUUID = nodeCrypto.randomUUID;
    nodeCrypto.randomUUID = function recordingRandomUUID(...a) {
      const id = realUUID.apply(this, a);
      discarded.push(id);
      return id;
    };
    const t0 = nowNs();
    try {
      child = fork();
    } finally {
      nodeCrypto.randomUUID = realUUID;
    }
    if (child === null) {
      // The forked child: never returns from here.
      putJson(shm, {
        pid: process.pid,
        // The child's drain is the last 128 calls recorded: fork() may also call
        // randomUUID() in the parent first (it warms up the drain function there).
        naiveUuids: discarded.slice(-128),
        uuids: Array.from({ length: N }, () => nodeCrypto.randomUUID()),
        randoms: Array.from({ length: N }, () => Math.random()),
        naiveRandoms: Array.from({ length: N }, () => v8Random()),
      });
      exit(0);
    }
    const uuids = Array.from({ length: N }, () => nodeCrypto.randomUUID());
    const randoms = Array.from({ length: N }, () => Math.random());
    const info = await exitedWithin(child, 8000);
    const ms = msSince(t0);
    if (!info) return bad('the forked child did not finish within 8 s', ms);
    if (info.code !== 0) return bad(`the forked child exited with ${info.code ?? info.signal}`, ms);
    const r = getJson(shm);
    if (!r) return bad('the forked child reported nothing', ms);
    const sameUuids = overlap(uuids, r.uuids);
    const sameRandoms = overlap(randoms, r.randoms);
    const naiveUuids = overlap(uuids, r.naiveUuids);
    const naiveRandoms = overlap(randoms, r.naiveRandoms);
    const inOrder = r.naiveRandoms.every((x, i) => x === randoms[i]);
    if (r.pid !== child.pid || r.pid === process.pid) return bad(`process.pid in the child is ${r.pid} (child ${child.pid}, parent ${process.pid})`, ms);
    if (sameUuids || sameRandoms) {
      return bad(`the child repeated the parent: ${sameUuids} of ${N} UUIDs, ${sameRandoms} of ${N} Math.random() values`, ms);
    }
    const without = [
      r.naiveUuids.length ? `randomUUID() would repeat the parent's next ${naiveUuids} ids` : null,
      `V8's Math.random would give the parent's next ${naiveRandoms.toLocaleString('en-US')} values${inOrder ? ', in order' : ''}`,
    ].filter(Boolean).join('; ');
    return ok(
      `child's ${N.toLocaleString('en-US')} randomUUID() and ${N.toLocaleString('en-US')} Math.random(): 0 equal to the parent's next ` +
      `${N.toLocaleString('en-US')}; process.pid is the child's. Without the fixups (same child): ${without}`,
      ms,
    );
  } finally {
    await reapForked(child);
    shm.close();
  }
}

/**
 * Row 8 (runs under --single-threaded): a worker_thread holds a 'fork'-context Lock
 * while the main thread forks. fork() alone refuses (a worker is running); with
 * { force: true } the child waits for the lock, which the worker (in the parent)
 * releases 300 ms later.
 */
async function forkLockHeldByThread() {
  const { Lock, Event, SharedMemory } = getContext('fork');
  const lock = new Lock();
  const held = new Event();
  const go = new Event();
  const shm = new SharedMemory({ size: 4096 });
  const worker = new Worker(`require(${JSON.stringify(ROLES)}).lockHolderThread()`, {
    eval: true,
    workerData: { lock: lock.handle(), held: held.handle(), go: go.handle() },
  });
  const workerExit = once(worker, 'exit');
  let child = null;
  try {
    await once(worker, 'online');
    if (!(await held.waitAsync({ timeout: 8000 }))) return bad('the worker_thread never took the lock (8 s)');
    // Without force, fork() must refuse: a worker_thread is running.
    let refused = null;
    try {
      const c = fork();
      if (c === null) exit(99); // a regression forked: the child leaves at once
      await reapForked(c);
    } catch (e) {
      refused = e;
    }
    if (!(refused instanceof ForkUnsafeError)) {
      return bad(refused ? `fork() threw ${refused.name}: ${refused.message}` : 'fork() forked although a worker_thread was running');
    }
    child = fork(undefined, { force: true });
    if (child === null) {
      // The forked child: never returns from here.
      const r = { pid: process.pid, owned: lock.isOwned(), tryNow: false, got: false, error: null, ms: null };
      r.tryNow = lock.acquire({ timeout: 0 }); // the parent's worker_thread holds it
      if (r.tryNow) lock.release();
      const t0 = nowNs();
      try {
        r.got = lock.acquire({ timeout: 5000 }); // bounded so that a regression cannot hang
      } catch (e) {
        r.error = `${e.name}: ${e.message}`;
      }
      r.ms = msSince(t0);
      if (r.got) lock.release();
      putJson(shm, r);
      exit(r.got ? 0 : 2);
    }
    await sleep(300); // the child is waiting for the lock now
    go.set(); // the worker releases it, in the parent
    const info = await exitedWithin(child, 8000);
    if (!info) return bad('the forked child did not finish within 8 s');
    const r = getJson(shm);
    if (!r) return bad(`the forked child reported nothing (exit ${info.code ?? info.signal})`);
    if (r.owned || r.tryNow) return bad("the child could take the lock while the parent's worker_thread held it", r.ms);
    if (r.error) return bad(`the child's acquire() threw ${r.error}`, r.ms);
    if (!r.got) return bad("the child's acquire() timed out after 5 s", r.ms);
    if (info.code !== 0) return bad(`the forked child exited with ${info.code ?? info.signal}`, r.ms);
    const [exitCode] = await Promise.race([workerExit, sleep(5000).then(() => [null])]);
    if (exitCode !== 0) return bad(`the worker_thread did not end cleanly (${exitCode})`, r.ms);
    if (!lock.acquire({ timeout: 1000 })) return bad('the lock is not free in the parent afterwards', r.ms);
    lock.release();
    return {
      ...ok(
        "fork() alone refuses (a worker_thread runs); fork({ force: true }): the child's try-acquire fails (the parent's " +
        "worker holds the lock), its acquire() returns true as soon as the worker releases it in the parent",
        r.ms,
      ),
      message: refused.message,
    };
  } finally {
    await reapForked(child);
    go.set();
    await Promise.race([workerExit, sleep(3000)]);
    await worker.terminate();
    lock.close();
    held.close();
    go.close();
    shm.close();
  }
}

const FORK_SCENARIOS = { randomIds: forkRandomIds, lockHeldByThread: forkLockHeldByThread };

/** In the demo process: runs a fork scenario in `node --single-threaded` (bounded by hardMs). */
async function forkScenario(name, hardMs) {
  const r = await runJson(process.execPath, [...forkFlags(), SELF, '--fork-scenario', name], hardMs); // --minor-ms too on Node 26
  if (!r.json) return bad(`the --single-threaded child failed: ${r.error}`);
  return r.json;
}

/** In the --single-threaded child: runs one fork scenario, prints its result as JSON. */
async function forkScenarioMain(name) {
  const fn = FORK_SCENARIOS[name];
  let r;
  try {
    r = fn ? await fn() : bad(`unknown fork scenario '${name}'`);
  } catch (e) {
    r = bad(`unexpected ${e?.name ?? 'error'}: ${e?.message ?? e}`);
  }
  process.stdout.write(`${JSON.stringify(r)}\n`, () => process.exit(0));
}

/** Row 9, in this process (no --single-threaded): fork() with a worker_thread and an fs request in flight. */
async function fsForkRefused() {
  const worker = new Worker('setTimeout(() => {}, 20000)', { eval: true }); // an idle worker_thread
  let reading = null;
  let child = null;
  try {
    await once(worker, 'online');
    reading = fs.promises.readFile(ROLES); // a libuv threadpool request, in flight until the loop runs
    const safety = forkSafety();
    if (safety.safe) return bad('forkSafety() says this process is safe to fork');
    let err = null;
    const t0 = nowNs();
    try {
      child = fork();
      if (child === null) exit(99); // a regression forked: the child leaves at once
    } catch (e) {
      err = e;
    }
    const ms = msSince(t0);
    await reading;
    if (child) return bad('fork() forked this process', ms);
    if (!(err instanceof ForkUnsafeError) || err.code !== 'ERR_FORKSAFE_FORK_UNSAFE') {
      return bad(err ? `unexpected ${err.name}: ${err.message}` : 'fork() did not throw', ms);
    }
    const said = [
      [/single-threaded/, 'node not started with --single-threaded'],
      [/worker_thread/, 'a worker_thread running'],
      [/threadpool/, 'an fs request in flight on the libuv threadpool'],
    ];
    const missing = said.filter(([re]) => !err.reasons.some((x) => re.test(x))).map(([, what]) => what);
    if (missing.length) return bad(`ForkUnsafeError does not name: ${missing.join(', ')}`, ms);
    return {
      ...ok(`fork() throws ForkUnsafeError, nothing forked; err.reasons (${err.reasons.length}): ${said.map(([, w]) => w).join('; ')}`, ms),
      message: err.message,
    };
  } finally {
    await reapForked(child);
    await reading?.catch(() => {});
    await worker.terminate();
  }
}

// ---------------------------------------------------------------- forksafe side: processes and pools

const median = (xs) => {
  const a = [...xs].sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
};

/** Resolves with `p`'s value, or `fallback` after `ms` (bounds every wait of rows 10, 11 and 14). */
async function orAfter(p, ms, fallback) {
  let timer;
  try {
    return await Promise.race([p, new Promise((resolve) => (timer = setTimeout(() => resolve(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** A Pool of 2 forkserver workers whose task module is demo/roles.cjs, both workers serving. */
async function startPool(exportName) {
  const pool = new Pool({ workers: 2, module: ROLES, export: exportName });
  const up = Promise.all([0, 1].map(() => pool.run({ x: 0, ms: 100 }, { name: 'poolSquarePid' })));
  const pids = await orAfter(up, 8000, null);
  return { pool, up: pids !== null && new Set(pids.map(([, pid]) => pid)).size === 2 };
}

/** Stops a pool of rows 10 and 14 (bounded: close(), then terminate()). */
async function stopPool(pool) {
  await orAfter(pool.close({ timeout: 3000 }), 9000, null);
  await pool.terminate();
}

/**
 * Row 10: forksafe's Pool (2 forkserver workers) runs the Python script's six tasks
 * (x = 0..5, numbered #0..#5); task #3 SIGKILLs its own worker.
 */
async function fsPoolKilledWorker() {
  const { pool, up } = await startPool('poolSquare');
  const TIMEOUT = Symbol('timeout');
  try {
    if (!up) return bad('the pool did not start 2 workers within 8 s');
    const before = pool.pids;
    const t0 = nowNs();
    const runs = [0, 1, 2, 3, 4, 5].map((x) => pool.run({ x, bad: 3 }));
    const settled = await orAfter(Promise.allSettled(runs), 8000, TIMEOUT);
    const ms = msSince(t0);
    if (settled === TIMEOUT) return bad('the six tasks did not all settle within 8 s: the pool hangs', ms);
    const lost = settled[3];
    if (lost.status !== 'rejected' || !(lost.reason instanceof WorkerDiedError) || lost.reason.signal !== 'SIGKILL') {
      return bad(`task #3 (x = 3): ${lost.status === 'fulfilled' ? `resolved ${lost.value}` : `${lost.reason?.name}: ${lost.reason?.message}`}`, ms);
    }
    if (!before.includes(lost.reason.pid)) return bad(`WorkerDiedError names pid ${lost.reason.pid}, not one of the workers ${before}`, ms);
    const others = settled.filter((_, i) => i !== 3).map((r) => (r.status === 'fulfilled' ? r.value : `${r.reason?.name}`));
    if (others.join() !== '0,1,4,16,25') return bad(`the other tasks gave ${others.join(', ')} (expected 0, 1, 4, 16, 25)`, ms);
    const again = await orAfter(pool.map([7, 8].map((x) => ({ x }))), 8000, TIMEOUT);
    if (again === TIMEOUT || again.join() !== '49,64') return bad('the pool did not serve new tasks after the death', ms);
    const fresh = pool.pids.filter((pid) => !before.includes(pid));
    if (pool.pids.length !== 2 || fresh.length !== 1) return bad(`workers ${before} before, ${pool.pids} after: no replacement`, ms);
    return {
      ...ok(`task #3 (x = 3) rejects with WorkerDiedError naming its pid and SIGKILL; the 5 others complete (${others.join(', ')}); ` +
        `replacement worker ${fresh[0]} started and serves the next tasks`, ms),
      message: lost.reason.message,
    };
  } finally {
    await stopPool(pool);
  }
}

/**
 * Row 14: forksafe's Pool (2 forkserver workers): one task hangs, run with { timeout };
 * four quick tasks are given at the same time. Then two 0.3 s tasks at once, then close().
 */
async function fsPoolHungTask() {
  const TIMEOUT_MS = 1000;
  const { pool, up } = await startPool('poolSquarePid');
  const TIMEOUT = Symbol('timeout');
  const exits = [];
  pool.on('workerExit', (e) => exits.push(e));
  try {
    if (!up) return bad('the pool did not start 2 workers within 8 s');
    const before = pool.pids;
    const t0 = nowNs();
    const hung = pool.run(null, { name: 'poolHang', timeout: TIMEOUT_MS }).then(
      (v) => ({ v, ms: msSince(t0) }),
      (e) => ({ e, ms: msSince(t0) }),
    );
    const quick = [0, 1, 2, 3].map((x) => pool.run({ x, ms: 50 }).then((v) => ({ v, ms: msSince(t0) })));
    const h = await orAfter(hung, 8000, TIMEOUT);
    if (h === TIMEOUT) return bad(`run(arg, { timeout: ${TIMEOUT_MS} }) of the hung task did not settle within 8 s`);
    if (!(h.e instanceof TimeoutError)) return bad(`the hung task: ${h.e ? `${h.e.name}: ${h.e.message}` : `resolved ${h.v}`}`, h.ms);
    const done = await orAfter(Promise.all(quick), 8000, TIMEOUT);
    if (done === TIMEOUT) return bad('the four quick tasks did not complete within 8 s', h.ms);
    if (done.map((d) => d.v[0]).join() !== '0,1,4,9') return bad(`the quick tasks gave ${done.map((d) => d.v[0])}`, h.ms);
    const killed = exits.find((e) => e.signal === 'SIGKILL');
    if (exits.length !== 1 || !killed || !before.includes(killed.pid)) {
      return bad(`workers that exited: ${JSON.stringify(exits)} (expected the hung one only, SIGKILLed)`, h.ms);
    }
    const healthy = before.find((pid) => pid !== killed.pid);
    if (!pool.pids.includes(healthy)) return bad(`the healthy worker ${healthy} is gone too`, h.ms);
    const fresh = pool.pids.filter((pid) => !before.includes(pid));
    if (pool.pids.length !== 2 || fresh.length !== 1) return bad(`workers ${before} before, ${pool.pids} after: no replacement`, h.ms);
    // The pool has its two workers again: two 0.3 s tasks given together run at once.
    const t1 = nowNs();
    const pair = await orAfter(Promise.all([5, 6].map((x) => pool.run({ x, ms: 300 }))), 8000, TIMEOUT);
    const pairMs = msSince(t1);
    if (pair === TIMEOUT) return bad('two tasks after the kill did not complete within 8 s', h.ms);
    const pairPids = [...new Set(pair.map(([, pid]) => pid))];
    if (pairPids.length !== 2 || !pairPids.includes(fresh[0])) return bad(`the two tasks ran on ${pairPids}, not on both workers (${pool.pids})`, h.ms);
    const t2 = nowNs();
    const closed = await orAfter(pool.close(), 8000, TIMEOUT);
    const closeMs = msSince(t2);
    if (closed === TIMEOUT) return bad('close() did not return within 8 s', h.ms);
    const fast = done.filter((d) => d.ms < TIMEOUT_MS).length;
    const late = done.length - fast;
    const lateText = late
      ? `; ${late} of them had been sent to the hung worker behind it, went back to the queue at the kill and completed ` +
        `${fmtMs(Math.max(...done.map((d) => d.ms)))} after the start`
      : '';
    return {
      ...ok(
        `run(arg, { timeout: ${TIMEOUT_MS} }) rejects with TimeoutError and SIGKILLs that worker only (pid ${killed.pid}); ` +
          `the 4 quick tasks complete (${fast} within ${fmtMs(Math.max(...done.filter((d) => d.ms < TIMEOUT_MS).map((d) => d.ms), 0))}` +
          `${lateText}); worker ${healthy} goes on, replacement ${fresh[0]} starts: two 0.3 s tasks then run at once ` +
          `(${fmtMs(pairMs)}, both workers); close() returns in ${fmtMs(closeMs)}`,
        h.ms,
      ),
      message: h.e.message,
    };
  } finally {
    await stopPool(pool);
  }
}

/** Starts one process `n` times; `once()` resolves with ms from start to its first message, or null. */
async function timeStarts(n, once) {
  const ms = [];
  for (let i = 0; i < n; i++) {
    const t = await once();
    if (t == null) return null;
    ms.push(t);
  }
  return ms;
}

/** A forksafe Process (forkserver or spawn context): start() until the worker sets an Event. */
async function processStartMs(ctx) {
  const up = new ctx.Event();
  const p = new ctx.Process({ target: { module: ROLES, export: 'startupPing' }, args: [up] });
  try {
    const t0 = nowNs();
    startChild(p);
    const got = await up.waitAsync({ timeout: 8000 });
    const ms = msSince(t0);
    return got ? ms : null;
  } finally {
    await exitedWithin(p, 5000);
    await reap(p);
    up.close();
  }
}

/** child_process.fork(): spawn until its first IPC message. */
async function cpForkStartMs() {
  const t0 = nowNs();
  const child = forkChild(ROLES, ['--startup-ping'], { stdio: 'ignore', serialization: 'advanced' });
  try {
    const got = await orAfter(once(child, 'message').then(() => true), 8000, false);
    return got ? msSince(t0) : null;
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      if (!(await orAfter(exited.then(() => true), 3000, false))) {
        child.kill('SIGKILL');
        await orAfter(exited, 3000, null);
      }
    }
  }
}

/**
 * Row 11: start-up time of a worker (start() until its first message back):
 * forkserver Process, spawn Process, child_process.fork(), N starts each.
 */
async function fsWorkerStartup() {
  const N = 5;
  await startForkserver(); // already running after row 10; its own boot is not timed
  const fsrv = await timeStarts(N, () => processStartMs(getContext('forkserver')));
  if (!fsrv) return bad('a forkserver worker did not report within 8 s');
  const spawned = await timeStarts(N, () => processStartMs(spawnCtx));
  const forked = await timeStarts(N, cpForkStartMs);
  const m = median(fsrv);
  const side = [
    `spawn Process ${spawned ? fmtMs(median(spawned)) : 'failed'}`,
    `child_process.fork() ${forked ? fmtMs(median(forked)) : 'failed'}`,
  ].join(', ');
  return ok(`median start() → first message, ${N} starts each: forkserver Process ${fmtMs(m)}; ${side}`, m);
}

// ---------------------------------------------------------------- forksafe side: message passing
// Rows 12 and 13: getContext('spawn') queues between this process and spawn children
// (roles in demo/roles.cjs). This process consumes with blocking get()/join() calls,
// each with a timeout, so a regression fails the row instead of hanging the demo.

const MiB = 1 << 20;

/** Busy-waits (bounded by `ms`) until cond() is true; false if it never was. */
function spinUntil(cond, ms) {
  const end = performance.now() + ms;
  while (!cond()) if (performance.now() >= end) return false;
  return true;
}

/**
 * Row 12: producer 1 puts checksummed 1 MiB Buffers back to back, producer 2 one every
 * 5 ms, into one Queue; this process consumes. Producer 1 is SIGKILLed at a random
 * instant inside a put() (it says in `state` when it enters and leaves put()). Should
 * the kill come just as that put() returned (this process was descheduled), a fresh
 * producer takes its place and is killed the same way (3 tries).
 */
async function fsQueueProducerKilled() {
  const { Queue, SharedMemory, Event, Process } = spawnCtx;
  const W = PRODUCER_WORDS;
  const LIVE = 2;
  const VICTIMS = [1, 3, 4]; // producer 1, and two more should a kill land just after a put() returned
  const q = new Queue({ maxsize: 8 }); // bounded: producers that nobody reads block, then give up
  const state = new SharedMemory({ size: 4 * W.STRIDE * 5 });
  const words = new Int32Array(state.buffer);
  const word = (id, k) => Atomics.load(words, id * W.STRIDE + k);
  const stop = new Event();
  const producer = (id, paceMs) => new Process({
    target: { module: ROLES, export: 'queueProducer' }, args: [q, id, state, stop, MiB, paceMs], name: 'forksafe-demo-producer',
  });
  const live = producer(LIVE, 5);
  const procs = [live];
  const seen = new Map([[LIVE, []]]); // seqs received, per producer
  let torn = 0;
  // The current kill: when it was sent, and what came after it.
  let k = null;
  /** Gets one message and checks it: [id, seq], 'torn', or null (timed out). */
  const receive = (timeout) => {
    let m;
    try {
      m = q.get({ timeout });
    } catch (e) {
      if (e instanceof QueueEmptyError) return null;
      throw e;
    }
    const r = checkMessage(m);
    if (!r || !seen.has(r[0])) {
      torn++;
      return 'torn';
    }
    seen.get(r[0]).push(r[1]);
    if (k) {
      k.after++;
      k.nextMs ??= msSince(k.t0);
      if (r[0] === LIVE) {
        k.liveAfter++;
        if (r[1] > k.liveSeq) k.liveNextMs ??= msSince(k.t0);
      }
    }
    return r;
  };
  const inOrder = (xs) => xs.every((x, i) => x === i);
  try {
    startChild(live);
    for (const id of VICTIMS) {
      const victim = producer(id, 0);
      procs.push(victim);
      seen.set(id, []);
      k = null;
      startChild(victim);
      const warm = performance.now() + 10_000;
      while ((seen.get(id).length < 3 || seen.get(LIVE).length < 1) && performance.now() < warm) receive(1000);
      if (seen.get(id).length < 3 || seen.get(LIVE).length < 1) {
        return bad(`the producers' first messages did not arrive within 10 s (${seen.get(id).length} and ${seen.get(LIVE).length})`);
      }
      // The victim between two puts (consuming meanwhile, so that it never waits for room)...
      const between = performance.now() + 2000;
      while (word(id, W.IN_PUT) !== 0 && performance.now() < between) receive(0);
      if (word(id, W.IN_PUT) !== 0) return bad(`producer ${id} stayed inside put() for 2 s`);
      const putUs = word(id, W.PUT_US); // how long its last put() took
      // ...then entering the next one: kill it a random part of the way into it.
      if (!spinUntil(() => word(id, W.IN_PUT) === 1, 2000)) return bad(`producer ${id} did not start another put() within 2 s`);
      const entered = nowNs();
      const delayUs = Math.random() * putUs * 0.5;
      spinUntil(() => Number(nowNs() - entered) / 1000 >= delayUs, 100);
      k = { t0: nowNs(), nextMs: null, liveNextMs: null, liveSeq: word(LIVE, W.SEQ), after: 0, liveAfter: 0 };
      process.kill(victim.pid, 'SIGKILL'); // what the OOM killer does
      Object.assign(k, { id, putUs, intoMs: Number(k.t0 - entered) / 1e6 });
      // Go on consuming for 300 ms (longer if nothing came yet from the live producer: 3 s at most).
      const keepOn = performance.now() + 300;
      while (performance.now() < keepOn || (k.liveNextMs === null && performance.now() < keepOn + 3000)) receive(100);
      if (!(await exitedWithin(victim, 3000))) return bad(`producer ${id} did not die within 3 s of SIGKILL`, k.nextMs);
      k.seq = word(id, W.SEQ); // the message it was putting
      k.insidePut = word(id, W.IN_PUT) === 1; // it never got to say that put() returned
      if (k.insidePut) break;
    }
    stop.set();
    if (!(await exitedWithin(live, 5000))) return bad('the live producer did not stop within 5 s', k.nextMs);
    for (let i = 0; i < 100 && receive(200) !== null; i++); // what is left, until 200 ms pass without a message
    // Checks: nothing torn, no gap, each victim's last message arrived whole or not at all.
    if (torn) return bad(`${torn} torn message(s) received`, k.nextMs);
    for (const [id, xs] of seen) {
      if (!inOrder(xs)) return bad(`producer ${id}'s messages arrived with a gap or out of order`, k.nextMs);
    }
    const v = seen.get(k.id).length;
    if (v !== k.seq && v !== k.seq + 1) return bad(`producer ${k.id}: ${v} messages received, it was putting #${k.seq} when killed`, k.nextMs);
    if (k.nextMs === null || k.liveNextMs === null) return bad('no whole message from the live producer after the kill (3.3 s)', k.nextMs);
    const tries = VICTIMS.indexOf(k.id);
    const retried = tries ? ` (after ${tries} kill(s) that came just as a put() returned)` : '';
    return ok(
      `producer ${k.id} SIGKILLed ${fmtMs(k.intoMs)} after it entered a put() of a 1 MiB Buffer, ` +
        `${k.insidePut ? 'before it returned' : 'just as it returned'}${retried} (its previous put() took ${fmtMs(k.putUs / 1000)}); ` +
        `the consumer goes on: ${k.after} whole 1 MiB messages in the next 300 ms (checksums verified, ${k.liveAfter} from ` +
        `the live producer, whose first one put after the kill came ${fmtMs(k.liveNextMs)} after it), none torn, no gap; ` +
        `the message being put ${v === k.seq + 1 ? 'arrived whole' : 'never arrives (never half)'}`,
      k.nextMs,
    );
  } finally {
    stop.set();
    for (const p of procs) await reap(p);
    q.close();
    state.close();
    stop.close();
  }
}

/**
 * Row 13: consumer 1 gets an item of a JoinableQueue and is SIGKILLed before taskDone();
 * consumer 2 does the other items, then gets the dead one's back; join() returns.
 */
async function fsJoinableConsumerKilled() {
  const { JoinableQueue, Queue, Process } = spawnCtx;
  const jq = new JoinableQueue();
  const got = new Queue(); // [who, item], reported by the consumers
  const victim = new Process({ target: { module: ROLES, export: 'takeOneAndHang' }, args: [jq, got], name: 'forksafe-demo-consumer' });
  const other = new Process({ target: { module: ROLES, export: 'joinWorker' }, args: [jq, got], name: 'forksafe-demo-consumer' });
  const next = () => {
    try {
      return got.get({ timeout: 8000 });
    } catch (e) {
      if (e instanceof QueueEmptyError) return null;
      throw e;
    }
  };
  try {
    for (let i = 1; i <= 4; i++) jq.put(`task ${i}`);
    startChild(victim);
    const first = next();
    if (!first || first[1] !== 'task 1') return bad(`consumer 1 reported ${JSON.stringify(first)}, not task 1 (8 s)`);
    startChild(other);
    const done = [next(), next(), next()].map((r) => r?.[1]);
    if (done.join() !== 'task 2,task 3,task 4') return bad(`consumer 2 did ${JSON.stringify(done)}, not tasks 2 to 4 (8 s each)`);
    if (jq.join({ timeout: 0 })) return bad('join() returned with task 1 not acknowledged');
    process.kill(victim.pid, 'SIGKILL'); // before its taskDone()
    const t0 = nowNs();
    const joined = jq.join({ timeout: 3000 }); // bounded only so that a regression cannot hang the demo
    const ms = msSince(t0);
    if (!joined) return bad('join() did not return within 3 s of the kill', ms);
    let again;
    try {
      again = got.get({ timeout: 1000 });
    } catch {
      again = null;
    }
    if (!again || again[0] !== 'other consumer' || again[1] !== 'task 1') {
      return bad(`join() returned, but consumer 2 reported ${JSON.stringify(again)}, not task 1 redelivered`, ms);
    }
    jq.shutdown();
    const end = await exitedWithin(other, 5000);
    if (!end || end.code !== 0) return bad(`consumer 2 did not end cleanly at shutdown() (${end ? end.code ?? end.signal : 'still running'})`, ms);
    return ok(
      "the dead consumer's item (task 1, got and not acknowledged) goes back to the queue; the other consumer " +
        'gets it and calls taskDone(); join() returns true',
      ms,
    );
  } finally {
    await reap(victim);
    await reap(other);
    jq.close();
    got.close();
  }
}

// ---------------------------------------------------------------- Python side

const PYTHON = process.env.DEMO_PYTHON || 'python3';
const pyGroups = new Set(); // process-group ids of running Python scripts and --single-threaded children

function killGroup(pgid) {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // group already empty
  }
}

/** On exit or interruption: no child of the demo may outlive it. */
function killAllChildren() {
  for (const g of pyGroups) killGroup(g);
  pyGroups.clear();
  for (const p of liveChildren) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  liveChildren.clear();
}

process.on('exit', killAllChildren);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    killAllChildren();
    process.exit(130);
  });
}

/** The Python version, or null (with the reason) when there is no usable python3. */
function probePython() {
  const r = spawnSync(PYTHON, ['-c', 'import multiprocessing, sys; print(sys.version.split()[0])'], {
    encoding: 'utf8', timeout: 10_000,
  });
  if (r.error) return { version: null, why: `${PYTHON} not found (${r.error.code})` };
  if (r.status !== 0) return { version: null, why: `${PYTHON} cannot import multiprocessing` };
  const version = r.stdout.trim();
  const [maj, min] = version.split('.').map(Number);
  if (maj < 3 || (maj === 3 && min < 8)) return { version: null, why: `${PYTHON} is ${version}; the scripts need 3.8+` };
  return { version, why: null };
}

/** Runs demo/python/<script> (see runJson). */
function runPython(script, args, hardMs) {
  return runJson(PYTHON, [path.join(PYDIR, script), ...args.map(String)], hardMs);
}

/**
 * Runs `command argv` in its own process group and parses the JSON line it prints
 * last. The whole group is SIGKILLed after hardMs, and once the command is done
 * (so no multiprocessing or fork() child can outlive it).
 */
function runJson(command, argv, hardMs) {
  return new Promise((resolve) => {
    const t0 = nowNs();
    const child = spawn(command, argv, {
      detached: true, // own process group: the hard kill reaches its children too
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
    });
    const out = collect(child.stdout);
    const err = collect(child.stderr);
    let killed = false;
    if (child.pid) pyGroups.add(child.pid);
    const timer = setTimeout(() => {
      killed = true;
      killGroup(child.pid);
    }, hardMs);
    const done = (spawnError) => {
      clearTimeout(timer);
      if (child.pid) {
        killGroup(child.pid);
        pyGroups.delete(child.pid);
      }
      const ms = msSince(t0);
      if (spawnError) return resolve({ json: null, error: spawnError.message, ms });
      if (killed) return resolve({ json: null, error: `killed after ${hardMs / 1000} s (hard timeout)`, ms });
      const line = out().trim().split('\n').pop() ?? '';
      try {
        resolve({ json: JSON.parse(line), error: null, ms });
      } catch {
        resolve({ json: null, error: `no result: ${(err().trim().split('\n').pop() || line).slice(0, 160)}`, ms });
      }
    };
    child.on('error', done);
    child.on('close', () => done(null));
  });
}

// Each returns { text, ms, bug } where `bug` says whether this Python showed the bug.

function pyLockHolderKilled(j) {
  if (j.error) return { text: j.error, ms: null, bug: null };
  if (j.hung) return { text: `acquire() never succeeds: hangs forever (stopped after ${j.timeout_s} s)`, ms: j.waited_ms, bug: true };
  return { text: 'acquire() succeeded after the holder died', ms: j.waited_ms, bug: false };
}

function pyContextMismatch(j) {
  // Two times in one cell: the unmodified run, and the run with the guard bypassed.
  const b = j.guard_bypassed;
  const bypassed = b
    ? b.exitcode === -11
      ? `; with the guard bypassed, the child dies with SIGSEGV [${fmtMs(b.ms)}], as in Pythons without it`
      : `; with the guard bypassed: ${b.outcome} [${fmtMs(b.ms)}]`
    : '';
  if (j.error) {
    const name = j.error.split(':')[0];
    return { text: `p.start() raises ${name} [${fmtMs(j.ms)}] (a guard of recent CPython, gh-77377)${bypassed}`, ms: null, bug: b ? b.exitcode === -11 : false };
  }
  if (j.exitcode === -11) return { text: `the child dies with SIGSEGV (exit code -11)`, ms: j.ms, bug: true };
  return { text: `${j.outcome}${bypassed}`, ms: j.ms, bug: j.exitcode !== 0 };
}

function pySelfDeadlock(j) {
  if (j.hung) return { text: `second acquire() blocks forever, no error (stopped after ${j.timeout_s} s)`, ms: j.waited_ms, bug: true };
  if (j.error) return { text: `second acquire() raises ${j.error}`, ms: j.waited_ms, bug: false };
  return { text: 'second acquire() returned', ms: j.waited_ms, bug: false };
}

function pyForeignRelease(j) {
  if (j.error) return { text: j.error, ms: null, bug: null };
  if (j.release_ok) {
    const two = j.child_acquired_while_parent_holds
      ? '; the child then acquires it too: two holders at once'
      : '';
    return { text: `the child's release() succeeds silently${two}`, ms: j.release_ms, bug: true };
  }
  return { text: `the child's release() raises ${j.release_error}`, ms: j.release_ms, bug: false };
}

function pySemaphoreKilledHolder(j) {
  if (j.error) return { text: j.error, ms: null, bug: null };
  if (j.lost) {
    return {
      text: `slot lost: the unit never comes back, acquire(timeout=${j.timeout_s}) fails (value stays ${j.value_after})`,
      ms: j.waited_ms,
      bug: true,
    };
  }
  return { text: 'the unit came back', ms: j.waited_ms, bug: false };
}

function pyAsyncBlocksLoop(j) {
  if (j.error) return { text: j.error, ms: null, bug: null };
  const stalled = j.ticks < j.expected_ticks * 0.5;
  return {
    text: stalled
      ? `lock.acquire() in a coroutine blocks the event loop: ${j.ticks} of ~${j.expected_ticks} ticks while waiting`
      : `the ticker kept ticking (${j.ticks} of ~${j.expected_ticks})`,
    ms: j.waited_ms,
    bug: stalled,
  };
}

function pyRandomAfterFork(j) {
  const dupes = j.uuid1_default?.cross_dupes ?? 0;
  const inst = j.random_instance?.same_sequence === true;
  const fine = ['random_module', 'uuid4'].filter((k) => j[k] && !j[k].same_sequence && j[k].cross_dupes === 0);
  const parts = [];
  parts.push(dupes
    ? `uuid.uuid1(): ${dupes} of the child's ${j.n_uuid1_each.toLocaleString('en-US')} ids were also made by the parent`
    : `uuid.uuid1(): no duplicate in ${j.n_uuid1_each.toLocaleString('en-US')} ids each`);
  parts.push(inst
    ? 'a random.Random() made before fork gives both processes the same sequence'
    : 'a random.Random() made before fork was reseeded');
  const note = fine.length === 2 ? ' (the random module and uuid4 are reseeded: fine)' : '';
  return { text: parts.join('; ') + note, ms: null, bug: dupes > 0 || inst };
}

function pyForkLockHeld(j) {
  if (j.error) return { text: j.error, ms: null, bug: null };
  if (j.child_acquired === false) {
    return {
      text: `the parent gets the lock when the holder releases it (${fmtMs(j.parent_waited_ms)}); the child's ` +
        `acquire(timeout=${j.timeout_s}) fails: its copy stays locked, its holder thread does not exist there ` +
        `(without a timeout: hangs forever)${j.warning ? `; os.fork() warned: ${j.warning}` : ''}`,
      ms: j.child_waited_ms,
      bug: true,
    };
  }
  return { text: `the child acquired the lock${j.child_acquired == null ? ' (no report)' : ''}`, ms: j.child_waited_ms, bug: false };
}

function pyForkWithThreads(j) {
  if (j.error) return { text: j.error, ms: null, bug: null };
  if (!j.forked) return { text: 'os.fork() refused', ms: null, bug: false };
  const warned = j.warning ? `only a warning (${j.warning.split(':')[0]})` : 'no warning at all';
  const stopped = j.child_counter_advanced === false && j.parent_counter_advanced
    ? "; the child has 1 thread: the worker thread's loop silently stopped there (its counter is frozen)"
    : `; the child has ${j.child_threads} thread(s)`;
  return { text: `os.fork() goes ahead with ${j.parent_threads} threads running, ${warned}${stopped}`, ms: null, bug: true };
}

function pyPoolKilledWorker(j) {
  if (j.error) return { text: j.error, ms: null, bug: null };
  if (j.hung) {
    return {
      text: `Pool.map() never returns: the Pool replaces the killed worker but its task is lost, and map() waits ` +
        `for it forever (stopped after ${j.timeout_s} s)`,
      ms: j.waited_ms,
      bug: true,
    };
  }
  return { text: `map() returned ${JSON.stringify(j.result)}`, ms: j.waited_ms, bug: false };
}

function pyPoolHungTask(j) {
  if (j.error) return { text: j.error, ms: null, bug: null };
  if (!j.timed_out) return { text: 'get(timeout) returned a result', ms: j.get_ms, bug: false };
  if (j.hung_alive) {
    const one = j.pair_pids?.length === 1 ? ` (two 0.3 s tasks given together take ${fmtMs(j.pair_ms)}: one after the other)` : '';
    const join = j.join_hung ? `; close() + join() never returns (stopped after ${j.join_wait_s} s)` : '';
    return {
      text: `get(timeout=${j.timeout_s}) raises TimeoutError, but the worker stays inside the hung task: Pool has no ` +
        `per-task timeout and no way to stop one task or one worker. The 4 quick tasks run on the other worker; the pool ` +
        `serves on with one worker${one}${join}; only terminate(), which kills every worker, frees it`,
      ms: j.get_ms,
      bug: true,
    };
  }
  return { text: 'the worker of the timed-out task was freed', ms: j.get_ms, bug: false };
}

function pyForkserverStart(j) {
  const one = (k, label) => (j[k]?.median_ms != null ? `${label} ${fmtMs(j[k].median_ms)}` : `${label} failed`);
  const n = j.forkserver?.ms?.length ?? j.spawn?.ms?.length ?? 0;
  return {
    text: `median start() → first message, ${n} starts each: ${one('forkserver', 'forkserver')}; ` +
      `${one('spawn', 'spawn')}, ${one('fork', 'fork')}`,
    ms: j.forkserver?.median_ms ?? null,
    bug: null,
  };
}

function pyQueueProducerKilled(j) {
  if (j.error) return { text: j.error, ms: null, bug: null };
  const a = j.after_kill ?? { whole: 0, torn: 0, from_live: 0 };
  if (j.hung) {
    const held = j.pipe_bytes_after_kill != null ? ` (the pipe held ${Math.round(j.pipe_bytes_after_kill / 1024)} KiB when the producer died)` : '';
    const before = a.whole ? `${a.whole} whole message(s) already in the pipe come through, then ` : '';
    const lock = j.write_lock_held
      ? "; the live producer's messages stop too: its feeder thread waits forever for the queue's write lock, " +
        'which the dead producer holds'
      : '';
    return {
      text: `the consumer hangs: ${before}get(timeout=${j.timeout_s}) reads the length prefix and the first part of a ` +
        `1 MiB message${held}, then waits for the rest, past its own timeout (stopped after ` +
        `${Math.round(j.waited_ms / 1000)} s)${lock}`,
      ms: j.waited_ms,
      bug: true,
    };
  }
  if (j.torn) return { text: `torn message: ${j.outcome}`, ms: j.waited_ms, bug: true };
  return { text: `the consumer went on (${j.outcome}; ${a.whole} whole messages after the kill)`, ms: j.waited_ms, bug: false };
}

function pyJoinableConsumerKilled(j) {
  if (j.error) return { text: j.error, ms: null, bug: null };
  if (j.hung) {
    return {
      text: `join() never returns: the item the killed consumer took (${j.killed_got}) is lost, not redelivered ` +
        `(the other consumer's next get(timeout=${j.timeout_s}) raises Empty), and its task_done() never comes ` +
        `(${j.unfinished ?? 'one'} task unfinished for good); join() has no timeout (stopped after ${j.timeout_s} s)`,
      ms: j.waited_ms,
      bug: true,
    };
  }
  return { text: `join() returned${j.redelivered ? ' (the item was redelivered)' : ''}`, ms: j.waited_ms, bug: false };
}

// ---------------------------------------------------------------- the scenarios

const ROWS = [
  {
    title: 'Lock holder killed by SIGKILL (the OOM killer)',
    py: { script: 'lock_holder_killed.py', args: [3], hardMs: 10_000, read: pyLockHolderKilled },
    fs: fsLockHolderKilled,
    fixed: 'recovers instead of hanging',
    legend:
      'A worker dies while holding a lock, the way the OOM killer ends it (SIGKILL: no cleanup, no finally), ' +
      'and a pipeline of workers hangs forever. Python\'s lock has no owner, so nobody can ever release it. ' +
      "forksafe's waiter gets the lock with OwnerDiedError (time: from SIGKILL to the error, " +
      'including the death detection), repairs, calls markConsistent(), and the lock works again.',
  },
  {
    title: 'Primitive of one start method used by a process of another',
    py: { script: 'context_mismatch.py', args: [1], hardMs: 10_000, read: pyContextMismatch },
    fs: fsContextMismatch,
    fixed: 'clear error, nothing started',
    legend:
      "An Event made with Python's default start method on Linux ('fork'; 'forkserver' since Python 3.14) handed " +
      "to a Process of the 'spawn' start method: the child segfaults. Recent CPython refuses at start(); the script also runs it with " +
      'that guard switched off, to show the crash older versions give. forksafe checks contexts in start(), ' +
      'before anything is spawned, and says how to fix the code.',
  },
  {
    title: 'Same thread acquires a lock it already holds',
    py: { script: 'self_deadlock.py', args: [2], hardMs: 8_000, read: pySelfDeadlock },
    fs: fsSelfDeadlock,
    fixed: 'error instead of a silent hang',
    legend:
      'A classic bug (a helper that takes the lock, called by code that already holds it). Python waits ' +
      'for itself forever; forksafe knows the owner and throws DeadlockError at once.',
  },
  {
    title: 'Lock released by a process that does not hold it',
    py: { script: 'foreign_release.py', args: [], hardMs: 8_000, read: pyForeignRelease },
    fs: fsForeignRelease,
    fixed: 'error instead of silent corruption',
    legend:
      "The parent holds the lock; a child calls release(). Python allows it, so the child (or anyone) can " +
      "get in while the parent is still in its critical section. forksafe's release() checks the owner.",
  },
  {
    title: 'Semaphore slot held by a killed worker',
    py: { script: 'semaphore_killed_holder.py', args: [3], hardMs: 10_000, read: pySemaphoreKilledHolder },
    fs: fsSemaphoreKilledHolder,
    fixed: 'unit given back instead of lost',
    legend:
      'A worker takes the only slot of Semaphore(1) and is SIGKILLed (the OOM killer again). In Python the slot ' +
      'is gone for good: every later acquire() without a timeout blocks forever. forksafe\'s Semaphore(1, ' +
      '{ undoOnExit: true }) gives a dead process\'s units back (time: from SIGKILL to acquire() returning).',
  },
  {
    title: 'Waiting for a lock without stalling the event loop',
    py: { script: 'async_blocks_loop.py', args: [1], hardMs: 10_000, read: pyAsyncBlocksLoop },
    fs: fsAsyncTicker,
    fixed: 'the loop keeps running',
    legend:
      'Another process holds the lock for 1 s while a 10 ms ticker runs. multiprocessing only has a blocking ' +
      'acquire(): in an asyncio program it freezes every other task until the lock comes. forksafe\'s ' +
      'acquireAsync() waits on a native waiter thread (not the libuv threadpool) and resolves the promise on ' +
      'this thread when the lock is ours: the ticker never stops.',
  },
  {
    title: 'Random ids after fork',
    py: { script: 'fork_uuid.py', args: [20000], hardMs: 10_000, read: pyRandomAfterFork },
    fs: () => forkScenario('randomIds', 12_000),
    fixed: 'no id made twice',
    legend:
      'uuid1() sets up a global state on its first call, and fork() copies it into every child, as it copies ' +
      'every generator\'s state. Python (os.fork, both processes drawing at once): uuid1() makes some ids ' +
      'twice, and a random.Random() created before the fork gives both the same sequence (Python reseeds only ' +
      'its module-level generator). Node has the same bug: crypto.randomUUID() serves from a cached batch of 128 ' +
      'ids and V8\'s Math.random() is never reseeded; both are measured here in the forked child (the batch ' +
      'forksafe discards, and V8\'s generator through a reference kept from before fork()). forksafe\'s child ' +
      'uses up that batch and gets a Math.random() seeded from the OS; OpenSSL (crypto.randomBytes) reseeds by ' +
      'itself (time: fork() to the comparison).',
  },
  {
    title: 'Lock held by another thread at fork time',
    py: { script: 'fork_lock_held.py', args: [2], hardMs: 10_000, read: pyForkLockHeld },
    fs: () => forkScenario('lockHeldByThread', 12_000),
    fixed: 'the child gets the lock',
    legend:
      'fork() copies a lock held by another thread in its locked state, but not the thread: the ' +
      'child waits forever. Python: a thread holds a threading.Lock for 0.3 s while the main thread forks. ' +
      'forksafe: a worker_thread holds a getContext(\'fork\') Lock while the main thread forks. fork() refuses ' +
      'while a worker runs (message below), so the demo forces it ({ force: true }). The lock lives in shared ' +
      'memory, so it is the same lock in both processes and knows its owner: the child waits for the worker in ' +
      'the parent and gets the lock when it is released (time: the child\'s wait). Had the worker died holding ' +
      'it, the child would get OwnerDiedError instead.',
  },
  {
    title: 'fork() in a process that cannot be forked safely',
    py: { script: 'fork_with_threads.py', args: [], hardMs: 10_000, read: pyForkWithThreads },
    fs: fsForkRefused,
    fixed: 'refuses and says why',
    legend:
      'A fork() child has only the thread that called fork(): other threads, their locks and their work in ' +
      'flight are gone (row 8). Python forks anyway (3.11 and older silently, 3.12+ with a DeprecationWarning). ' +
      'forksafe\'s fork() checks first (forkSafety()) and throws ForkUnsafeError listing every reason. This demo ' +
      'process has three: it was not started with --single-threaded (V8 would wait in the child for its ' +
      'background threads), an idle worker_thread runs, and an fs.promises.readFile() is in flight. ' +
      '{ force: true } forks anyway, at your own risk. What fork() does about each hazard: docs/fork.md.',
  },
  {
    title: 'Worker killed in a process pool',
    py: { script: 'pool_killed_worker.py', args: [3], hardMs: 10_000, read: pyPoolKilledWorker },
    fs: fsPoolKilledWorker,
    fixed: 'the task fails, the map finishes',
    legend:
      'Pool(2).map over six tasks, x = 0..5 (the pool numbers them #0..#5); task #3 (x = 3) SIGKILLs its own worker ' +
      '(the OOM killer again). Python\'s Pool starts ' +
      'a new worker but forgets the task the dead one was running: map() waits for its result forever. The ' +
      'forksafe side is the package\'s Pool (two forkserver workers, a Pipe each, the tasks in demo/roles.cjs): ' +
      'each worker\'s Process.exited settles within milliseconds of its death, so the lost task rejects with ' +
      'WorkerDiedError naming the pid and the signal (or is re-run, with { retries: 1 }), the other five ' +
      'complete, and a replacement worker serves the next tasks (time: the six run() calls to the last one settled).',
  },
  {
    title: 'Worker start-up',
    py: { script: 'forkserver_start.py', args: [5], hardMs: 20_000, read: pyForkserverStart, serial: true },
    fs: fsWorkerStartup,
    fixed: 'forkserver workers start',
    timing: true,
    legend:
      'How long from start() until a new worker process has run its first line and said so (an Event set, an ' +
      'IPC message, a Pipe message), the median of a few starts, side by side (not a benchmark: see bench/). ' +
      "forksafe's default context forks workers from a pre-warmed forkserver instead of booting a node each " +
      "time (getContext('spawn')) and, unlike child_process.fork(), they can take forksafe primitives as args. " +
      'Python for comparison: its forkserver, spawn and fork methods (time: the forkserver median).',
  },
  {
    title: 'Producer killed while putting to a queue',
    py: { script: 'queue_producer_killed.py', args: [3], hardMs: 12_000, read: pyQueueProducerKilled },
    fs: fsQueueProducerKilled,
    fixed: 'no torn message, no hang',
    legend:
      'A producer putting large messages (1 MiB, checksummed) is SIGKILLed in the middle of a put (the OOM killer ' +
      'again) while a second producer goes on. Python\'s mp.Queue hands each message to a feeder thread, which ' +
      'writes it to a pipe (64 KiB of kernel buffer) under the queue\'s write lock: killed mid-message, it leaves ' +
      'part of a message in the pipe and the lock taken. The consumer reads that part and waits for the rest ' +
      'forever (get(timeout=3) too: its timeout only covers the wait for the first byte), and the live producer ' +
      'can never send again. forksafe: producer 1 puts 1 MiB Buffers back to back into a getContext(\'spawn\').Queue ' +
      '({ maxsize: 8 }) and is SIGKILLed at a random instant inside a put(); producer 2 puts one every 5 ms. A ' +
      'message becomes visible only once it is whole, and one a dead producer left unfinished is passed over and ' +
      'dropped, so the consumer keeps receiving whole messages (time: from SIGKILL to the next whole message).',
  },
  {
    title: 'Consumer killed before task_done() (JoinableQueue join)',
    py: { script: 'joinable_consumer_killed.py', args: [3], hardMs: 10_000, read: pyJoinableConsumerKilled },
    fs: fsJoinableConsumerKilled,
    fixed: 'item redelivered, join() returns',
    legend:
      'Four tasks in a JoinableQueue; consumer 1 gets the first and is SIGKILLed before task_done(), consumer 2 ' +
      'does the other three. In Python the first task is gone (nothing gives it back) and its task_done() never ' +
      'comes, so join(), which has no timeout, blocks forever. forksafe\'s JoinableQueue delivers at least once: ' +
      'an item that a dead consumer had not acknowledged goes back to the front of the queue, consumer 2 (blocked ' +
      'in get()) receives it and calls taskDone(), and join() returns (time: from SIGKILL to join() returning; ' +
      'waiters look for dead consumers after each 50 ms wait slice without progress).',
  },
  {
    title: 'A task that hangs in a process pool',
    py: { script: 'pool_hung_task.py', args: [1, 1], hardMs: 10_000, read: pyPoolHungTask },
    fs: fsPoolHungTask,
    fixed: 'only that worker is killed',
    legend:
      'Pool(2): one task never returns (a stuck read, a deadlock), four quick ones are given at the same time. ' +
      'Python\'s AsyncResult.get(timeout=1) raises TimeoutError, but that only ends the wait: the worker stays in ' +
      'the task for good, the pool has one worker less, close() + join() waits forever, and the one way out is ' +
      'terminate(), which kills every worker and every task (ProcessPoolExecutor is no better: future.cancel() ' +
      'cannot stop a running task). forksafe\'s pool.run(arg, { timeout: 1000 }) rejects with TimeoutError and ' +
      'SIGKILLs the worker of that task only; the other worker goes on and a replacement starts. While tasks queue ' +
      'up, the pool sends each worker several at once: quick tasks it had sent to the hung worker, behind the hung ' +
      'one, wait until the kill, then go back to the front of the queue (time: run() to the TimeoutError).',
  },
];

// ---------------------------------------------------------------- table printing

function wrap(text, width) {
  const lines = [];
  for (const para of String(text).split('\n')) {
    let line = '';
    for (let word of para.split(/\s+/).filter(Boolean)) {
      while (word.length > width) {
        if (line) {
          lines.push(line);
          line = '';
        }
        lines.push(word.slice(0, width));
        word = word.slice(width);
      }
      if (!line) line = word;
      else if (line.length + 1 + word.length <= width) line += ` ${word}`;
      else {
        lines.push(line);
        line = word;
      }
    }
    lines.push(line);
  }
  return lines;
}

function table(headers, rows, shares, total) {
  const inner = total - (3 * (headers.length - 1) + 4);
  const widths = shares.map((s) => Math.max(8, Math.floor(inner * s)));
  widths[widths.length - 1] += inner - widths.reduce((a, b) => a + b, 0);
  const rule = (l, m, r) => l + widths.map((w) => '─'.repeat(w + 2)).join(m) + r;
  const line = (cells) => {
    const wrapped = cells.map((c, i) => wrap(c, widths[i]));
    const h = Math.max(...wrapped.map((w) => w.length));
    const out = [];
    for (let k = 0; k < h; k++) out.push(`│ ${wrapped.map((w, i) => (w[k] ?? '').padEnd(widths[i])).join(' │ ')} │`);
    return out.join('\n');
  };
  const parts = [rule('┌', '┬', '┐'), line(headers), rule('├', '┼', '┤')];
  rows.forEach((r, i) => {
    parts.push(line(r));
    parts.push(i === rows.length - 1 ? rule('└', '┴', '┘') : rule('├', '┼', '┤'));
  });
  return parts.join('\n');
}

/** Wraps text to `width`; the first line starts with `first`, the others are aligned under it. */
function indent(text, width, first, rest = ' '.repeat(first.length)) {
  return wrap(text, width - first.length).map((l, i) => (i === 0 ? first : rest) + l).join('\n');
}

// ---------------------------------------------------------------- main

async function main() {
  const started = nowNs();
  const cols = Math.min(Math.max(process.stdout.columns || 110, 84), 140);
  const py = probePython();

  console.log('forksafe demo: real bugs of Python multiprocessing and os.fork(), run for real, next to forksafe');
  console.log(`node ${process.version}; python: ${py.version ? `${PYTHON} ${py.version}` : `skipped (${py.why})`}`);
  console.log('');

  // forksafe first, one row at a time, so that its timings are not disturbed.
  process.stdout.write('running forksafe scenarios...');
  const fsResults = [];
  for (const row of ROWS) {
    try {
      fsResults.push(await row.fs());
    } catch (e) {
      fsResults.push(bad(`unexpected ${e?.name ?? 'error'}: ${e?.message ?? e}`));
    }
  }
  // Python next, all scripts in parallel (they mostly wait).
  let pyResults = ROWS.map(() => null);
  if (py.version) {
    process.stdout.write(' Python scenarios (a few seconds: some of them hang until stopped)...');
    const runRow = async (row) => {
      const r = await runPython(row.py.script, row.py.args, row.py.hardMs);
      if (!r.json) return { text: r.error, ms: null, bug: null };
      try {
        return row.py.read(r.json);
      } catch (e) {
        return { text: `unreadable result: ${e.message}`, ms: null, bug: null };
      }
    };
    pyResults = await Promise.all(ROWS.map((row) => (row.py.serial ? null : runRow(row))));
    // Timing rows (py.serial) run alone afterwards, so the others do not disturb them.
    for (const [i, row] of ROWS.entries()) if (row.py.serial) pyResults[i] = await runRow(row);
  }
  process.stdout.write('\n\n');

  const cell = (r) => (r.ms == null ? r.text : `${r.text}\n[${fmtMs(r.ms)}]`);
  const rows = ROWS.map((row, i) => {
    const f = fsResults[i];
    const p = pyResults[i];
    let verdict;
    if (!f.ok) verdict = 'REGRESSION: forksafe did not behave as expected';
    else if (!p || row.timing) verdict = `forksafe OK: ${row.fixed}`;
    else if (p.bug === true) verdict = `forksafe: ${row.fixed}`;
    else if (p.bug === false) verdict = 'both OK (this Python does not show the bug)';
    else verdict = 'forksafe OK (Python run failed)';
    return [`${i + 1}. ${row.title}`, p ? cell(p) : 'skipped (no python3)', `${f.ok ? '' : 'FAILED: '}${cell(f)}`, verdict];
  });
  const pyHeader = py.version ? `The naive way: Python ${py.version}` : 'The naive way: Python';
  console.log(table(['Scenario', pyHeader, 'forksafe', 'Verdict'], rows, [0.2, 0.3, 0.33, 0.17], cols));
  if (!py.version) {
    console.log(`\nThe Python column was skipped: ${py.why}. Install python3 (or set DEMO_PYTHON) to see it.`);
  }

  console.log('\nWhat each row shows (times in [brackets]: how long until the outcome was known):');
  ROWS.forEach((row, i) => {
    console.log('');
    console.log(indent(row.legend, cols, `${String(i + 1).padStart(2)}. `.padEnd(4)));
    const m = fsResults[i].message;
    if (m) console.log(indent(`forksafe said: ${m}`, cols, '    '));
  });
  console.log('');
  console.log(indent(
    'Python columns: demo/python/*.py (each stopped by its own watchdog or timeout, then killed with its ' +
    'children after a hard limit). forksafe columns: demo/run.mjs with child roles in demo/roles.cjs; rows 7 ' +
    'and 8 run in `node --single-threaded demo/run.mjs --fork-scenario <name>` (fork() needs that flag).',
    cols, '',
  ));

  const failed = fsResults.filter((r) => !r.ok).length;
  const secs = (msSince(started) / 1000).toFixed(1);
  if (failed) {
    console.log(`\n${failed} forksafe scenario(s) did not behave as expected (see FAILED above). ${secs} s.`);
    process.exitCode = 1;
  } else {
    console.log(`\nAll ${ROWS.length} forksafe scenarios behaved as expected. ${secs} s.`);
  }
}

const sub = process.argv.indexOf('--fork-scenario');
if (sub >= 0) {
  forkScenarioMain(process.argv[sub + 1]);
} else {
  main().catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
}
