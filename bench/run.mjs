// forksafe benchmarks, side by side with C and Python baselines in one run.
//
//   npm run bench                 (builds dist/ and the addon first)
//   BENCH_QUICK=1 npm run bench   (15-30 s instead of 50-70 s on 2 idle CPUs, plus the build)
//
// Each forksafe loop runs in a fresh `node bench/measure.mjs <mode>` process;
// C baselines (bench/baselines/bin/*) are built when `cc` exists; Python
// baselines run when `python3` exists. Prints a table per section, a goal
// checklist, and writes everything to bench/results.json.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  busyLine, envLine, fmtInt, fmtNs, fmtOps, fmtRatio, has, loadWatch, log, machineEnv, median, newReport, nproc, QUICK, ratio,
  runJSON, speed,
} from './util.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);
const BASE = path.join(here, 'baselines');
const MEASURE = path.join(here, 'measure.mjs');
const RESULTS = path.join(here, 'results.json');

const P = QUICK
  ? { loopN: 500_000, loopReps: 5, pyIters: 50_000, pyReps: 3, straceN: 1_000_000, straceReps: 1,
      ppN: 3000, ppRuns: 1, ppDiagN: 3000, cPpN: 5000, ipcN: 500, pyPpN: 1000,
      K: 100_000, contReps: 3, pyContRuns: 1, pyK: 100_000,
      asyncPpN: 2000, asyncPpRuns: 1, asyncK: 50_000, asyncReps: 3, pendingN: 10_000, pendingMs: 1000, pendingRuns: 1 }
  : { loopN: 2_000_000, loopReps: 7, pyIters: 200_000, pyReps: 5, straceN: 1_000_000, straceReps: 3,
      ppN: 10_000, ppRuns: 5, ppDiagN: 5000, cPpN: 20_000, ipcN: 2000, pyPpN: 2000,
      K: 500_000, contReps: 5, pyContRuns: 5, pyK: 100_000,
      asyncPpN: 5000, asyncPpRuns: 5, asyncK: 200_000, asyncReps: 5, pendingN: 10_000, pendingMs: 1000, pendingRuns: 3 };

const report = newReport();
const { notes, raw, sections, goal } = report;

// ---- environment -------------------------------------------------------------
const pyVersion = has('python3', ['-c', 'import multiprocessing, sys; print(sys.version.split()[0])']);
const ccVersion = has('cc', ['--version'])?.split('\n')[0] ?? null;
const straceOk = !!has('strace', ['-V']);
const tasksetOk = !!has('taskset', ['--version']);
const env = machineEnv({ python: pyVersion, cc: ccVersion, strace: straceOk, quick: QUICK }, notes,
  'these figures (ping-pong and contended above all)');

const watch = loadWatch();

let cBuilt = false;
if (!ccVersion) {
  notes.push('C baselines skipped: no `cc` on PATH.');
} else {
  const b = spawnSync('sh', [path.join(BASE, 'build.sh')], { encoding: 'utf8', timeout: 120_000 });
  if (b.status === 0) cBuilt = true;
  else notes.push(`C baselines skipped: bench/baselines/build.sh failed: ${(b.stderr || b.error?.message || '').trim().split('\n').slice(-3).join(' ')}`);
}
if (!pyVersion) notes.push('Python columns skipped: `python3` (with multiprocessing) not found.');

console.log(`forksafe benchmarks${QUICK ? ' (BENCH_QUICK)' : ''}`);
console.log(`  ${envLine(env)}`);
console.log(`  python ${pyVersion ?? '— (skipped)'} · cc ${ccVersion ?? '— (skipped)'} · strace ${straceOk ? 'yes' : 'no'} · ${busyLine(env)}`);
console.log('  times are medians; ratio = forksafe time ÷ baseline time (< 1 means forksafe is faster)\n');

// ---- runners -----------------------------------------------------------------
function node(mode, ...args) {
  log(`node measure.mjs ${mode} ${args.join(' ')}`);
  const r = runJSON(process.execPath, [MEASURE, mode, ...args.map(String)], { cwd: root });
  (raw[mode] ??= []).push(r.ok ? r.data : { error: r.error });
  if (!r.ok) notes.push(`forksafe ${mode} failed: ${r.error}`);
  return r.ok ? r.data : null;
}
function cbin(name, ...args) {
  if (!cBuilt) return null;
  log(`${name} ${args.join(' ')}`);
  const r = runJSON(path.join(BASE, 'bin', name), args.map(String));
  (raw[`c_${name}`] ??= []).push(r.ok ? r.data : { error: r.error });
  if (!r.ok) notes.push(`C ${name} failed: ${r.error}`);
  return r.ok ? r.data : null;
}
function py(name, ...args) {
  if (!pyVersion) return null;
  log(`python3 ${name}.py ${args.join(' ')}`);
  const r = runJSON('python3', [path.join(BASE, `${name}.py`), ...args.map(String)]);
  (raw[name] ??= []).push(r.ok ? r.data : { error: r.error });
  if (!r.ok) notes.push(`Python ${name} failed: ${r.error}`);
  return r.ok ? r.data : null;
}
const pick = (o, k) => (o ? o[k] ?? null : null);


