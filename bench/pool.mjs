// Process pool benchmarks: forksafe's Pool side by side, in one run, with piscina
// (worker_threads), workerpool (workerType 'process': child_process.fork) and Python's
// multiprocessing.Pool, 2 workers each: the latency of one trivial task, the throughput of
// many, 1 MiB arguments and results, start-up to the first result, idle memory per worker.
//
//   node bench/pool.mjs                 (about 2 minutes on 2 CPUs; needs dist/ built)
//   BENCH_QUICK=1 node bench/pool.mjs   (fewer tasks and repeats, 20-30 s)
//
// Each measurement runs in a fresh `node bench/pool-measure.mjs <lib> <test>` (forksafe,
// forksafe:spawn, piscina, workerpool) or `python3 bench/baselines/py_pool.py <test>` that
// prints one JSON line; the task module is bench/pool-tasks.cjs (workerpool:
// bench/pool-wp-worker.cjs). Prints a table per section with ratios, the goals, and writes
// everything to bench/pool-results.json (the layout of bench/results.json:
// `node bench/markdown.mjs bench/pool-results.json`).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import {
  busyLine, envLine, fmtInt, fmtMs, fmtNs, fmtOps, fmtRatio, has, loadWatch, log, machineEnv, median, newReport, QUICK, ratio,
  runJSON, speed,
} from './util.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);
const require = createRequire(import.meta.url);
const MEASURE = path.join(here, 'pool-measure.mjs');
const PY = path.join(here, 'baselines', 'py_pool.py');
const RESULTS = path.join(here, 'pool-results.json');
const MiB = 1 << 20;
const WORKERS = 2;

const P = QUICK
  ? { runs: 1, latN: 3000, pyLatN: 2000, tputN: 20_000, tputReps: 1, bigN: 100, window: 4, startK: 3, cold: 2, settleMs: 300 }
  : { runs: 3, latN: 10_000, pyLatN: 5000, tputN: 100_000, tputReps: 3, bigN: 500, window: 4, startK: 7, cold: 5, settleMs: 500 };
// map()'s chunk for every library: Python's own default for map(), ceil(n / (4 × workers)).
P.chunk = Math.ceil(P.tputN / (4 * WORKERS));

const report = newReport();
const { notes, raw, sections, goal } = report;

// ---- environment ---------------------------------------------------------------------------
const pyVersion = has('python3', ['-c', 'import multiprocessing, sys; print(sys.version.split()[0])']);
// The installed version: the package.json above its entry point (piscina's "exports" does not export it).
const version = (name) => {
  try {
    for (let d = path.dirname(require.resolve(name)); d !== path.dirname(d); d = path.dirname(d)) {
      const f = path.join(d, 'package.json');
      if (fs.existsSync(f)) {
        const j = JSON.parse(fs.readFileSync(f, 'utf8'));
        if (j.name === name) return j.version;
      }
    }
  } catch {}
  return null;
};
const versions = { piscina: version('piscina'), workerpool: version('workerpool') };
let hasPool = false;
try {
  hasPool = typeof require('../dist/index.js').Pool === 'function';
} catch (e) {
  notes.push(`forksafe rows skipped: require('../dist/index.js') failed (${e.message.split('\n')[0]}); run npm run build:ts.`);
}
const env = machineEnv({ python: pyVersion, ...versions, forksafe_pool: hasPool, quick: QUICK, workers: WORKERS }, notes,
  'these figures (latency and throughput above all)');
const watch = loadWatch();
if (!pyVersion) notes.push('Python rows skipped: `python3` (with multiprocessing) not found.');
for (const [k, v] of Object.entries(versions)) if (!v) notes.push(`${k} rows skipped: the package is not installed (npm install).`);
if (!hasPool) notes.push("forksafe rows not run: require('../dist/index.js').Pool does not exist.");

console.log(`forksafe process pool benchmarks${QUICK ? ' (BENCH_QUICK)' : ''}, ${WORKERS} workers each`);
console.log(`  ${envLine(env)}`);
console.log(`  python ${pyVersion ?? '— (skipped)'} · piscina ${versions.piscina ?? '— (skipped)'} · workerpool ${versions.workerpool ?? '— (skipped)'} · ${busyLine(env)}`);
console.log('  times are medians; "÷ X" = this row\'s time (per task, per start, bytes per worker) ÷ X\'s (< 1 means less than X)\n');

