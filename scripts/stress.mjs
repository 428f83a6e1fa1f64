#!/usr/bin/env node
// `npm run stress`: SIGKILL-the-holder trials for every blocking primitive,
// sync and async, then a chaos run with an exact invariant, then leak checks.
//
//   npm run stress                   (about 2.5 min: 100 s of trials, 40 s of chaos)
//   npm run stress -- --short        (about 45 s: 25 s of trials, 12 s of chaos; CI)
//   npm run stress -- --trials-s=60 --chaos-s=20   (or FORKSAFE_STRESS_TRIALS_S / _CHAOS_S)
//
// Trials (waiter = this process, holder = a forksafe Process: mostly the
// 'forkserver' context, every 4th trial 'spawn'): the child takes the
// primitive, the parent blocks on it (acquire()/wait() or the …Async twin),
// the child SIGKILLs itself after a random 5-60 ms, and the parent checks
// the outcome: Lock/RLock and a Condition's re-acquire -> OwnerDiedError
// naming the child, the lock held, usable after markConsistent(); Semaphore
// (undoOnExit) -> the unit comes back; Barrier -> BrokenBarrierError well
// before the timeout; Event set by the child right before it dies -> true;
// Event never set -> false at the timeout (a death releases nobody). Latency
// = the child's hrtime right before its last act -> the parent's outcome. A
// trial not finished within 5 s is a hang. Kinds run round-robin until the
// trial budget is spent (at least a minimum of each).
// Chaos: several workers (half async) do journalled locked increments of a
// counter in SharedMemory; random SIGKILLs, each worker restarted in its slot;
// OwnerDiedError recovery rolls back a half-done increment and calls
// markConsistent(). At the end counter == the sum of the slots' committed
// increments, exactly, and mutual exclusion was never seen broken.
// Leaks: this process's fd count, its SharedMemory segments, /dev/shm
// entries, zombies among its and the forkserver's children: as before.
// Prints a table, then `N passed, N failed` (N = trials and checks); exits 1
// on any hang, wrong outcome or leak. A watchdog thread SIGKILLs the run if
// one trial blocks for 30 s (its own bounds failed).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);
const require = createRequire(import.meta.url);
if (!fs.existsSync(path.join(root, 'dist', 'index.js'))) {
  console.error('stress: dist/ is missing: run `npm run build:ts` (and build the addon) first');
  process.exit(1);
}
const { getContext, OwnerDiedError, BrokenBarrierError, forkserverPid } = require('../dist/index.js');
const { binding } = require('../dist/core/binding.js');
const TARGETS = path.join(here, 'stress-targets.mjs');
const T = await import('./stress-targets.mjs');

// ---- options ------------------------------------------------------------------------------
const argv = process.argv.slice(2);
const opt = (name) => {
  const a = argv.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.slice(name.length + 3)) : undefined;
};
const SHORT = argv.includes('--short');
const TRIALS_S = opt('trials-s') ?? (Number(process.env.FORKSAFE_STRESS_TRIALS_S) || (SHORT ? 18 : 100));
const CHAOS_S = opt('chaos-s') ?? (Number(process.env.FORKSAFE_STRESS_CHAOS_S) || (SHORT ? 10 : 40));
const MIN_PER_KIND = SHORT ? 3 : 10;
const HANG_MS = 5000;
const WATCHDOG_MS = 30_000;

let passed = 0;
let failed = 0;
const failures = [];
function check(ok, what) {
  if (ok) passed++;
  else {
    failed++;
    failures.push(what);
    console.log(`  FAIL ${what}`);
  }
  return ok;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// For races against a bound: does not keep the process alive once the race is won.
const later = (ms) => new Promise((r) => setTimeout(r, ms).unref());
const now = () => Number(process.hrtime.bigint());
const pct = (xs, p) => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length ? v[Math.min(v.length - 1, Math.floor(v.length * p))] : null;
};
const fmt = (x) => (x == null ? '—' : `${x.toFixed(x < 10 ? 2 : 1)} ms`);

// ---- watchdog: a sync wait that outlives every bound must not hang CI ----------------------
const beat = new Float64Array(new SharedArrayBuffer(16)); // [0] trial start (ms, 0 = idle), [1] trial id
const what = new Int32Array(new SharedArrayBuffer(4));
const dog = new Worker(`
  const { workerData } = require('node:worker_threads');
  const fs = require('node:fs');
  const beat = new Float64Array(workerData.beat);
  setInterval(() => {
    if (beat[0] > 0 && Date.now() - beat[0] > ${WATCHDOG_MS}) {
      fs.writeSync(2, 'stress: trial ' + beat[1] + ' blocked for ${WATCHDOG_MS / 1000} s: a hang past every bound; killing the run\\n');
      process.kill(process.pid, 'SIGKILL');
    }
  }, 1000);
`, { eval: true, workerData: { beat: beat.buffer, what: what.buffer } });
dog.unref();