// ---- 1. uncontended lock pair ----------------------------------------------------
log('section 1: uncontended lock pair');
const lp = node('lock-pair', P.loopN, P.loopReps);
const lg = node('lock-guard', P.loopN, P.loopReps);
const rp = node('rlock-pair', P.loopN, P.loopReps);
const ap = node('atomics-pair', P.loopN, P.loopReps);
const cm = cbin('mutex_pair', P.loopN, P.loopReps);
const pl = py('py_lock', P.pyIters, P.pyReps);
{
  const cRobust = pick(cm, 'robust_mutex_pair_ns');
  const pyPair = pick(pl, 'lock_pair_ns');
  const pyWith = pick(pl, 'with_lock_ns');
  const rows = [
    ['forksafe Lock acquire()+release()', pick(lp, 'ns')],
    ['forksafe Lock guard lock()+[Symbol.dispose]()', pick(lg, 'ns')],
    ['forksafe RLock acquire()+release()', pick(rp, 'ns')],
    ['JS Atomics CAS+store (floor for a JS lock)', pick(ap, 'ns')],
    ['C robust pthread mutex lock+unlock', cRobust],
    ['C futex CAS lock+unlock', pick(cm, 'futex_cas_pair_ns')],
    ['Python mp.Lock acquire()+release()', pyPair],
    ['Python `with lock:`', pyWith],
  ].map(([label, ns]) => ({ label, ns, vs_c_robust: ratio(ns, cRobust), vs_py_pair: ratio(ns, pyPair), vs_py_with: ratio(ns, pyWith) }));
  sections.push({
    id: 'uncontended_lock',
    title: `1. Uncontended lock pair, ns per acquire+release (median of ${P.loopReps} × ${fmtInt(P.loopN)}; Python ${P.pyReps} × ${fmtInt(P.pyIters)})`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'ns', header: 'time', fmt: fmtNs },
      { key: 'vs_c_robust', header: '÷ C robust', fmt: fmtRatio },
      { key: 'vs_py_pair', header: '÷ Py acquire+release', fmt: fmtRatio },
      { key: 'vs_py_with', header: '÷ Py with', fmt: fmtRatio },
    ],
    rows,
  });
  const f = rows[0];
  goal('Lock pair within 2× of the C robust mutex pair', f.vs_c_robust, f.vs_c_robust == null ? null : f.vs_c_robust <= 2,
    `${fmtNs(f.ns)} vs ${fmtNs(cRobust)}`);
  goal('Lock pair faster than Python mp.Lock pair', f.vs_py_pair, f.vs_py_pair == null ? null : f.vs_py_pair < 1,
    `${fmtNs(f.ns)} vs ${fmtNs(pyPair)} (${speed(f.vs_py_pair)})`);
  const g = rows[1];
  goal('Lock guard (`using`) faster than Python `with lock:`', g.vs_py_with, g.vs_py_with == null ? null : g.vs_py_with < 1,
    `${fmtNs(g.ns)} vs ${fmtNs(pyWith)} (${speed(g.vs_py_with)})`);
}

// ---- 1b. no wake-up syscall when nobody waits -------------------------------------
function straceFutex(follow, mode) {
  const file = path.join(os.tmpdir(), `forksafe-bench-strace-${process.pid}.txt`);
  const args = [...(follow ? ['-f'] : []), '-c', '-e', 'trace=futex', '-o', file, process.execPath, MEASURE, mode, String(P.straceN)];
  const r = spawnSync('strace', args, { encoding: 'utf8', timeout: 120_000, cwd: root });
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
    fs.unlinkSync(file);
  } catch {}
  if (r.status !== 0) {
    notes.push(`strace ${args.slice(0, -3).join(' ')} … ${mode} failed: ${(r.stderr || '').trim().split('\n').slice(-2).join(' ')}`);
    return null;
  }
  const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?futex\s*$/m.exec(text);
  return m ? Number(m[1]) : 0; // no futex line: no futex call at all
}
if (straceOk) {
  log(`section 1b: strace futex count, ${fmtInt(P.straceN)} pairs vs empty loop (${P.straceReps}× each)`);
  const rows = [];
  for (const [follow, label] of [[true, 'futex calls, all threads (strace -f -c)'], [false, 'futex calls, JS main thread only (strace -c)']]) {
    const pairs = [];
    const empty = [];
    for (let i = 0; i < P.straceReps; i++) {
      pairs.push(straceFutex(follow, 'strace-pairs'));
      empty.push(straceFutex(follow, 'strace-empty'));
    }
    const ok = (xs) => xs.every((x) => x !== null);
    const pm = ok(pairs) ? median(pairs) : null;
    const em = ok(empty) ? median(empty) : null;
    rows.push({ label, pairs: pm, empty: em, diff: pm != null && em != null ? pm - em : null, pairs_runs: pairs, empty_runs: empty });
  }
  raw.strace = rows;
  sections.push({
    id: 'futex_syscalls',
    title: `1b. Wake-up syscalls when nobody waits: futex calls while running ${fmtInt(P.straceN)} uncontended Lock pairs vs an empty loop of the same length (median of ${P.straceReps})`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'pairs', header: `${fmtInt(P.straceN)} pairs`, fmt: fmtInt },
      { key: 'empty', header: 'empty loop', fmt: fmtInt },
      { key: 'diff', header: 'difference', fmt: fmtInt },
    ],
    rows,
  });
  const d = rows[1].diff;
  goal('No futex syscall per uncontended pair (JS thread: pairs − empty ≈ 0)', d,
    d == null ? null : Math.abs(d) < P.straceN / 1000, `difference ${d} for ${fmtInt(P.straceN)} pairs (all threads: ${rows[0].diff})`);
} else {
  notes.push('futex syscall count skipped: `strace` not found.');
}

