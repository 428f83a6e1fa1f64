// forksafe fork() benchmarks: start-up latency against child_process.fork()
// and new Worker() at several parent heap sizes, and the memory of 4 children
// that read 256 MiB held in shared memory, in the parent's heap, or in copies.
//
//   node bench/fork.mjs                 (about 1 minute on 2 CPUs; needs dist/ and the addon built)
//   BENCH_QUICK=1 node bench/fork.mjs   (fewer samples)
//
// Each measurement runs in a fresh
//   node --single-threaded --expose-gc --max-old-space-size=2000 bench/fork-parent.mjs <mode>
// that prints one JSON line. Prints the tables with ratios, a goal checklist,
// and writes everything to bench/fork-results.json (the same layout as
// bench/results.json: `node bench/markdown.mjs bench/fork-results.json`).
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  busyLine, envLine, fmtInt, fmtMiB as mib, fmtMs as ms, fmtRatio, fmtSpread as spread, loadWatch, log, machineEnv, median,
  newReport, QUICK, ratio, runJSON, speed,
} from './util.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);
const PARENT = path.join(here, 'fork-parent.mjs');
const RESULTS = path.join(here, 'fork-results.json');
const FLAGS = ['--single-threaded', '--expose-gc', '--max-old-space-size=2000'];

const P = QUICK
  ? { heaps: [0, 50, 200, 800], forks: 5, raw: 3, warm: 3, cp: 3, workers: 3, workerHeap: 50, cowMiB: 256, children: 4 }
  : { heaps: [0, 50, 200, 800], forks: 15, raw: 9, warm: 9, cp: 9, workers: 9, workerHeap: 50, cowMiB: 256, children: 4 };

const report = newReport();
const { notes, sections, goal } = report;

// ---- environment (helpers in util.mjs) -----------------------------------------------------
const env = machineEnv({ mem_total: os.totalmem(), quick: QUICK, flags: FLAGS.join(' ') }, notes);
const watch = loadWatch();

console.log(`forksafe fork() benchmarks${QUICK ? ' (BENCH_QUICK)' : ''}`);
console.log(`  ${envLine(env)} · ${busyLine(env)}`);
console.log(`  parents run as node ${env.flags}; times are medians; ratio = forksafe ÷ baseline (< 1 means forksafe is faster or smaller)\n`);

function parent(mode, ...args) {
  log(`node ${FLAGS.join(' ')} fork-parent.mjs ${mode} ${args.join(' ')}`);
  return report.recordJSON(`${mode}_${args[0]}`, `fork-parent ${mode} ${args[0]}`, [...FLAGS, PARENT, mode, ...args.map(String)],
    { cwd: root, timeoutMs: 180_000 });
}

const heapName = (h) => (h === 0 ? 'as started' : `${h} MiB`);

// The C floor (bench/baselines/fork_floor.c): a process holding the same RSS forks.
const BASE = path.join(here, 'baselines');
const built = spawnSync('sh', [path.join(BASE, 'build.sh')], { encoding: 'utf8', timeout: 120_000 });
if (built.status !== 0) notes.push(`C floor skipped: bench/baselines/build.sh failed: ${(built.stderr || built.error?.message || '').trim().split('\n').slice(-2).join(' ')}`);
function floor(mib) {
  if (built.status !== 0) return null;
  const r = runJSON(path.join(BASE, 'bin', 'fork_floor'), [String(mib), String(P.raw)], { cwd: root, timeoutMs: 60_000 });
  if (!r.ok) notes.push(`fork_floor ${mib} failed: ${r.error}`);
  return r.ok ? r.data : null;
}

