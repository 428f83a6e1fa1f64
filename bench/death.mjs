// forksafe owner-death benchmarks: how long a waiter blocked on a Lock takes
// to get OwnerDiedError after the holder is SIGKILLed, with the death watcher
// (a pidfd per holder, watched by a native thread that wakes the waiter) and
// with the 50 ms liveness slice alone (the watcher switched off), side by side
// in the same run, trials interleaved; and what the watcher's registration
// costs a contended lock (2 and 4 processes, watcher on vs off in the workers)
// and a lock hand-off ping-pong (every hand-off a wait on the other process).
//
//   node bench/death.mjs [trials]          (200 trials per row, about 2 minutes on 2 CPUs; needs dist/ and the addon built)
//   BENCH_QUICK=1 node bench/death.mjs     (50 trials per row, shorter contended runs)
//
// A trial: a 'forkserver' Process takes the lock and says so; the parent says
// it is about to block and blocks (acquire() or await acquireAsync()); the
// child sleeps a random 5-60 ms (so the kill lands at any phase of the slice),
// writes process.hrtime into shared memory and SIGKILLs itself; latency = the
// parent's hrtime when OwnerDiedError arrives − that timestamp (both
// CLOCK_MONOTONIC). The floor row blocks on the child's pidfd instead (poll:
// when the kernel reports the exit), which no waiter can beat.
// The watcher is switched with an internal test/bench knob
// (binding._deathwatch({ enabled }), FORKSAFE_DEATHWATCH=0 for the contended
// workers), not an API. Writes bench/death-results.json (the layout of
// bench/results.json: `node bench/markdown.mjs bench/death-results.json`).
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import {
  busyLine, envLine, fmtInt, fmtMs as ms, fmtRatio, loadWatch, log, machineEnv, median, newReport, percentile, QUICK,
  ratio, round, runJSON,
} from './util.mjs';
import { HELD, SHM_SIZE, T_KILL_BYTE, WAITING } from './death-child.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);
const require = createRequire(import.meta.url);
const { Lock, SharedMemory, Process, OwnerDiedError } = require('../dist/index.js');
const { binding } = require('../dist/core/binding.js');
const CHILD = path.join(here, 'death-child.mjs');
const MEASURE = path.join(here, 'measure.mjs');
const RESULTS = path.join(here, 'death-results.json');

const argTrials = Number(process.argv[2]);
const P = {
  trials: Number.isInteger(argTrials) && argTrials > 0 ? argTrials : QUICK ? 50 : 200,
  hangMs: 5000, // a trial that has not ended by then is a hang
  contK: QUICK ? 50_000 : 100_000,
  contReps: QUICK ? 2 : 3,
  contRounds: QUICK ? 1 : 2,
  ppN: QUICK ? 2000 : 5000,
  ppRounds: QUICK ? 2 : 4,
};

const report = newReport();
const { notes, raw, sections, goal } = report;
const env = machineEnv({ quick: QUICK, trials: P.trials }, notes, 'these latencies and throughputs');
const watch = loadWatch();

const dw = binding._deathwatch();
console.log(`forksafe owner-death benchmarks${QUICK ? ' (BENCH_QUICK)' : ''}`);
console.log(`  ${envLine(env)} · ${busyLine(env)}`);
console.log(`  death watcher supported here: ${dw.supported === 1 ? 'yes (pidfd_open + futex_waitv)' : 'no: every row runs on slices'}; liveness slice ${dw.sliceMs} ms`);
console.log('  latency = SIGKILL of the holder → OwnerDiedError in the blocked waiter; p50 / p99 / max over the trials\n');

const now = () => Number(process.hrtime.bigint());
const pauseSync = (t) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, t);

function waitFlag(shm, i32, idx, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Atomics.load(i32, idx) === 0) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    shm.wait(idx, 0, { timeout: Math.min(left, 1000) });
  }
  return true;
}