// ---- 2. Event without waiters --------------------------------------------------------
log('section 2: Event without waiters');
const ei = node('event-isset', P.loopN, P.loopReps);
const es = node('event-set', P.loopN, P.loopReps);
const ec = node('event-set-clear', P.loopN, P.loopReps);
{
  const pyIs = pick(pl, 'event_is_set_ns');
  const pySc = pick(pl, 'event_set_clear_ns');
  const rows = [
    { label: 'forksafe Event isSet()', ns: pick(ei, 'ns'), vs_py: ratio(pick(ei, 'ns'), pyIs), goal: '< 20 ns, ≥10× faster than Py' },
    { label: 'forksafe Event set(), no waiter', ns: pick(es, 'ns'), vs_py: null, goal: '< 50 ns' },
    { label: 'forksafe Event set()+clear()', ns: pick(ec, 'ns'), vs_py: ratio(pick(ec, 'ns'), pySc), goal: '≥10× faster than Py' },
    { label: 'Python mp.Event is_set()', ns: pyIs, vs_py: null, goal: '' },
    { label: 'Python mp.Event set()+clear()', ns: pySc, vs_py: null, goal: '' },
  ];
  sections.push({
    id: 'event',
    title: `2. Event without waiters, ns per call (median of ${P.loopReps} × ${fmtInt(P.loopN)}; Python ${P.pyReps} × ${fmtInt(P.pyIters / 4)})`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'ns', header: 'time', fmt: fmtNs },
      { key: 'vs_py', header: '÷ Python same op', fmt: fmtRatio },
      { key: 'goal', header: 'goal' },
    ],
    rows,
  });
  goal('Event.isSet() < 20 ns', rows[0].ns, rows[0].ns == null ? null : rows[0].ns < 20, fmtNs(rows[0].ns));
  goal('Event.set() with no waiter < 50 ns', rows[1].ns, rows[1].ns == null ? null : rows[1].ns < 50, fmtNs(rows[1].ns));
  goal('Event.isSet() ≥ 10× faster than Python is_set()', rows[0].vs_py, rows[0].vs_py == null ? null : rows[0].vs_py <= 0.1,
    `${fmtNs(rows[0].ns)} vs ${fmtNs(pyIs)} (${speed(rows[0].vs_py)})`);
  goal('Event set()+clear() ≥ 10× faster than Python', rows[2].vs_py, rows[2].vs_py == null ? null : rows[2].vs_py <= 0.1,
    `${fmtNs(rows[2].ns)} vs ${fmtNs(pySc)} (${speed(rows[2].vs_py)})`);
}

