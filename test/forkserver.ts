// The 'forkserver' context (the default on Linux): workers forked from a
// pre-warmed zygote. Exit codes and signals, args and primitives, preload run
// once, context rules, the forkserver killed (recovery), the parent SIGKILLed
// (no orphan), 500 starts without leaks, and who may ask it to fork.
import t from 'tap';
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  ContextError, Event, ForksafeError, Lock, Process, SharedMemory, forkserverPid, getContext, setForkserverPreload,
  startForkserver, stopForkserver,
} from '../dist/index.js';
import type { ExitInfo } from '../dist/index.js';
import { procState, settled, sleep, until, within } from './lib/children';

const ROOT = path.join(__dirname, '..');
const FIX = path.join(ROOT, 'build', 'fixtures');
const TARGETS = path.join(FIX, 'forkserver-targets.js');
const PRELOAD = path.join(FIX, 'forkserver-preload.js');
const PARENT = path.join(FIX, 'forkserver-parent.js');
const HOOKS_PRELOAD = path.join(FIX, 'forkserver-hooks-preload.js');
const WORKER_PRELOAD = path.join(FIX, 'forkserver-worker-preload.js');
const SLOW_PRELOAD = path.join(FIX, 'forkserver-slow-preload.js');
const BUSY_PRELOAD = path.join(FIX, 'forkserver-busy-preload.js');


function get(shm: SharedMemory, at = 0): Record<string, unknown> {
  const n = new DataView(shm.buffer).getUint32(at, true);
  return JSON.parse(Buffer.from(new Uint8Array(shm.buffer, at + 4, n)).toString('utf8')) as Record<string, unknown>;
}


const gone = (pid: number): boolean => {
  const s = procState(pid);
  return s === null || s === 'Z' || s === 'X';
};


function start(t: tap.Test, exp: string, args: unknown[] = [], extra: Record<string, unknown> = {}): Process {
  const p = new Process({ target: { module: TARGETS, export: exp }, args, ...extra }).start();
  t.teardown(async () => {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await settled(p.exited, 5000);
  });
  return p;
}

const fdCount = (pid: number | 'self'): number => fs.readdirSync(`/proc/${pid}/fd`).length;
const mapCount = (pid: number | 'self'): number => fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').length;
const childrenOf = (pid: number): number[] => {
  const out: number[] = [];
  for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
    const c = fs.readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
    if (c) out.push(...c.split(/\s+/).map(Number));
  }
  return out;
};

t.test('the default context is forkserver; its Process refuses what it cannot do', async (t) => {
  t.equal(getContext().method, 'forkserver');
  t.equal(Process, getContext('forkserver').Process, 'the top-level Process is the forkserver context\'s');
  t.throws(() => new Process({ target: (() => 0) as never }), { code: 'ERR_INVALID_ARG_TYPE', message: /function cannot cross/ },
    'a function target: a clear TypeError');
  t.throws(() => new Process({ target: { module: TARGETS }, stdio: 'pipe' }), { code: 'ERR_INVALID_ARG_TYPE', message: /docs\/forkserver\.md/ },
    "stdio: 'pipe': refused, pointing at the docs");
  t.throws(() => new Process({ target: { module: TARGETS }, execArgv: [] }), { code: 'ERR_INVALID_ARG_TYPE', message: /setForkserverPreload/ },
    'execArgv: refused (workers run the forkserver\'s flags)');
  t.throws(() => setForkserverPreload('x' as never), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => setForkserverPreload([1] as never), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => setForkserverPreload([], { execArgv: [1] } as never), { code: 'ERR_INVALID_ARG_TYPE' });
});

