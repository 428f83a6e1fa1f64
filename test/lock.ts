// Lock and RLock with real processes, real signals and real worker_threads:
// ownership, timeouts, mutual exclusion under contention, owner death
// (SIGKILL, exit, zombie, terminated worker), recovery and the pid-reuse guard.
// Fixtures: test/fixtures/lock-child.ts (Process roles), lock-thread.ts (worker).
import t from 'tap';
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  DeadlockError, NotOwnerError, NotRecoverableError, OwnerDiedError, TimeoutError,
} from '../dist/index.js';
import { Event, Lock, Process, RLock, SharedMemory } from './lib/spawn';
import { sleep, until, within } from './lib/children';
import type { ExitInfo } from '../dist/index.js';

// White-box: the forksafe JS-thread index of this (main) thread, i.e. owner().tid.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { THREAD_INDEX } = require('../dist/core/runtime.js') as { THREAD_INDEX: number };

const FIXTURES = path.join(__dirname, '..', 'build', 'fixtures');
const CHILD = path.join(FIXTURES, 'lock-child.js');
const THREAD = path.join(FIXTURES, 'lock-thread.js');

type AnyLock = Lock | RLock;
type LockClass = typeof Lock | typeof RLock;
const KINDS: [string, LockClass][] = [
  ['Lock', Lock],
  ['RLock', RLock],
];
const WAITERS_BIT = 0x80000000 | 0;
const TOKEN_MASK = 0x7fffffff;

// ---- helpers -------------------------------------------------------------------




interface Report {
  result?: boolean;
  error?: { name: string; code?: string; pid?: number; tid?: number; message: string };
  [k: string]: unknown;
}

interface Kid {
  proc: Process;
  pid: number;
  stdout(): string;
  stderr(): string;
  reports(): Report[];
  /** Both output streams ended (all of the child's output has been read). */
  drained: Promise<void>;
}

// Every child this file starts, until it has exited: afterEach kills and reaps leftovers.
const live = new Set<Process>();

// Children inherit this process's execArgv and NODE_OPTIONS, which under tap
// carry its loader hooks (--import of ts-node, mock and processinfo: ~1-1.5 s
// per start on this machine). The fixtures are prebuilt JS and need none of
// them, so children start without tap's hooks (~0.1 s). Nothing else changes.
const TAP_HOOK = /^--(import|require|loader|experimental-loader)=.*@tapjs\//;
const KID_EXEC_ARGV = process.execArgv.filter((a) => !TAP_HOOK.test(a));
const KID_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  NODE_OPTIONS: (process.env.NODE_OPTIONS ?? '')
    .split(/\s+/)
    .filter((a) => a !== '' && !TAP_HOOK.test(a.replace(/^"|"$/g, '')))
    .join(' '),
  TAP_TYPE_STRIP_ONLY: '1', // in case a hook is still loaded some other way
};

/** Process.start() with tap's hooks left out of the child's execArgv (restored at once). */
function startWithoutTapHooks(proc: Process): void {
  const saved = process.execArgv;
  process.execArgv = KID_EXEC_ARGV;
  try {
    proc.start();
  } finally {
    process.execArgv = saved;
  }
}

// worker_threads would also re-run tap's loader hooks: they run plain JS.
const WORKER_OPTS = { execArgv: [] as string[], env: KID_ENV };

function spawnKid(role: string, args: unknown[]): Kid {
  const proc = new Process({
    target: { module: CHILD, export: role },
    args,
    stdio: 'pipe',
    name: `lock-${role}`,
    env: KID_ENV,
  });
  startWithoutTapHooks(proc);
  live.add(proc);
  const forget = (): void => {
    live.delete(proc);
  };
  proc.exited.then(forget, forget);
  let out = '';
  let err = '';
  const ended = (s: NodeJS.ReadableStream | null): Promise<void> =>
    new Promise((resolve) => {
      if (!s) return resolve();
      s.on('end', resolve);
      s.on('close', resolve);
      s.on('error', () => resolve());
    });
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const drained = Promise.all([ended(proc.stdout), ended(proc.stderr)]).then(() => undefined);
  const pid = proc.pid;
  if (typeof pid !== 'number') throw new Error(`spawnKid(${role}): no pid`);
  return {
    proc,
    pid,
    drained,
    stdout: () => out,
    stderr: () => err,
    reports: () =>
      out
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Report),
  };
}

/** Awaits the child's exit and its output (bounded); on timeout kills it and throws. */
async function finish(k: Kid, ms = 15000): Promise<ExitInfo> {
  try {
    const e = await within(k.proc.exited, ms, `child ${k.pid} (${k.proc.name}) exit`);
    await within(k.drained, 5000, `child ${k.pid} output`);
    return e;
  } catch (err) {
    k.proc.kill('SIGKILL');
    await within(k.proc.exited, 5000, `reaping child ${k.pid}`).catch(() => {});
    throw new Error(`${(err as Error).message}\nchild stderr:\n${k.stderr()}`);
  }
}