// ---- 1. one trial ---------------------------------------------------------------------------
// mode: 'sync' | 'async' | 'floor'; watcher: true/false (ignored for the floor).
async function trial(mode, watcher) {
  binding._deathwatch({ enabled: watcher });
  const lock = new Lock();
  const shm = new SharedMemory({ size: SHM_SIZE });
  const i32 = new Int32Array(shm.buffer);
  const tKill = new Float64Array(shm.buffer, T_KILL_BYTE, 1);
  const delay = 5 + Math.random() * 55;
  const child = new Process({ target: { module: CHILD, export: 'holdThenDie' }, args: [lock, shm, delay] }).start();
  const out = { mode, watcher, ms: null, outcome: 'ok', wakes: 0 };
  const before = binding._deathwatch().wakes;
  try {
    if (!waitFlag(shm, i32, HELD, 10_000)) {
      out.outcome = 'setup: the child never held the lock';
      return out;
    }
    let t1 = null;
    let pidfd = -1;
    if (mode === 'floor') pidfd = binding.pidfdOpen(child.pid);
    Atomics.store(i32, WAITING, 1);
    shm.notify(WAITING);
    try {
      if (mode === 'floor') {
        try {
          const r = binding.pidfdWait(pidfd, P.hangMs);
          if (r === null) out.outcome = 'hang';
        } catch (e) {
          // Not our child (the forkserver's): poll returned, waitid says ECHILD.
          if (e.code !== 'ECHILD') throw e;
        }
        t1 = now();
      } else {
        const got = mode === 'sync' ? lock.acquire({ timeout: P.hangMs }) : await lock.acquireAsync({ timeout: P.hangMs });
        out.outcome = got ? 'wrong: acquired without OwnerDiedError' : 'hang';
      }
    } catch (e) {
      t1 = now();
      if (!(e instanceof OwnerDiedError)) out.outcome = `wrong: ${e?.constructor?.name}: ${e?.message}`;
      else if (e.pid !== child.pid) out.outcome = `wrong: OwnerDiedError pid ${e.pid}, holder ${child.pid}`;
    } finally {
      if (pidfd >= 0) binding.closeFd(pidfd);
    }
    if (out.outcome === 'ok') out.ms = (t1 - tKill[0]) / 1e6;
    if (lock.isOwned()) {
      lock.markConsistent();
      lock.release();
    }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await child.exited;
    lock.close();
    shm.close();
  }
  out.wakes = binding._deathwatch().wakes - before;
  return out;
}

const rowsDef = [
  { key: 'sync_watch', mode: 'sync', watcher: true, label: 'Lock.acquire(), death watcher' },
  { key: 'sync_slice', mode: 'sync', watcher: false, label: 'Lock.acquire(), 50 ms slice only' },
  { key: 'async_watch', mode: 'async', watcher: true, label: 'await Lock.acquireAsync(), death watcher' },
  { key: 'async_slice', mode: 'async', watcher: false, label: 'await Lock.acquireAsync(), 50 ms slice only' },
  { key: 'floor', mode: 'floor', watcher: true, label: "floor: the holder's pidfd becomes readable (poll in the parent)" },
];
const results = Object.fromEntries(rowsDef.map((r) => [r.key, []]));

log(`section 1: ${P.trials} trials × ${rowsDef.length} rows, interleaved`);
// Warm-up: the forkserver starts, the code paths compile.
for (const r of rowsDef) await trial(r.mode, r.watcher);
const t0 = Date.now();
for (let i = 0; i < P.trials; i++) {
  // A fresh order each round, so that no row always follows another.
  const order = [...rowsDef].sort(() => Math.random() - 0.5);
  for (const r of order) results[r.key].push(await trial(r.mode, r.watcher));
  if ((i + 1) % 25 === 0) log(`  ${i + 1}/${P.trials} rounds (${Math.round((Date.now() - t0) / 1000)} s)`);
}
binding._deathwatch({ enabled: true });

