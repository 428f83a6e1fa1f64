// One process pool measurement per process: `node bench/pool-measure.mjs <lib> <test> [args]`
// prints one JSON line (bench/pool.mjs runs it for each library, beside
// bench/baselines/py_pool.py). Every pool has 2 workers; the task module is
// bench/pool-tasks.cjs (bench/pool-wp-worker.cjs for workerpool).
//
// Libraries (<lib>):
//   forksafe[:CONTEXT]   forksafe's Pool, context 'forkserver' (the default) or 'spawn'
//   piscina              piscina, worker_threads (minThreads = maxThreads = 2, idleTimeout Infinity)
//   workerpool           workerpool with workerType 'process' (child_process.fork, minWorkers = maxWorkers = 2)
//
// Tests (<test>):
//   latency <n>                  one trivial task (x => x + 1) at a time, each awaited before the
//                                next: median / p99 / mean of n after a warm-up of n / 10 + 200
//   tput <n> <how> [chunk] [reps]   n trivial tasks; how = run (all submitted at once, then
//                                Promise.all; workerpool: exec()), map (forksafe pool.map(items),
//                                chunksize 1 or [chunk]), chunk (piscina / workerpool: n / chunk
//                                tasks of `chunk` items each, a task maps its array, all at once);
//                                median of reps after one warm-up of n / 10
//   bytes <n> <window> [move|clone]   n tasks whose argument is a 1 MiB Buffer and whose result is
//                                that Buffer (first byte flipped) back: `window` in flight, each slot
//                                sends the Buffer it got back; piscina: move = Piscina.move() both
//                                ways (transfer lists), clone = structured clone both ways
//   startup <k> [warm|cold]      `new Pool()` → the first result (then close(), timed apart): k
//                                times in this process, the first one not counted (forksafe cold:
//                                once, in a fresh process, the forkserver not running yet; warm:
//                                startForkserver() awaited first)
//   rss [settle_ms]              the workers' VmRSS and Pss (/proc/<pid>/status, smaps_rollup) after
//                                a map of 2,000 trivial tasks and settle_ms (500) idle; piscina:
//                                this process's RSS growth from before new Piscina() (threads)
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { kbFields, mean, median, percentile, round } from './util.mjs';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const TASKS = path.join(here, 'pool-tasks.cjs');
const WP_WORKER = path.join(here, 'pool-wp-worker.cjs');
const WORKERS = 2;
const MiB = 1 << 20;

const [libArg, test, ...argv] = process.argv.slice(2);
const [lib, ctxName] = (libArg ?? '').split(':');
const num = (i, d) => (argv[i] !== undefined && argv[i] !== '' ? Number(argv[i]) : d);
const nowMs = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function out(obj) {
  process.stdout.write(`${JSON.stringify({ lib: libArg, test, workers: WORKERS, ...obj })}\n`);
}

// ---- a uniform face for the three libraries ------------------------------------------------------
// make() → { run(x, name), map(items, chunksize), chunkRun(items, chunk), big(buf, mode), pids(), close() }
function make() {
  if (lib === 'forksafe') {
    const { Pool } = require('../dist/index.js');
    const pool = new Pool({ module: TASKS, export: 'inc', workers: WORKERS, ...(ctxName ? { context: ctxName } : {}) });
    return {
      pool,
      run: (x) => pool.run(x),
      big: (b) => pool.run(b, { name: 'big' }),
      map: (items, chunksize) => pool.map(items, chunksize > 1 ? { chunksize } : undefined),
      pids: () => pool.pids,
      close: () => pool.close(),
    };
  }
  if (lib === 'piscina') {
    const { Piscina } = require('piscina');
    const pool = new Piscina({ filename: TASKS, name: 'inc', minThreads: WORKERS, maxThreads: WORKERS, idleTimeout: Infinity });
    return {
      pool,
      run: (x) => pool.run(x),
      chunk: (xs) => pool.run(xs, { name: 'incChunk' }),
      big: (b, mode) => (mode === 'clone' ? pool.run(b, { name: 'big' }) : pool.run(Piscina.move(b), { name: 'bigMove' })),
      pids: () => [],
      close: () => pool.close(),
    };
  }
  if (lib === 'workerpool') {
    const workerpool = require('workerpool');
    const pool = workerpool.pool(WP_WORKER, { workerType: 'process', minWorkers: WORKERS, maxWorkers: WORKERS });
    return {
      pool,
      run: (x) => pool.exec('inc', [x]),
      chunk: (xs) => pool.exec('incChunk', [xs]),
      big: null, // JSON over child_process IPC: a Buffer goes as {type, data: [...]}; not measured
      pids: () => pool.workers.map((w) => w.worker?.pid).filter(Boolean),
      close: () => pool.terminate(),
    };
  }
  throw new Error(`unknown library '${libArg}' (forksafe[:forkserver|spawn], piscina, workerpool)`);
}