// ---- 1. start-up latency ------------------------------------------------------------
log('section 1: fork() latency at several heap sizes');
const lat = {};
for (const h of P.heaps) {
  lat[h] = parent('latency', h, P.forks, P.raw, P.warm, P.cp, h === P.workerHeap ? P.workers : 0);
}
{
  const rows = [];
  for (const h of P.heaps) {
    const d = lat[h];
    const base = { heap: d?.heap_used ?? null, rss: d?.rss ?? null };
    const cpMed = d?.cp_fork?.median ?? null;
    const wMed = d?.worker?.median ?? null;
    const fo = d?.fork?.observed ?? null;
    rows.push({ label: `forksafe fork() → child's first statement, heap ${heapName(h)}`, ...base, med: fo?.median ?? null, s: fo,
      vs_cp: ratio(fo?.median, cpMed), vs_worker: ratio(fo?.median, wMed), n: fo?.n });
    rows.push({ label: `child_process.fork() → first message, heap ${heapName(h)}`, ...base, med: cpMed, s: d?.cp_fork, vs_cp: null, vs_worker: ratio(cpMed, wMed), n: d?.cp_fork?.n });
    const ca = d?.cp_fork_after ?? null;
    rows.push({ label: `child_process.fork() → first message, once fork() has run, heap ${heapName(h)}`, ...base, med: ca?.median ?? null, s: ca,
      vs_cp: ratio(ca?.median, cpMed), vs_worker: null, n: ca?.n });
    if (d?.worker) rows.push({ label: `new Worker() → first message, heap ${heapName(h)}`, ...base, med: wMed, s: d.worker, vs_cp: ratio(wMed, cpMed), vs_worker: null, n: d.worker.n });
  }
  sections.push({
    id: 'fork_latency',
    title: `1. Start-up: from the call in the parent to the child's first JS statement, observed by the parent (median of ${P.forks} forks, ` +
      `${P.cp} child_process.fork(), ${P.workers} Worker; heap = the parent's V8 heapUsed, RSS from /proc/self/status)`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'heap', header: 'heap used', fmt: mib },
      { key: 'rss', header: 'parent RSS', fmt: mib },
      { key: 'med', header: 'median', fmt: ms },
      { key: 's', header: 'p10 – p90', fmt: spread },
      { key: 'vs_cp', header: '÷ child_process.fork', fmt: fmtRatio },
      { key: 'vs_worker', header: '÷ new Worker', fmt: fmtRatio },
    ],
    rows,
  });

  // 1b. where the time goes.
  const rows2 = [];
  for (const h of P.heaps) {
    const d = lat[h];
    const rawObs = d?.raw?.observed?.median ?? null;
    const fl = d?.rss ? floor(Math.round(d.rss / 1048576)) : null;
    if (d) d.c_floor = fl;
    for (const [k, label] of [
      ['fork', 'fork()'],
      ['raw', 'native fork only (no JS set-up in the child)'],
      ['warm', 'fork() after crypto.randomUUID/randomInt ran hot in the parent'],
    ]) {
      const x = d?.[k];
      rows2.push({
        label: `${label}, heap ${heapName(h)}`, rss: d?.rss ?? null, maps: (k === 'warm' ? d?.maps_lines_warm : d?.maps_lines) ?? null,
        call: x?.call?.median ?? null, child: x?.child?.median ?? null, observed: x?.observed?.median ?? null,
        vs_raw: k === 'raw' ? null : ratio(x?.observed?.median, rawObs),
        vs_cp: ratio(x?.observed?.median, d?.cp_fork?.median),
      });
    }
    rows2.push({
      label: `C process holding the same RSS, fork() → child's first instruction (floor), heap ${heapName(h)}`, rss: d?.rss ?? null, maps: null,
      call: fl?.call ?? null, child: fl?.child ?? null, observed: null, vs_raw: ratio(fl?.child, rawObs), vs_cp: ratio(fl?.child, d?.cp_fork?.median),
    });
  }
  sections.push({
    id: 'fork_breakdown',
    title: '1b. Where the time goes (medians, ms from the call): the call returns in the parent; the child stamps the monotonic clock at its first ' +
      "statement; the parent sees the child's write to a SharedMemory word (SharedMemory.wait)",
    columns: [
      { key: 'label', header: 'what' },
      { key: 'rss', header: 'parent RSS', fmt: mib },
      { key: 'maps', header: 'mappings', fmt: fmtInt },
      { key: 'call', header: 'fork() returns', fmt: ms },
      { key: 'child', header: 'child first statement', fmt: ms },
      { key: 'observed', header: 'parent sees it', fmt: ms },
      { key: 'vs_raw', header: '÷ native fork only', fmt: fmtRatio },
      { key: 'vs_cp', header: '÷ child_process.fork', fmt: fmtRatio },
    ],
    rows: rows2,
  });

  const at = (h, k) => lat[h]?.[k] ?? null;
  const f50 = at(P.workerHeap, 'fork')?.observed?.median ?? null;
  const cp50 = at(P.workerHeap, 'cp_fork')?.median ?? null;
  const w50 = at(P.workerHeap, 'worker')?.median ?? null;
  goal(`fork(): a child running JS in under 2 ms at a ${P.workerHeap} MiB heap`, f50, f50 == null ? null : f50 < 2,
    `${ms(f50)} (parent RSS ${mib(lat[P.workerHeap]?.rss)}; native fork alone ${ms(at(P.workerHeap, 'raw')?.observed?.median)})`);
  const r50 = ratio(f50, cp50);
  goal(`fork() ≥ 25× faster than child_process.fork() at a ${P.workerHeap} MiB heap`, r50, r50 == null ? null : r50 <= 1 / 25,
    `${ms(f50)} vs ${ms(cp50)} (${speed(r50)})`);
  for (const h of P.heaps) {
    const a = at(h, 'cp_fork_after')?.median ?? null;
    const b = at(h, 'cp_fork')?.median ?? null;
    goal(`child_process.fork() in a process where fork() has run, heap ${heapName(h)} (info)`, ratio(a, b), null,
      `${ms(a)} vs ${ms(b)} before any fork() (${fmtRatio(ratio(a, b))})`);
  }
  const fl50 = lat[P.workerHeap]?.c_floor?.child ?? null;
  goal(`fork() at a ${P.workerHeap} MiB heap vs a C process of the same RSS forking (the floor: page tables copied) (info)`, ratio(f50, fl50), null,
    `${ms(f50)} vs ${ms(fl50)} (${fmtRatio(ratio(f50, fl50))})`);
  goal(`fork() vs new Worker() at a ${P.workerHeap} MiB heap (info)`, ratio(f50, w50), null, `${ms(f50)} vs ${ms(w50)} (${speed(ratio(f50, w50))})`);
  for (const h of P.heaps.filter((x) => x !== P.workerHeap)) {
    const f = at(h, 'fork')?.observed?.median ?? null;
    const c = at(h, 'cp_fork')?.median ?? null;
    goal(`fork() vs child_process.fork() at heap ${heapName(h)} (info)`, ratio(f, c), null,
      `${ms(f)} vs ${ms(c)} (${speed(ratio(f, c))}), parent RSS ${mib(lat[h]?.rss)}`);
  }
}

