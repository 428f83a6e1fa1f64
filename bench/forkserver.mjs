// forksafe forkserver benchmarks: how long until a worker that needs the
// `typescript` package (~9 MB of JS, required at top level) answers its
// parent, started four ways (a 'forkserver' Process with typescript preloaded,
// child_process.fork(), a 'spawn' Process, new Worker()), and the memory of 8
// such workers idling (forkserver vs child_process.fork()).
//
//   node bench/forkserver.mjs                 (about 40 s on 2 CPUs; needs dist/ and the addon built)
//   BENCH_QUICK=1 node bench/forkserver.mjs   (fewer samples, about 25 s)
//
// Each measurement runs in a fresh `node bench/forkserver-parent.mjs <mode>`
// (or `node --single-threaded bench/forkserver-zygote.cjs` for the breakdown)
// that prints one JSON line. Prints the tables with ratios, a goal checklist,
// and writes everything to bench/forkserver-results.json (the same layout as
// bench/results.json: `node bench/markdown.mjs bench/forkserver-results.json`).
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import {
  busyLine, envLine, fmtInt, fmtMiB as mib, fmtMs as ms, fmtRatio, fmtSpread as spread, loadWatch, log, machineEnv, median,
  newReport, QUICK, ratio, round, speed,
} from './util.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);
const PARENT = path.join(here, 'forkserver-parent.mjs');
const ZYGOTE = path.join(here, 'forkserver-zygote.cjs');
const RESULTS = path.join(here, 'forkserver-results.json');

const P = QUICK
  ? { fs: 5, cold: 1, slow: 3, info: 2, zygote: 3, workers: 8, use: false }
  : { fs: 15, cold: 3, slow: 5, info: 5, zygote: 9, workers: 8, use: true };

const report = newReport();
const { notes, sections, goal } = report;

let tsVersion = null;
try {
  tsVersion = createRequire(path.join(root, 'package.json'))('typescript/package.json').version;
} catch {
  console.log('bench/forkserver.mjs: the `typescript` package is not installed (npm install): skipped');
  process.exit(0);
}

// ---- environment (helpers in util.mjs) -----------------------------------------------------
const env = machineEnv({ mem_total: os.totalmem(), quick: QUICK, typescript: tsVersion }, notes);
const watch = loadWatch();

console.log(`forksafe forkserver benchmarks${QUICK ? ' (BENCH_QUICK)' : ''}`);
console.log(`  ${envLine(env)} · typescript ${tsVersion} · ${busyLine(env)}`);
console.log('  every worker requires `typescript` at top level; times are medians; ratio = forksafe ÷ baseline (< 1 means forksafe is faster or smaller)\n');

function run(key, args, flags = []) {
  const script = flags.length ? ZYGOTE : PARENT;
  log(`node ${[...flags, path.relative(root, script), ...args].join(' ')}`);
  return report.recordJSON(key, key, [...flags, script, ...args.map(String)], { cwd: root, timeoutMs: 180_000, uniqueErrors: true });
}

const mib1 = (b) => (b == null ? '—' : `${(b / 1048576).toFixed(1)} MiB`);

// ---- 1. start-up --------------------------------------------------------------------------
log('section 1: worker start → first signal back, typescript preloaded/required');
const L = {
  fs: run('latency_fs', ['latency', 'fs', P.fs, 'warm']),
  cp: run('latency_cp', ['latency', 'cp', P.slow]),
  spawn: run('latency_spawn', ['latency', 'spawn', P.slow]),
  worker: run('latency_worker', ['latency', 'worker', P.slow]),
  nopre: run('latency_fs_nopreload', ['latency', 'fs', P.info, 'warm', 'nopreload']),
  target: run('latency_fs_withtarget', ['latency', 'fs', P.info, 'warm', 'withtarget']),
};
// The first start of a program, with no forkserver running: a fresh parent each.
const colds = [];
for (let i = 0; i < P.cold; i++) {
  const d = run(`latency_fs_cold_${i}`, ['latency', 'fs', 1, 'cold']);
  if (d?.observed) colds.push(d);
}
const coldOf = (k) => {
  const xs = colds.map((d) => d[k]?.median).filter((x) => x != null);
  return xs.length ? { median: round(median(xs), 3), p10: Math.min(...xs), p90: Math.max(...xs), n: xs.length } : null;
};
L.cold = colds.length ? Object.fromEntries(['call', 'top', 'ts', 'fn', 'observed'].map((k) => [k, coldOf(k)])) : null;
const Z = run('zygote', [P.zygote], ['--single-threaded']);