t.test('preload: a module\'s top level runs once, in the forkserver, never in a worker', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forksafe-fs-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const marker = path.join(dir, 'marker');
  fs.writeFileSync(marker, '');
  process.env.FORKSAFE_MARKER = marker; // the forkserver inherits the environment at its start
  t.teardown(() => delete process.env.FORKSAFE_MARKER);
  setForkserverPreload([PRELOAD], { execArgv: [] });
  t.equal(forkserverPid(), null, 'no forkserver before the first use');
  const { pid: server } = await startForkserver();
  t.equal(forkserverPid(), server, 'startForkserver() started it');
  const shms = [0, 1, 2].map(() => new SharedMemory({ size: 65536 }));
  const evs = [0, 1, 2].map(() => new Event());
  const ps = shms.map((s, i) => start(t, 'info', [s, i, evs[i]]));
  for (const p of ps) t.same(await settled(p.exited, 10_000), { code: 0, signal: null }, `worker ${p.pid} exited 0`);
  const seen = shms.map((s) => get(s));
  for (const s of seen) t.equal(s.preloadRuns, 1, 'the worker inherited the preload\'s state: its top level ran once');
  const lines = fs.readFileSync(marker, 'utf8').trim().split('\n');
  t.same(lines, [`preload ${server}`], 'the marker has one line, written by the forkserver', { lines });
  t.same(seen.map((s) => s.ppid), [server, server, server], 'every worker is a child of the forkserver');
  t.equal(new Set(seen.map((s) => s.pid)).size, 3, 'three distinct workers');
  t.same(ps.map((p) => p.pid), seen.map((s) => s.pid), 'Process.pid is the worker\'s own process.pid');
  // The fork fixes hold in workers: ids and Math.random are their own.
  const uu = seen.flatMap((s) => s.uuids as string[]);
  t.equal(new Set(uu).size, uu.length, `${uu.length} randomUUID()s from 3 workers: no repeats`);
  const rr = seen.flatMap((s) => s.randoms as number[]);
  t.equal(new Set(rr).size, rr.length, `${rr.length} Math.random()s from 3 workers: no repeats`);
  for (const s of shms) s.close();
});

t.test('exit codes, signals, join() and kill()', async (t) => {
  const cases: Array<[string, unknown[], ExitInfo]> = [
    ['ret', [7], { code: 7, signal: null }],
    ['retAsync', [9], { code: 9, signal: null }],
    ['throwIt', [], { code: 1, signal: null }],
    ['exitWith', [3], { code: 3, signal: null }],
    ['killSelf', ['SIGKILL'], { code: null, signal: 'SIGKILL' }],
    // SIGTERM: under tap, whose --import would install signal-exit's handler in a
    // forkserver that kept it (workers inherit handlers, as with any fork); the
    // forkserver restarts itself without module hooks, so none is there.
    ['killSelf', ['SIGTERM'], { code: null, signal: 'SIGTERM' }],
    ['killSelf', ['SIGPROF'], { code: null, signal: 'SIGPROF' }],
  ];
  for (const [exp, args, want] of cases) {
    const p = start(t, exp, args);
    t.ok(Number.isInteger(p.pid) && (p.pid as number) > 0, `${exp}: pid known when start() returns`);
    t.same(await settled(p.exited, 10_000), want, `${exp}(${args.join(', ')}) → ${JSON.stringify(want)}`);
    t.equal(p.exitCode, want.code, `${exp}: exitCode`);
    t.equal(p.signalCode, want.signal, `${exp}: signalCode`);
    t.ok(await until(() => gone(p.pid as number) && procState(p.pid as number) === null, 2000), `${exp}: reaped, no zombie`);
  }
  // A waiting worker: join() times out, kill() ends it, join() sees it.
  const ready = new Event();
  const go = new Event();
  const p = start(t, 'waitFor', [ready, go]);
  t.ok(ready.wait({ timeout: 10_000 }), 'the worker is running');
  t.equal(p.join({ timeout: 50 }), false, 'join({timeout: 50}) on a running worker: false');
  const t0 = Date.now();
  p.kill('SIGKILL');
  t.equal(p.join({ timeout: 5000 }), true, 'join() after kill(): true');
  t.equal(p.signalCode, 'SIGKILL', 'signalCode known right after join()');
  const e = await settled(p.exited, 2000);
  t.same(e, { code: null, signal: 'SIGKILL' }, 'exited: SIGKILL');
  t.ok(Date.now() - t0 < 2000, 'exited within 2 s of the kill (generous bound)');
  // A worker that exits normally: join() without timeout.
  const go2 = new Event();
  go2.set();
  const q = start(t, 'waitFor', [new Event(), go2]);
  t.equal(q.join(), true, 'join() with no timeout');
  t.equal(q.exitCode, 0);
  t.throws(() => q.start(), { code: 'ERR_FORKSAFE_STARTED' }, 'start() twice: ERR_FORKSAFE_STARTED');
  t.throws(() => p.kill('SIGBOGUS' as never), { code: 'ERR_UNKNOWN_SIGNAL' }, 'a bad signal name: ERR_UNKNOWN_SIGNAL (as child_process)');
});

