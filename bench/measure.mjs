// One forksafe measurement per process: `node bench/measure.mjs <mode> [args]`
// prints one JSON line. bench/run.mjs starts a fresh process for each mode so
// that one loop's JIT state, GC pressure or mappings cannot skew another.
import { createRequire } from 'node:module';
import { fork, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { median, percentile, mean, timeLoop, round } from './util.mjs';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const TARGETS = path.join(here, 'targets.mjs');

const [mode, ...argv] = process.argv.slice(2);
const num = (i, d) => (argv[i] !== undefined && argv[i] !== '' ? Number(argv[i]) : d);

function out(obj) {
  process.stdout.write(`${JSON.stringify({ mode, ...obj })}\n`);
}

const modes = {
  // ---- 1. uncontended lock pair --------------------------------------------
  'lock-pair'() {
    const { Lock } = require('../dist/index.js');
    const lock = new Lock();
    const loop = (n) => {
      for (let i = 0; i < n; i++) {
        lock.acquire();
        lock.release();
      }
      return lock.locked() ? -1 : n;
    };
    out(timeLoop(loop, num(0, 2e6), num(1, 7), (n) => n));
    lock.close();
  },

  'lock-guard'() {
    const { Lock } = require('../dist/index.js');
    const lock = new Lock();
    // What `using g = lock.lock();` compiles to (no `using` syntax in Node 20).
    const loop = (n) => {
      for (let i = 0; i < n; i++) {
        const g = lock.lock();
        g[Symbol.dispose]();
      }
      return lock.locked() ? -1 : n;
    };
    out(timeLoop(loop, num(0, 2e6), num(1, 7), (n) => n));
    lock.close();
  },

  'rlock-pair'() {
    const { RLock } = require('../dist/index.js');
    const lock = new RLock();
    const loop = (n) => {
      for (let i = 0; i < n; i++) {
        lock.acquire();
        lock.release();
      }
      return lock.locked() ? -1 : n;
    };
    out(timeLoop(loop, num(0, 2e6), num(1, 7), (n) => n));
    lock.close();
  },

  // The floor for any JS lock on shared memory: one CAS in, one store out, on
  // an Int32Array over a forksafe SharedMemory mapping (the same kind of
  // external buffer the primitives use).
  'atomics-pair'() {
    const { SharedMemory } = require('../dist/index.js');
    const shm = new SharedMemory({ size: 64 });
    const i32 = new Int32Array(shm.buffer);
    const token = process.pid;
    const loop = (n) => {
      let got = 0;
      for (let i = 0; i < n; i++) {
        if (Atomics.compareExchange(i32, 0, 0, token) === 0) got++;
        Atomics.store(i32, 0, 0);
      }
      return got;
    };
    out(timeLoop(loop, num(0, 2e6), num(1, 7), (n) => n));
    shm.close();
  },

  // ---- 2. Event without waiters ---------------------------------------------
  'event-isset'() {
    const { Event } = require('../dist/index.js');
    const ev = new Event();
    ev.set();
    const loop = (n) => {
      let c = 0;
      for (let i = 0; i < n; i++) if (ev.isSet()) c++;
      return c;
    };
    out(timeLoop(loop, num(0, 2e6), num(1, 7), (n) => n));
    ev.close();
  },

  'event-set'() {
    const { Event } = require('../dist/index.js');
    const ev = new Event();
    const loop = (n) => {
      for (let i = 0; i < n; i++) ev.set();
      return ev.isSet() ? n : -1;
    };
    out(timeLoop(loop, num(0, 2e6), num(1, 7), (n) => n));
    ev.close();
  },

  'event-set-clear'() {
    const { Event } = require('../dist/index.js');
    const ev = new Event();
    const loop = (n) => {
      for (let i = 0; i < n; i++) {
        ev.set();
        ev.clear();
      }
      return ev.isSet() ? -1 : n;
    };
    out(timeLoop(loop, num(0, 2e6), num(1, 7), (n) => n));
    ev.close();
  },

  // ---- 1b. syscall check (run under strace by run.mjs) ------------------------
  // Same process shape for both: load forksafe, make a Lock, run n iterations.
  'strace-pairs'() {
    const { Lock } = require('../dist/index.js');
    const lock = new Lock();
    const n = num(0, 1e6);
    for (let i = 0; i < n; i++) {
      lock.acquire();
      lock.release();
    }
    out({ iters: n, locked: lock.locked() });
    lock.close();
  },

  'strace-empty'() {
    const { Lock } = require('../dist/index.js');
    const lock = new Lock();
    const n = num(0, 1e6);
    let x = 0;
    for (let i = 0; i < n; i++) x = (x + i) | 0;
    out({ iters: n, locked: lock.locked(), x });
    lock.close();
  },

  // ---- 3. round trips between two processes -----------------------------------
  // pin: 'none' (the scheduler decides), 'same' (both processes on CPU 0),
  // 'split' (parent on CPU 0, child on CPU 1); pinning uses taskset(1).
  async pingpong() {
    const { Event, Process } = require('../dist/index.js');
    const n = num(0, 10_000);
    const warm = num(1, Math.max(200, Math.floor(n / 10)));
    const pin = argv[2] ?? 'none';
    const taskset = (cpu, pid) => {
      const r = spawnSync('taskset', ['-a', '-pc', String(cpu), String(pid)], { encoding: 'utf8' });
      if (r.error || r.status !== 0) throw new Error(`taskset -a -pc ${cpu} ${pid} failed: ${r.error?.message ?? r.stderr}`);
    };
    if (pin !== 'none') taskset(0, process.pid); // the child inherits it
    const ping = new Event();
    const pong = new Event();
    const child = new Process({
      target: { module: TARGETS, export: 'pingpongChild' },
      args: [ping, pong, warm + n],
      name: 'forksafe-bench-pingpong',
    }).start();
    if (pin === 'split') taskset(1, child.pid);
    const LIMIT = { timeout: 10_000 };
    const rt = new Array(n);
    for (let i = 0; i < warm + n; i++) {
      const t0 = process.hrtime.bigint();
      ping.set();
      if (!pong.wait(LIMIT)) {
        child.kill('SIGKILL');
        throw new Error(`pingpong: no answer from the child within 10 s (round trip ${i})`);
      }
      pong.clear();
      if (i >= warm) rt[i - warm] = Number(process.hrtime.bigint() - t0);
    }
    if (!child.join({ timeout: 10_000 })) child.kill('SIGKILL');
    const { code } = await child.exited;
    ping.close();
    pong.close();
    if (code !== 0) throw new Error(`pingpong child exited with ${code}`);
    out({ ns: median(rt), p10: percentile(rt, 0.1), p90: percentile(rt, 0.9), mean: round(mean(rt)), round_trips: n, pin });
  },

  // ---- 5. async waits ------------------------------------------------------------
  // The Event ping-pong above with waitAsync on both sides: parent `ping.set();
  // await pong.waitAsync(); pong.clear()`, child `await ping.waitAsync();
  // ping.clear(); pong.set()`. Every wake-up goes through a native waiter
  // thread and the thread-safe function back to the JS thread.
  async 'async-pingpong'() {
    const { Event, Process } = require('../dist/index.js');
    const n = num(0, 5000);
    const warm = num(1, Math.max(200, Math.floor(n / 10)));
    const ping = new Event();
    const pong = new Event();
    const child = new Process({
      target: { module: TARGETS, export: 'asyncPingpongChild' },
      args: [ping, pong, warm + n],
      name: 'forksafe-bench-async-pingpong',
    }).start();
    const LIMIT = { timeout: 10_000 };
    const rt = new Array(n);
    try {
      for (let i = 0; i < warm + n; i++) {
        const t0 = process.hrtime.bigint();
        ping.set();
        if (!(await pong.waitAsync(LIMIT))) throw new Error(`async-pingpong: no answer from the child within 10 s (round trip ${i})`);
        pong.clear();
        if (i >= warm) rt[i - warm] = Number(process.hrtime.bigint() - t0);
      }
    } catch (e) {
      child.kill('SIGKILL');
      throw e;
    }
    const { code } = await child.exited;
    ping.close();
    pong.close();
    if (code !== 0) throw new Error(`async-pingpong child exited with ${code}`);
    out({ ns: median(rt), p10: percentile(rt, 0.1), p90: percentile(rt, 0.9), mean: round(mean(rt)), round_trips: n });
  },

  // Lock hand-off ping-pong between two processes with three Locks (see
  // lockPingpongChild in targets.mjs): one round trip = two hand-offs
  // (release → the other side's acquire returns). argv[2]: 'async' (both
  // sides acquireAsync) or 'sync' (both sides acquire()).
  async 'lock-pingpong'() {
    const { Lock, Event, Process } = require('../dist/index.js');
    const n = num(0, 5000);
    const warm = num(1, Math.max(200, Math.floor(n / 10)));
    const isAsync = (argv[2] ?? 'async') === 'async';
    const LIMIT = { timeout: 10_000 };
    const L = [new Lock(), new Lock(), new Lock()];
    const ready = new Event();
    L[0].acquire();
    L[1].acquire();
    const child = new Process({
      target: { module: TARGETS, export: 'lockPingpongChild' },
      args: [L, ready, warm + n, isAsync],
      name: 'forksafe-bench-lock-pingpong',
    }).start();
    const rt = new Array(n);
    try {
      if (!(await ready.waitAsync(LIMIT))) throw new Error('lock-pingpong: the child did not start within 10 s');
      for (let k = 0; k < warm + n; k++) {
        const t0 = process.hrtime.bigint();
        L[k % 3].release();
        const ok = isAsync ? await L[(k + 2) % 3].acquireAsync(LIMIT) : L[(k + 2) % 3].acquire(LIMIT);
        if (!ok) throw new Error(`lock-pingpong: no hand-off from the child within 10 s (round trip ${k})`);
        if (k >= warm) rt[k - warm] = Number(process.hrtime.bigint() - t0);
      }
    } catch (e) {
      child.kill('SIGKILL');
      throw e;
    }
    for (const l of L) if (l.isOwned()) l.release();
    const { code } = await child.exited;
    for (const l of L) l.close();
    ready.close();
    if (code !== 0) throw new Error(`lock-pingpong child exited with ${code}`);
    out({ ns: median(rt), p10: percentile(rt, 0.1), p90: percentile(rt, 0.9), mean: round(mean(rt)), round_trips: n, path: isAsync ? 'async' : 'sync' });
  },

  // Uncontended `await lock.acquireAsync(); lock.release()` in one process:
  // the fast path (one CAS, an already resolved promise) plus what `await`
  // costs. Same method as timeLoop: the loop is the timed function.
  async 'lock-pair-async'() {
    const { Lock } = require('../dist/index.js');
    const lock = new Lock();
    const n = num(0, 500_000);
    const reps = num(1, 5);
    const loop = async (k) => {
      for (let i = 0; i < k; i++) {
        await lock.acquireAsync();
        lock.release();
      }
      return lock.locked() ? -1 : k;
    };
    const warm = Math.max(1000, Math.floor(n / 10));
    await loop(warm);
    await loop(warm);
    const samples = [];
    for (let r = 0; r < reps; r++) {
      const t0 = process.hrtime.bigint();
      const got = await loop(n);
      const dt = Number(process.hrtime.bigint() - t0);
      if (got !== n) throw new Error(`lock-pair-async: loop returned ${got}`);
      samples.push(dt / n);
    }
    out({ ns: round(median(samples), 2), samples: samples.map((x) => round(x, 2)), iters: n, repeats: reps });
    lock.close();
  },

  // The in-process floor: the same set/wait/clear ping-pong between the main
  // thread and a worker_thread on two Int32 flags (64 bytes apart) of a
  // SharedArrayBuffer, both sides with Atomics.waitAsync (argv[2] 'async') or
  // Atomics.wait (argv[2] 'sync'; Node allows it on the main thread).
  async 'atomics-pingpong'() {
    const { Worker } = await import('node:worker_threads');
    const n = num(0, 5000);
    const warm = num(1, Math.max(200, Math.floor(n / 10)));
    const isAsync = (argv[2] ?? 'async') === 'async';
    const PING = 0;
    const PONG = 16;
    const i32 = new Int32Array(new SharedArrayBuffer(128));
    // Waits until i32[idx] != 0 (10 s bound), without or with blocking.
    const waitAsync = async (idx) => {
      while (Atomics.load(i32, idx) === 0) {
        const r = Atomics.waitAsync(i32, idx, 0, 10_000);
        if ((r.async ? await r.value : r.value) === 'timed-out') return false;
      }
      return true;
    };
    const waitSync = (idx) => {
      while (Atomics.load(i32, idx) === 0) if (Atomics.wait(i32, idx, 0, 10_000) === 'timed-out') return false;
      return true;
    };
    const workerSrc = `
      const { workerData } = require('node:worker_threads');
      const { i32, total, isAsync, PING, PONG } = workerData;
      ${waitAsync.toString().replace(/^async/, 'const waitAsync = async')};
      const waitSync = ${waitSync.toString()};
      // A pending Atomics.waitAsync does not keep a Node thread alive: a timer does.
      const keep = setInterval(() => {}, 1 << 30);
      (async () => {
        for (let i = 0; i < total; i++) {
          if (!(isAsync ? await waitAsync(PING) : waitSync(PING))) throw new Error('atomics-pingpong worker: no ping within 10 s');
          Atomics.store(i32, PING, 0);
          Atomics.store(i32, PONG, 1);
          Atomics.notify(i32, PONG);
        }
        clearInterval(keep);
      })();`;
    const worker = new Worker(workerSrc, { eval: true, workerData: { i32, total: warm + n, isAsync, PING, PONG } });
    let failure = null;
    worker.on('error', (e) => (failure = e));
    const exited = new Promise((resolve) => worker.on('exit', resolve));
    const keep = setInterval(() => {}, 1 << 30); // as in the worker
    const rt = new Array(n);
    for (let i = 0; i < warm + n; i++) {
      const t0 = process.hrtime.bigint();
      Atomics.store(i32, PING, 1);
      Atomics.notify(i32, PING);
      const ok = isAsync ? await waitAsync(PONG) : waitSync(PONG);
      if (!ok) {
        await worker.terminate();
        throw new Error(`atomics-pingpong: no answer from the worker within 10 s (round trip ${i})${failure ? `: ${failure.stack}` : ''}`);
      }
      Atomics.store(i32, PONG, 0);
      if (i >= warm) rt[i - warm] = Number(process.hrtime.bigint() - t0);
    }
    const code = await exited;
    clearInterval(keep);
    if (code !== 0) throw new Error(`atomics-pingpong worker exited with ${code}`);
    out({ ns: median(rt), p10: percentile(rt, 0.1), p90: percentile(rt, 0.9), mean: round(mean(rt)), round_trips: n, path: isAsync ? 'async' : 'sync' });
  },

  // Event-loop health with many pending waits: ticks of a 1 ms setInterval
  // over `windowMs` with nothing pending, then with `count` waits pending on
  // one word; then the time from the one call that wakes them all to the last
  // resolution. argv[2]: 'forksafe' (Event.waitAsync, Event.set) or
  // 'atomics' (Atomics.waitAsync on a SharedArrayBuffer, store + notify: the
  // in-process reference). CPU time is the whole process's (every thread).
  async 'async-pending'() {
    const count = num(0, 10_000);
    const windowMs = num(1, 1000);
    const kind = argv[2] ?? 'forksafe';
    const ms = (a, b) => round(Number(b - a) / 1e6, 3);
    const sleep = (t) => new Promise((r) => setTimeout(r, t));
    const ticks = (len) =>
      new Promise((resolve) => {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        let last = t0;
        let n = 0;
        let gap = 0;
        const iv = setInterval(() => {
          const now = performance.now();
          gap = Math.max(gap, now - last);
          last = now;
          n++;
          if (now - t0 >= len) {
            clearInterval(iv);
            const c = process.cpuUsage(c0);
            resolve({ ticks: n, window_ms: round(now - t0, 1), max_gap_ms: round(gap, 3), cpu_ms: round((c.user + c.system) / 1000, 1) });
          }
        }, 1);
      });
    let submit;
    let fire;
    let close;
    let stats = () => null;
    if (kind === 'atomics') {
      const i32 = new Int32Array(new SharedArrayBuffer(64));
      const keep = setInterval(() => {}, 1 << 30); // a pending Atomics.waitAsync does not keep Node alive
      submit = () => {
        const r = Atomics.waitAsync(i32, 0, 0, 60_000);
        return r.async ? r.value : Promise.resolve(r.value);
      };
      fire = () => {
        Atomics.store(i32, 0, 1);
        Atomics.notify(i32, 0);
      };
      close = () => clearInterval(keep);
    } else {
      const { Event } = require('../dist/index.js');
      stats = require('../dist/core/async.js').stats;
      const ev = new Event();
      submit = () => ev.waitAsync({ timeout: 60_000 });
      fire = () => ev.set();
      close = () => ev.close();
    }
    await ticks(200); // warm-up: timers, JIT
    const idle = await ticks(windowMs);
    let resolved = 0;
    let wrong = 0;
    let tFirst = 0n;
    let tLast = 0n;
    let allDone;
    const done = new Promise((r) => (allDone = r));
    const onResolve = (v) => {
      const t = process.hrtime.bigint();
      if (v !== true && v !== 'ok') wrong++;
      if (resolved++ === 0) tFirst = t;
      if (resolved === count) {
        tLast = t;
        allDone();
      }
    };
    const tSub0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) submit().then(onResolve, onResolve);
    const tSub1 = process.hrtime.bigint();
    const st = stats();
    await sleep(200); // let the submissions settle (waiter thread, GC) before the window
    const pending = await ticks(windowMs);
    if (resolved !== 0) throw new Error(`async-pending: ${resolved} waits resolved before the wake-up`);
    const t0 = process.hrtime.bigint();
    fire();
    const t1 = process.hrtime.bigint();
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`async-pending: ${resolved}/${count} resolved 20 s after the wake-up`)), 20_000);
    });
    try {
      await Promise.race([done, late]);
    } finally {
      clearTimeout(timer);
    }
    if (wrong) throw new Error(`async-pending: ${wrong} waits did not resolve true/'ok'`);
    const after = stats();
    close();
    out({
      kind,
      count,
      idle,
      pending,
      submit_ms: ms(tSub0, tSub1),
      wake_call_ms: ms(t0, t1),
      first_ms: ms(t0, tFirst),
      last_ms: ms(t0, tLast),
      ...(st ? { waiter_threads: st.threads, pending_native: st.pending, pending_after: after.pending } : {}),
    });
  },

  // Node's own IPC: child_process.fork() + process.send() echo.
  async ipc() {
    const n = num(0, 2000);
    const warm = num(1, Math.max(100, Math.floor(n / 10)));
    const child = fork(fileURLToPath(import.meta.url), ['ipc-echo'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const rt = [];
    let pending = null;
    child.on('message', (m) => pending?.(m));
    const once = (i) =>
      new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`ipc: no echo within 10 s (round trip ${i})`)), 10_000);
        pending = (m) => {
          clearTimeout(t);
          resolve(m);
        };
        child.send(i);
      });
    try {
      for (let i = 0; i < warm + n; i++) {
        const t0 = process.hrtime.bigint();
        const m = await once(i);
        const dt = Number(process.hrtime.bigint() - t0);
        if (m !== i) throw new Error(`ipc: echo ${m} for ${i}`);
        if (i >= warm) rt.push(dt);
      }
    } finally {
      child.kill('SIGKILL');
    }
    out({ ns: median(rt), p10: percentile(rt, 0.1), p90: percentile(rt, 0.9), mean: round(mean(rt)), round_trips: n });
  },

  'ipc-echo'() {
    process.on('message', (m) => process.send(m));
    process.on('disconnect', () => process.exit(0));
  },

  // ---- 4. contended throughput --------------------------------------------------
  // procs (comma list) × K locked increments of one SharedMemory counter under
  // one Lock. Wall time runs from the start signal until the last worker has
  // reported done through shared memory (a Node process takes milliseconds to
  // exit, which is not lock throughput); wall_exit_ms adds waiting for every
  // worker process to have exited, as Python's join() does. overlap = sum of
  // the workers' loop times / wall: how many were inside their loop on
  // average (1 = they ran one after another), as in bench/baselines/contended.c.
  async contended() {
    const { Lock, SharedMemory, Process } = require('../dist/index.js');
    const { COUNTER, READY, GO, DONE, SWITCHES, SHM_SIZE, TIMES_BYTE, MAX_WORKERS } = await import('./targets.mjs');
    const procsList = String(argv[0] ?? '2,4').split(',').map(Number).filter((x) => x > 0);
    const k = num(1, 500_000);
    const reps = num(2, 3);
    const warm = num(3, 20_000);
    const settleMs = num(4, 100);
    // argv[5] 'sync' | 'async': section 5b's handoffWorker (acquire() or
    // `await acquireAsync()`, counting hand-offs); absent: contendedWorker.
    const how = argv[5] === 'async' || argv[5] === 'sync' ? argv[5] : null;
    const result = {};
    let allOk = true;
    for (const procs of procsList) {
      if (procs > MAX_WORKERS) throw new RangeError(`contended: at most ${MAX_WORKERS} processes`);
      const walls = [];
      const overlaps = [];
      const wallsExit = [];
      const switches = [];
      let ok = true;
      let total = 0;
      for (let r = 0; r < reps; r++) {
        const lock = new Lock();
        const shm = new SharedMemory({ size: SHM_SIZE });
        const i32 = new Int32Array(shm.buffer);
        const kids = [];
        for (let p = 0; p < procs; p++) {
          kids.push(
            new Process({
              target: { module: TARGETS, export: how ? 'handoffWorker' : 'contendedWorker' },
              args: how ? [lock, shm, k, warm, how === 'async'] : [lock, shm, k, warm],
              name: 'forksafe-bench-worker',
            }).start(),
          );
        }
        // A worker that died (a zombie, or gone) will never count: fail now
        // rather than after 60 s. The event loop does not run while we block
        // here, so Process.exitCode cannot tell; /proc can.
        const deadWorker = () =>
          kids.find((c) => {
            try {
              return fs.readFileSync(`/proc/${c.pid}/stat`, 'utf8').split(') ').pop()[0] === 'Z';
            } catch {
              return true;
            }
          });
        const waitCount = (idx, want, what) => {
          const deadline = Date.now() + 60_000;
          for (;;) {
            const v = Atomics.load(i32, idx);
            if (v >= want) return;
            if (Date.now() > deadline) throw new Error(`contended: ${what}: ${v}/${want} after 60 s`);
            if (shm.wait(idx, v, { timeout: 1000 }) === 'timed-out') {
              const d = deadWorker();
              if (d) throw new Error(`contended: ${what}: ${v}/${want}; worker ${d.pid} died (its stderr is above)`);
            }
          }
        };
        try {
          waitCount(READY, procs, 'workers ready');
          // Let the fresh processes' background threads (V8 compiler, GC)
          // settle so that they do not compete with the measured loops.
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, settleMs);
          const t0 = process.hrtime.bigint();
          Atomics.store(i32, GO, 1);
          shm.notify(GO);
          waitCount(DONE, procs, 'workers done');
          const t1 = process.hrtime.bigint();
          const exits = await Promise.all(kids.map((c) => c.exited));
          const t2 = process.hrtime.bigint();
          total = Atomics.load(i32, COUNTER);
          if (total !== procs * k || exits.some((e) => e.code !== 0)) {
            ok = false;
            process.stderr.write(`contended: total ${total}, expected ${procs * k}; exits ${JSON.stringify(exits)}\n`);
          }
          walls.push(Number(t1 - t0));
          const times = new Float64Array(shm.buffer, TIMES_BYTE, MAX_WORKERS * 2);
          let busy = 0;
          for (let p = 0; p < procs; p++) busy += times[2 * p + 1] - times[2 * p];
          overlaps.push(busy / Number(t1 - t0));
          wallsExit.push(Number(t2 - t0));
          if (how) switches.push(Atomics.load(i32, SWITCHES));
        } finally {
          for (const c of kids) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
          await Promise.all(kids.map((c) => c.exited));
          lock.close();
          shm.close();
        }
      }
      const wall = median(walls);
      allOk &&= ok;
      result[procs] = {
        wall_ms: round(wall / 1e6, 2),
        wall_exit_ms: round(median(wallsExit) / 1e6, 2),
        ops_per_s: Math.round((procs * k) / (wall / 1e9)),
        ns_per_op: round(wall / (procs * k), 1),
        total,
        expected: procs * k,
        ok,
        overlap: round(median(overlaps), 2),
        samples_ms: walls.map((w) => round(w / 1e6, 2)),
        ...(how ? { handoffs: median(switches), handoffs_runs: switches } : {}),
      };
    }
    out({ k_per_proc: k, repeats: reps, worker: how ?? 'contendedWorker', procs: result, all_ok: allOk });
  },
};

const fn = modes[mode];
if (!fn) {
  process.stderr.write(`usage: node bench/measure.mjs <${Object.keys(modes).join('|')}> [args]\n`);
  process.exit(2);
}
try {
  await fn();
} catch (e) {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
}