/** Runs `probe` in a fresh process: what does another process get from acquire({timeout})? */
async function probe(lock: AnyLock, timeout: number): Promise<Report> {
  const k = spawnKid('probe', [lock, timeout]);
  const e = await finish(k);
  const r = k.reports();
  if (e.code !== 0 || r.length !== 1) {
    throw new Error(`probe child failed: ${JSON.stringify(e)} stdout=${k.stdout()} stderr=${k.stderr()}`);
  }
  return r[0];
}

function catchSync(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** Asserts that fn throws an instance of `C` with `code`, and returns the error. */
function throwsSync<E>(
  t: tap.Test,
  fn: () => unknown,
  C: new (...a: never[]) => E,
  code: string,
  what: string,
): E | undefined {
  const e = catchSync(fn);
  if (!(e instanceof C)) {
    t.fail(`${what}: expected ${C.name} (${code}), got ${e === undefined ? 'no error' : String((e as Error)?.stack ?? e)}`);
    return undefined;
  }
  t.equal((e as { code?: string }).code, code, `${what}: ${C.name} with code ${code}`);
  return e;
}

/** /proc/<pid>/stat: state letter and start time (field 22), or null if gone. */
function procStat(pid: number): { state: string; start: bigint } | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm (field 2) is in parentheses and may contain spaces and ')': parse after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0], start: BigInt(rest[22 - 3]) };
}

function wordOf(lock: AnyLock): number {
  return Atomics.load(lock._i32 as Int32Array, lock._w);
}

/** Bounded wait (sync) on an Event the child sets. */
function waitSet(t: tap.Test, ev: Event, what: string, ms = 15000): boolean {
  const ok = ev.wait({ timeout: ms });
  t.ok(ok, what);
  return ok;
}

// A worker_thread running test/fixtures/lock-thread.js on a lock's handle.
interface ThreadReply {
  ready?: boolean;
  ok?: boolean;
  value?: unknown;
  error?: { name: string; code?: string; pid?: number; tid?: number; message: string };
  info?: { locked: boolean; owner: { pid: number; tid: number } | null; isOwned: boolean; depth?: number };
}

class LockThread {
  worker: Worker;
  private inbox: ThreadReply[] = [];
  private waiting: { resolve: (m: ThreadReply) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | null = null;

  constructor(lock: AnyLock) {
    this.worker = new Worker(THREAD, { workerData: { handle: lock.handle() }, ...WORKER_OPTS });
    this.worker.on('message', (m: ThreadReply) => {
      const w = this.waiting.shift();
      if (w) w.resolve(m);
      else this.inbox.push(m);
    });
    const fail = (e: Error): void => {
      this.failure = e;
      for (const w of this.waiting.splice(0)) w.reject(e);
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`worker exited (code ${code})`)));
  }

  next(ms = 10000): Promise<ThreadReply> {
    const m = this.inbox.shift();
    if (m) return Promise.resolve(m);
    if (this.failure) return Promise.reject(this.failure);
    return within(
      new Promise<ThreadReply>((resolve, reject) => this.waiting.push({ resolve, reject })),
      ms,
      'worker reply',
    );
  }

  send(op: string, timeout?: number): void {
    this.worker.postMessage({ op, timeout });
  }

  call(op: string, timeout?: number): Promise<ThreadReply> {
    this.send(op, timeout);
    return this.next();
  }

  async stop(): Promise<void> {
    await within(this.worker.terminate(), 5000, 'worker.terminate()');
  }
}

t.afterEach(async () => {
  for (const p of [...live]) {
    p.kill('SIGKILL');
    await within(p.exited, 5000, 'reaping a leftover child').catch(() => {});
  }
});

// ---- 1. basics --------------------------------------------------------------------

t.test('basics: acquire/release, locked(), owner(), isOwned()', async (t) => {
  for (const [name, C] of KINDS) {
    const lock = new C();
    t.equal(lock.locked(), false, `${name}: a new lock is free`);
    t.equal(lock.owner(), null, `${name}: no owner`);
    t.equal(lock.isOwned(), false, `${name}: not owned`);

    t.equal(lock.acquire(), true, `${name}: acquire() on a free lock`);
    t.equal(lock.locked(), true, `${name}: locked() while held`);
    t.equal(lock.isOwned(), true, `${name}: isOwned() while held`);
    const o = lock.owner();
    t.same(o, { pid: process.pid, tid: THREAD_INDEX }, `${name}: owner() is {pid: process.pid, tid}`);
    t.ok(o && Number.isInteger(o.tid) && o.tid >= 1, `${name}: tid is a positive thread index`);
    lock.release();
    t.equal(lock.locked(), false, `${name}: free after release()`);
    t.equal(lock.owner(), null, `${name}: no owner after release()`);
    t.equal(lock.isOwned(), false, `${name}: not owned after release()`);

    t.equal(lock.acquire({ timeout: 0 }), true, `${name}: acquire({timeout: 0}) on a free lock`);
    lock.release();
    t.equal(lock.acquire({ timeout: 1000 }), true, `${name}: acquire({timeout: 1000}) on a free lock`);
    lock.release();

    throwsSync(t, () => lock.release(), NotOwnerError, 'ERR_FORKSAFE_NOT_OWNER', `${name}: release() of a free lock`);
    t.equal(lock.locked(), false, `${name}: still free after the failed release()`);
    lock.close();
  }
});