t.test('workers that collect garbage a lot all finish (Node 26: V8 posts GC work to a pool a worker lacks)', async (t) => {
  // Before the forkserver ran with forkFlags() (--minor-ms on Node 26), every one
  // of 20 such workers hung on Node 26 (pthread_cond_signal on the vanished V8
  // pool's condvar).
  const ps = Array.from({ length: 12 }, () => start(t, 'churn', [2_000_000]));
  const exits = await Promise.all(ps.map((p) => within(p.exited, 60_000, 'TIMEOUT')));
  t.same(exits, Array(12).fill({ code: 0, signal: null }), '12 workers, 2 million allocations each: all exit 0');
});

t.test('args: structured-clone data and forkserver primitives, attached in the worker', async (t) => {
  const shm = new SharedMemory({ size: 65536 });
  const ev = new Event();
  const data = new Map<string, unknown>([['a', [1, 2, { b: 'c' }]], ['big', 'x'.repeat(100_000).length]]);
  const p = start(t, 'info', [shm, data, ev], {
    name: 'fs-worker', env: { FORKSAFE_TEST_ENV: 'yes', FORKSAFE_TEST_NUM: 3000 as unknown as string, TZ: 'Asia/Tokyo' },
  });
  t.ok(ev.wait({ timeout: 10_000 }), 'the worker set the Event it was given');
  await settled(p.exited, 10_000);
  const s = get(shm);
  t.same(s.data, { map: [['a', [1, 2, { b: 'c' }]], ['big', 100_000]] }, 'a Map with nested data arrived');
  t.equal(s.evContext, 'forkserver', 'the Event is the forkserver context\'s in the worker');
  t.equal(s.env, 'yes', 'env: the worker sees the given environment');
  t.equal(s.envNumType, 'string', 'env values become strings, as with child_process');
  t.equal(s.envKeys, 3, 'env replaces the whole environment');
  t.equal(s.tzOffset, -540, 'env reaches the real environment (TZ=Asia/Tokyo is applied)');
  t.equal(s.title, 'fs-worker', 'name sets process.title');
  // 4 workers x 20,000 locked increments: exact.
  const lock = new Lock();
  const counter = new SharedMemory({ size: 64 });
  const ws = [0, 1, 2, 3].map(() => start(t, 'incr', [lock, counter, 20_000]));
  for (const w of ws) t.same(await settled(w.exited, 30_000), { code: 0, signal: null });
  t.equal(new Int32Array(counter.buffer)[0], 80_000, '4 workers x 20,000 locked increments = 80,000');
  for (const x of [shm, ev, lock, counter]) x.close();
});

t.test('a parent that starts 600 workers without yielding (their exit frames unread) never deadlocks', async (t) => {
  // The forkserver never blocks writing to a parent that is not reading: the
  // parent, blocked in each start(), reads nothing until the loop ends.
  const ps: Process[] = [];
  for (let i = 0; i < 600; i++) ps.push(new Process({ target: { module: TARGETS, export: 'ret' }, args: [i % 200] }).start());
  t.equal(ps.filter((p) => (p.pid ?? 0) > 0).length, 600, '600 starts returned with a pid');
  const exits = await Promise.all(ps.map((p) => settled(p.exited, 20_000)));
  t.equal(exits.filter((e, i) => e?.code === i % 200).length, 600, 'and all 600 exited with their own code');
  // join() without a timeout while many others exit unread: same.
  const ready = new Event();
  const go = new Event();
  const w = start(t, 'waitFor', [ready, go]);
  t.ok(ready.wait({ timeout: 10_000 }));
  const more: Process[] = [];
  for (let i = 0; i < 300; i++) more.push(new Process({ target: { module: TARGETS, export: 'ret' }, args: [1] }).start());
  go.set();
  t.equal(w.join({ timeout: 20_000 }), true, 'join() returns while 300 exit frames wait unread');
  await Promise.all(more.map((p) => settled(p.exited, 20_000)));
});

