// Condition: lock ownership rules, timeouts, waitFor, producer/consumer
// across processes, notify(1) waking exactly one waiting process, and the
// argument/context checks of the constructor.
import t from 'tap';
import * as path from 'node:path';
import {
  ContextError, NotOwnerError, getContext,
} from '../dist/index.js';
import { Condition, Lock, RLock, Semaphore, SharedMemory } from './lib/spawn';
import { exitOf, sleep, starter, until } from './lib/children';

const FIXTURE = path.join(__dirname, '..', 'build', 'fixtures', 'sync-condition.js');

// Process children inherit process.execArgv, as child_process.fork() children do.
// Under tap that includes its --import hooks (TypeScript, mock, processinfo: about
// 2 s of CPU per child); the fixtures are precompiled JS and need none of them.
process.execArgv = process.execArgv.filter((a) => !a.includes('@tapjs/'));
// Bounded-buffer layout, as in test/fixtures/sync-condition.ts.
const TAKEN = 3;
const SEEN = 64;

const start = starter(FIXTURE);

t.test('the default lock is an RLock', async (t) => {
  const c = new Condition();
  t.teardown(() => c.close());
  t.ok(c.lock instanceof RLock, 'lock is an RLock');
  t.equal(c.acquire(), true);
  t.equal(c.acquire({ timeout: 0 }), true, 're-entrant');
  t.equal((c.lock as RLock).depth, 2);
  c.release();
  c.release();
  t.equal(c.lock.locked(), false);
  const g = c.lockGuard({ timeout: 1000 });
  t.equal(c.lock.isOwned(), true, 'lockGuard() holds the lock');
  g.release();
  t.equal(c.lock.isOwned(), false);
  c.close();
  t.equal(c.lock.closed, true, 'closing the Condition closes the lock it made');
});

t.test('a Condition over a given Lock uses that lock', async (t) => {
  const lock = new Lock();
  const c = new Condition(lock);
  t.teardown(() => {
    c.close();
    lock.close();
  });
  t.equal(c.lock, lock);
  t.equal(c.acquire({ timeout: 0 }), true);
  t.equal(lock.isOwned(), true);
  t.throws(() => c.acquire({ timeout: 0 }), { code: 'ERR_FORKSAFE_DEADLOCK' }, 'a Lock is not re-entrant');
  c.release();
  c.close();
  t.equal(lock.closed, false, "closing the Condition leaves the caller's lock open");
});

t.test('wait/notify without holding the lock: NotOwnerError', async (t) => {
  const c = new Condition();
  t.teardown(() => c.close());
  t.throws(() => c.wait({ timeout: 10 }), NotOwnerError);
  t.throws(() => c.wait({ timeout: 10 }), { code: 'ERR_FORKSAFE_NOT_OWNER' });
  t.throws(() => c.wait(), { code: 'ERR_FORKSAFE_NOT_OWNER' }, 'without a timeout it throws, not hangs');
  t.throws(() => c.notify(), { code: 'ERR_FORKSAFE_NOT_OWNER' });
  t.throws(() => c.notify(1), NotOwnerError);
  t.throws(() => c.notifyAll(), { code: 'ERR_FORKSAFE_NOT_OWNER' });
  t.throws(() => c.waitFor(() => false, { timeout: 10 }), { code: 'ERR_FORKSAFE_NOT_OWNER' });

  const lc = new Condition(new Lock());
  t.teardown(() => {
    lc.lock.close();
    lc.close();
  });
  t.throws(() => lc.wait({ timeout: 10 }), { code: 'ERR_FORKSAFE_NOT_OWNER' }, 'with a Lock too');
  t.throws(() => lc.notify(), { code: 'ERR_FORKSAFE_NOT_OWNER' });
});

t.test('wait({timeout}) returns false and gives the lock back', async (t) => {
  const c = new Condition();
  t.teardown(() => c.close());
  c.acquire();
  const t0 = performance.now();
  t.equal(c.wait({ timeout: 50 }), false);
  t.ok(performance.now() - t0 >= 40, 'waited about the timeout');
  t.equal(c.lock.isOwned(), true, 'the lock is held again after the timeout');
  t.equal(c.wait({ timeout: 0 }), false, 'timeout 0: false');
  c.acquire();
  t.equal(c.wait({ timeout: 20 }), false, 'waiting at depth 2');
  t.equal((c.lock as RLock).depth, 2, 'the RLock depth is restored');
  c.release();
  c.notify(); // nobody waits: fine
  c.notifyAll();
  c.notify(0);
  c.release();
  t.equal(c.lock.locked(), false);
});