// ---- /proc helpers --------------------------------------------------------------------------
const fdCount = () => fs.readdirSync('/proc/self/fd').length;
const shmEntries = () => {
  try {
    return fs.readdirSync('/dev/shm').filter((n) => n.startsWith('forksafe'));
  } catch {
    return [];
  }
};
function zombiesOf(ppid) {
  const out = [];
  if (!ppid) return out;
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === ppid && f[0] === 'Z') out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}
async function until(pred, ms) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) return false;
    await sleep(20);
  }
  return true;
}

// ---- trials -------------------------------------------------------------------------------
const KINDS = ['Lock', 'RLock', 'Condition', 'Semaphore(undoOnExit)', 'Barrier', 'Event: set, then SIGKILL', 'Event: SIGKILL, never set'];
const HOWS = ['sync', 'async'];

async function waitReady(ctl) {
  const i32 = new Int32Array(ctl.buffer);
  const end = Date.now() + 15_000;
  while (Atomics.load(i32, T.READY) === 0) {
    if (Date.now() > end) return false;
    await ctl.waitAsync(T.READY, 0, { timeout: 500 });
  }
  return true;
}

/** Runs fn, returning {value} or {error}, and the hrtime when it settled. */
async function outcome(fn) {
  try {
    const value = await fn();
    return { value, t: now() };
  } catch (error) {
    return { error, t: now() };
  }
}

