// Contexts: one singleton per start method, every primitive bound to the
// context that made it, and the Context rules enforced before anything
// starts (ContextError, never a silent copy or a crash).
import t from 'tap';
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import * as forksafe from '../dist/index.js';
import {
  ContextError, ForksafeError, getContext, getStartMethods,
} from '../dist/index.js';
import { Barrier, BoundedSemaphore, Condition, Event, Lock, Process, RLock, Semaphore, SharedMemory } from './lib/spawn';

const ROOT = path.join(__dirname, '..');
const DIST = path.join(ROOT, 'dist', 'index.js');
const TARGETS = path.join(ROOT, 'build', 'fixtures', 'misc-targets.js');
const ATTACH = path.join(ROOT, 'build', 'fixtures', 'misc-attach.js');

const CLASSES = ['Lock', 'RLock', 'Semaphore', 'BoundedSemaphore', 'Event', 'Condition', 'Barrier', 'SharedMemory'] as const;

// Live children of this process, from /proc/<pid>/stat (field 4 is the ppid;
// the comm field may hold spaces, so fields are counted after the last ')').
function children(): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === process.pid && f[0] !== 'Z') out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

function describeErr(e: unknown): string {
  const err = e as Error & { code?: string };
  return `${err?.constructor?.name} ${err?.code}: ${err?.message}`;
}