// ---- 2. copy-on-write memory --------------------------------------------------------------
log('section 2: memory of 4 children reading 256 MiB');
const VARIANTS = [
  ['none', `${P.children} fork() children, no data (baseline for the fork rows)`, 'none'],
  ['shm', `forksafe SharedMemory ('fork' context), ${P.children} fork() children read it`, 'none'],
  ['buffer', `Buffer in the parent (before fork), ${P.children} fork() children read it`, 'none'],
  ['buffer-write', 'the same, each child first writes one word per 4 KiB page', 'none'],
  ['jsheap', `JS arrays of doubles in the parent's V8 heap, ${P.children} fork() children read them`, 'none'],
  ['jsheap-gc', 'the same, then each child runs a full GC (gc())', 'none'],
  ['cp-none', `${P.children} child_process.fork() children, no data (baseline for the next row)`, 'cp-none'],
  ['cp', `${P.children} child_process.fork() children, each builds its own copy`, 'cp-none'],
];
const cow = {};
for (const [v] of VARIANTS) cow[v] = parent('cow', v, P.cowMiB, P.children);
{
  const region = P.cowMiB * 1048576;
  const tot = (v) => cow[v]?.total?.Pss ?? null;
  const kidsPss = (v) => (cow[v] ? cow[v].mem.children.reduce((a, c) => a + c.Pss, 0) : null);
  const med = (v, f) => {
    const xs = cow[v]?.per_child?.map((p) => p[f]).filter((x) => x != null) ?? [];
    return xs.length ? median(xs) : null;
  };
  const rows = VARIANTS.map(([v, label, base]) => {
    const cost = v === base || tot(v) == null || tot(base) == null ? null : tot(v) - tot(base);
    const d = cow[v];
    const readMs = med(v, 'read_ms');
    const gcMs = med(v, 'gc_ms');
    const build = med(v, 'build_ms');
    return {
      label, pss: tot(v), parent: d?.mem?.parent?.Pss ?? null, kids: kidsPss(v), rss: d?.total?.Rss ?? null,
      cost, copies: cost == null ? null : cost / region, vs_cp: v === 'cp' ? null : ratio(tot(v), tot('cp')),
      read_ms: readMs, minflt: med(v, 'minflt'),
      detail: [
        d && !d.ok ? 'FAILED (see notes)' : '',
        build != null ? `build ${ms(build)}` : '',
        gcMs != null ? `gc() ${ms(gcMs)}` : '',
        d?.mem?.parent?.Pss_Shmem ? `shmem PSS ${mib(d.total.Pss_Shmem)}` : '',
      ].filter(Boolean).join('; '),
    };
  });
  sections.push({
    id: 'fork_cow',
    title: `2. Memory: ${P.children} children each read (sum) the same ${P.cowMiB} MiB; PSS and RSS from /proc/PID/smaps_rollup of the parent + ` +
      'children, with every child alive and done reading. "data" = total PSS − the no-data baseline; "copies" = data ÷ the region size; ' +
      'read = median time of one child to sum it all (children run at once); faults = median minor page faults of one child while reading',
    columns: [
      { key: 'label', header: 'what' },
      { key: 'pss', header: 'total PSS', fmt: mib },
      { key: 'parent', header: 'parent PSS', fmt: mib },
      { key: 'kids', header: 'children PSS', fmt: mib },
      { key: 'rss', header: 'Σ RSS', fmt: mib },
      { key: 'cost', header: 'data', fmt: mib },
      { key: 'copies', header: 'copies', fmt: (x) => (x == null ? '—' : x.toFixed(2)) },
      { key: 'vs_cp', header: '÷ child_process.fork', fmt: fmtRatio },
      { key: 'read_ms', header: 'read', fmt: ms },
      { key: 'minflt', header: 'faults', fmt: fmtInt },
      { key: 'detail', header: 'detail' },
    ],
    rows,
  });
  const shm = rows[1];
  goal(`SharedMemory of ${P.cowMiB} MiB read by ${P.children} fork() children counted once (data ≤ 1.1 copies)`, shm.copies,
    shm.copies == null ? null : shm.copies <= 1.1 && !!cow.shm?.ok,
    `${mib(shm.cost)} above the no-data baseline = ${shm.copies?.toFixed(2) ?? '—'} copies; total PSS ${mib(shm.pss)} vs ${mib(rows[7].pss)} ` +
      `for ${P.children} child_process.fork() copies (${fmtRatio(shm.vs_cp)})`);
  goal(`Parent Buffer read by ${P.children} fork() children, copy-on-write (info)`, rows[2].copies, null,
    `${rows[2].copies?.toFixed(2) ?? '—'} copies; after a write per page ${rows[3].copies?.toFixed(2) ?? '—'} copies`);
  goal(`V8-heap arrays read by ${P.children} fork() children (info)`, rows[4].copies, null,
    `${rows[4].copies?.toFixed(2) ?? '—'} copies; after a full GC in each child ${rows[5].copies?.toFixed(2) ?? '—'} copies`);
  goal(`${P.children} child_process.fork() children with their own copies (info)`, rows[7].copies, null, `${rows[7].copies?.toFixed(2) ?? '—'} copies`);
}

// ---- output -------------------------------------------------------------------------------
report.finish({ file: RESULTS, env, params: P, watch });