const obs = (k) => L[k]?.observed?.median ?? null;
const cpMed = obs('cp');
const wMed = obs('worker');
{
  const kinds = [
    ['fs', "forksafe 'forkserver' Process, typescript preloaded, forkserver already up (await startForkserver())"],
    ['cold', "forksafe 'forkserver' Process, first start() of a program: boots the forkserver, loads typescript, forks (info)"],
    ['nopre', "forksafe 'forkserver' Process, no preload: the worker requires typescript itself (info)"],
    ['target', "forksafe 'forkserver' Process, typescript and the target module both preloaded (info)"],
    ['cp', 'child_process.fork() of a script that requires typescript → first message (process.send)'],
    ['spawn', "forksafe 'spawn' Process (a fresh node), target requires typescript → SharedMemory word"],
    ['worker', 'new Worker() of a script that requires typescript → first message (postMessage)'],
  ];
  const rows = kinds.map(([k, label]) => {
    const s = L[k]?.observed ?? null;
    return {
      label, med: s?.median ?? null, s: k === 'cold' ? (s && s.n > 1 ? s : null) : s, n: s?.n ?? null,
      vs_cp: k === 'cp' ? null : ratio(s?.median, cpMed), vs_worker: k === 'worker' ? null : ratio(s?.median, wMed),
    };
  });
  sections.push({
    id: 'forkserver_latency',
    title: `1. Start-up with a heavy dependency: from the call in the parent until the parent sees the worker's first signal, the worker having ` +
      `required the \`typescript\` package (${tsVersion}) at top level (median of ${P.fs} forkserver starts after one warm-up, ${P.slow} of ` +
      `each other kind after one warm-up, ${P.cold} first starts in fresh parents; forksafe workers write a SharedMemory word, the parent waits on it)`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'n', header: 'n', fmt: fmtInt },
      { key: 'med', header: 'median', fmt: ms },
      { key: 's', header: 'p10 – p90', fmt: spread },
      { key: 'vs_cp', header: '÷ child_process.fork', fmt: fmtRatio },
      { key: 'vs_worker', header: '÷ new Worker', fmt: fmtRatio },
    ],
    rows,
  });

  // 1b. where the time goes, from the stamps the worker writes.
  const rows2 = kinds.map(([k, label]) => {
    const d = L[k];
    const m = (f) => d?.[f]?.median ?? null;
    const inServer = k === 'target'; // the module top ran in the forkserver, before the call
    return {
      label: label.replace(/ \(info\)$/, ''), call: m('call'), top: inServer ? null : m('top'), ts: inServer ? null : m('ts'),
      fn: m('fn'), observed: m('observed'),
      detail: inServer ? 'module top and require ran in the forkserver at preload' : k === 'cp' || k === 'worker' ? 'no synchronous start call' : '',
    };
  });
  sections.push({
    id: 'forkserver_breakdown',
    title: "1b. Where the time goes (medians, ms from the call): start() returns in the parent (forkserver: the pid is known); the worker stamps the " +
      "monotonic clock at the top of its module, after require('typescript') and when its function runs; the parent sees the signal",
    columns: [
      { key: 'label', header: 'what' },
      { key: 'call', header: 'start() returns', fmt: ms },
      { key: 'top', header: 'module top', fmt: ms },
      { key: 'ts', header: 'typescript loaded', fmt: ms },
      { key: 'fn', header: 'function runs', fmt: ms },
      { key: 'observed', header: 'parent sees it', fmt: ms },
      { key: 'detail', header: 'detail' },
    ],
    rows: rows2,
  });

  // 1c. the forkserver's work per start, redone by hand in a process like it.
  const zRows = [
    ['first', "fork() → the child's first statement"],
    ['require', "fork(), then require() of the worker's CommonJS module (typescript: a cache hit)"],
    ['import_cold', "fork(), then import() of the same module instead, the ESM loader never used in the parent"],
    ['import_warm', 'fork(), then import(), after one import() of another module in the parent'],
  ].map(([k, label]) => {
    const x = Z?.[k] ?? null;
    return {
      label, call: x?.call ?? null, first: x?.first ?? null, done: x?.done ?? null, observed: x?.observed ?? null,
      vs_fs: ratio(x?.observed, obs('fs')),
    };
  });
  sections.push({
    id: 'forkserver_zygote',
    title: `1c. What a forkserver start costs, redone by hand with forksafe fork() in \`node --single-threaded\` (CommonJS) that required typescript ` +
      `(RSS ${mib(Z?.rss)}, ${fmtInt(Z?.maps_lines)} mappings, heap ${mib(Z?.heap_used)}; medians of ${P.zygote}, ms from the fork() call)`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'call', header: 'fork() returns', fmt: ms },
      { key: 'first', header: 'child first statement', fmt: ms },
      { key: 'done', header: 'module loaded', fmt: ms },
      { key: 'observed', header: 'parent sees it', fmt: ms },
      { key: 'vs_fs', header: '÷ forkserver start', fmt: fmtRatio },
    ],
    rows: zRows,
  });

  const f = obs('fs');
  const rCp = ratio(f, cpMed);
  const rW = ratio(f, wMed);
  goal("forkserver ≥ 20× faster than child_process.fork() with the same preload", rCp, rCp == null ? null : rCp <= 1 / 20,
    `${ms(f)} vs ${ms(cpMed)} (${speed(rCp)})`);
  goal('forkserver ≥ 5× faster than new Worker() with the same preload', rW, rW == null ? null : rW <= 1 / 5,
    `${ms(f)} vs ${ms(wMed)} (${speed(rW)})`);
  const rS = ratio(f, obs('spawn'));
  goal("forkserver vs a 'spawn' Process with the same preload (info)", rS, null, `${ms(f)} vs ${ms(obs('spawn'))} (${speed(rS)})`);
  const c = obs('cold');
  goal('first start() of a program, no forkserver running: boot + preload + fork (info)', ratio(c, cpMed), null,
    `${ms(c)} vs ${ms(cpMed)} for child_process.fork() (${speed(ratio(c, cpMed))}); await startForkserver() took ${ms(L.fs?.boot_ms)} ` +
      `in the steady-state parent, without blocking its event loop`);
  const np = obs('nopre');
  goal('what the preload buys: forkserver without preload (info)', ratio(f, np), null,
    `${ms(f)} with typescript preloaded vs ${ms(np)} when each worker requires it (${speed(ratio(f, np))})`);
  const zc = Z?.import_cold?.observed ?? null;
  const zr = Z?.require?.observed ?? null;
  goal("how a worker loads its module: require() ÷ import(), by hand (info)", ratio(zr, zc), null,
    `by hand: fork() + import() ${ms(zc)}, fork() + require() ${ms(zr)}, fork() alone ${ms(Z?.first?.observed)}; forkserver start ${ms(f)}`);
}