t.test('Lock: re-acquire by the holder throws DeadlockError at once', async (t) => {
  const lock = new Lock();
  t.equal(lock.acquire(), true);
  const attempts: [string, () => unknown][] = [
    ['acquire()', () => lock.acquire()],
    ['acquire({timeout: 0})', () => lock.acquire({ timeout: 0 })],
    ['acquire({timeout: 5000})', () => lock.acquire({ timeout: 5000 })],
    ['lock({timeout: 5000})', () => lock.lock({ timeout: 5000 })],
  ];
  for (const [what, fn] of attempts) {
    const t0 = Date.now();
    throwsSync(t, fn, DeadlockError, 'ERR_FORKSAFE_DEADLOCK', `Lock ${what} by the holder`);
    t.ok(Date.now() - t0 < 1000, `Lock ${what}: thrown at once, not after waiting (${Date.now() - t0} ms)`);
    t.equal(lock.isOwned(), true, `still held after ${what}`);
  }
  lock.release();
  t.equal(lock.locked(), false, 'one release() frees it');
  lock.close();
});

t.test('RLock: re-entrant for the owner, release() count-matched (depth)', async (t) => {
  const r = new RLock();
  t.equal(r.depth, 0, 'depth 0 when not held');
  t.equal(r.acquire(), true);
  t.equal(r.acquire({ timeout: 0 }), true, 're-acquire with timeout 0');
  t.equal(r.acquire({ timeout: 5000 }), true, 're-acquire with a timeout');
  t.equal(r.depth, 3, 'depth 3');
  r.release();
  t.equal(r.depth, 2, 'depth 2 after one release()');
  t.equal(r.locked(), true, 'still locked');
  t.equal(r.isOwned(), true, 'still owned');
  const busy = await probe(r, 0);
  t.equal(busy.result, false, 'another process: acquire({timeout: 0}) -> false at depth 2');
  r.release();
  t.equal(r.depth, 1);
  t.equal(r.locked(), true, 'still locked at depth 1');
  r.release();
  t.equal(r.depth, 0, 'depth 0 after matching releases');
  t.equal(r.locked(), false, 'free after matching releases');
  throwsSync(t, () => r.release(), NotOwnerError, 'ERR_FORKSAFE_NOT_OWNER', 'RLock: one release() too many');
  const free = await probe(r, 1000);
  t.equal(free.result, true, 'another process acquires it once fully released');
  t.equal(free.error, undefined, 'without error');
  r.close();
});

t.test('lock() guard: release(), Symbol.dispose and `using`', async (t) => {
  for (const [name, C] of KINDS) {
    const lock = new C();
    {
      using g = lock.lock({ timeout: 1000 });
      t.equal(lock.isOwned(), true, `${name}: held inside the using block`);
      t.type(g.release, 'function');
    }
    t.equal(lock.locked(), false, `${name}: released at the end of the using block`);

    const g = lock.lock();
    t.equal(lock.isOwned(), true, `${name}: lock() without options`);
    g[Symbol.dispose]();
    t.equal(lock.locked(), false, `${name}: [Symbol.dispose]() releases`);
    t.doesNotThrow(() => g.release(), `${name}: a second release of the same guard is a no-op`);
    t.equal(lock.locked(), false);

    const g2 = lock.lock({ timeout: 0 });
    g2.release();
    t.equal(lock.locked(), false, `${name}: guard.release() releases`);
    lock.close();
  }
  // Nested guards on an RLock release one level each.
  const r = new RLock();
  {
    using outer = r.lock();
    {
      using inner = r.lock();
      t.equal(r.depth, 2, 'RLock: nested guards -> depth 2');
      void inner;
    }
    t.equal(r.depth, 1, 'RLock: inner guard released one level');
    void outer;
  }
  t.equal(r.locked(), false, 'RLock: both guards released');
  r.close();
});

