// Semaphore and BoundedSemaphore: local semantics, mutual exclusion across
// real processes, and undoOnExit (units of a SIGKILLed holder come back).
import t from 'tap';
import * as path from 'node:path';
import { BoundedSemaphore, Event, Process, Semaphore, SharedMemory } from './lib/spawn';
import { Semaphore as BaseSemaphore } from '../dist/index.js';
import { exitOf, starter } from './lib/children';

const FIXTURE = path.join(__dirname, '..', 'build', 'fixtures', 'sync-semaphore.js');

// Process children inherit process.execArgv, as child_process.fork() children do.
// Under tap that includes its --import hooks (TypeScript, mock, processinfo: about
// 2 s of CPU per child); the fixtures are precompiled JS and need none of them.
process.execArgv = process.execArgv.filter((a) => !a.includes('@tapjs/'));

const start = starter(FIXTURE);

t.test('value, acquire/release, timeout 0, release(n)', async (t) => {
  const sem = new Semaphore(2);
  t.teardown(() => sem.close());
  t.equal(sem.value, 2);
  t.equal(new Semaphore().value, 1, 'default value is 1');
  t.equal(sem.acquire(), true);
  t.equal(sem.value, 1);
  t.equal(sem.acquire({ timeout: 0 }), true);
  t.equal(sem.value, 0);
  t.equal(sem.acquire({ timeout: 0 }), false, 'timeout 0 on an empty semaphore: false at once');
  const t0 = performance.now();
  t.equal(sem.acquire({ timeout: 50 }), false, 'timeout 50: false');
  t.ok(performance.now() - t0 >= 40, 'waited about the timeout');
  sem.release();
  t.equal(sem.value, 1);
  sem.release(3);
  t.equal(sem.value, 4, 'release(3) adds 3');
  for (let i = 0; i < 4; i++) t.equal(sem.acquire({ timeout: 0 }), true);
  t.equal(sem.acquire({ timeout: 0 }), false);
  t.throws(() => sem.release(0), { code: 'ERR_OUT_OF_RANGE' }, 'release(0) is out of range');
  t.throws(() => sem.release(1.5), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => new Semaphore(-1), { code: 'ERR_OUT_OF_RANGE' });
  const zero = new Semaphore(0);
  t.equal(zero.value, 0);
  t.equal(zero.acquire({ timeout: 0 }), false);
  zero.close();
  t.throws(() => zero.acquire({ timeout: 0 }), { code: 'ERR_FORKSAFE_CLOSED' });
});

t.test('BoundedSemaphore: release above the initial value is a RangeError', async (t) => {
  const b = new BoundedSemaphore(2);
  t.teardown(() => b.close());
  t.ok(b instanceof BaseSemaphore, 'a BoundedSemaphore is a Semaphore (the top-level class)');
  t.throws(() => b.release(), RangeError, 'release at the initial value');
  t.throws(() => b.release(), { code: 'ERR_OUT_OF_RANGE' });
  t.equal(b.value, 2, 'a refused release changes nothing');
  t.equal(b.acquire({ timeout: 0 }), true);
  t.equal(b.acquire({ timeout: 0 }), true);
  t.throws(() => b.release(3), { code: 'ERR_OUT_OF_RANGE' }, 'release(3) from 0 of 2');
  t.equal(b.value, 0);
  b.release(2);
  t.equal(b.value, 2, 'release(2) back to the bound is fine');
  t.throws(() => b.release(), { code: 'ERR_OUT_OF_RANGE' });

  const ub = new BoundedSemaphore(1, { undoOnExit: true });
  t.teardown(() => ub.close());
  t.equal(ub.acquire({ timeout: 0 }), true);
  ub.release();
  t.throws(() => ub.release(), { code: 'ERR_OUT_OF_RANGE' }, 'undoOnExit BoundedSemaphore is bounded too');
  t.equal(ub.value, 1);
});

t.test('Semaphore(2) across 4 processes never lets more than 2 in', async (t) => {
  const sem = new Semaphore(2);
  const go = new Event();
  const shm = new SharedMemory({ size: 64 });
  t.teardown(() => {
    sem.close();
    go.close();
    shm.close();
  });
  const N = 300;
  const kids = Array.from({ length: 4 }, () => start(t, 'crowd', [sem, go, shm, N]));
  go.set();
  for (const k of kids) {
    const e = await exitOf(k);
    t.same(e, { code: 0, signal: null }, `crowd child exits 0 ${k.stderr()}`);
  }
  const a = new Int32Array(shm.buffer);
  t.equal(Atomics.load(a, 2), 4 * N, 'every pass counted');
  t.equal(Atomics.load(a, 0), 0, 'nobody left inside');
  const max = Atomics.load(a, 1);
  t.ok(max >= 1 && max <= 2, `most inside at once: ${max} (must be <= 2)`);
  t.equal(sem.value, 2, 'all units back');
});