t.test('kill() with an unknown signal throws and harms nothing; env values that are not strings', async (t) => {
  const ready = new Event();
  const go = new Event();
  const p = start(t, 'waitFor', [ready, go]);
  t.ok(ready.wait({ timeout: 10_000 }));
  const server = forkserverPid();
  for (const bad of [999, -1, 1.5, 'SIGNOPE']) {
    t.throws(() => p.kill(bad as never), { code: 'ERR_UNKNOWN_SIGNAL' }, `kill(${JSON.stringify(bad)}): ERR_UNKNOWN_SIGNAL`);
  }
  t.equal(p.join({ timeout: 100 }), false, 'the worker still runs');
  t.equal(forkserverPid(), server, 'the forkserver still runs');
  const q = start(t, 'ret', [4], { env: { F: (() => 1) as unknown as string, N: null as unknown as string } });
  t.same(await settled(q.exited, 10_000), { code: 4, signal: null }, 'env with a function and null: stringified, the worker runs');
  t.equal(forkserverPid(), server, 'the same forkserver');
  go.set();
  t.same(await settled(p.exited, 10_000), { code: 0, signal: null });
});

t.test("context rules: 'fork' and 'spawn' primitives are refused before anything starts", async (t) => {
  for (const m of ['fork', 'spawn'] as const) {
    const ctx = getContext(m);
    for (const prim of [new ctx.Lock(), new ctx.Event(), new ctx.SharedMemory({ size: 64 })]) {
      const p = new Process({ target: { module: TARGETS, export: 'ret' }, args: [{ deep: [prim] }] });
      let err: unknown = null;
      try {
        p.start();
      } catch (e) {
        err = e;
      }
      t.ok(err instanceof ContextError, `a '${m}' ${prim.constructor.name}: ContextError`, { err: String(err) });
      t.equal(p.pid, null, 'nothing started');
      prim.close();
    }
  }
  const fsLock = new Lock();
  const SP = getContext('spawn').Process;
  t.throws(() => new SP({ target: { module: TARGETS, export: 'ret' }, args: [fsLock], execArgv: [] }).start(),
    ContextError, "a forkserver Lock handed to a 'spawn' Process: ContextError");
  fsLock.close();
  t.throws(() => start(t, 'ret', [() => 1]), /could not be cloned/, 'a function in args: DataCloneError before anything starts');
});

t.test('the forkserver killed: running workers end with it, the next start brings up a new one', async (t) => {
  const ready = new Event();
  const p = start(t, 'waitFor', [ready, new Event()]);
  t.ok(ready.wait({ timeout: 10_000 }), 'a worker is running');
  const old = forkserverPid() as number;
  t.ok(old > 0, 'a forkserver is running');
  process.kill(old, 'SIGKILL');
  const e = await settled(p.exited, 2000);
  t.same(e, { code: null, signal: 'SIGKILL' }, "the worker's exited resolves (SIGKILL) within 2 s");
  t.ok(await until(() => gone(p.pid as number), 2000), 'the worker is gone (PR_SET_PDEATHSIG)');
  t.ok(await until(() => forkserverPid() === null, 2000), 'forkserverPid() is null once it is gone');
  const q = start(t, 'ret', [5]);
  t.same(await settled(q.exited, 10_000), { code: 5, signal: null }, 'the next start works');
  const now = forkserverPid();
  t.ok(now !== null && now !== old, `a new forkserver (${old} → ${now})`);
  // Killed right before a start (no tick in between): the start goes to a new one.
  for (let i = 0; i < 3; i++) {
    const before = forkserverPid() as number;
    process.kill(before, 'SIGKILL');
    const r = start(t, 'ret', [i + 1]);
    t.same(await settled(r.exited, 10_000), { code: i + 1, signal: null }, `start() right after the SIGKILL works (${i + 1})`);
    t.not(forkserverPid(), before, 'on a new forkserver');
  }
});

