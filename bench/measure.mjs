// One forksafe measurement per process: `node bench/measure.mjs <mode> [args]`
// prints one JSON line. bench/run.mjs starts a fresh process for each mode so
// that one loop's JIT state, GC pressure or mappings cannot skew another.
import { createRequire } from 'node:module';
import { fork, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
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
    const { COUNTER, READY, GO, DONE, SHM_SIZE, TIMES_BYTE, MAX_WORKERS } = await import('./targets.mjs');
    const procsList = String(argv[0] ?? '2,4').split(',').map(Number).filter((x) => x > 0);
    const k = num(1, 500_000);
    const reps = num(2, 3);
    const warm = num(3, 20_000);
    const settleMs = num(4, 100);
    const result = {};
    let allOk = true;
    for (const procs of procsList) {
      if (procs > MAX_WORKERS) throw new RangeError(`contended: at most ${MAX_WORKERS} processes`);
      const walls = [];
      const overlaps = [];
      const wallsExit = [];
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
              target: { module: TARGETS, export: 'contendedWorker' },
              args: [lock, shm, k, warm],
              name: 'forksafe-bench-worker',
            }).start(),
          );
        }
        const waitCount = (idx, want, what) => {
          const deadline = Date.now() + 60_000;
          for (;;) {
            const v = Atomics.load(i32, idx);
            if (v >= want) return;
            if (Date.now() > deadline) throw new Error(`contended: ${what}: ${v}/${want} after 60 s`);
            shm.wait(idx, v, { timeout: 1000 });
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
      };
    }
    out({ k_per_proc: k, repeats: reps, procs: result, all_ok: allOk });
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