// ---- runners -------------------------------------------------------------------------------
function record(key, what, r) {
  (raw[key] ??= []).push(r.ok ? r.data : { error: r.error });
  if (!r.ok) notes.push(`${what} failed: ${r.error.trim()}`);
  else if (r.data.ok === false) notes.push(`${what}: ${r.data.bad} wrong results`);
  return r.ok ? r.data : null;
}
const available = (lib) => (lib.startsWith('forksafe') ? hasPool : !!versions[lib]);
/** node bench/pool-measure.mjs <lib> <test> ...args; null when the library is missing or it failed. */
function nodeRun(lib, test, ...args) {
  if (!available(lib)) return null;
  log(`node pool-measure.mjs ${lib} ${test} ${args.join(' ')}`);
  return record(`${lib}_${test}`, `${lib} ${test} ${args.join(' ')}`,
    runJSON(process.execPath, [MEASURE, lib, test, ...args.map(String)], { cwd: root, timeoutMs: 300_000 }));
}
function py(test, ...args) {
  if (!pyVersion) return null;
  log(`python3 py_pool.py ${test} ${args.join(' ')}`);
  return record(`py_${test}`, `Python py_pool.py ${test} ${args.join(' ')}`, runJSON('python3', [PY, test, ...args.map(String)], { timeoutMs: 300_000 }));
}

const pick = (o, k) => (o ? o[k] ?? null : null);
const medOf = (runs, k) => (runs.length && runs.every((r) => r && r[k] != null) ? median(runs.map((r) => r[k])) : null);
const runsText = (rs, k, f) => (rs.length > 1 ? `runs ${rs.map((r) => (r ? f(r[k]) : 'failed')).join(' / ')}` : '');
const samplesText = (xs) => (xs && xs.length > 1 ? `runs ${xs.map(fmtOps).join(' / ')}` : '');
const us = (x) => (x == null ? '—' : fmtNs(x * 1e3));
const gbps = (x) => (x == null ? '—' : `${x.toFixed(x < 10 ? 2 : 1)} GB/s`);
const nsPer = (rate) => (rate ? 1e9 / rate : null);
const FS = 'forksafe Pool (forkserver)';

// ---- 1. latency of one task ------------------------------------------------------------------
log('section 1: one trivial task at a time (interleaved runs)');
const LAT = [['fs', 'forksafe'], ['spawn', 'forksafe:spawn'], ['piscina', 'piscina'], ['wp', 'workerpool']];
const lat = { fs: [], spawn: [], piscina: [], wp: [], py: [] };
for (let i = 0; i < P.runs; i++) {
  for (const [k, lib] of LAT) lat[k].push(nodeRun(lib, 'latency', P.latN));
  lat.py.push(py('latency', P.pyLatN));
}
{
  const m = Object.fromEntries(Object.entries(lat).map(([k, rs]) => [k, { med: medOf(rs, 'median_us'), p99: medOf(rs, 'p99_us'), rs }]));
  const row = (label, k) => ({
    label, med: m[k].med, p99: m[k].p99, p10: medOf(m[k].rs, 'p10_us'), p90: medOf(m[k].rs, 'p90_us'),
    vs_piscina: ratio(m[k].med, m.piscina.med), vs_wp: ratio(m[k].med, m.wp.med), vs_py: ratio(m[k].med, m.py.med),
    detail: runsText(m[k].rs, 'median_us', us),
  });
  const rows = [
    row(`${FS}: await pool.run(x)`, 'fs'),
    row("forksafe Pool ('spawn'): await pool.run(x)", 'spawn'),
    row('piscina (worker_threads): await pool.run(x)', 'piscina'),
    row("workerpool (workerType 'process'): await pool.exec('inc', [x])", 'wp'),
    row('Python multiprocessing.Pool: pool.apply(inc, (x,))', 'py'),
  ];
  sections.push({
    id: 'latency',
    title: `1. Latency of one trivial task (x => x + 1), each awaited before the next (median of ${fmtInt(P.latN)} tasks, Python ${fmtInt(P.pyLatN)}, ` +
      `after a warm-up; ${P.runs} run(s) interleaved, the median of their medians and p99s)`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'med', header: 'median', fmt: us },
      { key: 'p99', header: 'p99', fmt: us },
      { key: 'p10', header: 'p10', fmt: us },
      { key: 'p90', header: 'p90', fmt: us },
      { key: 'vs_piscina', header: '÷ piscina', fmt: fmtRatio },
      { key: 'vs_wp', header: '÷ workerpool', fmt: fmtRatio },
      { key: 'vs_py', header: '÷ Py apply', fmt: fmtRatio },
      { key: 'detail', header: 'detail' },
    ],
    rows,
  });
  const f = rows[0];
  goal('Pool task latency ≤ 10 µs (median)', f.med, f.med == null ? null : f.med <= 10, `${us(f.med)}, p99 ${us(f.p99)} (piscina ${us(m.piscina.med)})`);
  goal('Pool task latency ≥ 5× faster than workerpool', f.vs_wp, f.vs_wp == null ? null : f.vs_wp <= 1 / 5,
    `${us(f.med)} vs ${us(m.wp.med)} (${speed(f.vs_wp)})`);
  goal('Pool task latency ≥ 5× faster than Python Pool.apply()', f.vs_py, f.vs_py == null ? null : f.vs_py <= 1 / 5,
    `${us(f.med)} vs ${us(m.py.med)} (${speed(f.vs_py)})`);
}