// ---- 3. ping-pong between two processes ------------------------------------------------
// Where the scheduler puts the two processes decides what a spin-then-sleep
// wait costs (two spinners on one CPU only burn each other's time slices), and
// on a 2-CPU machine it varies from run to run: the unpinned figures are the
// median of several runs, and the pinned rows (taskset / sched_setaffinity)
// show both placements for forksafe and C alike.
log('section 3: ping-pong round trips');
const fromPingpong = {}; // reused by section 5: the sync Event round trip and Node IPC
{
  const fsRuns = [];
  for (let i = 0; i < P.ppRuns; i++) fsRuns.push(node('pingpong', P.ppN, '', 'none'));
  const fsMed = fsRuns.every(Boolean) ? median(fsRuns.map((r) => r.ns)) : null;
  const ipc = node('ipc', P.ipcN);
  Object.assign(fromPingpong, { fsMed, ipc });
  const cRuns = [];
  for (let i = 0; i < (cBuilt ? P.ppRuns : 0); i++) cRuns.push(cbin('futex_pingpong', 'both', P.cPpN, 20, 'none'));
  const cOk = cRuns.length && cRuns.every(Boolean);
  const cBlock = cOk ? median(cRuns.map((r) => r.futex_pingpong_block_ns)) : null;
  const cSpin = cOk ? median(cRuns.map((r) => r.futex_pingpong_spin_ns)) : null;
  const pyRuns = [];
  for (let i = 0; i < (pyVersion ? P.ppRuns : 0); i++) pyRuns.push(py('py_event_pingpong', P.pyPpN));
  const pyMed = pyRuns.length && pyRuns.every(Boolean) ? median(pyRuns.map((r) => r.py_event_pingpong_ns)) : null;
  const pinned = {};
  if (tasksetOk && nproc >= 2) {
    for (const pin of ['same', 'split']) {
      pinned[pin] = { fs: node('pingpong', P.ppDiagN, '', pin), c: cbin('futex_pingpong', 'both', P.cPpN, 20, pin) };
    }
  } else {
    notes.push('ping-pong CPU-pinning rows skipped: they need taskset and at least 2 CPUs.');
  }
  const row = (label, ns, cb, cs, detail = '') => ({
    label, ns, vs_c_block: ratio(ns, cb), vs_c_spin: ratio(ns, cs), vs_py: ratio(ns, pyMed), detail,
  });
  const pct = (r) => (r ? `p10 ${fmtNs(r.p10)}, p90 ${fmtNs(r.p90)}` : '');
  const runsText = (rs, k) => (rs.length > 1 ? `runs ${rs.map((r) => (r ? fmtNs(r[k]) : 'failed')).join(' / ')}` : '');
  const rows = [
    row('forksafe Event ping-pong (spawn Process)', fsMed, cBlock, cSpin, runsText(fsRuns, 'ns')),
    row('Node child_process.fork IPC send() echo', pick(ipc, 'ns'), cBlock, cSpin, pct(ipc)),
    row('C futex ping-pong, block', cBlock, cBlock, cSpin, runsText(cRuns, 'futex_pingpong_block_ns')),
    row('C futex ping-pong, spin ≤20 µs then block', cSpin, cBlock, cSpin, runsText(cRuns, 'futex_pingpong_spin_ns')),
    row('Python mp.Event ping-pong', pyMed, cBlock, cSpin, runsText(pyRuns, 'py_event_pingpong_ns')),
  ];
  for (const [pin, where] of [['same', 'both on CPU 0'], ['split', 'on CPUs 0 and 1']]) {
    const d = pinned[pin];
    if (!d) continue;
    const cb = pick(d.c, 'futex_pingpong_block_ns');
    const cs = pick(d.c, 'futex_pingpong_spin_ns');
    rows.push(row(`pinned ${where}: forksafe`, pick(d.fs, 'ns'), cb, cs, pct(d.fs)));
    rows.push(row(`pinned ${where}: C block`, cb, cb, cs));
    rows.push(row(`pinned ${where}: C spin`, cs, cb, cs));
  }
  sections.push({
    id: 'pingpong',
    title: `3. Ping-pong round trip between two processes, median (forksafe ${fmtInt(P.ppN)} and C ${fmtInt(P.cPpN)} round trips × ${P.ppRuns} run(s), ` +
      `IPC ${fmtInt(P.ipcN)}, Python ${fmtInt(P.pyPpN)} × ${P.ppRuns}; pinned rows: forksafe ${fmtInt(P.ppDiagN)}, ratios vs C pinned the same way)`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'ns', header: 'round trip', fmt: fmtNs },
      { key: 'vs_c_block', header: '÷ C block', fmt: fmtRatio },
      { key: 'vs_c_spin', header: '÷ C spin', fmt: fmtRatio },
      { key: 'vs_py', header: '÷ Python', fmt: fmtRatio },
      { key: 'detail', header: 'detail' },
    ],
    rows,
  });
  const f = rows[0];
  goal('Event ping-pong within 1.2× of the C futex block round trip', f.vs_c_block, f.vs_c_block == null ? null : f.vs_c_block <= 1.2,
    `${fmtNs(f.ns)} vs ${fmtNs(cBlock)} (vs C spin ${fmtNs(cSpin)}: ${fmtRatio(f.vs_c_spin)})`);
  goal('Event ping-pong ≥ 3× faster than Python mp.Event', f.vs_py, f.vs_py == null ? null : f.vs_py <= 1 / 3,
    `${fmtNs(f.ns)} vs ${fmtNs(pyMed)} (${speed(f.vs_py)})`);
  // The same goal for each placement, against C placed the same way.
  for (const r of rows.filter((x) => x.label.endsWith(': forksafe'))) {
    goal(`Event ping-pong ${r.label.replace(/: forksafe$/, '')}: within 1.2× of C block pinned the same way`, r.vs_c_block,
      r.vs_c_block == null ? null : r.vs_c_block <= 1.2,
      `${fmtNs(r.ns)}: ${fmtRatio(r.vs_c_block)} C block, ${fmtRatio(r.vs_c_spin)} C spin, ${speed(r.vs_py)} than Python (unpinned)`);
  }
}

