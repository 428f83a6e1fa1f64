// Handles: handle() -> JSON -> attach() for every type, in this thread, in a
// worker_thread and in other processes; forged, stale and orphaned handles
// are refused with ERR_FORKSAFE_BAD_HANDLE (or ContextError), never a crash;
// garbage fed to the internal binding never crashes the process.
import t from 'tap';
import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  attach, ForksafeError, getContext, OwnerDiedError,
} from '../dist/index.js';
import { Barrier, BoundedSemaphore, Condition, Event, Lock, Process, RLock, Semaphore, SharedMemory } from './lib/spawn';

const ROOT = path.join(__dirname, '..');
const DIST = path.join(ROOT, 'dist', 'index.js');
const fixture = (name: string) => path.join(ROOT, 'build', 'fixtures', `${name}.js`);
const TARGETS = fixture('misc-targets');

type Prim = Lock | RLock | Semaphore | BoundedSemaphore | Event | Condition | Barrier | SharedMemory;
type H = Record<string, unknown> & { segment: Record<string, unknown> };

interface Ran {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

// Runs `node <args>` to completion (SIGKILL after `timeout` ms); always reaped.
function run(args: string[], opts: { input?: string; timeout?: number; env?: Record<string, string> } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    const child = cp.spawn(process.execPath, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeout ?? 20_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

function lastLines(s: string, n: number): string {
  return s.trimEnd().split('\n').slice(-n).join('\n');
}

function isBadHandle(e: unknown): boolean {
  return e instanceof ForksafeError && (e as ForksafeError).code === 'ERR_FORKSAFE_BAD_HANDLE';
}

function describeErr(e: unknown): string {
  const err = e as Error & { code?: string };
  return `${err?.constructor?.name} ${err?.code}: ${err?.message}`;
}

// Asserts that attach(h) throws ERR_FORKSAFE_BAD_HANDLE.
function refuses(t: tap.Test, h: unknown, what: string): void {
  try {
    const o = attach<{ close(): void }>(h);
    o.close();
    t.fail(`${what}: attach() accepted it`);
  } catch (e) {
    t.ok(isBadHandle(e), `${what}: ERR_FORKSAFE_BAD_HANDLE`, { got: describeErr(e) });
  }
}

// Every primitive type of a context, with a check that two objects are the
// same primitive (a change through one is seen through the other).
interface Kind {
  name: string;
  make(): Prim;
  linked(a: Prim, b: Prim): string | null;
}

function kinds(ctx: ReturnType<typeof getContext>): Kind[] {
  const lockLinked = (a: Prim, b: Prim) => {
    const x = a as Lock;
    const y = b as Lock;
    if (!x.acquire({ timeout: 0 })) return 'acquire failed';
    if (!y.locked() || !y.isOwned()) return 'held through one object, not seen through the other';
    y.release();
    return x.locked() ? 'released through one object, still held through the other' : null;
  };
  const semLinked = (a: Prim, b: Prim) => {
    const x = a as Semaphore;
    const y = b as Semaphore;
    const v = y.value;
    if (!x.acquire({ timeout: 0 })) return 'acquire failed';
    if (y.value !== v - 1) return `value ${y.value} after an acquire, expected ${v - 1}`;
    y.release();
    return x.value === v ? null : `value ${x.value} after the release, expected ${v}`;
  };
  return [
    { name: 'Lock', make: () => new ctx.Lock(), linked: lockLinked },
    { name: 'RLock', make: () => new ctx.RLock(), linked: lockLinked },
    { name: 'Semaphore', make: () => new ctx.Semaphore(3), linked: semLinked },
    { name: 'Semaphore undoOnExit', make: () => new ctx.Semaphore(3, { undoOnExit: true }), linked: semLinked },
    { name: 'BoundedSemaphore', make: () => new ctx.BoundedSemaphore(2), linked: semLinked },
    {
      name: 'Event',
      make: () => new ctx.Event(),
      linked: (a, b) => {
        (a as Event).set();
        if (!(b as Event).isSet()) return 'set() not seen';
        (b as Event).clear();
        return (a as Event).isSet() ? 'clear() not seen' : null;
      },
    },
    {
      name: 'Condition',
      make: () => new ctx.Condition(),
      linked: (a, b) => {
        const x = a as Condition;
        const y = b as Condition;
        if (!x.acquire({ timeout: 0 })) return 'acquire failed';
        if (!y.lock.isOwned()) return 'its lock, held through one object, is not seen held through the other';
        y.notifyAll();
        y.release();
        return x.lock.locked() ? 'released through one, still held through the other' : null;
      },
    },
    {
      name: 'Condition(Lock)',
      make: () => new ctx.Condition(new ctx.Lock()),
      linked: (a, b) => ((a as Condition).lock.constructor === (b as Condition).lock.constructor ? null : 'lock class differs'),
    },
    {
      name: 'Barrier',
      make: () => new ctx.Barrier(1),
      linked: (a, b) => {
        if ((b as Barrier).parties !== (a as Barrier).parties) return 'parties differ';
        (a as Barrier).abort();
        if (!(b as Barrier).broken) return 'abort() not seen';
        (b as Barrier).reset();
        return (b as Barrier).wait({ timeout: 1000 }) === 0 ? null : 'wait() of a 1-party barrier did not return 0';
      },
    },
    {
      name: 'SharedMemory',
      make: () => new ctx.SharedMemory({ size: 1000 }),
      linked: (a, b) => {
        const x = a as SharedMemory;
        const y = b as SharedMemory;
        if (x.size !== y.size) return `size ${y.size} vs ${x.size}`;
        new Uint8Array(x.buffer)[999] = 0xab;
        return new Uint8Array(y.buffer)[999] === 0xab ? null : 'a byte written through one buffer is not seen through the other';
      },
    },
  ];
}

t.test('handle() round trips through JSON for every type, in both contexts', async (t) => {
  for (const method of ['spawn', 'fork'] as const) {
    const ctx = getContext(method);
    for (const k of kinds(ctx)) {
      const p = k.make();
      const h = p.handle() as unknown as H;
      const text = JSON.stringify(h);
      t.same(JSON.parse(text), h, `${method} ${k.name}: the handle survives JSON unchanged`);
      t.equal(h.context, method, `${method} ${k.name}: the handle names its context`);
      for (const [form, input] of [['object', JSON.parse(text)], ['JSON string', text]] as const) {
        let q: Prim;
        try {
          q = attach<Prim>(input);
        } catch (e) {
          t.fail(`${method} ${k.name}: attach(${form}) threw ${describeErr(e)}`);
          continue;
        }
        t.equal(q.constructor, p.constructor, `${method} ${k.name}: attach(${form}) gives the same class`);
        t.equal(q.context.method, method, `${method} ${k.name}: attached object keeps the context`);
        t.same(q.handle(), h, `${method} ${k.name}: the attached object's handle is the same`);
        t.equal(k.linked(p, q), null, `${method} ${k.name}: attach(${form}) gives the same primitive`);
        q.close();
        t.notOk(p.closed, `${method} ${k.name}: closing the attached copy leaves the original open`);
      }
      p.close();
    }
  }
});

t.test('persistent SharedMemory: its handle attaches, and SharedMemory.open(name) works', async (t) => {
  const name = `hdl-${process.pid}`;
  const s = new SharedMemory({ size: 256, name, persistent: true });
  t.teardown(() => {
    try {
      s.unlink();
    } catch {
      /* already */
    }
    s.close();
  });
  new Uint8Array(s.buffer)[0] = 42;
  const h = s.handle();
  for (const [what, get] of [
    ['attach(handle)', () => attach<SharedMemory>(JSON.parse(JSON.stringify(h)))],
    ['SharedMemory.open(name)', () => SharedMemory.open(name)],
  ] as const) {
    try {
      const o = get();
      t.equal(new Uint8Array(o.buffer)[0], 42, `${what}: same bytes`);
      t.equal(o.name, name, `${what}: same name`);
      o.close();
    } catch (e) {
      t.fail(`LIBRARY BUG: ${what} of a persistent SharedMemory throws (${describeErr(e)}); handle: ${JSON.stringify(h)}`);
    }
  }
});

t.test('attach in a worker_thread (both contexts) shares state with this thread', async (t) => {
  for (const method of ['spawn', 'fork'] as const) {
    const ctx = getContext(method);
    const p = {
      lock: new ctx.Lock(),
      sem: new ctx.Semaphore(0),
      event: new ctx.Event(),
      cond: new ctx.Condition(),
      barrier: new ctx.Barrier(2),
      shm: new ctx.SharedMemory({ size: 64 }),
    };
    t.teardown(() => Object.values(p).forEach((x) => x.close()));
    p.lock.acquire();
    const handles = Object.fromEntries(Object.entries(p).map(([k, v]) => [k, JSON.stringify(v.handle())]));
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      const f = require(workerData.dist);
      const problems = [];
      const o = {};
      for (const k of Object.keys(workerData.handles)) {
        try { o[k] = f.attach(workerData.handles[k]); } catch (e) { problems.push(k + ': attach threw ' + e.stack); }
      }
      if (o.lock) {
        if (!o.lock.locked()) problems.push('lock: held by the main thread, not seen locked');
        if (o.lock.isOwned()) problems.push('lock: the worker thinks it owns it');
        if (o.lock.acquire({ timeout: 0 })) problems.push('lock: acquired while the main thread holds it');
      }
      if (o.sem) o.sem.release(2);
      if (o.event) o.event.set();
      if (o.shm) new Int32Array(o.shm.buffer)[3] = 1234;
      if (o.cond) { o.cond.acquire(); o.cond.notifyAll(); o.cond.release(); }
      parentPort.postMessage({ ready: true });
      if (o.barrier) { try { o.barrier.wait({ timeout: 10000 }); } catch (e) { problems.push('barrier: ' + e.message); } }
      for (const k of Object.keys(o)) o[k].close();
      parentPort.postMessage({ problems });
    `;
    const w = new Worker(code, { eval: true, workerData: { dist: DIST, handles } });
    const result = await new Promise<{ problems: string[] } | string>((resolve) => {
      const timer = setTimeout(() => resolve('timed out'), 15_000);
      w.on('message', (m: { ready?: boolean; problems?: string[] }) => {
        if (m.ready) {
          // The worker now waits at the barrier: meet it there.
          try {
            p.barrier.wait({ timeout: 10_000 });
          } catch (e) {
            resolve(`main thread barrier wait: ${describeErr(e)}`);
          }
          return;
        }
        clearTimeout(timer);
        resolve(m as { problems: string[] });
      });
      w.on('error', (e) => resolve(`worker error: ${e.stack}`));
    });
    await w.terminate();
    if (typeof result === 'string') {
      t.fail(`${method}: ${result}`);
      continue;
    }
    t.same(result.problems, [], `${method}: the worker attached every handle and saw this thread's state`);
    t.equal(p.sem.value, 2, `${method}: the worker's sem.release(2) is seen here`);
    t.ok(p.event.isSet(), `${method}: the worker's event.set() is seen here`);
    t.equal(new Int32Array(p.shm.buffer)[3], 1234, `${method}: the worker's write to shared memory is seen here`);
    t.ok(p.lock.isOwned(), `${method}: the lock is still held by this thread`);
    p.lock.release();
  }
});

t.test('attach in another process: primitives in Process args, and JSON handles attached by hand', async (t) => {
  const prims = {
    lock: new Lock(),
    rlock: new RLock(),
    sem: new Semaphore(1),
    bsem: new BoundedSemaphore(2),
    event: new Event(),
    cond: new Condition(),
    shm: new SharedMemory({ size: 32 }),
    barrier: new Barrier(2), // last: the child waits there after the others
  };
  const out = new SharedMemory({ size: 8 });
  t.teardown(() => {
    Object.values(prims).forEach((x) => x.close());
    out.close();
  });
  prims.bsem.acquire();
  const json = Object.fromEntries(Object.entries(prims).map(([k, v]) => [k, JSON.stringify(v.handle())]));
  const child = new Process({
    target: { module: TARGETS, export: 'checkHandles' }, args: [prims, json, out], stdio: 'pipe', execArgv: [],
  }).start();
  let stderr = '';
  child.stdout?.resume();
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await child.exited;
  });
  let met = false;
  try {
    met = prims.barrier.wait({ timeout: 15_000 }) >= 0;
  } catch (e) {
    t.fail(`the child never reached the barrier: ${describeErr(e)}; stderr: ${stderr}`);
  }
  t.ok(met, 'met the child at the Barrier');
  t.ok(child.join({ timeout: 15_000 }), 'the child exits');
  const exit = await child.exited;
  t.same(exit, { code: 0, signal: null }, 'checks in the child passed', { stderr });
  t.equal(Atomics.load(new Int32Array(out.buffer), 0), 1, 'the child reported success through SharedMemory');
  t.equal(prims.sem.value, 2, "the child's Semaphore.release() is seen");
  t.equal(prims.bsem.value, 2, "the child's BoundedSemaphore.release() is seen");
  t.ok(prims.event.isSet(), "the child's Event.set() is seen");
  t.equal(new Uint8Array(prims.shm.buffer)[0], 0x5a, "the child's SharedMemory write is seen");
  for (const k of ['lock', 'rlock'] as const) {
    // The child left it held and exited: the next acquirer gets OwnerDiedError.
    try {
      prims[k].acquire({ timeout: 5000 });
      t.fail(`${k}: acquire after the holder exited should throw OwnerDiedError`);
    } catch (e) {
      t.ok(e instanceof OwnerDiedError, `${k}: left held by the child: OwnerDiedError here`, { got: describeErr(e) });
      t.equal((e as OwnerDiedError).pid, child.pid, `${k}: OwnerDiedError names the child`);
      prims[k].markConsistent();
      prims[k].release();
    }
  }
  t.ok(prims.cond.acquire({ timeout: 1000 }), 'the Condition lock was released by the child');
  prims.cond.release();
});

t.test('stale handles: after every holder closed the primitive, attach() refuses the old handle', async (t) => {
  const keeper = new Lock(); // keeps the arena mapped, so only the slot is stale
  t.teardown(() => keeper.close());
  for (const k of kinds(getContext('spawn'))) {
    const p = k.make();
    const h = JSON.parse(JSON.stringify(p.handle()));
    const copy = attach<Prim>(h);
    copy.close();
    t.equal(k.linked(p, p), null, `${k.name}: still usable after an attached copy closed`);
    p.close();
    refuses(t, h, `${k.name} closed by its only holder`);
  }
  // Freed slot reused by a new primitive: the generation differs.
  const a = new Lock();
  const ha = a.handle();
  a.close();
  const b = new Lock();
  t.equal(b.handle().offset, ha.offset, 'the freed slot was reused');
  refuses(t, ha, 'Lock whose slot now holds another Lock');
  b.close();

  // Across processes: the child got it through Process args and closed it too.
  const c = new Lock();
  const ev = new Event();
  const hc = c.handle();
  const he = ev.handle();
  const child = new Process({ target: { module: TARGETS, export: 'closeAll' }, args: [c, ev], execArgv: [] }).start();
  t.ok(child.join({ timeout: 15_000 }), 'the child that closed its copies exited');
  t.same(await child.exited, { code: 0, signal: null }, 'closeAll() in the child succeeded');
  c.close();
  ev.close();
  refuses(t, hc, 'Lock closed here and in the child');
  refuses(t, he, 'Event closed here and in the child');
  const r = await run([fixture('misc-attach'), 'attach', JSON.stringify(hc)]);
  const got = JSON.parse(r.stdout || '{}');
  t.equal(got.code, 'ERR_FORKSAFE_BAD_HANDLE', 'refused in another process too', { got, stderr: r.stderr });
});

t.test('a handle whose holder process has exited: ERR_FORKSAFE_BAD_HANDLE', async (t) => {
  const r = await run([fixture('misc-attach'), 'hold']);
  t.equal(r.code, 0, 'the holder made one primitive of each type and exited', { stderr: r.stderr });
  const { pid, handles } = JSON.parse(r.stdout) as { pid: number; handles: Record<string, unknown> };
  t.notOk(fs.existsSync(`/proc/${pid}`), 'the holder is gone');
  for (const [k, h] of Object.entries(handles)) refuses(t, h, `${k} of an exited holder`);

  // While a holder lives, its handles attach here; once it has exited (and
  // this process has closed its copies), they no longer do.
  const child = cp.spawn(process.execPath, [fixture('misc-attach'), 'hold-wait'], {
    cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'],
  });
  const closed = new Promise<void>((res) => child.on('close', () => res()));
  t.teardown(async () => {
    child.kill('SIGKILL');
    await closed;
  });
  const line = await new Promise<string>((resolve) => {
    let buf = '';
    const timer = setTimeout(() => resolve(''), 15_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      if (buf.includes('\n')) {
        clearTimeout(timer);
        resolve(buf.split('\n')[0]);
      }
    });
  });
  t.ok(line, 'the live holder printed its handles');
  const live = (JSON.parse(line || '{"handles":{}}') as { handles: Record<string, unknown> }).handles;
  for (const [k, h] of Object.entries(live)) {
    try {
      attach<{ close(): void }>(h).close();
      t.pass(`${k}: attaches while its holder lives`);
    } catch (e) {
      t.fail(`${k}: attach from a live holder threw ${describeErr(e)}`);
    }
  }
  child.stdin.end();
  await Promise.race([closed, new Promise((r) => setTimeout(r, 10_000))]);
  t.notOk(fs.existsSync(`/proc/${child.pid}`), 'the holder exited');
  for (const [k, h] of Object.entries(live)) refuses(t, h, `${k} after its holder exited`);
});