let trialId = 0;
async function trial(kind, how, ctxName) {
  const ctx = getContext(ctxName);
  const ctl = new ctx.SharedMemory({ size: T.CTL_SIZE });
  const i32 = new Int32Array(ctl.buffer);
  const tKill = new Float64Array(ctl.buffer, T.T_KILL_BYTE, 1);
  const delay = 5 + Math.random() * 55;
  const res = { kind, how, ctx: ctxName, ok: false, hang: false, ms: null, why: '' };
  const closers = [() => ctl.close()];
  let prim;
  let lock = null;
  let role;
  switch (kind) {
    case 'Lock':
    case 'RLock':
      prim = lock = kind === 'Lock' ? new ctx.Lock() : new ctx.RLock();
      role = 'lockHolder';
      break;
    case 'Condition':
      lock = new ctx.Lock();
      prim = new ctx.Condition(lock);
      closers.push(() => lock.close());
      role = 'condNotifier';
      break;
    case 'Semaphore(undoOnExit)':
      prim = new ctx.Semaphore(1, { undoOnExit: true });
      role = 'semHolder';
      break;
    case 'Barrier':
      prim = new ctx.Barrier(3);
      role = 'barrierParty';
      break;
    default:
      prim = new ctx.Event();
      role = kind.includes('never') ? 'eventNoSetter' : 'eventSetter';
  }
  closers.unshift(() => prim.close());
  // 'forkserver' workers write to our stdout/stderr (no 'pipe' there).
  const stdio = ctxName === 'spawn' ? 'pipe' : 'inherit';
  const child = new ctx.Process({ target: { module: TARGETS, export: role }, args: [prim, ctl, delay], stdio }).start();
  let stderr = '';
  child.stdout?.resume();
  child.stderr?.setEncoding('utf8').on('data', (d) => (stderr += d));
  beat[1] = ++trialId;
  beat[0] = Date.now();
  try {
    if (!(await waitReady(ctl))) {
      res.why = `setup: the child never got ready ${stderr.slice(-300)}`;
      return res;
    }
    if (kind === 'Condition') prim.acquire();
    const t0 = Date.now();
    Atomics.store(i32, T.GO, 1);
    ctl.notify(T.GO);
    const sync = how === 'sync';
    const opts = { timeout: kind.includes('never') ? 300 : HANG_MS };
    let o;
    switch (kind) {
      case 'Lock':
      case 'RLock':
      case 'Semaphore(undoOnExit)':
        o = await outcome(() => (sync ? prim.acquire(opts) : prim.acquireAsync(opts)));
        break;
      case 'Condition':
      case 'Barrier':
      default:
        o = await outcome(() => (sync ? prim.wait(opts) : prim.waitAsync(opts)));
    }
    const elapsed = Date.now() - t0;
    const latency = tKill[0] > 0 ? (o.t - tKill[0]) / 1e6 : null;
    const e = o.error;
    switch (kind) {
      case 'Lock':
      case 'RLock':
      case 'Condition': {
        if (o.value === false) {
          res.hang = true;
          res.why = `no outcome within ${HANG_MS} ms`;
        } else if (!(e instanceof OwnerDiedError)) res.why = `expected OwnerDiedError, got ${e ? `${e.constructor?.name}: ${e.message}` : String(o.value)}`;
        else if (e.pid !== child.pid) res.why = `OwnerDiedError pid ${e.pid}, the holder was ${child.pid}`;
        else if (!lock.isOwned()) res.why = 'OwnerDiedError but the lock is not held';
        else {
          lock.markConsistent();
          lock.release();
          if (!lock.acquire({ timeout: 0 })) res.why = 'not usable after markConsistent() + release()';
          else {
            lock.release();
            res.ok = true;
          }
        }
        if (lock.isOwned()) {
          try {
            lock.markConsistent();
          } catch {}
          lock.release();
        }
        break;
      }
      case 'Semaphore(undoOnExit)':
        if (o.value === true) {
          prim.release();
          if (prim.value !== 1) res.why = `value ${prim.value} after release, expected 1`;
          else res.ok = true;
        } else if (o.value === false) {
          res.hang = true;
          res.why = `the dead holder's unit did not come back within ${HANG_MS} ms`;
        } else res.why = `expected the unit, got ${e ? `${e.constructor?.name}: ${e.message}` : String(o.value)}`;
        break;
      case 'Barrier':
        if (!(e instanceof BrokenBarrierError)) res.why = `expected BrokenBarrierError, got ${e ? `${e.constructor?.name}: ${e.message}` : String(o.value)}`;
        else if (elapsed >= HANG_MS - 250) {
          res.hang = true;
          res.why = `broken only by the ${HANG_MS} ms timeout`;
        } else if (!prim.broken) res.why = 'BrokenBarrierError but broken is false';
        else {
          prim.reset();
          res.ok = true;
        }
        break;
      case 'Event: set, then SIGKILL':
        if (o.value === true && prim.isSet()) res.ok = true;
        else if (o.value === false) {
          res.hang = true;
          res.why = `the set did not wake the waiter within ${HANG_MS} ms`;
        } else res.why = `expected true, got ${e ? `${e.constructor?.name}: ${e.message}` : String(o.value)}`;
        break;
      default: // never set: a death wakes nobody
        if (o.value === false && !prim.isSet() && elapsed >= 250) res.ok = true;
        else res.why = `expected false at the 300 ms timeout, got ${e ? `${e.constructor?.name}: ${e.message}` : String(o.value)} after ${elapsed} ms`;
    }
    if (res.ok && !kind.includes('never')) res.ms = latency;
  } finally {
    beat[0] = 0;
    if (child.exitCode === null && child.signalCode === null && !(await until(() => child.signalCode !== null || child.exitCode !== null, 2000))) {
      child.kill('SIGKILL');
    }
    const ex = await Promise.race([child.exited, later(10_000).then(() => null)]);
    if (!ex) {
      res.ok = false;
      res.why ||= 'the child was not reaped within 10 s';
    } else if (ex.signal !== 'SIGKILL') {
      res.ok = false;
      res.why ||= `the child exited ${ex.code} (a wait of its own ran out) ${stderr.slice(-300)}`;
    }
    for (const c of closers) c();
  }
  return res;
}