t.test('module hooks: none in the forkserver (import() works in workers); hooks registered by a preload refuse forks', async (t) => {
  // This test process runs under tap, which puts its --import hooks into every
  // spawned process's NODE_OPTIONS: the forkserver restarts itself without them.
  t.match(process.env.NODE_OPTIONS ?? '', /--import/, 'this test runs with --import in NODE_OPTIONS (tap)');
  const p = start(t, 'importInWorker');
  t.same(await settled(p.exited, 10_000), { code: 21, signal: null }, 'a worker\'s own import() finishes');
  const server = forkserverPid() as number;
  const env = fs.readFileSync(`/proc/${server}/environ`, 'utf8').split('\0');
  t.notOk(env.some((kv) => kv.startsWith('NODE_OPTIONS=') && kv.includes('--import')), 'the forkserver runs without --import');
  // A preload that calls module.register(): every start is refused, with the reason.
  await stopForkserver(); // its preload cannot change while it runs
  t.ok(gone(server), 'old forkserver gone');
  setForkserverPreload([HOOKS_PRELOAD], { execArgv: [] });
  t.teardown(async () => {
    await stopForkserver();
    setForkserverPreload([], { execArgv: [] });
  });
  t.throws(() => new Process({ target: { module: TARGETS, export: 'ret' }, args: [1] }).start(),
    { code: 'ERR_FORKSAFE_FORKSERVER', message: /module customization hooks were registered/ },
    'start(): ERR_FORKSAFE_FORKSERVER naming the registered hooks');
});

t.test('a preload that leaves a worker_thread running: the forkserver refuses to fork, saying why', async (t) => {
  await stopForkserver(); // its preload cannot change while it runs
  setForkserverPreload([WORKER_PRELOAD], { execArgv: [] });
  t.teardown(async () => {
    await stopForkserver();
    setForkserverPreload([], { execArgv: [] });
  });
  await startForkserver();
  t.throws(() => new Process({ target: { module: TARGETS, export: 'ret' }, args: [1] }).start(),
    { code: 'ERR_FORKSAFE_FORKSERVER', message: /thread\(s\) running besides this one \(worker_threads/ },
    'start(): ERR_FORKSAFE_FORKSERVER with the reason');
  t.ok(forkserverPid() !== null, 'the forkserver is still up (it refused, it did not die)');
});

t.test('a preload that never finishes: start() fails after startTimeout, the forkserver is killed', async (t) => {
  await stopForkserver(); // its preload cannot change while it runs
  setForkserverPreload([SLOW_PRELOAD], { execArgv: [], startTimeout: 1000 });
  t.teardown(async () => {
    await stopForkserver();
    setForkserverPreload([], { execArgv: [], startTimeout: 60_000 });
  });
  const t0 = Date.now();
  let err: unknown = null;
  try {
    new Process({ target: { module: TARGETS, export: 'ret' }, args: [1] }).start();
  } catch (e) {
    err = e;
  }
  t.match(err, { code: 'ERR_FORKSAFE_FORKSERVER', message: /did not finish starting.*within 1000 ms/ }, 'ERR_FORKSAFE_FORKSERVER naming the timeout');
  t.ok(Date.now() - t0 < 10_000, 'within a generous bound of the 1 s timeout');
  t.equal(forkserverPid(), null, 'no forkserver is kept');
  t.throws(() => setForkserverPreload([], { startTimeout: 0 }), { code: 'ERR_INVALID_ARG_TYPE' });
});

t.test('a worker_thread has its own forkserver; when the thread ends, that forkserver is gone (no zombie)', async (t) => {
  const { Worker } = await import('node:worker_threads');
  const w = new Worker(`
    const { Process, forkserverPid } = require(${JSON.stringify(path.join(ROOT, 'dist', 'index.js'))});
    const { parentPort } = require('node:worker_threads');
    const p = new Process({ target: { module: ${JSON.stringify(TARGETS)}, export: 'ret' }, args: [7] }).start();
    p.exited.then((e) => parentPort.postMessage({ e, fs: forkserverPid() }));
  `, { eval: true });
  const m = await new Promise<{ e: ExitInfo; fs: number }>((res) => w.once('message', res));
  t.same(m.e, { code: 7, signal: null }, 'a Process started from a worker_thread ran');
  t.ok(m.fs > 0 && m.fs !== forkserverPid(), 'with a forkserver of its own');
  await w.terminate();
  t.ok(await until(() => procState(m.fs) === null, 2000), 'once the thread ended, its forkserver was killed and reaped (not a zombie)',
    { state: procState(m.fs) });
});

t.test('a forkserver whose event loop is blocked: start() gives up after startTimeout, the next start works', async (t) => {
  await stopForkserver(); // its preload cannot change while it runs
  // startTimeout bounds the boot too: generous enough for a loaded CI machine.
  // (3 s was missed by a boot on a loaded 2-core machine; the preload blocks for 10 s.)
  setForkserverPreload([BUSY_PRELOAD], { execArgv: [], startTimeout: 6000 });
  t.teardown(async () => {
    await stopForkserver();
    setForkserverPreload([], { execArgv: [], startTimeout: 60_000 });
  });
  await startForkserver();
  await sleep(400); // the preload's timer now blocks the forkserver's loop for 10 s
  const busy = forkserverPid() as number;
  t.throws(() => new Process({ target: { module: TARGETS, export: 'ret' }, args: [1] }).start(),
    { code: 'ERR_FORKSAFE_FORKSERVER', message: /did not serve a start within 6000 ms/ }, 'start() throws, naming the blocked loop');
  t.ok(await until(() => gone(busy), 2000), 'the blocked forkserver was killed');
  setForkserverPreload([], { execArgv: [], startTimeout: 60_000 });
  const p = start(t, 'ret', [6]);
  t.same(await settled(p.exited, 10_000), { code: 6, signal: null }, 'the next start brings up a new forkserver');
});

t.test('ES-module targets, with top-level await too', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forksafe-esm-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const plain = path.join(dir, 'plain.mjs');
  const tla = path.join(dir, 'tla.mjs');
  fs.writeFileSync(plain, 'export function run(n) { return n + 1; }\nexport default function () { return 3; }\n');
  fs.writeFileSync(tla, 'const x = await Promise.resolve(5);\nexport function run() { return x; }\n');
  for (const [mod, exp, args, code] of [[plain, 'run', [4], 5], [plain, undefined, [], 3], [tla, 'run', [], 5]] as const) {
    const p = new Process({ target: { module: mod, export: exp }, args: [...args] }).start();
    t.same(await settled(p.exited, 10_000), { code, signal: null }, `${path.basename(mod)} ${exp ?? '(default)'} → ${code}`);
  }
});