t.test('held by another process: timeouts, owner(), NotOwnerError, TimeoutError', async (t) => {
  // Both holders start at once (process start-up dominates this file's run time).
  const runs = KINDS.map(([name, C]) => {
    const lock = new C();
    const held = new Event();
    const go = new Event();
    const k = spawnKid('holdUntil', [lock, held, go, name === 'RLock' ? 2 : 1]);
    return { name, lock, held, go, k };
  });
  for (const { name, lock, held, go, k } of runs) {
    if (!waitSet(t, held, `${name}: child holds the lock`)) return;

    t.equal(lock.acquire({ timeout: 0 }), false, `${name}: acquire({timeout: 0}) -> false`);
    t.equal(lock.acquire({ timeout: 100 }), false, `${name}: acquire({timeout: 100}) -> false`);
    t.equal(lock.locked(), true, `${name}: locked() sees the other process`);
    t.equal(lock.isOwned(), false, `${name}: isOwned() false`);
    const o = lock.owner();
    t.equal(o?.pid, k.pid, `${name}: owner().pid is the child`);
    t.ok(o && Number.isInteger(o.tid) && o.tid >= 1, `${name}: owner().tid is a thread index`);
    if (lock instanceof RLock) t.equal(lock.depth, 0, 'RLock: depth 0 for a non-owner');

    throwsSync(t, () => lock.release(), NotOwnerError, 'ERR_FORKSAFE_NOT_OWNER', `${name}: release() by a non-owner`);
    throwsSync(t, () => lock.markConsistent(), NotOwnerError, 'ERR_FORKSAFE_NOT_OWNER', `${name}: markConsistent() by a non-owner`);
    t.equal(lock.owner()?.pid, k.pid, `${name}: still held by the child`);
    const te = throwsSync(t, () => lock.lock({ timeout: 50 }), TimeoutError, 'ERR_FORKSAFE_TIMEOUT', `${name}: lock({timeout: 50})`);
    t.ok(te && /50/.test(String((te as Error).message)), `${name}: the TimeoutError names the timeout`);
    t.equal(lock.isOwned(), false, `${name}: nothing acquired by the failed lock()`);

    go.set();
    const e = await finish(k);
    t.same(e, { code: 0, signal: null }, `${name}: holder released and exited 0`);
    t.equal(lock.locked(), false, `${name}: free once the holder released it`);
    t.equal(lock.acquire({ timeout: 1000 }), true, `${name}: acquirable (no OwnerDiedError after a normal release)`);
    lock.release();
    lock.close();
    held.close();
    go.close();
  }
});

// ---- 2. mutual exclusion under contention -------------------------------------------

t.test('4 processes x 50,000 increments under the lock -> exactly 200,000', async (t) => {
  const N = 50000;
  const P = 4;
  // All 8 children start at once; each group of 4 is released by its own Event.
  const runs = KINDS.map(([name, C]) => {
    const lock = new C();
    const shm = new SharedMemory({ size: 4096 });
    const go = new Event();
    const kids = Array.from({ length: P }, () => spawnKid('increment', [lock, shm, go, N]));
    return { name, lock, shm, go, kids, a: new Int32Array(shm.buffer) };
  });
  for (const { name, lock, shm, go, kids, a } of runs) {
    const ready = await until(() => Atomics.load(a, 3) === P, 30000, 5);
    t.ok(ready, `${name}: all ${P} children ready`);
    const t0 = Date.now();
    go.set(); // all start together, so they really contend
    const exits = await Promise.all(kids.map((k) => finish(k, 60000)));
    const ms = Date.now() - t0;
    exits.forEach((e, i) => t.same(e, { code: 0, signal: null }, `${name}: child ${i} exited 0`));
    t.equal(a[0], P * N, `${name}: counter is exactly ${P * N}`);
    t.equal(a[2], 0, `${name}: never two processes inside the critical section`);
    t.equal(lock.locked(), false, `${name}: free at the end`);
    t.comment(`${name}: ${P * N} acquire/release pairs in ${P} processes in ${ms} ms`);
    shm.close();
    go.close();
    lock.close();
  }
});

// ---- 3. owner death: SIGKILL inside the critical section -----------------------------

t.test('holder SIGKILLed, then acquire (holder still an unreaped zombie)', async (t) => {
  const runs = KINDS.map(([name, C]) => {
    const lock = new C();
    const held = new Event();
    const depth = name === 'RLock' ? 3 : 1;
    return { name, lock, held, k: spawnKid('holdForever', [lock, held, depth]) };
  });
  for (const { name, lock, held, k } of runs) {
    if (!waitSet(t, held, `${name}: child holds the lock`)) return;
    t.equal(lock.owner()?.pid, k.pid, `${name}: owned by the child`);

    k.proc.kill('SIGKILL');
    // Synchronously, without returning to the event loop: nobody reaps the
    // child meanwhile, so it is a zombie while we wait for the lock.
    const t0 = Date.now();
    let got: unknown;
    const err = catchSync(() => {
      got = lock.acquire({ timeout: 5000 });
    });
    const waited = Date.now() - t0;
    const st = procStat(k.pid);
    t.type(err, OwnerDiedError, `${name}: acquire() throws OwnerDiedError (got ${String(err ?? got)})`);
    if (!(err instanceof OwnerDiedError)) return;
    t.equal(err.code, 'ERR_FORKSAFE_OWNER_DIED', `${name}: code`);
    t.equal(err.pid, k.pid, `${name}: .pid is the killed child's pid`);
    t.ok(waited < 2000, `${name}: noticed within 2 s (${waited} ms)`);
    t.equal(st?.state, 'Z', `${name}: the dead holder was still an unreaped zombie (a zombie counts as dead)`);

    t.equal(lock.isOwned(), true, `${name}: the survivor holds the lock`);
    t.same(lock.owner(), { pid: process.pid, tid: THREAD_INDEX }, `${name}: owner() is us`);
    if (lock instanceof RLock) t.equal(lock.depth, 1, 'RLock: depth 1 after recovery (not the dead owner\'s 3)');
    lock.markConsistent();
    lock.release();
    t.equal(lock.locked(), false, `${name}: free after markConsistent() + release()`);

    const e = await finish(k);
    t.equal(e.signal, 'SIGKILL', `${name}: holder died of SIGKILL`);
    t.equal(lock.acquire({ timeout: 1000 }), true, `${name}: works normally afterwards (no error)`);
    lock.release();
  }
  const others = await Promise.all(runs.map(({ lock }) => probe(lock, 1000)));
  runs.forEach(({ name, lock, held }, i) => {
    t.equal(others[i].result, true, `${name}: another process acquires it normally afterwards`);
    t.equal(others[i].error, undefined, `${name}: without error`);
    lock.close();
    held.close();
  });
});