// ---- chaos --------------------------------------------------------------------------------
async function chaos(seconds) {
  const ctx = getContext('forkserver');
  const lock = new ctx.Lock();
  const shm = new ctx.SharedMemory({ size: T.C_SIZE });
  const i32 = new Int32Array(shm.buffer);
  const nSlots = SHORT ? 4 : 6;
  const workers = new Array(nSlots).fill(null);
  const exits = [];
  let restarts = 0;
  let kills = 0;
  const startSlot = (s) => {
    const p = new ctx.Process({ target: { module: TARGETS, export: 'chaosWorker' }, args: [lock, shm, s, nSlots, s % 2 === 1] }).start();
    p.exited.then((e) => exits.push({ slot: s, ...e }));
    workers[s] = p;
  };
  for (let s = 0; s < nSlots; s++) startSlot(s);
  const end = Date.now() + seconds * 1000;
  let lastCount = -1;
  let lastChange = Date.now();
  let stalled = false;
  while (Date.now() < end) {
    await sleep(20 + Math.random() * 130);
    const c = Atomics.load(i32, T.C_COUNTER);
    if (c !== lastCount) {
      lastCount = c;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > HANG_MS) {
      stalled = true;
      break;
    }
    const s = Math.floor(Math.random() * nSlots);
    const w = workers[s];
    if (w.pid == null) continue;
    w.kill('SIGKILL');
    kills++;
    await Promise.race([w.exited, later(10_000)]);
    startSlot(s);
    restarts++;
  }
  Atomics.store(i32, T.C_STOP, 1);
  shm.notify(T.C_STOP);
  const settled = await Promise.race([Promise.all(workers.map((w) => w.exited)), later(30_000).then(() => null)]);
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
  await Promise.all(workers.map((w) => w.exited));
  // The last kill may have hit the holder: this process recovers as a worker would.
  let finalRecovery = false;
  let finalOk = false;
  try {
    finalOk = lock.acquire({ timeout: HANG_MS });
  } catch (e) {
    if (e instanceof OwnerDiedError) {
      finalOk = true;
      finalRecovery = true;
      T.recoverState(lock, i32, e, nSlots);
    } else console.log(`  chaos: final acquire: ${e?.stack ?? e}`);
  }
  let sum = 0;
  let intents = 0;
  for (let s = 0; s < nSlots; s++) {
    sum += i32[T.C_SLOTS + 4 * s];
    intents += i32[T.C_SLOTS + 4 * s + 1];
  }
  const counter = i32[T.C_COUNTER];
  const r = {
    seconds, nSlots, kills, restarts, counter, sum, intents,
    inside: Atomics.load(i32, T.C_INSIDE),
    violations: Atomics.load(i32, T.C_VIOLATIONS),
    bad: Atomics.load(i32, T.C_BAD),
    recoveries: Atomics.load(i32, T.C_RECOVERIES) - (finalRecovery ? 1 : 0), // recoverState counted the final one too
    finalRecovery,
    stalled,
    allExited: settled !== null,
    badExits: exits.filter((e) => !(e.signal === 'SIGKILL' || e.code === 0)),
  };
  if (lock.isOwned()) lock.release();
  lock.close();
  shm.close();
  check(finalOk, 'chaos: the lock could be taken at the end');
  check(!stalled, `chaos: the counter kept moving (no ${HANG_MS / 1000} s stall)`);
  check(r.allExited, 'chaos: every worker stopped when asked');
  check(r.badExits.length === 0, `chaos: every worker ended by SIGKILL or exit 0 (${JSON.stringify(r.badExits.slice(0, 3))})`);
  check(counter === sum, `chaos: counter ${counter} == sum of committed increments ${sum}`);
  check(intents === 0 && r.inside === 0, 'chaos: no increment left half-done');
  check(r.violations === 0, `chaos: mutual exclusion never broken (${r.violations} seen)`);
  check(r.bad === 0, `chaos: no unexpected error in a worker (${r.bad})`);
  check(r.recoveries + (finalRecovery ? 1 : 0) <= kills, `chaos: recoveries ${r.recoveries + (finalRecovery ? 1 : 0)} <= kills ${kills}`);
  check(counter > 0, 'chaos: work was done');
  return r;
}

// ---- main ---------------------------------------------------------------------------------
const dw = binding._deathwatch();
console.log(`forksafe stress${SHORT ? ' (--short)' : ''}: ${TRIALS_S} s of SIGKILL-the-holder trials, ${CHAOS_S} s of chaos; ` +
  `node ${process.version}, death watcher ${dw.supported === 1 ? 'on' : 'not supported (slices only)'}`);

const tStart = Date.now();
const phases = [];
const phase = (name) => phases.push([name, Date.now()]);
// Warm-up, not counted: the forkserver starts, the watcher thread starts,
// code paths compile; the leak baseline is taken after it.
for (const ctxName of ['forkserver', 'spawn']) {
  for (const kind of ['Lock', 'Semaphore(undoOnExit)']) await trial(kind, 'async', ctxName);
}
await sleep(1500); // the watcher's idle pidfds go (1 s linger)
phase('warm-up');
const fdBase = fdCount();
const shmBase = shmEntries();
const segBase = binding.stats();