// ---- 2. throughput of many tasks ---------------------------------------------------------------
log(`section 2: ${fmtInt(P.tputN)} trivial tasks`);
const T = {
  fsRun: nodeRun('forksafe', 'tput', P.tputN, 'run', 1, P.tputReps),
  fsMap1: nodeRun('forksafe', 'tput', P.tputN, 'map', 1, P.tputReps),
  fsMapC: nodeRun('forksafe', 'tput', P.tputN, 'map', P.chunk, P.tputReps),
  piRun: nodeRun('piscina', 'tput', P.tputN, 'run', 1, P.tputReps),
  piChunk: nodeRun('piscina', 'tput', P.tputN, 'chunk', P.chunk, P.tputReps),
  wpRun: nodeRun('workerpool', 'tput', P.tputN, 'run', 1, P.tputReps),
  wpChunk: nodeRun('workerpool', 'tput', P.tputN, 'chunk', P.chunk, P.tputReps),
  pyAsync: py('apply_async', P.tputN, P.tputReps),
  pyMap1: py('map', P.tputN, 1, P.tputReps),
  pyMapC: py('map', P.tputN, P.chunk, P.tputReps),
};
{
  const rate = (k) => pick(T[k], 'tasks_per_s');
  // The baselines a row is compared with: the same way of submitting.
  const base = { each: ['piRun', 'wpRun', 'pyAsync'], map1: ['piRun', 'wpRun', 'pyMap1'], chunk: ['piChunk', 'wpChunk', 'pyMapC'] };
  const row = (label, k, mode) => {
    const [bp, bw, by] = base[mode].map((b) => nsPer(rate(b)));
    const ns = nsPer(rate(k));
    return { label, rate: rate(k), ns, vs_piscina: ratio(ns, bp), vs_wp: ratio(ns, bw), vs_py: ratio(ns, by), detail: samplesText(T[k]?.samples_tasks_per_s) };
  };
  const C = fmtInt(P.chunk);
  const rows = [
    row(`${FS}: run() × n at once, Promise.all`, 'fsRun', 'each'),
    row(`${FS}: map(items), no chunksize`, 'fsMap1', 'map1'),
    row(`${FS}: map(items, { chunksize: ${C} })`, 'fsMapC', 'chunk'),
    row('piscina: run() × n at once, Promise.all', 'piRun', 'each'),
    row(`piscina: n / ${C} run()s of ${C}-item arrays (no map(): chunks by hand)`, 'piChunk', 'chunk'),
    row("workerpool: exec('inc') × n at once, Promise.all", 'wpRun', 'each'),
    row(`workerpool: n / ${C} exec()s of ${C}-item arrays (chunks by hand)`, 'wpChunk', 'chunk'),
    row('Python Pool: apply_async() × n, then every get()', 'pyAsync', 'each'),
    row('Python Pool: map(inc, range(n), chunksize=1)', 'pyMap1', 'map1'),
    row(`Python Pool: map(inc, range(n)) (its default chunksize, ${C})`, 'pyMapC', 'chunk'),
  ];
  sections.push({
    id: 'throughput',
    title: `2. Throughput of ${fmtInt(P.tputN)} trivial tasks (median of ${P.tputReps} after a warm-up of n / 10; ` +
      `"÷ X" = time per task ÷ X's, submitted the same way: one task each (map without chunksize vs Python map(chunksize=1)), or in chunks of ${C})`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'rate', header: 'tasks/s', fmt: fmtOps },
      { key: 'ns', header: 'per task', fmt: fmtNs },
      { key: 'vs_piscina', header: '÷ piscina', fmt: fmtRatio },
      { key: 'vs_wp', header: '÷ workerpool', fmt: fmtRatio },
      { key: 'vs_py', header: '÷ Python', fmt: fmtRatio },
      { key: 'detail', header: 'detail' },
    ],
    rows,
  });
  const [fr, fm, fc] = rows;
  goal('Pool throughput ≥ 200 k tasks/s, run() × n at once', fr.rate, fr.rate == null ? null : fr.rate >= 200e3, `${fmtOps(fr.rate)}`);
  goal('Pool throughput ≥ 200 k tasks/s, map() without chunksize', fm.rate, fm.rate == null ? null : fm.rate >= 200e3, `${fmtOps(fm.rate)}`);
  goal('Pool throughput ≥ 5× workerpool (one task each)', fr.vs_wp, fr.vs_wp == null ? null : fr.vs_wp <= 1 / 5,
    `${fmtOps(fr.rate)} vs ${fmtOps(rate('wpRun'))} (${speed(fr.vs_wp)})`);
  goal('Pool throughput ≥ 5× Python apply_async() (one task each)', fr.vs_py, fr.vs_py == null ? null : fr.vs_py <= 1 / 5,
    `${fmtOps(fr.rate)} vs ${fmtOps(rate('pyAsync'))} (${speed(fr.vs_py)}); map() vs Python map(chunksize=1): ${fmtOps(fm.rate)} vs ${fmtOps(rate('pyMap1'))} (${speed(fm.vs_py)})`);
  goal('Pool throughput within 2× of piscina (one task each)', fr.vs_piscina, fr.vs_piscina == null ? null : fr.vs_piscina <= 2,
    `${fmtOps(fr.rate)} vs ${fmtOps(rate('piRun'))} (${fmtRatio(fr.vs_piscina)} the time per task)`);
  goal(`Pool map(chunksize ${C}) vs Python map() and piscina by hand (info)`, fc.vs_py, null,
    `${fmtOps(fc.rate)} vs Python ${fmtOps(rate('pyMapC'))} (${speed(fc.vs_py)}), piscina ${fmtOps(rate('piChunk'))} (${speed(fc.vs_piscina)}), ` +
    `workerpool ${fmtOps(rate('wpChunk'))} (${speed(fc.vs_wp)})`);
}