// ---- 4. contended throughput -----------------------------------------------------------
log('section 4: contended throughput');
{
  const fc = node('contended', '2,4', P.K, P.contReps);
  const cc = cbin('contended', '2,4', P.K, P.contReps);
  const rows = [];
  for (const n of [2, 4]) {
    const f = fc?.procs?.[n] ?? null;
    const r = cc?.robust_mutex?.[n] ?? null;
    const m = cc?.futex_mutex3?.[n] ?? null;
    const mk = (label, o, extra = '') => ({
      label, procs: n, wall_ms: pick(o, 'wall_ms'), ops_per_s: pick(o, 'ops_per_s'), ns_per_op: pick(o, 'ns_per_op'), overlap: pick(o, 'overlap'),
      vs_c_robust: ratio(pick(o, 'ns_per_op'), pick(r, 'ns_per_op')), vs_c_mutex3: ratio(pick(o, 'ns_per_op'), pick(m, 'ns_per_op')),
      exact: o ? (o.ok ? `yes (${fmtInt(o.total)})` : `NO (${fmtInt(o.total)} ≠ ${fmtInt(o.expected)})`) : '—', detail: extra,
    });
    rows.push(mk(`forksafe Lock, ${n} processes`, f, f ? `to exit ${f.wall_exit_ms} ms` : ''));
    rows.push(mk(`C robust pthread mutex, ${n} processes`, r));
    rows.push(mk(`C futex mutex3 (Drepper), ${n} processes`, m, m ? `futex_waits ${fmtInt(m.futex_waits)}` : ''));
  }
  sections.push({
    id: 'contended',
    title: `4. Contended throughput: N processes × ${fmtInt(P.K)} locked increments of one shared counter (median wall of ${P.contReps}; ` +
      'overlap = workers inside their loop on average, 1 = they ran one after another)',
    columns: [
      { key: 'label', header: 'what' },
      { key: 'wall_ms', header: 'wall ms', fmt: (x) => (x == null ? '—' : x.toFixed(1)) },
      { key: 'ops_per_s', header: 'ops/s', fmt: fmtOps },
      { key: 'ns_per_op', header: 'ns/op', fmt: (x) => (x == null ? '—' : x.toFixed(1)) },
      { key: 'overlap', header: 'overlap', fmt: (x) => (x == null ? '—' : x.toFixed(2)) },
      { key: 'vs_c_robust', header: '÷ C robust', fmt: fmtRatio },
      { key: 'vs_c_mutex3', header: '÷ C mutex3', fmt: fmtRatio },
      { key: 'exact', header: 'exact total' },
      { key: 'detail', header: 'detail' },
    ],
    rows,
  });
  goal('Contended totals exact (forksafe, 2 and 4 processes)', fc?.all_ok ?? null, fc ? fc.all_ok : null,
    fc ? `${fmtInt(fc.procs[2]?.total)} and ${fmtInt(fc.procs[4]?.total)}` : 'not run');
  for (const n of [2, 4]) {
    const x = rows.find((r) => r.label.startsWith('forksafe') && r.procs === n);
    goal(`Contended ${n} processes: forksafe vs C robust mutex (info)`, x.vs_c_robust, null,
      `${fmtOps(x.ops_per_s)} vs ${fmtOps(rows.find((r) => r.label.startsWith('C robust') && r.procs === n).ops_per_s)}`);
  }

  // 4 × 100,000 vs Python's same job.
  const f4 = node('contended', '4', P.pyK, P.pyContRuns);
  const pyc = [];
  for (let i = 0; i < (pyVersion ? P.pyContRuns : 0); i++) pyc.push(py('py_contended', 4, P.pyK));
  const pyWall = pyc.length && pyc.every(Boolean) ? median(pyc.map((r) => r.wall_ms)) : null;
  const pyOk = pyc.length ? pyc.every((r) => r?.ok) : null;
  const o = f4?.procs?.[4] ?? null;
  const exp = 4 * P.pyK;
  const rows2 = [
    { label: 'forksafe Lock (start → last worker done)', wall_ms: pick(o, 'wall_ms'), exact: o ? (o.ok ? 'yes' : 'NO') : '—' },
    { label: 'forksafe Lock (start → all workers exited)', wall_ms: pick(o, 'wall_exit_ms'), exact: o ? (o.ok ? 'yes' : 'NO') : '—' },
    { label: 'Python mp.Lock + Value (start → all joined)', wall_ms: pyWall, exact: pyOk == null ? '—' : pyOk ? 'yes' : 'NO' },
  ].map((r) => ({ ...r, ops_per_s: r.wall_ms ? Math.round(exp / (r.wall_ms / 1e3)) : null, vs_py: ratio(r.wall_ms, pyWall) }));
  sections.push({
    id: 'contended_vs_python',
    title: `4b. 4 processes × ${fmtInt(P.pyK)} locked increments vs Python multiprocessing (median of ${P.pyContRuns})`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'wall_ms', header: 'wall ms', fmt: (x) => (x == null ? '—' : x.toFixed(1)) },
      { key: 'ops_per_s', header: 'ops/s', fmt: fmtOps },
      { key: 'vs_py', header: '÷ Python', fmt: fmtRatio },
      { key: 'exact', header: 'exact total' },
    ],
    rows: rows2,
  });
  goal('4 × 100k contended: forksafe faster than Python (start → exited)', rows2[1].vs_py, rows2[1].vs_py == null ? null : rows2[1].vs_py < 1,
    `${rows2[1].wall_ms ?? '—'} ms vs ${pyWall ?? '—'} ms (${speed(rows2[1].vs_py)})`);
}