// ---- 2. memory ----------------------------------------------------------------------------
log(`section 2: memory of ${P.workers} idle workers that loaded typescript`);
const variants = [
  ['fs', '0', `${P.workers} idle 'forkserver' workers (typescript preloaded), each blocked in Event.wait()`],
  ['cp', '0', `${P.workers} idle child_process.fork() children that each required typescript`],
];
if (P.use) {
  variants.push(
    ['fs', '1', 'the same forkserver workers, each having run one ts.transpileModule() first'],
    ['cp', '1', 'the same child_process.fork() children, each having run one ts.transpileModule() first'],
  );
}
const M = {};
for (const [kind, use] of variants) M[`${kind}${use}`] = run(`mem_${kind}_use${use}`, ['mem', kind, P.workers, use]);
{
  const rows = variants.map(([kind, use, label]) => {
    const d = M[`${kind}${use}`];
    const ws = d?.workers?.filter(Boolean) ?? [];
    const wPss = d?.workers_total?.Pss ?? null;
    const sPss = d?.server?.Pss ?? null;
    const total = wPss == null ? null : wPss + (sPss ?? 0);
    const cpTotal = M[`cp${use}`]?.workers_total?.Pss ?? null;
    return {
      label, n: ws.length, wPss, sPss: kind === 'fs' ? sPss : null, total,
      per: ws.length ? median(ws.map((w) => w.Pss)) : null,
      priv: ws.length ? median(ws.map((w) => w.Private_Dirty)) : null,
      rss: d ? (d.workers_total?.Rss ?? 0) + (d.server?.Rss ?? 0) : null,
      vs_cp: kind === 'cp' ? null : ratio(total, cpTotal),
      detail: [
        d?.server ? `forkserver RSS ${mib(d.server.Rss)}, ${fmtInt(d.server.maps_lines)} mappings` : '',
        d?.ready_ms != null ? `all ${ws.length} idle after ${ms(d.ready_ms)}` : '',
      ].filter(Boolean).join('; '),
    };
  });
  sections.push({
    id: 'forkserver_memory',
    title: `2. Memory: ${P.workers} idle workers that loaded typescript; PSS and RSS from /proc/PID/smaps_rollup of each process while all idle. ` +
      '"total" = the workers + the forkserver (child_process.fork(): the children only; the parent, which never loads typescript, is left out of both)',
    columns: [
      { key: 'label', header: 'what' },
      { key: 'n', header: 'workers', fmt: fmtInt },
      { key: 'wPss', header: 'workers PSS', fmt: mib },
      { key: 'sPss', header: 'forkserver PSS', fmt: mib },
      { key: 'total', header: 'total PSS', fmt: mib },
      { key: 'per', header: 'PSS per worker', fmt: mib1 },
      { key: 'priv', header: 'private dirty per worker', fmt: mib1 },
      { key: 'rss', header: 'Σ RSS', fmt: mib },
      { key: 'vs_cp', header: '÷ child_process.fork', fmt: fmtRatio },
      { key: 'detail', header: 'detail' },
    ],
    rows,
  });
  for (const [i, use] of [[0, '0'], [2, '1']]) {
    const r = rows[i];
    const c = rows[i + 1];
    if (!r || !c) continue;
    goal(`memory of ${P.workers} ${use === '1' ? 'forkserver workers that each ran one transpileModule()' : 'idle forkserver workers'}, ` +
      `forkserver included, vs ${P.workers} child_process.fork() children (info)`, r.vs_cp, null,
    `${mib(r.total)} (${r.n} workers ${mib(r.wPss)} + forkserver ${mib(r.sPss)}) vs ${mib(c.total)} (${c.n} children): ${fmtRatio(r.vs_cp)}`);
  }
}

