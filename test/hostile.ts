// Hostile use of the public surface (issue 10 §3a, §4): unlink() of every
// SharedMemory; options getters that close the object mid-call; fake
// AbortSignals; garbage collection of a second object for a held lock;
// timeouts too large for the kernel; methods called on foreign `this`;
// Process args that cannot be cloned; and a small randomized fuzz in which
// every call must return or throw a coded error.
import t from 'tap';
import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ClosedError, attach, getContext } from '../dist/index.js';
import { Barrier, BoundedSemaphore, Condition, Event, Lock, Process, RLock, Semaphore, SharedMemory } from './lib/spawn';
import { sleep, until, within } from './lib/children';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const asyncInternals = require('../dist/core/async.js') as { stats(): { threads: number; pending: number; threadPending: number } };

const ROOT = path.join(__dirname, '..');
const DIST = path.join(ROOT, 'dist', 'index.js');
const TARGETS = path.join(ROOT, 'build', 'fixtures', 'misc-targets.js');
const HUGE = 1e22; // > 9.2e21 ms: its seconds overflow time_t

// Children start without tap's loader hooks (the code they run is plain JS).
const KID_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  NODE_OPTIONS: (process.env.NODE_OPTIONS ?? '').split(/\s+/).filter((a) => a !== '' && !a.includes('@tapjs/')).join(' '),
};

type Err = Error & { code?: unknown };

function describe(e: unknown): string {
  const err = e as Err;
  return e instanceof Error ? `${err.constructor?.name} ${String(err.code ?? '')}: ${err.message}` : `non-error ${String(e)}`;
}

/** fn()'s outcome: {value} or {error}; a returned promise is awaited (bounded). */
async function outcome(fn: () => unknown): Promise<{ value?: unknown; error?: unknown }> {
  try {
    const v = fn();
    if (v instanceof Promise) return { value: await within(v, 10_000, 'a promise') };
    return { value: v };
  } catch (error) {
    return { error };
  }
}

function isClosedError(e: unknown): boolean {
  return e instanceof ClosedError && (e as Err).code === 'ERR_FORKSAFE_CLOSED';
}

// Children of this process's main thread (libuv spawns from it).
function children(): string {
  try {
    return fs.readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim();
  } catch {
    return '';
  }
}

// ---- §3a: unlink() on every SharedMemory -------------------------------------------

// A node child that attaches `handle` now ('attach'), or attaches it, says
// 'ready', and on a line from stdin tries attach() again and unlink() ('holder').
const SHM_CHILD = `
  const f = require(process.argv[1]);
  const h = JSON.parse(process.argv[2]);
  const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
  const code = (fn) => { try { fn(); return 'none'; } catch (e) { return e.code + ' ' + e.message; } };
  if (process.argv[3] === 'attach') {
    out({ attach: code(() => f.attach(h)) });
  } else {
    const m = f.attach(h);
    out({ ready: true });
    process.stdin.once('data', () => {
      out({ attach: code(() => f.attach(h)), value: new Int32Array(m.buffer)[0], unlink: code(() => m.unlink()) });
      m.close();
      process.exit(0);
    });
  }
`;

function shmChild(handle: unknown, mode: 'attach' | 'holder'): { proc: cp.ChildProcess; lines: AsyncGenerator<Record<string, unknown>> } {
  const proc = cp.spawn(process.execPath, ['-e', SHM_CHILD, DIST, JSON.stringify(handle), mode], {
    env: KID_ENV, stdio: ['pipe', 'pipe', 'inherit'],
  });
  async function* lines(): AsyncGenerator<Record<string, unknown>> {
    let buf = '';
    for await (const chunk of proc.stdout as AsyncIterable<Buffer>) {
      buf += chunk.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        yield JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
        buf = buf.slice(i + 1);
      }
    }
  }
  return { proc, lines: lines() };
}

async function nextLine(c: { lines: AsyncGenerator<Record<string, unknown>> }, what: string): Promise<Record<string, unknown>> {
  const r = await within(c.lines.next(), 15_000, what);
  return (r.value ?? {}) as Record<string, unknown>;
}