// ---- 5. async waits -------------------------------------------------------------------
// Wake-up latency of the …Async twins between two processes, as ping-pong
// round trips, beside the in-process floor (Atomics.waitAsync between the
// main thread and a worker) and what Node offers between processes
// (process.send, section 3). The runs of all ping-pong kinds are interleaved,
// so that a change in the machine's load hits them alike.
log('section 5: async waits');
{
  const kinds = [
    ['event_async', 'async-pingpong', []],
    ['lock_async', 'lock-pingpong', ['async']],
    ['lock_sync', 'lock-pingpong', ['sync']],
    ['atomics_async', 'atomics-pingpong', ['async']],
    ['atomics_sync', 'atomics-pingpong', ['sync']],
  ];
  const runs = Object.fromEntries(kinds.map(([k]) => [k, []]));
  for (let i = 0; i < P.asyncPpRuns; i++) {
    for (const [k, mode, extra] of kinds) runs[k].push(node(mode, P.asyncPpN, '', ...extra));
  }
  const med = (k) => (runs[k].length && runs[k].every(Boolean) ? median(runs[k].map((r) => r.ns)) : null);
  const m = Object.fromEntries(kinds.map(([k]) => [k, med(k)]));
  const ipcNs = pick(fromPingpong.ipc, 'ns');
  const evSync = fromPingpong.fsMed ?? null;
  const runsText = (k) => {
    const rs = runs[k];
    const last = rs.length === 1 ? rs[0] : null;
    if (last) return `p10 ${fmtNs(last.p10)}, p90 ${fmtNs(last.p90)}`;
    return `runs ${rs.map((r) => (r ? fmtNs(r.ns) : 'failed')).join(' / ')}`;
  };
  const row = (label, ns, sync, detail) => ({
    label, ns, one_way: ns == null ? null : ns / 2, vs_atomics_async: ratio(ns, m.atomics_async), vs_ipc: ratio(ns, ipcNs), vs_sync: ratio(ns, sync), detail,
  });
  const rows = [
    row('forksafe Event waitAsync() ping-pong, 2 processes', m.event_async, evSync, runsText('event_async')),
    row('forksafe Lock acquireAsync() hand-off (3 locks), 2 processes', m.lock_async, m.lock_sync, runsText('lock_async')),
    row('Atomics.waitAsync ping-pong, main ↔ worker_thread', m.atomics_async, m.atomics_sync, runsText('atomics_async')),
    row('Node child_process.fork IPC send() echo', ipcNs, null, 'section 3'),
    row('forksafe Event wait() ping-pong (sync), 2 processes', evSync, null, 'section 3'),
    row('forksafe Lock acquire() hand-off (3 locks, sync), 2 processes', m.lock_sync, null, runsText('lock_sync')),
    row('Atomics.wait ping-pong (sync), main ↔ worker_thread', m.atomics_sync, null, runsText('atomics_sync')),
  ];
  sections.push({
    id: 'async_pingpong',
    title: `5. Async wake-up: ping-pong round trip, median (${fmtInt(P.asyncPpN)} round trips × ${P.asyncPpRuns} run(s), interleaved; ` +
      'one-way ≈ round trip ÷ 2; "÷ sync" = ÷ the same ping-pong with the blocking call)',
    columns: [
      { key: 'label', header: 'what' },
      { key: 'ns', header: 'round trip', fmt: fmtNs },
      { key: 'one_way', header: 'one-way', fmt: fmtNs },
      { key: 'vs_atomics_async', header: '÷ Atomics.waitAsync', fmt: fmtRatio },
      { key: 'vs_ipc', header: '÷ process.send', fmt: fmtRatio },
      { key: 'vs_sync', header: '÷ sync', fmt: fmtRatio },
      { key: 'detail', header: 'detail' },
    ],
    rows,
  });
  for (const [r, what] of [[rows[0], 'Event waitAsync ping-pong'], [rows[1], 'Lock acquireAsync hand-off round trip']]) {
    goal(`${what} within 2× of Atomics.waitAsync ping-pong (main ↔ worker)`, r.vs_atomics_async,
      r.vs_atomics_async == null ? null : r.vs_atomics_async <= 2, `${fmtNs(r.ns)} vs ${fmtNs(m.atomics_async)} (${fmtRatio(r.vs_atomics_async)})`);
    goal(`${what} faster than a process.send() round trip`, r.vs_ipc, r.vs_ipc == null ? null : r.vs_ipc < 1,
      `${fmtNs(r.ns)} vs ${fmtNs(ipcNs)} (${speed(r.vs_ipc)})`);
  }
}