const summary = {};
for (const r of rowsDef) {
  const xs = results[r.key].filter((t) => t.ms != null).map((t) => t.ms);
  const bad = results[r.key].filter((t) => t.outcome !== 'ok');
  summary[r.key] = {
    n: results[r.key].length,
    ok: xs.length,
    hangs: bad.filter((t) => t.outcome === 'hang').length,
    wrong: bad.filter((t) => t.outcome !== 'hang').map((t) => t.outcome),
    p50: xs.length ? round(median(xs), 3) : null,
    p99: xs.length ? round(percentile(xs, 0.99), 3) : null,
    max: xs.length ? round(Math.max(...xs), 3) : null,
    min: xs.length ? round(Math.min(...xs), 3) : null,
    watcher_wakes: results[r.key].filter((t) => t.wakes > 0).length,
    samples: xs.map((x) => round(x, 3)),
  };
  for (const w of summary[r.key].wrong) notes.push(`${r.label}: ${w}`);
}
raw.latency = summary;
{
  const rows = rowsDef.map((r) => {
    const s = summary[r.key];
    const vs = r.watcher && r.mode !== 'floor' ? summary[`${r.mode}_slice`] : null;
    return {
      label: r.label, n: s.n, p50: s.p50, p99: s.p99, max: s.max,
      ratio99: vs ? ratio(s.p99, vs.p99) : null, ratio50: vs ? ratio(s.p50, vs.p50) : null,
      bad: `${s.hangs} / ${s.wrong.length}`,
      wakes: r.mode === 'floor' ? '—' : `${s.watcher_wakes}/${s.n}`,
    };
  });
  sections.push({
    id: 'death_latency',
    title: `1. SIGKILL of the holder → OwnerDiedError in a blocked waiter (${P.trials} trials per row, interleaved; ratio = watcher ÷ slice only)`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'n', header: 'trials', fmt: fmtInt },
      { key: 'p50', header: 'p50', fmt: ms },
      { key: 'p99', header: 'p99', fmt: ms },
      { key: 'max', header: 'max', fmt: ms },
      { key: 'ratio50', header: 'p50 ratio', fmt: fmtRatio },
      { key: 'ratio99', header: 'p99 ratio', fmt: fmtRatio },
      { key: 'bad', header: 'hangs / wrong' },
      { key: 'wakes', header: 'woken by the watcher' },
    ],
    rows,
  });
  for (const m of ['sync', 'async']) {
    const s = summary[`${m}_watch`];
    const sl = summary[`${m}_slice`];
    goal(`${m === 'sync' ? 'acquire()' : 'acquireAsync()'}: holder SIGKILLed → OwnerDiedError within 5 ms p99 with the death watcher`,
      s.p99, s.p99 == null ? null : s.p99 <= 5 && s.hangs === 0 && s.wrong.length === 0,
      `p99 ${ms(s.p99)} (p50 ${ms(s.p50)}, max ${ms(s.max)}) vs slice only p99 ${ms(sl.p99)} (p50 ${ms(sl.p50)}): ` +
        `${fmtRatio(ratio(s.p99, sl.p99))} at p99; floor (pidfd readable) p99 ${ms(summary.floor.p99)}`);
  }
  const hangs = rowsDef.reduce((a, r) => a + summary[r.key].hangs + summary[r.key].wrong.length, 0);
  goal('no hang and no wrong outcome in any trial', hangs, hangs === 0, `${hangs} of ${rowsDef.length * P.trials}`);
}

// ---- 2. registration cost on a contended lock --------------------------------------------------
log(`section 2: contended lock, 2 and 4 processes × ${fmtInt(P.contK)} increments, watcher on vs off (${P.contRounds} rounds, interleaved)`);
const cont = { on: [], off: [] };
for (let r = 0; r < P.contRounds; r++) {
  for (const k of r % 2 ? ['off', 'on'] : ['on', 'off']) {
    const e = { ...process.env };
    if (k === 'off') e.FORKSAFE_DEATHWATCH = '0';
    else delete e.FORKSAFE_DEATHWATCH;
    log(`node measure.mjs contended 2,4 ${P.contK} ${P.contReps} (watcher ${k})`);
    const res = runJSON(process.execPath, [MEASURE, 'contended', '2,4', String(P.contK), String(P.contReps)], { cwd: root, env: e, timeoutMs: 300_000 });
    if (!res.ok) notes.push(`contended (watcher ${k}) failed: ${res.error}`);
    else cont[k].push(res.data);
  }
}
raw.contended = cont;
{
  const rows = [];
  for (const procs of [2, 4]) {
    const pick = (k) => cont[k].flatMap((d) => d.procs[procs]?.samples_ms ?? []).map((w) => w * 1e6 / (procs * P.contK));
    const on = pick('on');
    const off = pick('off');
    const ok = ['on', 'off'].every((k) => cont[k].every((d) => d.procs[procs]?.ok));
    const row = (label, xs) => ({
      label, ns: xs.length ? round(median(xs), 1) : null,
      range: xs.length ? `${round(Math.min(...xs), 1)} – ${round(Math.max(...xs), 1)} ns` : '—', n: xs.length, exact: ok ? 'yes' : 'NO',
    });
    rows.push({ ...row(`${procs} processes, death watcher on`, on), vs: ratio(median(on), median(off)) });
    rows.push({ ...row(`${procs} processes, death watcher off (FORKSAFE_DEATHWATCH=0)`, off), vs: null });
    goal(`contended ${procs}-process lock: watcher on ÷ off (info; noisy on a shared machine)`, ratio(median(on), median(off)), null,
      `${round(median(on), 1)} vs ${round(median(off), 1)} ns per locked increment (runs ${rows.at(-2).range} vs ${rows.at(-1).range})`);
  }
  sections.push({
    id: 'death_contended',
    title: `2. Contended lock: ns per locked increment (wall ÷ total), median over ${P.contRounds} × ${P.contReps} runs of ${fmtInt(P.contK)} per process (range = every run)`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'ns', header: 'ns / op', fmt: (x) => (x == null ? '—' : `${x} ns`) },
      { key: 'range', header: 'range' },
      { key: 'n', header: 'runs', fmt: fmtInt },
      { key: 'vs', header: 'on ÷ off', fmt: fmtRatio },
      { key: 'exact', header: 'counter exact' },
    ],
    rows,
  });
}