t.test('a 24 MiB argument reaches the worker', async (t) => {
  const buf = Buffer.alloc(24 << 20, 7);
  const shm = new SharedMemory({ size: 4096 });
  const p = start(t, 'sumBytes', [buf, shm]);
  t.same(await settled(p.exited, 20_000), { code: 0, signal: null });
  t.same(get(shm), { length: 24 << 20, sum: (24 << 20) / 4096 * 7 }, 'the worker saw every byte');
  shm.close();
});

t.test('the parent SIGKILLed: no forkserver, no worker left after 2 s', async (t) => {
  const c = child_process.spawn(process.execPath, [PARENT], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve) => {
    let out = '';
    const timer = setTimeout(() => resolve(out), 20_000);
    c.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve(out);
      }
    });
  });
  const info = JSON.parse(line) as { parent: number; forkserver: number; workers: number[] };
  t.equal(info.workers.length, 2, 'the parent started 2 workers');
  const all = [info.forkserver, ...info.workers];
  t.ok(all.every((pid) => !gone(pid)), 'forkserver and workers running');
  c.kill('SIGKILL');
  const ok = await until(() => all.every(gone), 2000);
  t.ok(ok, 'forkserver and both workers gone within 2 s of the parent\'s SIGKILL', { states: all.map(procState) });
  if (!ok) for (const pid of all) if (!gone(pid)) process.kill(pid, 'SIGKILL');
});