t.test('waiter process already blocked in acquire when the holder is SIGKILLed', async (t) => {
  const runs = KINDS.map(([name, C]) => {
    const lock = new C();
    const held = new Event();
    const waiting = new Event();
    return { name, lock, held, waiting, holder: spawnKid('holdForever', [lock, held, 1]) };
  });
  for (const { name, held } of runs) if (!waitSet(t, held, `${name}: holder holds the lock`)) return;
  const waiters = runs.map(({ lock, waiting }) => spawnKid('waitAcquire', [lock, waiting, 15000]));
  for (const [i, { name, lock, waiting, holder }] of runs.entries()) {
    const waiter = waiters[i];
    if (!waitSet(t, waiting, `${name}: waiter is about to acquire`)) return;
    // The waiter sets the waiters bit before it sleeps: then it is really blocked.
    const blocked = await until(() => (wordOf(lock) & WAITERS_BIT) !== 0, 5000, 5);
    t.ok(blocked, `${name}: waiter is blocked in acquire() (waiters bit set)`);
    t.equal(lock.owner()?.pid, holder.pid, `${name}: still owned by the holder`);

    const killedAt = Date.now();
    holder.proc.kill('SIGKILL');
    const we = await finish(waiter, 10000);
    const reps = waiter.reports();
    t.equal(reps.length, 1, `${name}: waiter reported once`);
    const r = reps[0] ?? {};
    t.equal(r.error?.code, 'ERR_FORKSAFE_OWNER_DIED', `${name}: waiter got OwnerDiedError`);
    t.equal(r.error?.name, 'OwnerDiedError', `${name}: of class OwnerDiedError`);
    t.equal(r.error?.pid, holder.pid, `${name}: with the dead holder's pid`);
    const after = (r.at as number) - killedAt;
    t.ok(after < 2000, `${name}: waiter noticed the death within 2 s of the kill (${after} ms)`);
    t.equal(r.owned, true, `${name}: the waiter held the lock (isOwned())`);
    t.equal((r.owner as { pid?: number } | undefined)?.pid, waiter.pid, `${name}: owner() was the waiter`);
    t.equal(r.recoveryError, undefined, `${name}: markConsistent() + release() succeeded in the waiter`);
    t.equal(r.lockedAfterRelease, false, `${name}: free after the waiter released`);
    t.same(we, { code: 0, signal: null }, `${name}: waiter exited 0`);
    const he = await finish(holder);
    t.equal(he.signal, 'SIGKILL', `${name}: holder died of SIGKILL`);

    t.equal(lock.acquire({ timeout: 1000 }), true, `${name}: the repaired lock works normally here`);
    lock.release();
  }
  for (const { lock, held, waiting } of runs) {
    lock.close();
    held.close();
    waiting.close();
  }
});

t.test('this thread blocked in acquire when a worker_thread SIGKILLs the holder', async (t) => {
  const lock = new Lock();
  const held = new Event();
  const k = spawnKid('holdForever', [lock, held, 1]);
  if (!waitSet(t, held, 'child holds the lock')) return;
  const at = new Int32Array(new SharedArrayBuffer(8));
  const base = Date.now();
  const killer = new Worker(
    `const { workerData: d } = require('node:worker_threads');
     setTimeout(() => { Atomics.store(d.at, 0, Date.now() - d.base); process.kill(d.pid, 'SIGKILL'); }, d.delay);`,
    { eval: true, workerData: { at, base, pid: k.pid, delay: 300 }, ...WORKER_OPTS },
  );
  let got: unknown;
  const err = catchSync(() => {
    got = lock.acquire({ timeout: 5000 }); // blocks this thread until the holder dies
  });
  const noticed = Date.now();
  await within(killer.terminate(), 5000, 'killer worker terminate');
  const killedAt = base + Atomics.load(at, 0);
  t.ok(Atomics.load(at, 0) > 0, 'the worker killed the holder while we were blocked');
  t.type(err, OwnerDiedError, `blocked acquire() throws OwnerDiedError (got ${String(err ?? got)})`);
  if (!(err instanceof OwnerDiedError)) return;
  t.equal(err.pid, k.pid, '.pid is the killed holder');
  t.ok(noticed - killedAt < 2000, `noticed within 2 s of the kill (${noticed - killedAt} ms)`);
  t.equal(lock.isOwned(), true, 'we hold it');
  lock.markConsistent();
  lock.release();
  const e = await finish(k);
  t.equal(e.signal, 'SIGKILL');
  t.equal(lock.acquire({ timeout: 1000 }), true, 'works normally afterwards');
  lock.release();
  lock.close();
  held.close();
});