// ---- 5b. async lock throughput ----------------------------------------------------------
log('section 5b: async lock throughput');
{
  const fa = node('contended', '2', P.asyncK, P.asyncReps, '', '', 'async');
  const fsy = node('contended', '2', P.asyncK, P.asyncReps, '', '', 'sync');
  const pa = node('lock-pair-async', P.loopN / 4, P.loopReps);
  const a = fa?.procs?.[2] ?? null;
  const sy = fsy?.procs?.[2] ?? null;
  const mk = (label, o) => ({
    label, wall_ms: pick(o, 'wall_ms'), ops_per_s: pick(o, 'ops_per_s'), ns_per_op: pick(o, 'ns_per_op'), overlap: pick(o, 'overlap'),
    vs_sync: ratio(pick(o, 'ns_per_op'), pick(sy, 'ns_per_op')), handoffs: pick(o, 'handoffs'),
    exact: o ? (o.ok ? `yes (${fmtInt(o.total)})` : `NO (${fmtInt(o.total)} ≠ ${fmtInt(o.expected)})`) : '—',
    detail: o ? `runs ${o.samples_ms.map((x) => `${x.toFixed(1)} ms`).join(' / ')}; hand-offs ${o.handoffs_runs.map(fmtInt).join(' / ')}` : '',
  });
  const one = (label, ns) => ({ label, ns_per_op: ns, ops_per_s: ns ? Math.round(1e9 / ns) : null, vs_sync: ratio(ns, pick(lp, 'ns')), exact: '', detail: 'one process, nobody else wants the lock' });
  const rows = [
    mk('`await lock.acquireAsync(); counter++; lock.release()`', a),
    mk('`lock.acquire(); counter++; lock.release()` (sync)', sy),
    one('uncontended `await lock.acquireAsync(); lock.release()`', pick(pa, 'ns')),
    one('uncontended `lock.acquire(); lock.release()` (section 1)', pick(lp, 'ns')),
  ];
  sections.push({
    id: 'async_throughput',
    title: `5b. Async lock throughput: 2 processes × ${fmtInt(P.asyncK)} cycles on one Lock and one shared counter (median wall of ${P.asyncReps}; ` +
      'hand-offs = times the counter changed process)',
    columns: [
      { key: 'label', header: 'what' },
      { key: 'wall_ms', header: 'wall ms', fmt: (x) => (x == null ? '—' : x.toFixed(1)) },
      { key: 'ops_per_s', header: 'cycles/s', fmt: fmtOps },
      { key: 'ns_per_op', header: 'ns/cycle', fmt: (x) => (x == null ? '—' : x.toFixed(1)) },
      { key: 'overlap', header: 'overlap', fmt: (x) => (x == null ? '—' : x.toFixed(2)) },
      { key: 'vs_sync', header: '÷ sync', fmt: fmtRatio },
      { key: 'handoffs', header: 'hand-offs', fmt: fmtInt },
      { key: 'exact', header: 'exact total' },
      { key: 'detail', header: 'detail' },
    ],
    rows,
  });
  const ok = fa && fsy ? fa.all_ok && fsy.all_ok : null;
  goal('Async lock throughput totals exact (async and sync, 2 processes)', ok, ok,
    `${fmtInt(a?.total)} and ${fmtInt(sy?.total)} of ${fmtInt(2 * P.asyncK)}`);
  goal('Async lock throughput ÷ sync (info)', rows[0].vs_sync, null,
    `${fmtOps(rows[0].ops_per_s)} vs ${fmtOps(rows[1].ops_per_s)} (${fmtRatio(rows[0].vs_sync)} the time per cycle)`);
}