t.test('500 starts: no fd, mapping, zombie or segment left', async (t) => {
  const warm = start(t, 'ret', [0]);
  await settled(warm.exited, 10_000);
  await sleep(50);
  const server = forkserverPid() as number;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { stats } = require('../dist/core/runtime.js') as { stats(): { mapped: number } };
  // Objects of earlier tests may still be collected (finalizers unmap their arenas):
  // settle first, and count growth only.
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 3; i++) {
      (globalThis as { gc?: () => void }).gc?.();
      await sleep(30);
    }
  };
  await settle();
  const before = { fds: fdCount('self'), maps: mapCount('self'), sfds: fdCount(server), smaps: mapCount(server), mapped: stats().mapped };
  let bad = 0;
  for (let round = 0; round < 50; round++) {
    const batch = Array.from({ length: 10 }, (_, i) => new Process({ target: { module: TARGETS, export: 'ret' }, args: [i] }).start());
    const exits = await Promise.all(batch.map((p) => settled(p.exited, 10_000)));
    exits.forEach((e, i) => {
      if (!e || e.code !== i) bad++;
    });
  }
  t.equal(bad, 0, '500 workers, each exited with its own code');
  await sleep(100);
  t.equal(forkserverPid(), server, 'one forkserver served them all');
  t.same(childrenOf(server), [], 'the forkserver has no child left (no zombie)');
  await settle();
  const after = { fds: fdCount('self'), maps: mapCount('self'), sfds: fdCount(server), smaps: mapCount(server), mapped: stats().mapped };
  t.ok(after.fds <= before.fds && after.sfds <= before.sfds && after.mapped <= before.mapped,
    'fds of the parent and of the forkserver, and mapped segments: none more than before', { before, after });
  // Mappings: V8 maps heap pages as it grows, so a few may come; one per start would be 500.
  t.ok(after.maps - before.maps < 50 && after.smaps - before.smaps < 50, 'mappings of both: no growth per start', { before, after });
  t.same(childrenOf(process.pid).filter((pid) => pid !== server), [], 'the parent has no child but the forkserver');
});

t.test('only its parent can ask it to fork: no address to connect to, its socket closed to other users', async (t) => {
  await startForkserver();
  const server = forkserverPid() as number;
  const sockets = fs.readdirSync(`/proc/${server}/fd`)
    .map((fd) => { try { return fs.readlinkSync(`/proc/${server}/fd/${fd}`); } catch { return ''; } })
    .filter((l) => l.startsWith('socket:['))
    .map((l) => l.slice(8, -1));
  t.ok(sockets.length >= 1, 'the forkserver holds its channel socket');
  const unix = fs.readFileSync('/proc/net/unix', 'utf8').trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
  const mine = unix.filter((cols) => sockets.includes(cols[6]));
  t.ok(mine.length >= 1, 'its sockets are AF_UNIX');
  t.same(mine.filter((cols) => cols.length > 7), [], 'none has a path or an abstract name: nothing another process could connect to');
  t.same(mine.filter((cols) => cols[3] === '00010000'), [], 'none is listening');
  if (process.getuid?.() !== 0) {
    t.comment("not root: the try as another user (nobody) is skipped");
    return;
  }
  // /bin/sh rather than this node: the node under test may live where nobody
  // cannot run it (CI keeps Node lines under /root/.cache).
  const r = child_process.spawnSync('/bin/sh', ['-c', `exec 9<>/proc/${server}/fd/3 && echo OPENED`], {
    uid: 65534, gid: 65534, encoding: 'utf8', timeout: 10_000,
  });
  t.equal(r.error, undefined, "the shell ran as user 'nobody'", { error: r.error });
  t.not(r.status, 0, "user 'nobody' cannot open the forkserver's socket through /proc");
  t.notMatch(r.stdout, /OPENED/, 'nothing was opened');
  t.match(r.stderr, /Permission denied|Operation not permitted/, 'refused by the kernel (EACCES)');
});