t.test('release without markConsistent() -> NotRecoverableError for everyone', async (t) => {
  const runs = KINDS.map(([name, C]) => {
    const lock = new C();
    const held = new Event();
    return { name, lock, held, k: spawnKid('holdForever', [lock, held, 1]) };
  });
  for (const { name, lock, held, k } of runs) {
    if (!waitSet(t, held, `${name}: child holds the lock`)) return;
    k.proc.kill('SIGKILL');
    const died = throwsSync(t, () => lock.acquire({ timeout: 5000 }), OwnerDiedError, 'ERR_FORKSAFE_OWNER_DIED', `${name}: survivor`);
    if (!died) return;
    t.equal(lock.isOwned(), true, `${name}: survivor holds it`);
    lock.release(); // without markConsistent()
    t.equal(lock.isOwned(), false, `${name}: released`);

    const attempts: [string, () => unknown][] = [
      ['acquire({timeout: 0})', () => lock.acquire({ timeout: 0 })],
      ['acquire({timeout: 5000})', () => lock.acquire({ timeout: 5000 })],
      ['lock({timeout: 5000})', () => lock.lock({ timeout: 5000 })],
      ['acquire({timeout: 0}) again', () => lock.acquire({ timeout: 0 })],
    ];
    for (const [what, fn] of attempts) {
      const t0 = Date.now();
      throwsSync(t, fn, NotRecoverableError, 'ERR_FORKSAFE_NOT_RECOVERABLE', `${name}: ${what} here`);
      t.ok(Date.now() - t0 < 1000, `${name}: ${what}: at once (${Date.now() - t0} ms)`);
    }
    t.equal(lock.isOwned(), false, `${name}: nothing acquired`);
    const e = await finish(k);
    t.equal(e.signal, 'SIGKILL');
  }
  const others = await Promise.all(runs.map(({ lock }) => probe(lock, 1000)));
  runs.forEach(({ name, lock, held }, i) => {
    t.equal(others[i].error?.code, 'ERR_FORKSAFE_NOT_RECOVERABLE', `${name}: another process gets NotRecoverableError too`);
    t.equal(others[i].error?.name, 'NotRecoverableError', `${name}: of class NotRecoverableError`);
    lock.close();
    held.close();
  });
});

// ---- 4. holder exits normally while holding -------------------------------------------

t.test('holder leaves its process while holding -> OwnerDiedError', async (t) => {
  const cases: [string, LockClass, 'exit' | 'return' | 'throw', number][] = [
    ['Lock', Lock, 'exit', 0],
    ['Lock', Lock, 'return', 0],
    ['Lock', Lock, 'throw', 1],
    ['RLock', RLock, 'exit', 0],
  ];
  const runs = cases.map(([name, C, how, code]) => {
    const lock = new C();
    const held = new Event();
    return { name, how, code, lock, held, k: spawnKid('holdAndExit', [lock, held, how]) };
  });
  for (const { name, how, code, lock, held, k } of runs) {
    if (!waitSet(t, held, `${name}/${how}: child holds the lock`)) return;
    const e = await finish(k);
    t.same(e, { code, signal: null }, `${name}/${how}: child exited with code ${code}`);
    const err = throwsSync(t, () => lock.acquire({ timeout: 2000 }), OwnerDiedError, 'ERR_FORKSAFE_OWNER_DIED', `${name}/${how}: next acquirer`);
    if (!err) return;
    t.equal(err.pid, k.pid, `${name}/${how}: .pid is the exited child`);
    t.equal(lock.isOwned(), true, `${name}/${how}: the next acquirer holds it`);
    lock.markConsistent();
    lock.release();
    t.equal(lock.acquire({ timeout: 0 }), true, `${name}/${how}: normal afterwards`);
    lock.release();
    lock.close();
    held.close();
  }
});

// ---- 5. worker_threads: per-thread ownership and thread death --------------------------