// ---- 3. 1 MiB argument and result --------------------------------------------------------------
log('section 3: 1 MiB Buffer argument + 1 MiB result');
{
  const B = {
    fs: nodeRun('forksafe', 'bytes', P.bigN, P.window),
    piMove: nodeRun('piscina', 'bytes', P.bigN, P.window, 'move'),
    piClone: nodeRun('piscina', 'bytes', P.bigN, P.window, 'clone'),
    py: py('bytes', P.bigN, P.window),
  };
  const g = (k) => pick(B[k], 'gbps');
  const row = (label, k, detail = '') => ({
    label, gbps: g(k), rate: pick(B[k], 'tasks_per_s'), per: pick(B[k], 'tasks_per_s') ? 1e9 / B[k].tasks_per_s : null,
    vs_move: ratio(g('piMove'), g(k)), vs_clone: ratio(g('piClone'), g(k)), vs_py: ratio(g('py'), g(k)), detail,
  });
  const rows = [
    row(`${FS}: run(buf), the task returns it`, 'fs'),
    row('piscina: run(Piscina.move(buf)), the task returns move(buf) (transfer lists both ways)', 'piMove', 'same process: no copy'),
    row('piscina: run(buf), the task returns it (structured clone both ways)', 'piClone'),
    row('Python Pool: apply_async(big, (bytearray,)), pickled both ways', 'py'),
  ];
  sections.push({
    id: 'bytes',
    title: `3. A 1 MiB Buffer argument and a 1 MiB result per task (${fmtInt(P.bigN)} tasks, ${P.window} in flight, each sending on the Buffer it got back; ` +
      'GB/s = 1e9 bytes/s of argument + result; "÷ X" = time per task ÷ X\'s; workerpool not run: its process IPC is JSON, a Buffer goes as an array of numbers)',
    columns: [
      { key: 'label', header: 'what' },
      { key: 'gbps', header: 'bandwidth', fmt: gbps },
      { key: 'rate', header: 'tasks/s', fmt: (x) => (x == null ? '—' : fmtInt(x)) },
      { key: 'per', header: 'per task', fmt: fmtNs },
      { key: 'vs_move', header: '÷ piscina move', fmt: fmtRatio },
      { key: 'vs_clone', header: '÷ piscina clone', fmt: fmtRatio },
      { key: 'vs_py', header: '÷ Python', fmt: fmtRatio },
      { key: 'detail', header: 'detail' },
    ],
    rows,
  });
  const f = rows[0];
  goal('Pool 1 MiB in + 1 MiB out vs piscina with transfer lists (info)', f.vs_move, null,
    `${gbps(f.gbps)} vs ${gbps(g('piMove'))} (${speed(f.vs_move)}); piscina structured clone ${gbps(g('piClone'))} (${speed(f.vs_clone)})`);
  goal('Pool 1 MiB in + 1 MiB out vs Python Pool (info)', f.vs_py, null, `${gbps(f.gbps)} vs ${gbps(g('py'))} (${speed(f.vs_py)})`);
}