t.test('fuzz: thousands of mutated handles are refused cleanly (in a child process)', async (t) => {
  const fork = getContext('fork');
  const persistentName = `fuzz-${process.pid}`;
  const prims: Record<string, Prim> = {
    lock: new Lock(),
    rlock: new RLock(),
    sem: new Semaphore(2),
    bsem: new BoundedSemaphore(2),
    usem: new Semaphore(1, { undoOnExit: true }),
    event: new Event(),
    cond: new Condition(),
    condLock: new Condition(new Lock()),
    barrier: new Barrier(3),
    barrierBig: new Barrier(100),
    shm: new SharedMemory({ size: 5000 }),
    pshm: new SharedMemory({ size: 100, name: persistentName, persistent: true }),
    forkLock: new fork.Lock(),
    forkEvent: new fork.Event(),
    forkShm: new fork.SharedMemory({ size: 64 }),
  };
  // An unrelated regular file this process holds open, and a file that looks
  // a little like a segment (the first 4 KiB of a real arena: valid magic,
  // header size that does not match the file).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forksafe-handles-'));
  const regularFd = fs.openSync(__filename, 'r');
  const forgedPath = path.join(dir, 'forged');
  fs.writeFileSync(forgedPath, Buffer.from((prims.lock as unknown as { _buf: ArrayBuffer })._buf, 0, 4096));
  const forgedFd = fs.openSync(forgedPath, 'r');
  const st = fs.fstatSync(forgedFd, { bigint: true });
  const other = cp.spawn('sleep', ['60'], { stdio: 'ignore' });
  const otherClosed = new Promise<void>((res) => other.on('close', () => res()));
  const deadChild = cp.spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  const deadPid = deadChild.pid as number;
  await new Promise<void>((res) => deadChild.on('close', () => res()));
  t.teardown(async () => {
    other.kill('SIGKILL');
    await otherClosed;
    for (const p of Object.values(prims)) p.close();
    fs.closeSync(regularFd);
    fs.closeSync(forgedFd);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  try {
    (prims.pshm as SharedMemory).unlink(); // the name is not needed to hold it
  } catch {
    /* reported by the persistent test */
  }
  const input = {
    handles: Object.entries(prims).map(([label, p]) => ({ label, handle: p.handle() })),
    holderPid: process.pid,
    otherPids: [other.pid],
    deadPid,
    regularFd,
    forgedFile: { fd: forgedFd, dev: String(st.dev), ino: String(st.ino), size: String(st.size) },
    count: 5000,
    seed: 20240601,
  };
  const r = await run([fixture('misc-fuzz'), 'handles'], { input: JSON.stringify(input), timeout: 60_000 });
  t.equal(r.timedOut, false, 'the fuzz finished in time');
  t.same({ code: r.code, signal: r.signal }, { code: 0, signal: null }, 'the fuzzing process did not crash', {
    stderr: lastLines(r.stderr, 20),
  });
  let summary: {
    count: number;
    outcomes: Record<string, number>;
    failures: Array<{ sig: string; count: number; example: string }>;
    stats: { mapped: number; views: number };
    fdsBefore: number;
    fdsAfter: number;
  };
  try {
    summary = JSON.parse(r.stdout);
  } catch {
    t.fail('no summary from the fuzzer', { stdout: r.stdout, stderr: lastLines(r.stderr, 20) });
    return;
  }
  t.comment(`outcomes of ${summary.count} mutated handles: ${JSON.stringify(summary.outcomes)}`);
  t.ok((summary.outcomes.ERR_FORKSAFE_BAD_HANDLE ?? 0) > summary.count / 2, 'most mutations are refused as bad handles');
  t.ok((summary.outcomes.ContextError ?? 0) > 0, "mutated 'fork' handles are refused with ContextError");
  for (const f of summary.failures) {
    t.fail(`LIBRARY BUG: a forged handle gave "${f.sig}" (${f.count}x) instead of ERR_FORKSAFE_BAD_HANDLE/ContextError`, {
      example: f.example,
    });
  }
  t.equal(summary.failures.length, 0, 'every attach threw ERR_FORKSAFE_BAD_HANDLE or ContextError, or attached the very primitive named');
  t.same({ mapped: summary.stats.mapped, views: summary.stats.views }, { mapped: 0, views: 0 }, 'failed attaches leave nothing mapped in the fuzzing process');
  t.ok(summary.fdsAfter <= summary.fdsBefore, 'failed attaches leak no fds', { before: summary.fdsBefore, after: summary.fdsAfter });
});

// Every function of the internal binding, fed garbage in a child of its own.
const BINDING_FNS = [
  'init', 'alloc', 'slotRef', 'slotUnref', 'open', 'adoptFd', 'segRetain', 'segRelease', 'buffer', 'dropBuffer',
  'segInfo', 'stats', 'pidAlive', 'lockAcquire', 'lockSettle', 'lockRelease', 'lockAbandon', 'lockMarkConsistent',
  'tokenAlive', 'semAcquire', 'semRelease', 'semRecover', 'eventWait', 'eventWake', 'condWait', 'condNotify',
  'barrierWait', 'barrierReset', 'barrierAbort', 'wordWait', 'wordWake', 'shmCreate', 'shmOpenName', 'shmUnlink',
  'pidfdOpen', 'pidfdWait', 'payloadFd', 'asyncInit', 'asyncLock', 'asyncSem', 'asyncEvent', 'asyncWord', 'asyncCond',
  'asyncBarrier', 'asyncCancel', 'asyncNotifyLocal', 'asyncStats', '_testForkWaiters', '_deathwatch', 'closeFd',
  'token', 'pid', 'activeRequests', 'reapPidfd', 'pidfdKill', 'seed', 'setPdeathsig', 'ownChild', 'disownChild',
  'threads', 'ownerAlive', 'selfStart',
];
// Not fuzzed, on purpose: each ends or forks the calling process, or gives up its
// references, by design (they take no argument that could be bad); test/fork.ts
// and test/leaks.ts exercise them. execReplace replaces the process image (only
// the forkserver calls it, test/forkserver.ts runs that path). terminate ends
// the JavaScript running in the caller (a fork(main) child leaving its caller:
// test/fork-caller.ts).
const NOT_FUZZED = ['fork', 'exitNow', 'releaseThreadRefs', 'execReplace', 'terminate'];

t.test('forged calls on the internal binding never crash the process', async (t) => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { binding } = require('../dist/core/binding.js') as { binding: Record<string, unknown> };
  const missing = Object.keys(binding).filter(
    (k) => typeof binding[k] === 'function' && !BINDING_FNS.includes(k) && !NOT_FUZZED.includes(k));
  t.same(missing, [], 'every binding function is fuzzed');
  const shmBefore = fs.readdirSync('/dev/shm').filter((e) => e.startsWith('fsfuzz-'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forksafe-bindfuzz-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // _testForkWaiters forks this process natively each call: a few calls.
  const iterations = (fn: string) => (fn === 'alloc' ? 300 : fn === 'shmCreate' ? 400 : fn === '_testForkWaiters' ? 20 : 1500);
  // Outcome per function: its summary line, or how its child died.
  const done = new Map<string, { summary?: string; died?: string; lastCalls?: string; stderr?: string }>();
  // One child works through a list; when it dies, the function it was in is
  // recorded and a new child resumes with the next one.
  const runList = async (list: string[], name: string) => {
    let rest = list;
    for (let round = 0; rest.length && round < list.length; round++) {
      const traceFile = path.join(dir, `${name}-${round}.trace`);
      const r = await run(['--expose-gc', fixture('misc-fuzz'), 'binding', '4242', rest.map((fn) => `${fn}:${iterations(fn)}`).join(',')], {
        timeout: 60_000, env: { FUZZ_TRACE: traceFile },
      });
      for (const line of r.stdout.split('\n').filter(Boolean)) {
        try {
          done.set((JSON.parse(line) as { fn: string }).fn, { summary: line });
        } catch {
          /* not a summary */
        }
      }
      rest = rest.filter((fn) => !done.has(fn));
      if (!rest.length) break;
      let tr: string[] = [];
      try {
        tr = fs.readFileSync(traceFile, 'utf8').trimEnd().split('\n');
      } catch {
        /* no trace */
      }
      const begun = tr.filter((l) => l.startsWith('BEGIN ')).pop()?.slice(6) ?? rest[0];
      done.set(begun, {
        died: r.timedOut ? 'hung' : r.signal ? `crashed the process (${r.signal})` : `ended the fuzzer with exit ${r.code}`,
        lastCalls: tr.slice(-2).join('\n'),
        stderr: lastLines(r.stderr, 10),
      });
      rest = rest.filter((fn) => fn !== begun);
    }
  };
  // Two children in parallel; closeFd last in its list (it may close stdin).
  const order = BINDING_FNS.filter((fn) => fn !== 'closeFd');
  await Promise.all([
    runList(order.filter((_, i) => i % 2 === 0), 'a'),
    runList([...order.filter((_, i) => i % 2 === 1), 'closeFd'], 'b'),
  ]);
  for (const fn of BINDING_FNS) {
    const r = done.get(fn);
    if (!r) {
      t.fail(`binding.${fn}: not run`);
      continue;
    }
    if (r.died) {
      const bug = r.died.startsWith('crashed') || r.died === 'hung';
      t.fail(`${bug ? 'LIBRARY BUG: ' : ''}binding.${fn}() with garbage arguments ${r.died}`, {
        lastCalls: r.lastCalls,
        stderr: r.stderr,
        // Async ops run on the native waiter threads: a crash there may come
        // from any earlier submission of this function still pending.
        ...(fn.startsWith('async') ? { note: 'crash on a waiter thread: the culprit may be an earlier pending submission of this function' } : {}),
      });
      continue;
    }
    const s = JSON.parse(r.summary as string) as { calls: number; lentFdsOpen: boolean; problems?: string[] };
    t.ok(s.calls > 0 && s.lentFdsOpen, `binding.${fn}: ${s.calls} garbage calls, no crash, fds it did not own left open`);
    // Wrong results the fuzzer checks (e.g. _testForkWaiters() must return 0).
    if (s.problems?.length) t.fail(`LIBRARY BUG: binding.${fn}: ${s.problems.join('; ')}`);
  }
  const shmAfter = fs.readdirSync('/dev/shm').filter((e) => e.startsWith('fsfuzz-'));
  t.same(shmAfter, shmBefore, 'no stray /dev/shm objects left by the fuzz');

});

t.test('garbage written into a live arena by a peer: no crash, no hang', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forksafe-corrupt-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const traceFile = path.join(dir, 'trace');
  const seeds = Array.from({ length: 16 }, (_, i) => i + 1).join(',');
  const c = await run([fixture('misc-fuzz'), 'corrupt', seeds], { timeout: 10_000, env: { FUZZ_TRACE: traceFile } });
  let last = '';
  try {
    last = lastLines(fs.readFileSync(traceFile, 'utf8'), 1);
  } catch {
    /* no trace */
  }
  const what = c.timedOut ? 'hung (every call used timeout 0)' : c.signal ? `crashed (${c.signal})` : `exit ${c.code}`;
  t.ok(c.code === 0 && !c.timedOut, c.code === 0 ? 'the library survived 16 rounds of corrupted shared memory' :
    `LIBRARY BUG: over a corrupted arena the library ${what}`, { lastCall: last, stderr: lastLines(c.stderr, 10) });
});