t.test('worker_thread holding the lock is terminated -> OwnerDiedError in the main thread', async (t) => {
  for (const [name, C] of KINDS) {
    const lock = new C();
    const th = new LockThread(lock);
    try {
      const ready = await th.next();
      t.equal(ready.ready, true, `${name}: worker attached the handle`);
      const r = await th.call('acquire', 1000);
      t.equal(r.ok && r.value, true, `${name}: worker acquired`);
      const wtid = r.info?.owner?.tid as number;
      t.equal(r.info?.owner?.pid, process.pid, `${name}: worker's owner().pid is this process`);
      t.equal(r.info?.isOwned, true, `${name}: worker's isOwned()`);
      t.not(wtid, THREAD_INDEX, `${name}: the worker has its own thread index`);

      t.same(lock.owner(), { pid: process.pid, tid: wtid }, `${name}: main sees the worker as owner`);
      t.equal(lock.isOwned(), false, `${name}: main does not own it`);
      t.equal(lock.acquire({ timeout: 0 }), false, `${name}: main acquire({timeout: 0}) -> false (not Deadlock, not re-entrant across threads)`);
      t.equal(lock.acquire({ timeout: 100 }), false, `${name}: main acquire({timeout: 100}) -> false`);
      throwsSync(t, () => lock.release(), NotOwnerError, 'ERR_FORKSAFE_NOT_OWNER', `${name}: main cannot release the worker's lock`);

      await th.stop();
      const t0 = Date.now();
      const err = throwsSync(t, () => lock.acquire({ timeout: 3000 }), OwnerDiedError, 'ERR_FORKSAFE_OWNER_DIED', `${name}: main after worker.terminate()`);
      if (!err) continue;
      t.ok(Date.now() - t0 < 2000, `${name}: noticed within 2 s (${Date.now() - t0} ms)`);
      t.equal(err.pid, process.pid, `${name}: .pid is this process`);
      t.equal(err.tid, wtid, `${name}: .tid is the terminated worker's thread index`);
      t.equal(lock.isOwned(), true, `${name}: main holds it`);
      lock.markConsistent();
      lock.release();
      t.equal(lock.acquire({ timeout: 0 }), true, `${name}: normal afterwards`);
      lock.release();
    } finally {
      await th.stop().catch(() => {});
      lock.close();
    }
  }
});

t.test('worker_thread: per-thread ownership of a lock attached by handle', async (t) => {
  for (const [name, C] of KINDS) {
    const lock = new C();
    const th = new LockThread(lock);
    try {
      await th.next();
      t.equal(lock.acquire({ timeout: 1000 }), true, `${name}: main acquires`);
      if (lock instanceof RLock) t.equal(lock.acquire(), true, 'RLock: main re-enters (depth 2)');

      let r = await th.call('release');
      t.equal(r.ok, false, `${name}: worker release() of main's lock fails`);
      t.equal(r.error?.code, 'ERR_FORKSAFE_NOT_OWNER', `${name}: with NotOwnerError`);
      t.equal(r.error?.name, 'NotOwnerError', `${name}: class NotOwnerError`);
      r = await th.call('markConsistent');
      t.equal(r.error?.code, 'ERR_FORKSAFE_NOT_OWNER', `${name}: worker markConsistent() -> NotOwnerError`);
      r = await th.call('acquire', 0);
      t.equal(r.ok && r.value, false, `${name}: worker acquire({timeout: 0}) -> false while main holds it`);
      t.same(r.info?.owner, { pid: process.pid, tid: THREAD_INDEX }, `${name}: worker sees main as owner`);
      t.equal(r.info?.isOwned, false, `${name}: worker isOwned() false`);
      t.equal(lock.isOwned(), true, `${name}: main still holds it`);
      if (lock instanceof RLock) {
        t.equal(lock.depth, 2, 'RLock: depth unchanged by the worker');
        lock.release();
      }

      // Hand-over: the worker blocks in acquire; main's release wakes it.
      th.send('acquire', 5000);
      const blocked = await until(() => (wordOf(lock) & WAITERS_BIT) !== 0, 5000, 5);
      t.ok(blocked, `${name}: worker blocked in acquire (waiters bit set)`);
      lock.release();
      r = await th.next();
      t.equal(r.ok && r.value, true, `${name}: the blocked worker got the lock when main released`);
      t.equal(r.info?.isOwned, true, `${name}: worker owns it`);
      const wtid = r.info?.owner?.tid;
      t.not(wtid, THREAD_INDEX, `${name}: owner tid is the worker's`);

      t.equal(lock.isOwned(), false, `${name}: main does not own it`);
      t.equal(lock.acquire({ timeout: 0 }), false, `${name}: main acquire({timeout: 0}) -> false`);
      throwsSync(t, () => lock.release(), NotOwnerError, 'ERR_FORKSAFE_NOT_OWNER', `${name}: main cannot release the worker's lock`);
      t.equal((wordOf(lock) & TOKEN_MASK) >>> 22, wtid, `${name}: still the worker's after main's failed release`);
      if (lock instanceof RLock) {
        r = await th.call('acquire', 0);
        t.equal(r.value, true, 'RLock: worker re-enters');
        t.equal(r.info?.depth, 2, 'RLock: worker depth 2');
        r = await th.call('release');
        t.equal(r.info?.depth, 1, 'RLock: worker depth 1');
      }
      r = await th.call('release');
      t.equal(r.ok, true, `${name}: worker releases its lock`);
      t.equal(lock.locked(), false, `${name}: free`);
      t.equal(lock.acquire({ timeout: 0 }), true, `${name}: main takes it again (no OwnerDiedError)`);
      lock.release();
    } finally {
      await th.stop().catch(() => {});
      lock.close();
    }
  }
});