// ---- 4. start-up --------------------------------------------------------------------------------
log('section 4: new Pool() → the first result');
{
  const S = {
    warm: nodeRun('forksafe', 'startup', P.startK, 'warm'),
    spawn: nodeRun('forksafe:spawn', 'startup', P.startK),
    piscina: nodeRun('piscina', 'startup', P.startK),
    wp: nodeRun('workerpool', 'startup', P.startK),
    py: py('startup', P.startK),
  };
  const colds = [];
  for (let i = 0; i < P.cold; i++) colds.push(nodeRun('forksafe', 'startup', 1, 'cold'));
  const coldOk = colds.filter(Boolean);
  S.cold = coldOk.length ? { ms: median(coldOk.map((d) => d.ms)), close_ms: median(coldOk.map((d) => d.close_ms)), samples_ms: coldOk.map((d) => d.ms), k: coldOk.length } : null;
  const ms = (k) => pick(S[k], 'ms');
  const row = (label, k, detail = '') => ({
    label, n: pick(S[k], 'k'), ms: ms(k), close: pick(S[k], 'close_ms'), vs_piscina: ratio(ms(k), ms('piscina')), vs_wp: ratio(ms(k), ms('wp')),
    vs_py: ratio(ms(k), ms('py')), detail,
  });
  const rows = [
    row(`${FS}, the forkserver already up (await startForkserver())`, 'warm', S.warm?.forkserver_boot_ms != null ? `startForkserver() took ${fmtMs(S.warm.forkserver_boot_ms)}` : ''),
    row(`${FS}, the first of a program: boots the forkserver (cold)`, 'cold', S.cold?.samples_ms?.length > 1 ? `runs ${S.cold.samples_ms.map(fmtMs).join(' / ')}` : ''),
    row("forksafe Pool ('spawn'): a fresh node per worker", 'spawn'),
    row('piscina (2 threads)', 'piscina'),
    row("workerpool (workerType 'process')", 'wp'),
    row("Python multiprocessing.Pool(2) ('fork')", 'py'),
  ];
  sections.push({
    id: 'startup',
    title: `4. new Pool() of ${WORKERS} workers → the first result of one trivial task (median of ${P.startK} in one process after one not counted; ` +
      `cold: ${P.cold} fresh processes, once each); close() timed apart`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'n', header: 'n', fmt: fmtInt },
      { key: 'ms', header: 'to first result', fmt: fmtMs },
      { key: 'close', header: 'close()', fmt: fmtMs },
      { key: 'vs_piscina', header: '÷ piscina', fmt: fmtRatio },
      { key: 'vs_wp', header: '÷ workerpool', fmt: fmtRatio },
      { key: 'vs_py', header: '÷ Python', fmt: fmtRatio },
      { key: 'detail', header: 'detail' },
    ],
    rows,
  });
  const [w, c] = rows;
  goal('Pool start-up to the first result, forkserver warm, vs piscina and workerpool (info)', w.vs_piscina, null,
    `${fmtMs(w.ms)} vs ${fmtMs(ms('piscina'))} (${speed(w.vs_piscina)}) and ${fmtMs(ms('wp'))} (${speed(w.vs_wp)})`);
  goal('Pool start-up to the first result, forkserver cold, vs piscina and workerpool (info)', c.vs_piscina, null,
    `${fmtMs(c.ms)} vs ${fmtMs(ms('piscina'))} (${speed(c.vs_piscina)}) and ${fmtMs(ms('wp'))} (${speed(c.vs_wp)}); 'spawn' ${fmtMs(ms('spawn'))}`);
}