const us = (ms) => round(ms * 1000, 2);

const tests = {
  async latency() {
    const n = num(0, 10_000);
    const p = make();
    await p.run(0);
    const warm = Math.floor(n / 10) + 200;
    for (let i = 0; i < warm; i++) await p.run(i);
    const t = new Float64Array(n);
    let bad = 0;
    for (let i = 0; i < n; i++) {
      const t0 = nowMs();
      const v = await p.run(i);
      t[i] = nowMs() - t0;
      if (v !== i + 1) bad++;
    }
    await p.close();
    const xs = [...t];
    out({ n, median_us: us(median(xs)), p99_us: us(percentile(xs, 0.99)), p90_us: us(percentile(xs, 0.9)), p10_us: us(percentile(xs, 0.1)),
      mean_us: us(mean(xs)), max_us: us(Math.max(...xs)), ok: bad === 0, bad });
  },

  async tput() {
    const n = num(0, 100_000);
    const how = argv[1] ?? 'run';
    const chunk = num(2, 1);
    const reps = num(3, 3);
    const p = make();
    await p.run(0);
    const once = async (count) => {
      const items = Array.from({ length: count }, (_, i) => i);
      let res;
      if (how === 'run') res = await Promise.all(items.map((x) => p.run(x)));
      else if (how === 'map') {
        if (!p.map) throw new Error(`${libArg} has no map()`);
        res = await p.map(items, chunk);
      } else if (how === 'chunk') {
        if (!p.chunk) throw new Error(`${libArg}: no chunk mode (use map)`);
        const jobs = [];
        for (let i = 0; i < count; i += chunk) jobs.push(p.chunk(items.slice(i, i + chunk)));
        res = (await Promise.all(jobs)).flat();
      } else throw new Error(`tput: unknown how '${how}'`);
      let bad = res.length === count ? 0 : 1;
      for (let i = 0; i < res.length; i++) if (res[i] !== i + 1) bad++;
      return bad;
    };
    let bad = await once(Math.max(1000, Math.floor(n / 10)));
    const rates = [];
    const walls = [];
    for (let r = 0; r < reps; r++) {
      const t0 = nowMs();
      bad += await once(n);
      const ms = nowMs() - t0;
      walls.push(round(ms, 2));
      rates.push(Math.round(n / (ms / 1000)));
    }
    await p.close();
    out({ n, how, chunk, tasks_per_s: median(rates), samples_tasks_per_s: rates, wall_ms: walls, ok: bad === 0, bad });
  },

  async bytes() {
    const n = num(0, 500);
    const window = num(1, 4);
    const mode = argv[2] ?? 'move';
    const p = make();
    if (!p.big) throw new Error(`${libArg}: no 1 MiB test`);
    await p.run(0);
    let bad = 0;
    const check = (b, expect) => {
      if (!b || b.length !== MiB || b[0] !== expect || b[MiB - 1] !== 7) bad++;
    };
    const go = async (count) => {
      let next = 0;
      const slot = async (k) => {
        let b = Buffer.alloc(MiB, 7);
        let first = 7;
        while (next < count) {
          next++;
          const r = await p.big(b, mode);
          first ^= 1;
          check(r, first);
          b = r; // the Buffer that came back goes again
        }
        return k;
      };
      await Promise.all(Array.from({ length: window }, (_, k) => slot(k)));
    };
    await go(Math.max(window * 2, Math.floor(n / 10)));
    const t0 = nowMs();
    await go(n);
    const ms = nowMs() - t0;
    await p.close();
    const moved = 2 * n * MiB; // argument + result
    out({ n, window, mode, wall_ms: round(ms, 2), tasks_per_s: round(n / (ms / 1000), 1), gbps: round(moved / (ms / 1000) / 1e9, 3),
      mib_per_s_each_way: round((n * MiB) / MiB / (ms / 1000), 1), ok: bad === 0, bad });
  },

  async startup() {
    const k = num(0, 5);
    const variant = argv[1] ?? 'warm';
    const extra = {};
    if (lib === 'forksafe' && (ctxName ?? 'forkserver') === 'forkserver' && variant === 'warm') {
      const { startForkserver } = require('../dist/index.js');
      const t0 = nowMs();
      await startForkserver();
      extra.forkserver_boot_ms = round(nowMs() - t0, 2);
    }
    // Load the library before the clock starts (the forkserver, when cold, is not started by this).
    if (lib === 'forksafe') require('../dist/index.js');
    else require(lib);
    const first = [];
    const closeMs = [];
    const count = variant === 'cold' ? 1 : k + 1;
    for (let i = 0; i < count; i++) {
      const t0 = nowMs();
      const p = make();
      const v = await p.run(41);
      const t1 = nowMs();
      if (v !== 42) throw new Error(`startup: got ${v}`);
      await p.close();
      const t2 = nowMs();
      if (variant === 'cold' || i > 0) {
        first.push(round(t1 - t0, 3));
        closeMs.push(round(t2 - t1, 3));
      }
      await sleep(20);
    }
    out({ variant, k: first.length, ms: median(first), samples_ms: first, close_ms: median(closeMs), ...extra });
  },

  async rss() {
    const settle = num(0, 500);
    const before = process.memoryUsage.rss();
    const p = make();
    const items = Array.from({ length: 2000 }, (_, i) => i);
    await Promise.all(items.map((x) => p.run(x)));
    await sleep(settle);
    const after = process.memoryUsage.rss();
    const workers = [];
    for (const pid of p.pids()) {
      const st = kbFields(`/proc/${pid}/status`, ['VmRSS']);
      let pss = null;
      try {
        pss = kbFields(`/proc/${pid}/smaps_rollup`, ['Pss']).Pss;
      } catch {}
      workers.push({ pid, rss: st.VmRSS, pss });
    }
    const extra = {};
    if (lib === 'forksafe' && (ctxName ?? 'forkserver') === 'forkserver') {
      const { forkserverPid } = require('../dist/index.js');
      const fpid = forkserverPid();
      if (fpid) extra.forkserver = { pid: fpid, rss: kbFields(`/proc/${fpid}/status`, ['VmRSS']).VmRSS };
    }
    await p.close();
    const per = workers.length ? mean(workers.map((w) => w.rss)) : (after - before) / WORKERS;
    const pss = workers.length && workers.every((w) => w.pss != null) ? mean(workers.map((w) => w.pss)) : null;
    out({ settle_ms: settle, rss_per_worker: Math.round(per), pss_per_worker: pss == null ? null : Math.round(pss),
      parent_rss_growth: after - before, parent_rss: after, measured: workers.length ? 'worker VmRSS' : 'parent RSS growth ÷ workers', worker_procs: workers, ...extra });
  },
};

const f = tests[test];
if (!f) {
  process.stderr.write('usage: node bench/pool-measure.mjs forksafe[:spawn]|piscina|workerpool latency|tput|bytes|startup|rss [args]\n');
  process.exit(2);
}
try {
  await f();
  process.exit(0);
} catch (e) {
  process.stderr.write(`${libArg} ${test}: ${e?.stack ?? e}\n`);
  process.exit(1);
}