// ---- 6. pid reuse guard (white-box) ----------------------------------------------------

t.test('pid reuse: a live pid whose start time differs from its participant record is dead', async (t) => {
  const lock = new Lock();
  const i32 = lock._i32 as Int32Array;
  t.equal(i32[0], 0x53464b46, 'lock._i32 starts at the arena header (magic)');
  t.equal(i32[2], 1, 'the segment is an arena');

  const c = child_process.spawn('sleep', ['30'], { stdio: 'ignore' });
  const cExit = new Promise<void>((resolve) => c.on('exit', () => resolve()));
  const cpid = c.pid as number;
  let entry = -1; // Int32 index of the participant entry we borrowed
  const clearEntry = (): void => {
    if (entry < 0) return;
    Atomics.store(i32, entry + 1, 0);
    Atomics.store(i32, entry + 2, 0);
    Atomics.store(i32, entry + 3, 0);
    Atomics.store(i32, entry, 0);
  };
  const setEntry = (start: bigint): void => {
    Atomics.store(i32, entry + 1, 0); // invalid while the start changes
    Atomics.store(i32, entry + 2, Number(start & 0xffffffffn) | 0);
    Atomics.store(i32, entry + 3, Number(start >> 32n) | 0);
    Atomics.store(i32, entry + 1, 1);
  };
  try {
    t.ok(cpid > 0 && procStat(cpid) !== null, `a live unrelated process C (pid ${cpid})`);
    for (let i = 0; i < 128; i++) {
      if (Atomics.load(i32, 32 + 4 * i) === cpid) t.fail(`C already has participant entry ${i}`);
    }
    for (let i = 0; i < 128 && entry < 0; i++) {
      if (Atomics.compareExchange(i32, 32 + 4 * i, 0, cpid) === 0) entry = 32 + 4 * i;
    }
    if (entry < 0) {
      t.fail('no free participant entry');
      return;
    }
    const token = (cpid | (1 << 22)) | 0;

    // (1) C is alive but its start time is not the recorded one: a reused pid.
    setEntry(12345n);
    Atomics.store(i32, lock._w, token);
    t.same(lock.owner(), { pid: cpid, tid: 1 }, 'the lock word names C');
    const err = throwsSync(t, () => lock.acquire({ timeout: 2000 }), OwnerDiedError, 'ERR_FORKSAFE_OWNER_DIED', 'start mismatch: C is treated as dead');
    if (err) {
      t.equal(err.pid, cpid, '.pid is C');
      t.equal(lock.isOwned(), true, 'we took the lock');
      lock.markConsistent();
      lock.release();
    }
    t.equal(lock.locked(), false, 'free again');

    // (2) The correct start time: C is alive and is the owner.
    const st = procStat(cpid);
    t.ok(st && st.state !== 'Z', 'C still running');
    setEntry((st as { start: bigint }).start);
    Atomics.store(i32, lock._w, token);
    const r0 = catchSync(() => t.equal(lock.acquire({ timeout: 0 }), false, 'start matches: acquire({timeout: 0}) -> false'));
    t.equal(r0, undefined, 'no error with {timeout: 0}');
    const r1 = catchSync(() => t.equal(lock.acquire({ timeout: 300 }), false, 'start matches: acquire({timeout: 300}) -> false'));
    t.equal(r1, undefined, 'no error with {timeout: 300}');
    t.equal(wordOf(lock) & TOKEN_MASK, token, 'the lock word still names C');

    // (3) No participant record: liveness falls back to existence, so C (alive) owns it;
    // once C is SIGKILLed (an unreaped zombie here) the lock is taken over.
    clearEntry();
    entry = -1;
    t.equal(lock.acquire({ timeout: 0 }), false, 'no record, C alive: acquire({timeout: 0}) -> false');
    c.kill('SIGKILL');
    const err3 = throwsSync(t, () => lock.acquire({ timeout: 2000 }), OwnerDiedError, 'ERR_FORKSAFE_OWNER_DIED', 'no record, C killed');
    if (err3) {
      t.equal(err3.pid, cpid, '.pid is C');
      lock.markConsistent();
      lock.release();
    }
  } finally {
    clearEntry();
    if ((Atomics.load(i32, lock._w) & TOKEN_MASK) === ((cpid | (1 << 22)) & TOKEN_MASK)) Atomics.store(i32, lock._w, 0);
    c.kill('SIGKILL');
    await within(cExit, 5000, 'reaping C').catch((e) => t.fail(String(e)));
  }
  t.equal(lock.acquire({ timeout: 0 }), true, 'the lock works normally after the experiment');
  lock.release();
  lock.close();
});