t.test('waitFor(pred, {timeout})', async (t) => {
  const c = new Condition();
  const shm = new SharedMemory({ size: 4 });
  t.teardown(() => {
    c.close();
    shm.close();
  });
  const a = new Int32Array(shm.buffer);
  c.acquire();
  let calls = 0;
  t.equal(c.waitFor(() => (calls++, true)), true, 'a true predicate returns at once');
  t.equal(calls, 1, 'called once');
  const t0 = performance.now();
  t.equal(c.waitFor(() => false, { timeout: 80 }), false, 'false after the timeout');
  t.ok(performance.now() - t0 >= 70, 'waited about the timeout');
  t.throws(() => c.waitFor('nope' as unknown as () => boolean), { code: 'ERR_INVALID_ARG_TYPE' });

  // A child sets the flag under the lock 300 ms from now; we hold the RLock at
  // depth 2, so wait() must release it fully for the child to get in.
  c.acquire();
  const k = start(t, 'setFlag', [c, shm, 300]);
  t.equal(c.waitFor(() => Atomics.load(a, 0) === 1, { timeout: 10_000 }), true, 'woken by the child');
  t.equal((c.lock as RLock).depth, 2);
  c.release();
  c.release();
  t.same(await exitOf(k), { code: 0, signal: null }, k.stderr());
});

t.test('producer/consumer across processes: 2 producers, 2 consumers, 2,000 items', async (t) => {
  const TOTAL = 2000;
  const lock = new Lock();
  const notEmpty = new Condition(lock);
  const notFull = new Condition(lock);
  const shm = new SharedMemory({ size: (SEEN + TOTAL) * 4 });
  t.teardown(() => {
    notEmpty.close();
    notFull.close();
    lock.close();
    shm.close();
  });
  const kids = [
    start(t, 'producer', [notEmpty, notFull, shm, 0, TOTAL / 2]),
    start(t, 'producer', [notEmpty, notFull, shm, TOTAL / 2, TOTAL / 2]),
    start(t, 'consumer', [notEmpty, notFull, shm, TOTAL]),
    start(t, 'consumer', [notEmpty, notFull, shm, TOTAL]),
  ];
  for (const [i, k] of kids.entries()) {
    t.same(await exitOf(k, 25_000), { code: 0, signal: null }, `${i < 2 ? 'producer' : 'consumer'} exits 0 ${k.stderr()}`);
  }
  const a = new Int32Array(shm.buffer);
  t.equal(a[TAKEN], TOTAL, 'all items taken');
  const wrong: string[] = [];
  for (let i = 0; i < TOTAL; i++) if (a[SEEN + i] !== 1) wrong.push(`${i}:${a[SEEN + i]}`);
  t.same(wrong, [], 'every item consumed exactly once');
  t.equal(lock.locked(), false);
});

t.test('notify(1) wakes exactly one of 3 waiting processes; notifyAll the rest', async (t) => {
  const c = new Condition();
  const shm = new SharedMemory({ size: 8 });
  t.teardown(() => {
    c.close();
    shm.close();
  });
  const a = new Int32Array(shm.buffer);
  const kids = Array.from({ length: 3 }, () => start(t, 'waiter', [c, shm, 15_000]));
  // Each waiter counts itself under the lock, then waits: once we can take the
  // lock and see 3, all three are inside wait() (which released the lock).
  const allWaiting = () => {
    if (!c.acquire({ timeout: 1000 })) return false;
    try {
      return Atomics.load(a, 0) === 3;
    } finally {
      c.release();
    }
  };
  t.ok(await until(allWaiting, 12_000), '3 processes wait');
  c.acquire();
  c.notify(1);
  c.release();
  t.ok(await until(() => Atomics.load(a, 1) >= 1, 5_000), 'one woke');
  await sleep(300);
  t.equal(Atomics.load(a, 1), 1, 'exactly one woke; the others still wait');
  t.equal(kids.filter((k) => k.proc.exitCode !== null).length <= 1, true, 'at most one child exited');
  c.acquire();
  c.notify(0);
  c.release();
  await sleep(100);
  t.equal(Atomics.load(a, 1), 1, 'notify(0) wakes nobody');
  c.acquire();
  c.notifyAll();
  c.release();
  t.ok(await until(() => Atomics.load(a, 1) === 3, 5_000), 'notifyAll woke the other two');
  for (const k of kids) t.same(await exitOf(k), { code: 0, signal: null }, `waiter: wait() returned true ${k.stderr()}`);
});

t.test('a lock of another context: ContextError', async (t) => {
  const forkLock = new (getContext('fork').Lock)();
  t.teardown(() => forkLock.close());
  t.throws(() => new Condition(forkLock), ContextError);
  t.throws(() => new Condition(forkLock), { code: 'ERR_FORKSAFE_CONTEXT_MISMATCH' });
  const spawnLock = new Lock();
  t.teardown(() => spawnLock.close());
  t.throws(() => new (getContext('fork').Condition)(spawnLock), { code: 'ERR_FORKSAFE_CONTEXT_MISMATCH' });
  const ok = new (getContext('fork').Condition)(forkLock);
  t.equal(ok.lock, forkLock, 'same context is fine');
  ok.close();
});

t.test('a non-lock: TypeError ERR_INVALID_ARG_TYPE', async (t) => {
  const sem = new Semaphore(1);
  t.teardown(() => sem.close());
  for (const bad of [{}, sem, 'lock', 1, null]) {
    t.throws(() => new Condition(bad as unknown as Lock), TypeError);
    t.throws(() => new Condition(bad as unknown as Lock), { code: 'ERR_INVALID_ARG_TYPE' }, `rejects ${String(bad)}`);
  }
});