// ---- 5c. many pending async waits -----------------------------------------------------------
// Information, no goal: what 10,000 pending waits cost the event loop while
// they wait, and how long one wake-up takes to resolve them all, beside the
// same with Atomics.waitAsync in one process. Runs interleaved; medians.
log('section 5c: event loop with pending waits');
{
  const runs = { forksafe: [], atomics: [] };
  for (let i = 0; i < P.pendingRuns; i++) {
    for (const k of ['forksafe', 'atomics']) runs[k].push(node('async-pending', P.pendingN, P.pendingMs, k));
  }
  const ok = (k) => runs[k].length > 0 && runs[k].every(Boolean);
  /** Median over the runs of kind k of the field at path (e.g. 'pending.ticks'). */
  const med = (k, field) => (ok(k) ? median(runs[k].map((r) => field.split('.').reduce((o, f) => o[f], r))) : null);
  const ms = (x) => (x == null ? '—' : `${x.toFixed(x < 10 ? 2 : 1)} ms`);
  const win = (k, w) => ({ ticks: med(k, `${w}.ticks`), max_gap_ms: med(k, `${w}.max_gap_ms`), cpu_ms: med(k, `${w}.cpu_ms`) });
  const rows = [
    { label: 'nothing pending', ...win('forksafe', 'idle'), detail: '' },
    {
      label: `${fmtInt(P.pendingN)} Event.waitAsync() pending (one Event)`, ...win('forksafe', 'pending'),
      detail: ok('forksafe') ? `${runs.forksafe[0].waiter_threads} waiter thread; submitting them took ${ms(med('forksafe', 'submit_ms'))}` : '',
    },
    {
      label: `${fmtInt(P.pendingN)} Atomics.waitAsync() pending (one Int32, in-process)`, ...win('atomics', 'pending'),
      detail: ok('atomics') ? `submitting them took ${ms(med('atomics', 'submit_ms'))}` : '',
    },
  ];
  sections.push({
    id: 'async_pending',
    title: `5c. Event loop with ${fmtInt(P.pendingN)} pending waits: ticks of a 1 ms setInterval in ${fmtInt(P.pendingMs)} ms ` +
      `(median of ${P.pendingRuns}; CPU = the whole process, every thread, in that window)`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'ticks', header: 'ticks', fmt: fmtInt },
      { key: 'max_gap_ms', header: 'longest gap', fmt: ms },
      { key: 'cpu_ms', header: 'CPU time', fmt: ms },
      { key: 'detail', header: 'detail' },
    ],
    rows,
  });
  const t = (x) => (x == null ? '—' : fmtNs(x * 1e6));
  const rows2 = [
    ['the waking call returns', 'wake_call_ms'],
    ['→ first wait resolved', 'first_ms'],
    [`→ last (${fmtInt(P.pendingN)}th) wait resolved`, 'last_ms'],
  ].map(([label, f]) => ({
    label, fs: med('forksafe', f), at: med('atomics', f), vs: ratio(med('forksafe', f), med('atomics', f)),
    detail: ok('forksafe') && runs.forksafe.length > 1 ? `forksafe runs ${runs.forksafe.map((r) => t(r[f])).join(' / ')}` : '',
  }));
  sections.push({
    id: 'async_resolve_all',
    title: `5d. Waking ${fmtInt(P.pendingN)} pending waits at once: forksafe Event.set() vs Atomics.store + Atomics.notify (median of ${P.pendingRuns})`,
    columns: [
      { key: 'label', header: 'time from the waking call' },
      { key: 'fs', header: 'forksafe Event', fmt: t },
      { key: 'at', header: 'Atomics.waitAsync', fmt: t },
      { key: 'vs', header: '÷ Atomics', fmt: fmtRatio },
      { key: 'detail', header: 'detail' },
    ],
    rows: rows2,
  });
  const idle = rows[0].ticks;
  const busy = rows[1].ticks;
  goal(`Event loop ticks with ${fmtInt(P.pendingN)} waitAsync() pending vs none (info)`, ratio(busy, idle), null,
    ok('forksafe') ? `${fmtInt(busy)} vs ${fmtInt(idle)} ticks of 1 ms in ${fmtInt(P.pendingMs)} ms; longest gap ${ms(rows[1].max_gap_ms)} vs ${ms(rows[0].max_gap_ms)}` : 'not run');
  goal(`Time from one set() to the last of ${fmtInt(P.pendingN)} waitAsync() resolved (info)`, rows2[2].fs, null,
    `${t(rows2[2].fs)} (Atomics.waitAsync + notify in one process: ${t(rows2[2].at)})`);
}

// ---- output -------------------------------------------------------------------------------
report.finish({ file: RESULTS, env, params: P, watch, what: 'these figures (ping-pong and contended above all)', noVerdictNote: true });

// ---- fork() benchmarks: their own script, bench/fork.mjs (writes bench/fork-results.json) ----
console.log();
const forkRun = spawnSync(process.execPath, [path.join(here, 'fork.mjs')], { stdio: 'inherit', env: process.env, cwd: root });
if (forkRun.status !== 0) console.log(`bench/fork.mjs failed: ${forkRun.error?.message ?? `exit ${forkRun.status ?? forkRun.signal}`}`);

// ---- forkserver benchmarks: bench/forkserver.mjs (writes bench/forkserver-results.json) ----
console.log();
const fsRun = spawnSync(process.execPath, [path.join(here, 'forkserver.mjs')], { stdio: 'inherit', env: process.env, cwd: root });
if (fsRun.status !== 0) console.log(`bench/forkserver.mjs failed: ${fsRun.error?.message ?? `exit ${fsRun.status ?? fsRun.signal}`}`);

// ---- owner death: bench/death.mjs (writes bench/death-results.json) ----
console.log();
const deathRun = spawnSync(process.execPath, [path.join(here, 'death.mjs')], { stdio: 'inherit', env: process.env, cwd: root });
if (deathRun.status !== 0) console.log(`bench/death.mjs failed: ${deathRun.error?.message ?? `exit ${deathRun.status ?? deathRun.signal}`}`);

// ---- message passing: bench/queue.mjs (writes bench/queue-results.json) ----
console.log();
const queueRun = spawnSync(process.execPath, [path.join(here, 'queue.mjs')], { stdio: 'inherit', env: process.env, cwd: root });
if (queueRun.status !== 0) console.log(`bench/queue.mjs failed: ${queueRun.error?.message ?? `exit ${queueRun.status ?? queueRun.signal}`}`);

// ---- process pools: bench/pool.mjs (writes bench/pool-results.json) ----
console.log();
const poolRun = spawnSync(process.execPath, [path.join(here, 'pool.mjs')], { stdio: 'inherit', env: process.env, cwd: root });
if (poolRun.status !== 0) console.log(`bench/pool.mjs failed: ${poolRun.error?.message ?? `exit ${poolRun.status ?? poolRun.signal}`}`);