t.test('undoOnExit: units of a SIGKILLed holder come back to a blocked acquirer', async (t) => {
  const sem = new Semaphore(3, { undoOnExit: true });
  const held = new Event();
  t.teardown(() => {
    sem.close();
    held.close();
  });
  t.equal(sem.undoOnExit, true);
  // The child takes 2 units, then SIGKILLs itself 300 ms later, while we block.
  const k = start(t, 'hold', [sem, held, 2, 300]);
  t.equal(held.wait({ timeout: 10_000 }), true, 'child holds 2 units');
  t.equal(sem.value, 1);
  t.equal(sem.acquire({ timeout: 0 }), true, 'the third unit is free');
  t.equal(sem.acquire({ timeout: 0 }), false, 'none left');
  const t0 = performance.now();
  t.equal(sem.acquire({ timeout: 5_000 }), true, "first of the dead child's units");
  t.equal(sem.acquire({ timeout: 5_000 }), true, "second of the dead child's units");
  const waited = performance.now() - t0;
  t.ok(waited < 300 + 2_000, `units back within 2 s of the kill (blocked ${waited.toFixed(0)} ms)`);
  const e = await exitOf(k);
  t.equal(e.signal, 'SIGKILL', 'the child died by SIGKILL');
  t.equal(sem.value, 0);
  sem.release(3);
  t.equal(sem.value, 3, 'nothing counted twice');
  t.equal(sem.recover(), 0, 'nothing left to recover');
});

t.test('undoOnExit: parent SIGKILLs the holder, then acquires; recover() counts units', async (t) => {
  const sem = new Semaphore(3, { undoOnExit: true });
  const held = new Event();
  t.teardown(() => {
    sem.close();
    held.close();
  });
  const k = start(t, 'hold', [sem, held, 2, -1]);
  t.equal(held.wait({ timeout: 10_000 }), true, 'child holds 2 units');
  t.equal(sem.recover(), 0, 'a live holder keeps its units');
  t.equal(sem.value, 1);
  k.proc.kill('SIGKILL');
  const e = await exitOf(k);
  t.equal(e.signal, 'SIGKILL');
  t.equal(sem.recover(), 2, 'recover() returns the 2 units of the dead child');
  t.equal(sem.value, 3);
  t.equal(sem.recover(), 0, 'a second recover() finds nothing');

  // Blocking acquire after the kill (no explicit recover()).
  held.clear();
  const k2 = start(t, 'hold', [sem, held, 2, -1]);
  t.equal(held.wait({ timeout: 10_000 }), true);
  t.equal(sem.acquire({ timeout: 0 }), true);
  k2.proc.kill('SIGKILL');
  t.equal((await exitOf(k2)).signal, 'SIGKILL');
  const t0 = performance.now();
  t.equal(sem.acquire({ timeout: 5_000 }), true);
  t.equal(sem.acquire({ timeout: 5_000 }), true);
  t.ok(performance.now() - t0 < 2_000, 'both units back within 2 s');
  sem.release(3);
  t.equal(sem.value, 3);
});

t.test('undoOnExit: a holder that exits normally gives its units back', async (t) => {
  const sem = new Semaphore(2, { undoOnExit: true });
  const held = new Event();
  t.teardown(() => {
    sem.close();
    held.close();
  });
  const k = start(t, 'holdAndExit', [sem, held, 2]);
  t.same(await exitOf(k), { code: 0, signal: null });
  t.equal(held.isSet(), true);
  t.equal(sem.acquire({ timeout: 5_000 }), true);
  t.equal(sem.acquire({ timeout: 5_000 }), true);
  t.equal(sem.value, 0);
  sem.release(2);
});

t.test('without undoOnExit the units of a SIGKILLed holder stay lost', async (t) => {
  const sem = new Semaphore(3);
  const held = new Event();
  t.teardown(() => {
    sem.close();
    held.close();
  });
  t.equal(sem.undoOnExit, false);
  const k = start(t, 'hold', [sem, held, 2, -1]);
  t.equal(held.wait({ timeout: 10_000 }), true);
  k.proc.kill('SIGKILL');
  t.equal((await exitOf(k)).signal, 'SIGKILL');
  t.equal(sem.recover(), 0, 'recover() has nothing to give back');
  t.equal(sem.acquire({ timeout: 0 }), true, 'the unit nobody held');
  t.equal(sem.acquire({ timeout: 300 }), false, 'the dead child kept the other two');
  t.equal(sem.value, 0);
});