t.test('unlink() of a memfd SharedMemory: attach() of its handle fails everywhere, a second unlink() throws ENOENT, mappings keep working', async (t) => {
  const keep = new SharedMemory({ size: 64 }); // a live mapping of the same kind meanwhile
  t.teardown(() => keep.close());
  const s = new SharedMemory({ size: 64 });
  t.teardown(() => s.close());
  const a = new Int32Array(s.buffer);
  Atomics.store(a, 0, 4321);
  const h = s.handle();
  const holder = shmChild(h, 'holder');
  t.teardown(() => {
    holder.proc.kill('SIGKILL');
  });
  t.same(await nextLine(holder, 'holder ready'), { ready: true }, 'another process attached it before unlink()');

  const first = await outcome(() => s.unlink());
  t.notOk(first.error, `unlink() of a non-persistent segment works${first.error ? `: ${describe(first.error)}` : ''}`);
  t.equal(Atomics.load(a, 0), 4321, 'our mapping still works after unlink()');
  Atomics.store(a, 0, 4322);

  const here = await outcome(() => attach(h));
  t.equal((here.error as Err | undefined)?.code, 'ERR_FORKSAFE_BAD_HANDLE', `attach() here after unlink(): ERR_FORKSAFE_BAD_HANDLE (${describe(here.error)})`);
  t.match((here.error as Error | undefined)?.message ?? '', /unlink/, 'the message says it was unlinked');
  const copy = await outcome(() => attach(keep.handle()));
  t.notOk(copy.error, 'another SharedMemory still attaches');
  (copy.value as SharedMemory | undefined)?.close();

  const fresh = shmChild(h, 'attach');
  const fr = await nextLine(fresh, 'fresh attach');
  t.match(String(fr.attach), /^ERR_FORKSAFE_BAD_HANDLE .*unlink/, `attach() in a new process after unlink(): ERR_FORKSAFE_BAD_HANDLE (${String(fr.attach)})`);

  holder.proc.stdin?.write('go\n');
  const hr = await nextLine(holder, 'holder result');
  t.match(String(hr.attach), /^ERR_FORKSAFE_BAD_HANDLE/, `attach() in a process that maps it: ERR_FORKSAFE_BAD_HANDLE (${String(hr.attach)})`);
  t.equal(hr.value, 4322, "that process's mapping keeps working (it reads our write)");
  t.match(String(hr.unlink), /^ENOENT /, `a second unlink(), from another process: ENOENT (${String(hr.unlink)})`);

  const second = await outcome(() => s.unlink());
  const e2 = second.error as (Err & { errno?: number; syscall?: string }) | undefined;
  t.ok(e2 instanceof Error && e2.code === 'ENOENT' && e2.errno === -2 && typeof e2.syscall === 'string',
    `a second unlink() here throws a system error ENOENT (${describe(second.error)})`);

  // Python's order: close(), then unlink().
  const p = new SharedMemory({ size: 8 });
  const ph = p.handle();
  p.close();
  const afterClose = await outcome(() => p.unlink());
  t.notOk(afterClose.error, `unlink() after close() works (${describe(afterClose.error)})`);
  t.equal(((await outcome(() => p.unlink())).error as Err | undefined)?.code, 'ENOENT', 'and a second one throws ENOENT');
  t.equal(((await outcome(() => attach(ph))).error as Err | undefined)?.code, 'ERR_FORKSAFE_BAD_HANDLE', 'its handle does not attach');

  // A Process handed an unlinked segment: its child cannot attach it.
  const dead = new SharedMemory({ size: 8 });
  t.teardown(() => dead.close());
  dead.unlink();
  const k = new Process({ target: { module: TARGETS, export: 'closeAll' }, args: [dead], stdio: 'pipe' }).start();
  let err = '';
  k.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  k.stdout?.resume();
  const ex = await within(k.exited, 15_000, 'child exit');
  t.not(ex.code, 0, 'a child handed an unlinked segment fails to attach it');
  t.match(err, /ERR_FORKSAFE_BAD_HANDLE|unlinked/, 'with the bad-handle error');

  // Persistent: as before, unlink() removes the name; a second one throws ENOENT.
  const name = `hostile-${process.pid}`;
  t.teardown(() => fs.rmSync(`/dev/shm/forksafe.${name}`, { force: true }));
  const named = new SharedMemory({ size: 64, name, persistent: true });
  t.teardown(() => named.close());
  const nh = named.handle();
  named.unlink();
  t.notOk(fs.existsSync(`/dev/shm/forksafe.${name}`), 'persistent: the name is gone');
  t.throws(() => attach(nh), { code: 'ERR_FORKSAFE_BAD_HANDLE' }, 'persistent: attach() of its handle fails here too');
  const again = new SharedMemory({ size: 64, name, persistent: true }); // the same name, a new segment
  t.throws(() => named.unlink(), { code: 'ENOENT' }, 'persistent: a second unlink() throws ENOENT');
  t.ok(fs.existsSync(`/dev/shm/forksafe.${name}`), "and leaves the new segment's name alone");
  again.unlink();
  again.close();
  new Int32Array(named.buffer)[0] = 1;
  t.equal(new Int32Array(named.buffer)[0], 1, 'persistent: the mapping keeps working');
  await within(new Promise((r) => (fresh.proc.exitCode !== null ? r(null) : fresh.proc.once('exit', r))), 10_000, 'fresh child exit');
});

// ---- §4: an options getter that closes the object --------------------------------

interface Case {
  what: string;
  /** Makes the object and what the call needs (the lock held for a Condition wait...). */
  make(): { obj: { close(): void }; call(opts: object): unknown; cleanup?: () => void };
  /** Allocated inside the getter, right after close(): takes the freed slot. Returns a check of its state. */
  unrelated(): { close(): void; intact(): string | null };
}

const semFresh = (S: typeof Semaphore) => (): { close(): void; intact(): string | null } => {
  const s2 = new S(5);
  return { close: () => s2.close(), intact: () => (s2.value === 5 ? null : `its value is ${s2.value}, not 5`) };
};
const lockFresh = (L: typeof Lock | typeof RLock) => (): { close(): void; intact(): string | null } => {
  const l2 = new L();
  return { close: () => l2.close(), intact: () => (l2.locked() ? 'it is locked' : null) };
};
const eventFresh = (): { close(): void; intact(): string | null } => {
  const e2 = new Event();
  e2.set(); // a wait on the freed slot would return true from it
  const i32 = (e2 as unknown as { _i32: Int32Array; _base: number });
  return {
    close: () => e2.close(),
    intact: () => (Atomics.load(i32._i32, i32._base + 5) === 0 ? null : 'a waiter is registered on it'),
  };
};
const condFresh = (): { close(): void; intact(): string | null } => {
  const c2 = new Condition();
  return { close: () => c2.close(), intact: () => (c2.lock.locked() ? 'its lock is held' : null) };
};
const barrierFresh = (): { close(): void; intact(): string | null } => {
  const b2 = new Barrier(2);
  return { close: () => b2.close(), intact: () => (b2.nWaiting === 0 && !b2.broken ? null : `nWaiting ${b2.nWaiting}, broken ${b2.broken}`) };
};
const shmFresh = (): { close(): void; intact(): string | null } => {
  const m2 = new SharedMemory({ size: 64 });
  return { close: () => m2.close(), intact: () => (new Int32Array(m2.buffer)[0] === 0 ? null : 'its first word changed') };
};