// ---- 3. death -> exited ----------------------------------------------------------------------
log('section 3: SIGKILL -> the parent knows');
{
  const D = run('death', ['death', QUICK ? 10 : 30]);
  const rows = [
    { label: "'forkserver' worker SIGKILLed → Process.exited resolves (the forkserver reaps it, then a frame)", s: D?.forkserver ?? null },
    { label: "child_process.fork() child SIGKILLed → its 'exit' event (libuv's SIGCHLD handling)", s: D?.cp_fork ?? null },
  ];
  sections.push({
    id: 'forkserver_death',
    title: '3. Death notice: from process.kill(pid, SIGKILL) in the parent to the parent knowing (median, p10 – p90, max)',
    columns: [
      { key: 'label', header: 'what' },
      { key: 's', header: 'median', fmt: (x) => ms(x?.median ?? null) },
      { key: 's', header: 'p10 – p90', fmt: (x) => (x ? `${ms(x.p10)} – ${ms(x.p90)}` : '—') },
      { key: 's', header: 'max', fmt: (x) => ms(x?.max ?? null) },
      { key: 's', header: 'n', fmt: (x) => fmtInt(x?.n ?? null) },
    ],
    rows,
  });
  const mx = D?.forkserver?.max ?? null;
  goal("a SIGKILLed 'forkserver' worker's exited resolves within 100 ms (every sample)", mx, mx == null ? null : mx < 100,
    `max ${ms(mx)}, median ${ms(D?.forkserver?.median ?? null)} over ${D?.forkserver?.n ?? 0} kills; child_process.fork() 'exit': median ${ms(D?.cp_fork?.median ?? null)}`);
}

// ---- output -------------------------------------------------------------------------------
report.finish({ file: RESULTS, env, params: P, watch });