const results = new Map();
for (const k of KINDS) for (const h of HOWS) results.set(`${k} ${h}`, []);
const keys = [...results.keys()];
const tEnd = Date.now() + TRIALS_S * 1000;
let round = 0;
for (;;) {
  const enough = [...results.values()].every((v) => v.length >= MIN_PER_KIND);
  if (Date.now() > tEnd && enough) break;
  const order = [...keys].sort(() => Math.random() - 0.5);
  for (const key of order) {
    const [kind, how] = [key.slice(0, key.lastIndexOf(' ')), key.slice(key.lastIndexOf(' ') + 1)];
    const ctxName = (round + keys.indexOf(key)) % 4 === 3 ? 'spawn' : 'forkserver';
    const r = await trial(kind, how, ctxName);
    results.get(key).push(r);
    check(r.ok, `${key} (${ctxName}) trial ${results.get(key).length}: ${r.why}`);
  }
  round++;
}

phase('trials');
const chaosResult = await chaos(CHAOS_S);
phase('chaos');

// Leaks, once everything has settled (exited children, lingering pidfds).
const fdsBack = await until(() => fdCount() <= fdBase, 5000);
check(fdsBack, `fds: ${fdCount()} open, ${fdBase} before the trials`);
const shmNow = shmEntries();
check(shmNow.length === shmBase.length, `/dev/shm: ${shmNow.length} forksafe entries, ${shmBase.length} before (${shmNow.filter((n) => !shmBase.includes(n)).join(' ')})`);
const segNow = binding.stats();
check(segNow.shm === segBase.shm, `SharedMemory segments mapped: ${segNow.shm}, ${segBase.shm} before`);
const zOk = await until(() => zombiesOf(process.pid).length === 0 && zombiesOf(forkserverPid?.() ?? 0).length === 0, 3000);
check(zOk, `zombies: ${zombiesOf(process.pid).length} of ours, ${zombiesOf(forkserverPid?.() ?? 0).length} of the forkserver's`);
check(segNow.arenas === segBase.arenas && segNow.mapped === segBase.mapped,
  `segments mapped: ${segNow.mapped} (${segNow.arenas} arenas), ${segBase.mapped} (${segBase.arenas}) before`);
phase('leak checks');

// ---- report -------------------------------------------------------------------------------
console.log('\nSIGKILL-the-holder trials (latency: the holder\'s last act -> the waiter\'s outcome)');
const rows = [['primitive', 'waiter', 'trials', 'hangs', 'wrong', 'p50', 'p99', 'max']];
let hangs = 0;
let wrong = 0;
for (const [key, rs] of results) {
  const [kind, how] = [key.slice(0, key.lastIndexOf(' ')), key.slice(key.lastIndexOf(' ') + 1)];
  const xs = rs.filter((r) => r.ms != null).map((r) => r.ms);
  const h = rs.filter((r) => r.hang).length;
  const w = rs.filter((r) => !r.ok && !r.hang).length;
  hangs += h;
  wrong += w;
  rows.push([kind, how, String(rs.length), String(h), String(w), fmt(pct(xs, 0.5)), fmt(pct(xs, 0.99)), fmt(xs.length ? Math.max(...xs) : null)]);
}
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
for (const [i, r] of rows.entries()) {
  console.log(`  ${r.map((c, j) => (j < 2 ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join('  ')}`);
  if (i === 0) console.log(`  ${widths.map((w) => '─'.repeat(w)).join('  ')}`);
}
console.log(`\nchaos: ${chaosResult.nSlots} workers (half async), ${chaosResult.seconds} s, ${chaosResult.kills} SIGKILLs and restarts, ` +
  `${chaosResult.counter} increments, ${chaosResult.recoveries} OwnerDiedError recoveries in workers${chaosResult.finalRecovery ? ' + 1 at the end' : ''}; ` +
  `counter ${chaosResult.counter} ${chaosResult.counter === chaosResult.sum ? '==' : '!='} sum ${chaosResult.sum}; ` +
  `${chaosResult.violations} exclusion violations`);
console.log(`leaks: fds ${fdCount()} (before ${fdBase}); /dev/shm forksafe entries ${shmNow.length} (before ${shmBase.length}); ` +
  `segments mapped ${segNow.mapped} (before ${segBase.mapped}), of which SharedMemory ${segNow.shm} (${segBase.shm}), arenas ${segNow.arenas} (${segBase.arenas})`);
let prev = tStart;
console.log(`time: ${phases.map(([n, t]) => { const d = ((t - prev) / 1000).toFixed(1); prev = t; return `${n} ${d} s`; }).join(', ')}; total ${((Date.now() - tStart) / 1000).toFixed(1)} s`);
if (failures.length) {
  console.log(`\nfailures (${failures.length}):`);
  for (const f of failures.slice(0, 30)) console.log(`  - ${f}`);
}
console.log(`\ntrials: ${[...results.values()].reduce((a, v) => a + v.length, 0)}, hangs ${hangs}, wrong ${wrong}`);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