// ---- 3. registration cost on every hand-off: the 3-lock ping-pong -------------------------------
// Each hand-off is a wait on a lock the other process holds, so (when it
// does not end while spinning) it registers that process with the watcher.
log(`section 3: lock ping-pong, ${fmtInt(P.ppN)} round trips, sync and async, watcher on vs off (${P.ppRounds} rounds, interleaved)`);
const pp = { sync: { on: [], off: [] }, async: { on: [], off: [] } };
for (let r = 0; r < P.ppRounds; r++) {
  for (const how of ['sync', 'async']) {
    for (const k of r % 2 ? ['off', 'on'] : ['on', 'off']) {
      const e = { ...process.env };
      if (k === 'off') e.FORKSAFE_DEATHWATCH = '0';
      else delete e.FORKSAFE_DEATHWATCH;
      log(`node measure.mjs lock-pingpong ${P.ppN} ${P.ppN / 10} ${how} (watcher ${k})`);
      const res = runJSON(process.execPath, [MEASURE, 'lock-pingpong', String(P.ppN), String(P.ppN / 10), how], { cwd: root, env: e, timeoutMs: 120_000 });
      if (!res.ok) notes.push(`lock-pingpong ${how} (watcher ${k}) failed: ${res.error}`);
      else pp[how][k].push(res.data.ns / 1000);
    }
  }
}
raw.pingpong = pp;
{
  const rows = [];
  for (const how of ['sync', 'async']) {
    const on = pp[how].on;
    const off = pp[how].off;
    const row = (label, xs) => ({
      label, us: xs.length ? round(median(xs), 2) : null,
      range: xs.length ? `${round(Math.min(...xs), 2)} – ${round(Math.max(...xs), 2)} µs` : '—', n: xs.length,
    });
    rows.push({ ...row(`${how === 'sync' ? 'acquire()' : 'await acquireAsync()'} ping-pong, death watcher on`, on), vs: ratio(median(on), median(off)) });
    rows.push({ ...row(`${how === 'sync' ? 'acquire()' : 'await acquireAsync()'} ping-pong, death watcher off`, off), vs: null });
    goal(`lock ping-pong (${how}) round trip: watcher on ÷ off (info; noisy on a shared machine)`, ratio(median(on), median(off)), null,
      `${round(median(on), 2)} vs ${round(median(off), 2)} µs (runs ${rows.at(-2).range} vs ${rows.at(-1).range})`);
  }
  sections.push({
    id: 'death_pingpong',
    title: `3. Lock hand-off ping-pong between 2 processes (bench/measure.mjs lock-pingpong): median round trip of ${fmtInt(P.ppN)}, median over ${P.ppRounds} runs (range = the runs' medians)`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'us', header: 'round trip', fmt: (x) => (x == null ? '—' : `${x} µs`) },
      { key: 'range', header: 'range' },
      { key: 'n', header: 'runs', fmt: fmtInt },
      { key: 'vs', header: 'on ÷ off', fmt: fmtRatio },
    ],
    rows,
  });
}

report.finish({ file: RESULTS, env, params: P, watch, what: 'these latencies and throughputs' });
const bad = rowsDef.some((r) => summary[r.key].wrong.length > 0);
process.exitCode = bad ? 1 : 0;