// ---- 5. idle memory per worker ---------------------------------------------------------------------
log('section 5: idle memory per worker');
{
  const R = {
    fs: nodeRun('forksafe', 'rss', P.settleMs),
    spawn: nodeRun('forksafe:spawn', 'rss', P.settleMs),
    piscina: nodeRun('piscina', 'rss', P.settleMs),
    wp: nodeRun('workerpool', 'rss', P.settleMs),
    py: py('rss', P.settleMs),
  };
  const rss = (k) => pick(R[k], 'rss_per_worker');
  const row = (label, k, detail = '') => ({
    label, rss: rss(k), pss: pick(R[k], 'pss_per_worker'), vs_piscina: ratio(rss(k), rss('piscina')), vs_wp: ratio(rss(k), rss('wp')), vs_py: ratio(rss(k), rss('py')), detail,
  });
  const mib1 = (b) => (b == null ? '—' : `${(b / MiB).toFixed(1)} MiB`);
  const rows = [
    row(`${FS}: worker VmRSS`, 'fs', R.fs?.forkserver ? `pages shared with the forkserver (its RSS ${mib1(R.fs.forkserver.rss)}) count in full in VmRSS` : ''),
    row("forksafe Pool ('spawn'): worker VmRSS", 'spawn'),
    row('piscina: this process\'s RSS growth ÷ 2 (threads)', 'piscina', 'includes the parent\'s own pool state'),
    row("workerpool ('process'): worker VmRSS", 'wp'),
    row('Python Pool (fork): worker VmRSS', 'py'),
  ];
  sections.push({
    id: 'rss',
    title: `5. Idle memory per worker, after 2,000 trivial tasks and ${P.settleMs} ms idle (VmRSS of /proc/<pid>/status, Pss of smaps_rollup: ` +
      'shared pages divided among their sharers; "÷ X" by VmRSS)',
    columns: [
      { key: 'label', header: 'what' },
      { key: 'rss', header: 'RSS / worker', fmt: mib1 },
      { key: 'pss', header: 'Pss / worker', fmt: mib1 },
      { key: 'vs_piscina', header: '÷ piscina', fmt: fmtRatio },
      { key: 'vs_wp', header: '÷ workerpool', fmt: fmtRatio },
      { key: 'vs_py', header: '÷ Python', fmt: fmtRatio },
      { key: 'detail', header: 'detail' },
    ],
    rows,
  });
  const f = rows[0];
  goal('Pool idle RSS per worker vs piscina, workerpool and Python (info)', f.rss, null,
    `${mib1(f.rss)} (Pss ${mib1(f.pss)}) vs piscina ${mib1(rss('piscina'))}, workerpool ${mib1(rss('wp'))} (Pss ${mib1(pick(R.wp, 'pss_per_worker'))}), ` +
    `Python ${mib1(rss('py'))}; 'spawn' ${mib1(rss('spawn'))}`);
}

report.finish({ file: RESULTS, env, params: P, watch, what: 'these figures (latency and throughput above all)', noVerdictNote: true });