t.test('setForkserverPreload() while the forkserver runs: the same options are a no-op, others throw; stopForkserver() lets it change', async (t) => {
  await stopForkserver();
  t.equal(forkserverPid(), null, 'stopForkserver(): none running');
  setForkserverPreload([PRELOAD], { execArgv: [] });
  t.teardown(async () => {
    await stopForkserver();
    setForkserverPreload([], { execArgv: [] });
  });
  const { pid: first } = await startForkserver();
  t.doesNotThrow(() => setForkserverPreload([PRELOAD], { execArgv: [] }), 'the same modules and options: a no-op');
  t.doesNotThrow(() => setForkserverPreload([pathToFileURL(PRELOAD)]), 'the same module as a file: URL, execArgv left out (kept): a no-op');
  for (const [args, what] of [
    [[[]], 'other modules'],
    [[[PRELOAD, TARGETS]], 'one module more'],
    [[[PRELOAD], { execArgv: ['--no-warnings'] }], 'other flags'],
    [[[PRELOAD], { startTimeout: 5000 }], 'another startTimeout'],
  ] as Array<[Parameters<typeof setForkserverPreload>, string]>) {
    t.throws(() => setForkserverPreload(...args),
      { code: 'ERR_FORKSAFE_FORKSERVER_STARTED', message: new RegExp(`forkserver \\(pid ${first}\\) is already running.*stopForkserver`) },
      `${what}: ERR_FORKSAFE_FORKSERVER_STARTED`);
  }
  t.equal(forkserverPid(), first, 'the running forkserver is untouched');
  const shm = new SharedMemory({ size: 65536 });
  const ev = new Event();
  const p = start(t, 'info', [shm, 0, ev]);
  t.same(await settled(p.exited, 10_000), { code: 0, signal: null }, 'a worker runs');
  t.equal(get(shm).preloadRuns, 1, 'with the preload the forkserver was started with');
  shm.close();
  // stopForkserver(): the forkserver and its running workers are gone.
  const ready = new Event();
  const go = new Event();
  const w = start(t, 'waitFor', [ready, go]);
  t.ok(await ready.waitAsync({ timeout: 10_000 }), 'a worker is running');
  await within(stopForkserver(), 5000, 'stopForkserver()');
  t.equal(forkserverPid(), null, 'no forkserver after stopForkserver()');
  t.equal(procState(first), null, 'the forkserver exited and was reaped');
  t.same(await settled(w.exited, 5000), { code: null, signal: 'SIGKILL' }, 'its running worker was killed with it');
  t.ok(await until(() => gone(w.pid as number), 2000), 'the worker is gone');
  await t.resolves(stopForkserver(), 'stopForkserver() with none running: nothing to do');
  setForkserverPreload([], { execArgv: [] });
  const q = start(t, 'ret', [4]);
  t.same(await settled(q.exited, 10_000), { code: 4, signal: null }, 'the next start brings up a new forkserver');
  t.not(forkserverPid(), first, 'a new one');
});

t.test('target.module: a file: URL (object or string); a relative path resolves against process.cwd()', async (t) => {
  const url = pathToFileURL(TARGETS);
  const a = start(t, 'ret', [], { target: { module: url, export: 'ret' }, args: [31] });
  t.same(await settled(a.exited, 10_000), { code: 31, signal: null }, 'a URL object');
  const b = start(t, 'ret', [], { target: { module: url.href, export: 'ret' }, args: [32] });
  t.same(await settled(b.exited, 10_000), { code: 32, signal: null }, "a 'file:' string");
  const rel = './' + path.relative(process.cwd(), TARGETS);
  const c = start(t, 'ret', [], { target: { module: rel, export: 'ret' }, args: [33] });
  t.same(await settled(c.exited, 10_000), { code: 33, signal: null }, `'${rel}': relative to process.cwd()`);
  t.throws(() => new Process({ target: { module: new URL('https://example.com/w.js') } }),
    { code: 'ERR_INVALID_ARG_TYPE', message: /options\.target\.module.*'file:' URL/ }, 'another URL scheme: TypeError at construction');
  t.throws(() => new Process({ target: { module: 7 as never } }), { code: 'ERR_INVALID_ARG_TYPE', message: /options\.target\.module/ },
    'not a string or URL: TypeError naming options.target.module');
  t.throws(() => setForkserverPreload([new URL('data:text/javascript,0')]), { code: 'ERR_INVALID_ARG_TYPE', message: /modules\[0\]/ },
    'a preload URL of another scheme: TypeError naming modules[0]');
});