function lockCases(L: typeof Lock | typeof RLock): Case[] {
  const n = L.name;
  const m = (call: (l: Lock | RLock, o: object) => unknown) => () => {
    const l = new L();
    return { obj: l, call: (o: object) => call(l, o) };
  };
  return [
    { what: `${n}.acquire`, make: m((l, o) => l.acquire(o)), unrelated: lockFresh(L) },
    { what: `${n}.lock`, make: m((l, o) => l.lock(o)), unrelated: lockFresh(L) },
    { what: `${n}.acquireAsync`, make: m((l, o) => l.acquireAsync(o)), unrelated: lockFresh(L) },
    { what: `${n}.lockAsync`, make: m((l, o) => l.lockAsync(o)), unrelated: lockFresh(L) },
  ];
}

function semCases(S: typeof Semaphore): Case[] {
  const n = S.name;
  const m = (call: (s: Semaphore, o: object) => unknown) => () => {
    const s = new S(0);
    return { obj: s, call: (o: object) => call(s, o) };
  };
  return [
    { what: `${n}.acquire`, make: m((s, o) => s.acquire(o)), unrelated: semFresh(S) },
    { what: `${n}.acquireAsync`, make: m((s, o) => s.acquireAsync(o)), unrelated: semFresh(S) },
  ];
}

const CASES: Case[] = [
  ...lockCases(Lock),
  ...lockCases(RLock),
  ...semCases(Semaphore),
  ...semCases(BoundedSemaphore),
  ...(['wait', 'waitAsync'] as const).map((fn): Case => ({
    what: `Event.${fn}`,
    make: () => {
      const e = new Event();
      return { obj: e, call: (o: object) => e[fn](o) };
    },
    unrelated: eventFresh,
  })),
  ...([
    ['acquire', (c: Condition, o: object) => c.acquire(o)],
    ['lockGuard', (c: Condition, o: object) => c.lockGuard(o)],
    ['acquireAsync', (c: Condition, o: object) => c.acquireAsync(o)],
    ['wait', (c: Condition, o: object) => c.wait(o)],
    ['waitFor', (c: Condition, o: object) => c.waitFor(() => false, o)],
    ['waitAsync', (c: Condition, o: object) => c.waitAsync(o)],
    ['waitForAsync', (c: Condition, o: object) => c.waitForAsync(() => false, o)],
  ] as const).map(([fn, call]): Case => ({
    what: `Condition.${fn}`,
    make: () => {
      const c = new Condition();
      if (fn.startsWith('wait')) c.acquire(); // waits need the lock
      return { obj: c, call: (o: object) => call(c, o) };
    },
    unrelated: condFresh,
  })),
  ...(['wait', 'waitAsync'] as const).map((fn): Case => ({
    what: `Barrier.${fn}`,
    make: () => {
      const b = new Barrier(2);
      return { obj: b, call: (o: object) => b[fn](o) };
    },
    unrelated: barrierFresh,
  })),
  ...(['wait', 'waitAsync'] as const).map((fn): Case => ({
    what: `SharedMemory.${fn}`,
    make: () => {
      const m = new SharedMemory({ size: 64 });
      return { obj: m, call: (o: object) => m[fn](0, 0, o) };
    },
    unrelated: shmFresh,
  })),
];

t.test('an options getter that closes the object: ClosedError, and a primitive allocated in the getter is untouched', async (t) => {
  const keep = [new Lock(), new Semaphore(1), new Event(), new SharedMemory({ size: 8 })]; // arenas stay mapped
  t.teardown(() => keep.forEach((k) => k.close()));
  for (const c of CASES) {
    const props = c.what.endsWith('Async') ? ['timeout', 'signal'] : ['timeout'];
    for (const prop of props) {
      const { obj, call } = c.make();
      let fresh: { close(): void; intact(): string | null } | null = null;
      const opts = {
        get [prop](): unknown {
          obj.close();
          fresh = c.unrelated();
          return prop === 'timeout' ? 0 : undefined;
        },
      };
      const r = await outcome(() => call(opts));
      t.ok(isClosedError(r.error), `${c.what}({ get ${prop}() { close } }): ClosedError (got ${r.error ? describe(r.error) : `the value ${String(r.value)}`})`);
      const f = fresh as { close(): void; intact(): string | null } | null;
      const bad = f ? f.intact() : 'the getter did not run';
      t.equal(bad, null, `${c.what}: the primitive allocated in the getter is untouched`);
      f?.close();
      obj.close();
    }
  }
  t.ok(await until(() => asyncInternals.stats().threadPending === 0, 5000, 5), 'no async wait left pending');
});

// ---- §4: fake AbortSignals ---------------------------------------------------------