// Runs `node <args>` with a bounded wait; resolves with stdout (first JSON line parsed).
function runNode(args: string[], input?: string): Promise<{ code: number | null; out: Record<string, unknown> | null; stderr: string }> {
  return new Promise((resolve) => {
    const c = child_process.spawn(process.execPath, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    c.stdin.on('error', () => {});
    c.stdin.end(input ?? '');
    const timer = setTimeout(() => c.kill('SIGKILL'), 15_000);
    c.on('close', (code) => {
      clearTimeout(timer);
      let out: Record<string, unknown> | null = null;
      try {
        out = JSON.parse(stdout.split('\n')[0]);
      } catch {
        /* none */
      }
      resolve({ code, out, stderr });
    });
  });
}

t.test('getContext: one singleton per method', async (t) => {
  const spawn = getContext('spawn');
  const fork = getContext('fork');
  t.equal(getContext('spawn'), spawn, "getContext('spawn') is a singleton");
  t.equal(getContext('fork'), fork, "getContext('fork') is a singleton");
  t.not(spawn, fork, 'distinct methods, distinct contexts');
  const fsrv = getContext('forkserver');
  t.equal(getContext(), fsrv, "the default context is 'forkserver' on Linux");
  t.equal(getContext(undefined), fsrv, 'getContext(undefined) is the default');
  t.equal(fsrv.method, 'forkserver', "forkserver.method === 'forkserver'");
  t.equal(spawn.method, 'spawn', "spawn.method === 'spawn'");
  t.equal(fork.method, 'fork', "fork.method === 'fork'");
  t.ok(Object.isFrozen(spawn), 'a context is frozen');
  for (const k of [...CLASSES, 'Process'] as const) {
    t.equal(fsrv[k], (forksafe as unknown as Record<string, unknown>)[k], `top-level ${k} is the default context's ${k}`);
    if (k !== 'Process') t.not(spawn[k], fsrv[k], `spawn.${k} is a class of its own`);
  }
  for (const k of CLASSES) {
    t.equal(fork[k], getContext('fork')[k], `fork.${k} is the same class on every call`);
    t.not(fork[k], spawn[k], `fork.${k} is a class of its own`);
    t.equal(fork[k].name, k, `fork.${k}.name is '${k}'`);
  }
});

t.test('getStartMethods()', async (t) => {
  const m = getStartMethods();
  t.ok(Array.isArray(m), 'an array');
  t.same(m, ['forkserver', 'spawn', 'fork'], "['forkserver', 'spawn', 'fork'] on Linux, the default first");
  for (const x of m) t.equal(getContext(x).method, x, `getContext('${x}') works for a listed method`);
  t.not(getStartMethods(), getStartMethods(), 'a fresh array each call (callers may mutate it)');
});

t.test('every primitive knows its context', async (t) => {
  for (const method of ['spawn', 'fork', 'forkserver'] as const) {
    const ctx = getContext(method);
    const made = [
      new ctx.Lock(), new ctx.RLock(), new ctx.Semaphore(1), new ctx.BoundedSemaphore(1), new ctx.Event(),
      new ctx.Condition(), new ctx.Barrier(2), new ctx.SharedMemory({ size: 16 }),
    ];
    for (const p of made) {
      t.equal(p.context, ctx, `${method} ${p.constructor.name}: .context is the ${method} context`);
      t.equal(p.context.method, method, `${method} ${p.constructor.name}: .context.method === '${method}'`);
      t.equal(p.handle().context, method, `${method} ${p.constructor.name}: its handle names '${method}'`);
    }
    const c = made[5] as Condition;
    t.equal(c.lock.context, ctx, `${method} Condition's own lock is of the same context`);
    t.ok(made[0] instanceof forksafe.Lock, `${method} Lock is instanceof the top-level Lock`);
    t.ok(made[7] instanceof forksafe.SharedMemory, `${method} SharedMemory is instanceof the top-level SharedMemory`);
    for (const p of made) p.close();
  }
});

t.test("'fork' primitives handed to a spawn Process: ContextError from start(), before any process exists", async (t) => {
  const fork = getContext('fork');
  const cases: Array<[string, () => { p: { close(): void }; args: unknown[] }]> = [
    ['Lock', () => {
      const p = new fork.Lock();
      return { p, args: [p] };
    }],
    ['Event', () => {
      const p = new fork.Event();
      return { p, args: [1, 'x', p] };
    }],
    ['SharedMemory', () => {
      const p = new fork.SharedMemory({ size: 64 });
      return { p, args: [{ shm: p }] };
    }],
    ['Semaphore', () => {
      const p = new fork.Semaphore(1);
      return { p, args: [[p]] };
    }],
    ['Condition', () => {
      const p = new fork.Condition();
      return { p, args: [p] };
    }],
    ['Barrier', () => {
      const p = new fork.Barrier(2);
      return { p, args: [p] };
    }],
    // deep: an object in an array in a Map
    ['Event', () => {
      const p = new fork.Event();
      return { p, args: [{ a: 1 }, new Map<string, unknown>([['k', [1, { deep: p }]]])] };
    }],
    // among valid spawn primitives
    ['RLock', () => {
      const p = new fork.RLock();
      const ok = new Lock();
      return { p: { close: () => [p, ok].forEach((x) => x.close()) }, args: [new Set([ok, p])] };
    }],
  ];
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const cpModule = require('node:child_process') as typeof child_process;
  const realSpawn = cpModule.spawn;
  let spawned = 0;
  cpModule.spawn = ((...a: Parameters<typeof realSpawn>) => {
    spawned++;
    return realSpawn(...a);
  }) as typeof realSpawn;
  t.teardown(() => {
    cpModule.spawn = realSpawn;
  });
  for (const [i, [type, make]] of cases.entries()) {
    const { p, args } = make();
    const before = children();
    const spawnedBefore = spawned;
    const proc = new Process({ target: { module: TARGETS, export: 'ret' }, args, execArgv: [] });
    let err: unknown = null;
    try {
      proc.start();
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof ContextError, `case ${i} (${type}): start() throws ContextError`, { got: describeErr(err) });
    const e = err as ContextError;
    t.equal(e?.code, 'ERR_FORKSAFE_CONTEXT_MISMATCH', `case ${i}: code ERR_FORKSAFE_CONTEXT_MISMATCH`);
    t.ok(e instanceof ForksafeError, `case ${i}: a ForksafeError`);
    const msg = String(e?.message);
    t.match(msg, type, `case ${i}: the message names the primitive (${type})`, { msg });
    t.match(msg, "'fork'", `case ${i}: the message names its context`, { msg });
    t.match(msg, "getContext('spawn')", `case ${i}: the message gives the fix`, { msg });
    t.match(msg, /Process/, `case ${i}: the message names the target`, { msg });
    t.equal(spawned, spawnedBefore, `case ${i}: child_process.spawn was not called`);
    t.same(children(), before, `case ${i}: no child process appeared`);
    t.equal(proc.pid, null, `case ${i}: the Process has no pid`);
    p.close();
  }
  // The same Process class starts fine once the args are right.
  const lock = new Lock();
  const ok = new Process({ target: { module: TARGETS, export: 'ret' }, args: [3, lock], execArgv: [] }).start();
  t.ok(ok.join({ timeout: 15_000 }), 'a spawn Process with spawn primitives starts');
  t.same(await ok.exited, { code: 3, signal: null }, 'and runs');
  lock.close();
  t.ok(spawned > 0, 'the spawn spy sees real starts');
});

t.test("a 'fork' handle attached in another process: ContextError", async (t) => {
  const fork = getContext('fork');
  const prims = { lock: new fork.Lock(), event: new fork.Event(), shm: new fork.SharedMemory({ size: 32 }), cond: new fork.Condition() };
  t.teardown(() => Object.values(prims).forEach((p) => p.close()));
  for (const [k, p] of Object.entries(prims)) {
    const json = JSON.stringify(p.handle());
    for (const via of ['argv', 'stdin'] as const) {
      const r = await runNode(via === 'argv' ? [ATTACH, 'attach', json] : [ATTACH, 'attach', '-'], via === 'stdin' ? json : undefined);
      t.equal(r.code, 0, `${k} via ${via}: the child ran`, { stderr: r.stderr });
      t.equal(r.out?.contextError, true, `${k} via ${via}: attach() threw ContextError in the child`, { out: r.out });
      t.equal(r.out?.code, 'ERR_FORKSAFE_CONTEXT_MISMATCH', `${k} via ${via}: code ERR_FORKSAFE_CONTEXT_MISMATCH`);
      t.match(String(r.out?.message), "getContext('spawn')", `${k} via ${via}: the message gives the fix`);
    }
  }
  // The same handle still attaches here.
  const again = forksafe.attach<Lock>(prims.lock.handle());
  t.equal(again.context.method, 'fork', 'attaches in the creating process');
  again.close();
});

t.test("a 'fork' handle attached in a worker_thread of the creating process shares state", async (t) => {
  const fork = getContext('fork');
  const lock = new fork.Lock();
  const ev = new fork.Event();
  const sem = new fork.Semaphore(0);
  const shm = new fork.SharedMemory({ size: 64 });
  t.teardown(() => [lock, ev, sem, shm].forEach((p) => p.close()));
  lock.acquire();
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    const f = require(workerData.dist);
    const out = {};
    try {
      const lock = f.attach(workerData.lock), ev = f.attach(workerData.ev), sem = f.attach(workerData.sem), shm = f.attach(workerData.shm);
      out.method = lock.context.method;
      out.lockedByMain = lock.locked() && !lock.isOwned();
      out.tryAcquire = lock.acquire({ timeout: 0 });
      // Wait for the main thread to release (it does once we post 'waiting').
      parentPort.postMessage({ waiting: true });
      out.acquiredLater = lock.acquire({ timeout: 10000 });
      if (out.acquiredLater) lock.release();
      new Int32Array(shm.buffer)[0] = 77;
      sem.release(3);
      ev.set();
      for (const p of [lock, ev, sem, shm]) p.close();
    } catch (e) { out.error = String(e && e.stack); }
    parentPort.postMessage(out);
  `;
  const w = new Worker(code, {
    eval: true,
    workerData: { dist: DIST, lock: JSON.stringify(lock.handle()), ev: ev.handle(), sem: sem.handle(), shm: shm.handle() },
  });
  const out = await new Promise<Record<string, unknown>>((resolve) => {
    const timer = setTimeout(() => resolve({ error: 'timed out' }), 15_000);
    w.on('message', (m: Record<string, unknown>) => {
      if (m.waiting) {
        lock.release();
        return;
      }
      clearTimeout(timer);
      resolve(m);
    });
    w.on('error', (e) => resolve({ error: e.stack }));
  });
  await w.terminate();
  t.equal(out.error, undefined, 'the worker attached every handle');
  t.equal(out.method, 'fork', "the attached lock is of the 'fork' context");
  t.equal(out.lockedByMain, true, 'the worker sees the lock held by the main thread');
  t.equal(out.tryAcquire, false, 'and cannot take it');
  t.equal(out.acquiredLater, true, 'it gets it once the main thread releases');
  t.ok(ev.wait({ timeout: 5000 }), "the worker's Event.set() is seen");
  t.equal(sem.value, 3, "the worker's Semaphore.release(3) is seen");
  t.equal(new Int32Array(shm.buffer)[0], 77, "the worker's SharedMemory write is seen");
});

t.test('Condition(lock of another context): ContextError', async (t) => {
  const fork = getContext('fork');
  const spawn = getContext('spawn');
  const pairs: Array<[string, () => unknown]> = [
    ['spawn Condition, fork Lock', () => new spawn.Condition(new fork.Lock())],
    ['spawn Condition, fork RLock', () => new Condition(new fork.RLock())],
    ['fork Condition, spawn Lock', () => new fork.Condition(new Lock())],
    ['fork Condition, spawn RLock', () => new fork.Condition(new RLock())],
  ];
  for (const [what, make] of pairs) {
    try {
      make();
      t.fail(`${what}: accepted`);
    } catch (e) {
      t.ok(e instanceof ContextError, `${what}: ContextError`, { got: describeErr(e) });
      t.match((e as Error).message, /getContext\('(spawn|fork)'\)/, `${what}: the message gives the fix`);
    }
  }
  const ok = new fork.Condition(new fork.Lock());
  t.equal(ok.context.method, 'fork', 'same-context lock: fine');
  ok.lock.close();
  ok.close();
});

t.test("a persistent SharedMemory cannot be 'fork'", async (t) => {
  const fork = getContext('fork');
  t.throws(() => new fork.SharedMemory({ size: 16, name: `ctx-${process.pid}`, persistent: true }), ContextError);
  t.notOk(fs.existsSync(`/dev/shm/forksafe.ctx-${process.pid}`), 'nothing was created in /dev/shm');
});

t.test('unknown methods', async (t) => {
  for (const bad of ['bogus', '', 'Spawn', 'toString', '__proto__', 'constructor']) {
    try {
      getContext(bad as 'spawn');
      t.fail(`getContext(${JSON.stringify(bad)}): accepted`);
    } catch (e) {
      t.ok(e instanceof TypeError, `getContext(${JSON.stringify(bad)}): TypeError`, { got: describeErr(e) });
      t.ok(['ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_TYPE'].includes((e as { code?: string }).code as string), 'with a Node-style code');
    }
  }
  for (const bad of [5, null, {}, true]) {
    t.throws(() => getContext(bad as unknown as 'spawn'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }, `getContext(${JSON.stringify(bad)}): TypeError ERR_INVALID_ARG_TYPE`);
  }
  t.same(getStartMethods(), ['forkserver', 'spawn', 'fork'], 'a failed getContext() does not change the start methods');
});

t.test("getContext('fork').Process: a class of its own, function targets; start() needs what fork() needs", async (t) => {
  const FP = getContext('fork').Process;
  t.equal(typeof FP, 'function', "getContext('fork').Process is a class (no longer ERR_FORKSAFE_UNSUPPORTED)");
  t.equal(getContext('fork').Process, FP, 'the same class on every access');
  t.not(FP, Process, "distinct from the spawn context's Process");
  const p = new FP({ target: () => 0 });
  t.equal(p.pid, null, 'a function target is accepted; not started: pid null');
  t.equal(p.exitCode, null, 'exitCode null before start()');
  t.throws(() => new Process({ target: (() => 0) as unknown as { module: string } }), TypeError, 'the spawn Process still refuses a function target');
  // This process runs without --single-threaded: start() refuses before
  // forking (the fork scenarios themselves are in test/fork.ts).
  const before = children();
  t.throws(() => p.start(), { name: 'ForkUnsafeError', code: 'ERR_FORKSAFE_FORK_UNSAFE' }, 'start() without --single-threaded: ForkUnsafeError');
  t.same(children(), before, 'no child process appeared');
  t.equal(p.pid, null, 'still no pid');
  // A 'spawn' primitive: ContextError first, before any fork() is tried.
  const lock = new Lock();
  const q = new FP({ target: () => 0, args: [{ deep: [lock] }] });
  t.throws(() => q.start(), { name: 'ContextError', code: 'ERR_FORKSAFE_CONTEXT_MISMATCH' }, "a 'spawn' Lock in its args: ContextError (checked before fork)");
  lock.close();
});

// Keep the imports of every class honest: each is reachable from both contexts.
t.test('each class of a context constructs objects of that context', async (t) => {
  for (const method of ['spawn', 'fork', 'forkserver'] as const) {
    const ctx = getContext(method);
    const objs = [new ctx.Semaphore(0), new ctx.BoundedSemaphore(3), new ctx.Event(), new ctx.Barrier(1)];
    t.ok(objs[0] instanceof forksafe.Semaphore && objs[1] instanceof forksafe.BoundedSemaphore && objs[2] instanceof forksafe.Event && objs[3] instanceof forksafe.Barrier,
      `${method}: instanceof the top-level classes`);
    for (const o of objs) o.close();
  }
});