t.test('options.signal must be a real AbortSignal: ERR_INVALID_ARG_TYPE, and no wait is left armed', async (t) => {
  const real = new AbortController().signal;
  const fakes: [string, unknown][] = [
    ['{ aborted: false }', { aborted: false }],
    ['a duck-typed EventTarget', { aborted: false, reason: undefined, addEventListener() {}, removeEventListener() {} }],
    ['Object.create(AbortSignal.prototype)', Object.create(AbortSignal.prototype)],
    ['a Proxy of a real signal', new Proxy(real, {})],
    ['an object inheriting from a real signal', Object.create(real)],
    ['an EventTarget', new EventTarget()],
    ['true', true],
    ['null', null],
  ];
  for (const [what, signal] of fakes) {
    const s = new Semaphore(0);
    const r = await outcome(() => s.acquireAsync({ signal: signal as AbortSignal }));
    const e = r.error as Err | undefined;
    t.ok(e instanceof TypeError && (e as Err).code === 'ERR_INVALID_ARG_TYPE', `Semaphore.acquireAsync({ signal: ${what} }): TypeError ERR_INVALID_ARG_TYPE (${describe(r.error)})`);
    s.release();
    await sleep(20);
    t.equal(s.value, 1, `${what}: no orphaned wait took the unit released afterwards`);
    s.close();
  }
  // Every async method, with the first fake.
  const l = new Lock();
  const e = new Event();
  const c = new Condition();
  const b = new Barrier(2);
  const m = new SharedMemory({ size: 8 });
  t.teardown(() => [l, e, c, b, m].forEach((x) => x.close()));
  const fake = { aborted: false } as unknown as AbortSignal;
  c.acquire();
  const calls: [string, () => Promise<unknown>][] = [
    ['Lock.acquireAsync', () => l.acquireAsync({ signal: fake })],
    ['Lock.lockAsync', () => l.lockAsync({ signal: fake })],
    ['Event.waitAsync', () => e.waitAsync({ signal: fake })],
    ['Condition.waitAsync', () => c.waitAsync({ signal: fake })],
    ['Condition.waitForAsync', () => c.waitForAsync(() => false, { signal: fake })],
    ['Condition.acquireAsync', () => c.acquireAsync({ signal: fake })],
    ['Barrier.waitAsync', () => b.waitAsync({ signal: fake })],
    ['SharedMemory.waitAsync', () => m.waitAsync(0, 0, { signal: fake })],
  ];
  for (const [what, call] of calls) {
    const r = await outcome(call);
    const err = r.error as Err | undefined;
    t.ok(err instanceof TypeError && (err as Err).code === 'ERR_INVALID_ARG_TYPE', `${what}({ signal: fake }): ERR_INVALID_ARG_TYPE (${describe(r.error)})`);
  }
  t.ok(c.lock.isOwned(), 'the condition lock is still held (no wait released it)');
  c.release();
  t.equal(b.nWaiting, 0, 'nobody arrived at the barrier');
  t.notOk(l.locked(), 'the lock was not taken');
  t.ok(await until(() => asyncInternals.stats().threadPending === 0, 2000, 5), 'nothing pending in this thread');

  // A real signal still works, and own properties on it are not what is read.
  const ac = new AbortController();
  let ran = false;
  Object.defineProperty(ac.signal, 'aborted', { get: () => { ran = true; return true; } });
  const s = new Semaphore(0);
  const p = s.acquireAsync({ signal: ac.signal });
  ac.abort(new Error('stop'));
  const r = await outcome(() => p);
  t.equal((r.error as Error | undefined)?.message, 'stop', 'a real signal aborts the wait with its reason');
  t.notOk(ran, "the signal's own 'aborted' property (user code) is not run");
  s.release();
  await sleep(20);
  t.equal(s.value, 1, 'the aborted wait took nothing');
  s.close();
});

// ---- §4: GC of a second object for a held lock -------------------------------------

// References held on a slot: the low word of refgen (slot +8).
function refs(p: unknown): number {
  const x = p as { _i32: Int32Array; _base: number };
  return Atomics.load(x._i32, x._base + 2);
}

async function collect(t: tap.Test, what: string, l: Lock | RLock, before: number): Promise<void> {
  const ok = await until(() => {
    (globalThis as { gc?: () => void }).gc?.();
    return refs(l) === before;
  }, 10_000, 20);
  t.ok(ok, `${what}: the copy was collected and gave its reference back (${refs(l)} refs)`);
}

t.test('collecting or closing a second object for a lock this thread holds does not abandon it', async (t) => {
  t.ok(typeof (globalThis as { gc?: unknown }).gc === 'function', 'tap runs with --expose-gc');
  for (const L of [Lock, RLock]) {
    const n = L.name;
    const l = new L();
    l.acquire();
    const before = refs(l);
    (() => attach(l.handle()))(); // dropped at once, never closed
    await collect(t, n, l, before);
    t.ok(l.isOwned(), `${n}: still owned by this thread after the copy was collected`);
    const again = attach<Lock | RLock>(l.handle());
    t.ok(again.isOwned(), `${n}: a new copy sees it owned`);
    again.close();
    t.ok(l.isOwned(), `${n}: still owned after closing a copy`);
    l.release();
    t.notOk(l.locked(), `${n}: released normally`);
    t.equal(l.acquire({ timeout: 0 }), true, `${n}: the next acquire is a plain one (no OwnerDiedError)`);
    l.release();
    l.close();
  }
  // Condition: its own lock object plus a copy of the lock.
  const c = new Condition();
  c.acquire();
  const before = refs(c.lock);
  (() => attach(c.lock.handle()))();
  await collect(t, 'Condition lock', c.lock, before);
  t.ok(c.lock.isOwned(), "Condition: its lock is still owned after a copy was collected");
  c.release();
  c.close();
});

t.test('the last object of this thread for a held lock still abandons it when closed', async (t) => {
  const l = new Lock();
  const h = l.handle();
  const copy = attach<Lock>(h);
  l.acquire();
  copy.close();
  t.ok(l.isOwned(), 'one of two objects closed: the lock is still held');
  const w = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const f = require(workerData.dist);
    const l = f.attach(workerData.h); // holds a reference: the slot outlives the main thread's objects
    parentPort.postMessage('ready');
    parentPort.once('message', () => {
      let r;
      try { r = 'acquired ' + l.acquire({ timeout: 5000 }); } catch (e) { r = e.code; }
      l.close();
      parentPort.postMessage(r);
    });
  `, { eval: true, workerData: { dist: DIST, h } });
  t.teardown(() => w.terminate());
  await within(new Promise((res) => w.once('message', res)), 10_000, 'worker ready');
  const got = new Promise((res) => w.once('message', res));
  l.close(); // the thread's last object: the lock is abandoned
  w.postMessage('go');
  t.equal(await within(got, 10_000, 'worker acquire'), 'ERR_FORKSAFE_OWNER_DIED', 'the next acquirer gets OwnerDiedError');
});

// ---- §4: timeouts the kernel cannot express ----------------------------------------

const HUGE_WORKER = `
  const { parentPort, workerData } = require('node:worker_threads');
  const f = require(workerData.dist);
  const o = {};
  for (const k of Object.keys(workerData.handles)) o[k] = f.attach(workerData.handles[k]);
  const H = workerData.huge;
  const run = (name, fn) => {
    parentPort.postMessage({ waiting: name });
    try {
      parentPort.postMessage({ name, result: fn() });
    } catch (e) {
      parentPort.postMessage({ name, error: e.code + ' ' + e.message });
    }
  };
  run('Event.wait', () => o.event.wait({ timeout: H }));
  run('Semaphore.acquire', () => o.sem.acquire({ timeout: H }));
  run('SharedMemory.wait', () => o.shm.wait(0, 0, { timeout: H }));
  run('Lock.acquire', () => { const r = o.lock.acquire({ timeout: H }); o.lock.release(); return r; });
  run('Condition.wait', () => { o.cond.acquire(); try { return o.cond.wait({ timeout: H }); } finally { o.cond.release(); } });
  run('Barrier.wait', () => o.barrier.wait({ timeout: H }) >= 0);
  for (const k of Object.keys(o)) o[k].close();
  parentPort.postMessage({ done: true });
`;

t.test('a huge finite timeout (1e22 ms) waits like Infinity: synchronous waits in a worker', async (t) => {
  const event = new Event();
  const sem = new Semaphore(0);
  const shm = new SharedMemory({ size: 64 });
  const lock = new Lock();
  const cond = new Condition();
  const barrier = new Barrier(2);
  const all = { event, sem, shm, lock, cond, barrier };
  t.teardown(() => Object.values(all).forEach((x) => x.close()));
  lock.acquire(); // released once the worker waits for it
  const handles = Object.fromEntries(Object.entries(all).map(([k, v]) => [k, v.handle()]));
  const w = new Worker(HUGE_WORKER, { eval: true, workerData: { dist: DIST, handles, huge: HUGE } });
  t.teardown(() => w.terminate());
  const results: Record<string, { result?: unknown; error?: string }> = {};
  const done = new Promise<void>((resolve, reject) => {
    w.on('error', reject);
    w.on('message', (msg: { waiting?: string; name?: string; result?: unknown; error?: string; done?: boolean }) => {
      if (msg.done) return resolve();
      if (msg.name) {
        results[msg.name] = msg;
        return;
      }
      const name = msg.waiting as string;
      // Satisfy the wait ~100 ms after the worker started it; repeat what a
      // wait that started late would miss (notifications are not kept).
      void (async () => {
        await sleep(100);
        if (name === 'Event.wait') event.set();
        else if (name === 'Semaphore.acquire') sem.release();
        else if (name === 'Lock.acquire') lock.release();
        else if (name === 'Barrier.wait') barrier.wait({ timeout: 10_000 });
        else {
          while (!results[name]) {
            if (name === 'SharedMemory.wait') shm.notify(0);
            else if (cond.acquire({ timeout: 1000 })) {
              cond.notifyAll();
              cond.release();
            }
            await sleep(20);
          }
        }
      })().catch(reject);
    });
  });
  await within(done, 30_000, 'the worker');
  for (const [name, want] of [['Event.wait', true], ['Semaphore.acquire', true], ['SharedMemory.wait', 'ok'],
    ['Lock.acquire', true], ['Condition.wait', true], ['Barrier.wait', true]] as const) {
    const r = results[name];
    t.notOk(r?.error, `${name}({ timeout: 1e22 }) does not throw${r?.error ? `: ${r.error}` : ''}`);
    t.equal(r?.result, want, `${name}({ timeout: 1e22 }) returns ${String(want)} once satisfied`);
  }
});

t.test('a huge finite timeout (1e22 ms) in async waits: satisfied, and no waiter thread spins', async (t) => {
  const e = new Event();
  const m = new SharedMemory({ size: 64 });
  const s = new Semaphore(0);
  t.teardown(() => [e, m, s].forEach((x) => x.close()));
  t.equal(asyncInternals.stats().threadPending, 0, 'no other async wait pending (its deadline would hide the bug)');
  const pe = e.waitAsync({ timeout: HUGE });
  const pm = m.waitAsync(0, 0, { timeout: HUGE });
  await sleep(50); // the waiter thread has them
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(600);
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - t0;
  const ms = (cpu.user + cpu.system) / 1000;
  t.ok(ms < 120, `process CPU time while 2 huge-timeout waits were pending: ${ms.toFixed(1)} ms in ${wall.toFixed(0)} ms (< 120: no thread spins)`);
  e.set();
  m.notify(0);
  const [re, rm] = await within(Promise.allSettled([pe, pm]), 10_000, 'async waits');
  t.same(re, { status: 'fulfilled', value: true }, 'Event.waitAsync resolved true');
  t.same(rm, { status: 'fulfilled', value: 'ok' }, "SharedMemory.waitAsync resolved 'ok'");
  const ps = s.acquireAsync({ timeout: HUGE });
  await sleep(100);
  s.release();
  t.same(await within(Promise.allSettled([ps]), 10_000, 'semaphore wait'), [{ status: 'fulfilled', value: true }],
    'Semaphore.acquireAsync resolved true');
  t.equal((await outcome(() => e.wait({ timeout: Number.MAX_VALUE }))).value, true, 'Number.MAX_VALUE is a valid timeout too');
});

// ---- §4: foreign `this` -------------------------------------------------------------

const CLASSES = [
  ['Lock', Lock], ['RLock', RLock], ['Semaphore', Semaphore], ['BoundedSemaphore', BoundedSemaphore],
  ['Event', Event], ['Condition', Condition], ['Barrier', Barrier], ['SharedMemory', SharedMemory],
] as const;

/** Public members (methods and getters) of C's prototype chain, and the prototype that defines each. */
function members(C: { prototype: object }): { key: string | symbol; owner: object; get: boolean }[] {
  const out: { key: string | symbol; owner: object; get: boolean }[] = [];
  const seen = new Set<string | symbol>();
  for (let p: object | null = C.prototype; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const key of Reflect.ownKeys(p)) {
      if (key === 'constructor' || (typeof key === 'string' && key.startsWith('_')) || seen.has(key)) continue;
      seen.add(key);
      const d = Object.getOwnPropertyDescriptor(p, key) as PropertyDescriptor;
      if (d.get) out.push({ key, owner: p, get: true });
      else if (typeof d.value === 'function') out.push({ key, owner: p, get: false });
    }
  }
  return out;
}

t.test('methods and getters called on a foreign `this` throw TypeError ERR_INVALID_THIS', async (t) => {
  const other = { Lock: new Semaphore(1), RLock: new Event(), Semaphore: new Lock(), BoundedSemaphore: new Event(),
    Event: new Semaphore(1), Condition: new Lock(), Barrier: new Event(), SharedMemory: new Lock() } as Record<string, { close(): void }>;
  t.teardown(() => Object.values(other).forEach((x) => x.close()));
  const PRIMITIVE_PROTO = Object.getPrototypeOf(Object.getPrototypeOf(Event.prototype)) as object; // Primitive.prototype
  let count = 0;
  for (const [name, C] of CLASSES) {
    const list = members(C);
    t.ok(list.length > 3, `${name}: ${list.length} public members`);
    for (const m of list) {
      const thisValues: [string, unknown][] = [['{}', {}], ['undefined', undefined], ['5', 5], [`Object.create(${name}.prototype)`, Object.create(C.prototype)]];
      // Another kind of primitive: only for members not shared by every primitive (close(), closed, ...).
      if (m.owner !== PRIMITIVE_PROTO) thisValues.push([`a ${other[name].constructor.name}`, other[name]]);
      for (const [tw, self] of thisValues) {
        const d = Object.getOwnPropertyDescriptor(m.owner, m.key) as PropertyDescriptor;
        const fn = (m.get ? d.get : d.value) as (...a: unknown[]) => unknown;
        const args = m.key === 'waitFor' || m.key === 'waitForAsync' ? [() => true] : m.key === 'wait' && name === 'SharedMemory' ? [0, 1] : [];
        const r = await outcome(() => fn.apply(self, args));
        const e = r.error as Err | undefined;
        count++;
        const label = `${name}.prototype.${String(m.key)}${m.get ? ' (getter)' : ''} on ${tw}`;
        if (!(e instanceof TypeError && (e as Err).code === 'ERR_INVALID_THIS')) t.fail(`${label}: ERR_INVALID_THIS`, { got: r.error ? describe(r.error) : `returned ${String(r.value)}` });
      }
    }
  }
  t.ok(count > 200, `${count} calls with a foreign this, every one ERR_INVALID_THIS unless reported above`);
  // Nothing was written through a foreign `this`: the primitives used as one are intact.
  t.equal((other.Lock as Semaphore).value, 1, 'the Semaphore used as a Lock keeps its value');
  t.notOk((other.Event as Semaphore).value !== 1, 'the Semaphore used as an Event keeps its value');
  t.notOk((other.RLock as Event).isSet(), 'the Event used as an RLock is not set');
  t.notOk((other.Semaphore as Lock).locked(), 'the Lock used as a Semaphore is not locked');
  const probe = new Lock();
  t.equal(probe.acquire({ timeout: 0 }), true, 'the arenas still work');
  probe.close();
});

t.test('Process, the fork context\'s Process and ForkedChild on a foreign `this`: ERR_INVALID_THIS', async (t) => {
  const { ForkedChild } = await import('../dist/index.js');
  const classes: Array<[string, { prototype: object }]> = [
    ['spawn Process', getContext('spawn').Process], ['forkserver Process', getContext('forkserver').Process],
    ['fork Process', getContext('fork').Process], ['ForkedChild', ForkedChild],
  ];
  for (const [name, C] of classes) {
    const list = members(C);
    t.ok(list.length >= 4, `${name}: ${list.length} public members`);
    for (const m of list) {
      for (const [tw, self] of [['{}', {}], ['undefined', undefined], [`Object.create(${name}.prototype)`, Object.create(C.prototype)]] as const) {
        const d = Object.getOwnPropertyDescriptor(m.owner, m.key) as PropertyDescriptor;
        const fn = (m.get ? d.get : d.value) as (...a: unknown[]) => unknown;
        const r = await outcome(() => fn.apply(self, []));
        const e = r.error as Err | undefined;
        t.ok(e instanceof TypeError && (e as Err).code === 'ERR_INVALID_THIS', `${name}.prototype.${String(m.key)}${m.get ? ' (getter)' : ''} on ${tw}: ERR_INVALID_THIS`,
          { got: r.error ? describe(r.error) : `returned ${String(r.value)}` });
      }
    }
  }
});

t.test('attach() reads a handle once: getters that change their answer cannot steer it', async (t) => {
  const l = new Lock();
  t.teardown(() => l.close());
  const h = l.handle() as unknown as Record<string, unknown>;
  let reads = 0;
  const shifty = { ...h, get type() { return ++reads <= 2 ? 'Lock' : 'toString'; } };
  const r = await outcome(() => attach<Lock>(shifty));
  const got = r.value as Lock | undefined;
  t.notOk(r.error, `a handle with a shifting getter attaches what it first said (${r.error ? describe(r.error) : 'ok'})`);
  t.equal(reads, 1, 'its getter was read once');
  if (got) {
    t.ok(got instanceof Lock, 'a Lock');
    got.close();
  }
  const thrower = { ...h, get segment() { throw new Error('no'); } };
  t.equal(((await outcome(() => attach(thrower))).error as Err | undefined)?.code, 'ERR_FORKSAFE_BAD_HANDLE', 'a getter that throws: ERR_FORKSAFE_BAD_HANDLE');
  const px = new Proxy(h, {});
  const rp = await outcome(() => attach<Lock>(px));
  t.ok(rp.value instanceof Lock || (rp.error as Err | undefined)?.code === 'ERR_FORKSAFE_BAD_HANDLE', 'a Proxy of a handle: attached from its data, or ERR_FORKSAFE_BAD_HANDLE');
  (rp.value as Lock | undefined)?.close();
});

// ---- §4: Process args that cannot be cloned ------------------------------------------

t.test('a Process arg that cannot be cloned: coded TypeError naming its index, nothing spawned', async (t) => {
  const values: [string, unknown][] = [
    ['a function', () => 1],
    ['a SharedArrayBuffer', new SharedArrayBuffer(8)],
    ['a symbol', Symbol('s')],
    ['an object holding a function', { f: () => 1 }],
    ['a WeakMap', new WeakMap()],
  ];
  for (const ctxName of ['spawn', 'forkserver'] as const) {
    const P = getContext(ctxName).Process;
    for (const [what, v] of values) {
      const before = children();
      const p = new P({ target: { module: TARGETS, export: 'exitWith' }, args: [1, v] });
      const r = await outcome(() => p.start());
      const e = r.error as Err | undefined;
      t.ok(e instanceof TypeError && (e as Err).code === 'ERR_INVALID_ARG_TYPE', `${ctxName}: start() with ${what}: TypeError ERR_INVALID_ARG_TYPE (${describe(r.error)})`);
      t.match(e?.message ?? '', /options\.args\[1\]/, `${ctxName}: the message names options.args[1]`);
      t.equal(p.pid, null, `${ctxName}: no pid`);
      t.equal(children(), before, `${ctxName}: no child process was spawned`);
    }
  }
  // 'fork': args pass by reference (the child has a copy of the heap); a function arg is fine.
  const F = getContext('fork').Process;
  t.doesNotThrow(() => new F({ target: (f: () => number) => f(), args: [() => 1] }), "'fork': a function arg is accepted");
});

// ---- a small randomized fuzz ---------------------------------------------------------

let seed = 0x5eed;
function rnd(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let x = seed;
  x = Math.imul(x ^ (x >>> 15), x | 1);
  x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
  return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)];

const SENTINEL = new Error('thrown by a fuzz getter');
const SHM_VALUE = 777; // every SharedMemory word holds it: waits on another value return at once

t.test('randomized hostile calls: every outcome is a return or a coded error', async (t) => {
  type Obj = Record<string, unknown> & { close(): void; closed: boolean };
  const makers: Record<string, () => Obj> = {
    lock: () => new Lock() as unknown as Obj,
    rlock: () => new RLock() as unknown as Obj,
    sem: () => new Semaphore(1000) as unknown as Obj,
    bsem: () => new BoundedSemaphore(1000) as unknown as Obj,
    event: () => new Event() as unknown as Obj,
    cond: () => new Condition() as unknown as Obj,
    barrier: () => new Barrier(1) as unknown as Obj,
    shm: () => new SharedMemory({ size: 64 }) as unknown as Obj,
  };
  const objs: Record<string, Obj> = {};
  // The state every call starts from, so that no call can block for long:
  // the event set, units available, barrier of 1 party, condition lock free,
  // SharedMemory words holding SHM_VALUE (never among the values tried).
  const reset = (): void => {
    for (const [k, make] of Object.entries(makers)) if (!objs[k] || objs[k].closed) objs[k] = make();
    (objs.event as unknown as Event).set();
    for (const k of ['sem', 'bsem']) {
      const s = objs[k] as unknown as Semaphore;
      if (s.value < 10) s.release(10);
    }
    const b = objs.barrier as unknown as Barrier;
    if (b.broken) b.reset();
    const c = objs.cond as unknown as Condition;
    while (c.lock.isOwned()) c.lock.release();
    new Int32Array((objs.shm as unknown as SharedMemory).buffer).fill(SHM_VALUE);
  };
  const canary = { sem: new Semaphore(3), lock: new Lock(), event: new Event(), shm: new SharedMemory({ size: 64 }) };
  t.teardown(() => Object.values(canary).forEach((x) => x.close()));
  const values = (depth: number): unknown => {
    const simple = [undefined, null, 0, -0, 1, -1, 2, 0.5, NaN, Infinity, -Infinity, 2 ** 31, 2 ** 32, -(2 ** 31),
      Number.MAX_SAFE_INTEGER, Number.MAX_VALUE, 1e22, -1e22, '', '1', 'x', true, false, 10n, Symbol('v'), [], [1], {}];
    const r = rnd();
    if (depth > 1 || r < 0.55) return pick(simple);
    if (r < 0.7) return pick([() => true, () => false, () => { throw SENTINEL; }]);
    if (r < 0.8) {
      return new Proxy({}, {
        get: () => values(depth + 1),
        has: () => rnd() < 0.5,
        getPrototypeOf: () => (rnd() < 0.5 ? Object.prototype : null),
      });
    }
    const target = pick(Object.values(objs));
    return {
      get timeout(): unknown {
        const k = rnd();
        if (k < 0.25) throw SENTINEL;
        if (k < 0.5) target.close();
        return values(depth + 1);
      },
      get signal(): unknown {
        if (rnd() < 0.3) target.close();
        return pick([undefined, { aborted: false }, new AbortController().signal, AbortSignal.abort()]);
      },
    };
  };
  const pending: Promise<unknown>[] = [];
  const bad: string[] = [];
  const tally = { returned: 0, coded: 0, sentinel: 0 };
  const judge = (what: string, e: unknown): void => {
    tally.returned--; // counted as returned below, until it threw
    if (e === SENTINEL) return void tally.sentinel++;
    if (e instanceof DOMException && e.name === 'AbortError') return void tally.coded++; // an aborted signal's own reason
    if (e instanceof Error && typeof (e as Err).code === 'string') return void tally.coded++;
    if (bad.length < 20) bad.push(`${what}: ${describe(e)}`);
  };
  let calls = 0;
  const N = 3000;
  for (let i = 0; i < N; i++) {
    reset();
    const key = pick(Object.keys(objs));
    const obj = objs[key];
    const names = members(obj.constructor as { prototype: object }).map((m) => m.key);
    const name = pick(names);
    const args = Array.from({ length: Math.floor(rnd() * 4) }, () => values(0));
    const self = rnd() < 0.05 ? pick([{}, undefined, pick(Object.values(objs))]) : obj;
    const what = `${key}.${String(name)}(${args.map((a) => typeof a).join(', ')})`;
    calls++;
    tally.returned++;
    try {
      let owner: object | null = obj;
      let d: PropertyDescriptor | undefined;
      while (owner && !(d = Object.getOwnPropertyDescriptor(owner, name))) owner = Object.getPrototypeOf(owner);
      const r = d?.get ? d.get.call(self) : (d?.value as (...a: unknown[]) => unknown).apply(self, args);
      if (r instanceof Promise) pending.push(r.then(() => {}, (e) => judge(what, e)));
    } catch (e) {
      judge(what, e);
    }
    if (i % 200 === 0) await sleep(0); // let completions run
  }
  for (const o of Object.values(objs)) {
    const c = o as unknown as Condition;
    if (c instanceof Condition) while (c.lock.isOwned()) c.lock.release();
    o.close(); // pending waits reject with ClosedError
  }
  await within(Promise.all(pending), 20_000, 'pending async calls');
  t.equal(calls, N, `${N} hostile calls made: ${tally.returned} returned (or resolved), ${tally.coded} coded errors, ${tally.sentinel} getter throws`);
  t.same(bad, [], 'no call threw an uncoded error');
  t.equal(canary.sem.value, 3, 'an unrelated Semaphore kept its value');
  t.notOk(canary.lock.locked(), 'an unrelated Lock is not locked');
  t.notOk(canary.event.isSet(), 'an unrelated Event is not set');
  t.equal(new Int32Array(canary.shm.buffer).some((x) => x !== 0), false, 'an unrelated SharedMemory is untouched');
  t.ok(await until(() => asyncInternals.stats().threadPending === 0, 5000, 5), 'no async wait left pending');
});
