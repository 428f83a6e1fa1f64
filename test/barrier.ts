// Barrier: rounds across 4 processes, the state getters, and every way a
// barrier breaks (timeout, abort, reset while waiting, a SIGKILLed waiter).
import t from 'tap';
import * as path from 'node:path';
import {
  BrokenBarrierError,
} from '../dist/index.js';
import { Barrier, SharedMemory } from './lib/spawn';
import { exitOf, starter, until } from './lib/children';

const FIXTURE = path.join(__dirname, '..', 'build', 'fixtures', 'sync-barrier.js');

// Process children inherit process.execArgv, as child_process.fork() children do.
// Under tap that includes its --import hooks (TypeScript, mock, processinfo: about
// 2 s of CPU per child); the fixtures are precompiled JS and need none of them.
process.execArgv = process.execArgv.filter((a) => !a.includes('@tapjs/'));

const BROKEN = 4; // fixture exit code: BrokenBarrierError

const start = starter(FIXTURE);

const broken = { name: 'BrokenBarrierError', code: 'ERR_FORKSAFE_BROKEN_BARRIER' };

t.test('4 processes, 5 rounds: arrival indices are a permutation of 0..3', async (t) => {
  const R = 5;
  const b = new Barrier(4);
  const shm = new SharedMemory({ size: (R + R * 4) * 4 });
  t.teardown(() => {
    b.close();
    shm.close();
  });
  const kids = Array.from({ length: 4 }, () => start(t, 'rounds', [b, shm, R]));
  for (const k of kids) t.same(await exitOf(k), { code: 0, signal: null }, `child passed every round ${k.stderr()}`);
  const a = new Int32Array(shm.buffer);
  for (let r = 0; r < R; r++) {
    t.equal(a[r], 4, `round ${r}: 4 arrivals`);
    t.same(Array.from(a.subarray(R + r * 4, R + r * 4 + 4)), [1, 1, 1, 1], `round ${r}: indices 0..3 once each`);
  }
  t.equal(b.nWaiting, 0);
  t.equal(b.broken, false);
});

t.test('parties, nWaiting, broken; abort() breaks current and later waits', async (t) => {
  const b = new Barrier(3);
  t.teardown(() => b.close());
  t.equal(b.parties, 3);
  t.equal(b.nWaiting, 0);
  t.equal(b.broken, false);
  const kids = [start(t, 'waitOnce', [b, 10_000]), start(t, 'waitOnce', [b, 10_000])];
  t.ok(await until(() => b.nWaiting === 2, 10_000), 'nWaiting reaches 2');
  t.equal(b.broken, false);
  b.abort();
  t.equal(b.broken, true, 'broken after abort()');
  for (const k of kids) t.same(await exitOf(k, 5_000), { code: BROKEN, signal: null }, `waiter got BrokenBarrierError ${k.stderr()}`);
  t.throws(() => b.wait({ timeout: 1000 }), BrokenBarrierError, 'a later wait() throws at once');
  t.throws(() => b.wait({ timeout: 1000 }), broken);
  b.abort(); // again: fine
  b.reset();
  t.equal(b.broken, false, 'reset() repairs it');
  t.equal(b.nWaiting, 0);
});

t.test('a wait that times out breaks the barrier for everyone', async (t) => {
  const b = new Barrier(3);
  t.teardown(() => b.close());
  const k = start(t, 'waitOnce', [b, 10_000]);
  t.ok(await until(() => b.nWaiting === 1, 10_000), 'child waits');
  const t0 = performance.now();
  t.throws(() => b.wait({ timeout: 200 }), broken, 'our wait times out: BrokenBarrierError');
  t.ok(performance.now() - t0 >= 150, 'after about the timeout');
  t.equal(b.broken, true);
  t.same(await exitOf(k, 5_000), { code: BROKEN, signal: null }, `the other waiter is broken too ${k.stderr()}`);
  t.throws(() => b.wait({ timeout: 0 }), broken, 'later waits too');
  b.reset();
  t.equal(b.broken, false);

  // The constructor's default timeout.
  const d = new Barrier(2, { timeout: 100 });
  t.teardown(() => d.close());
  t.throws(() => d.wait(), broken, 'default timeout from the constructor');
  t.equal(d.broken, true);
  d.reset();
  t.throws(() => d.wait({ timeout: 0 }), broken, 'timeout 0 with parties missing breaks at once');
  t.throws(() => new Barrier(0), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => new Barrier(1.5), { code: 'ERR_OUT_OF_RANGE' });
});

t.test('reset() breaks current waiters and leaves the barrier usable', async (t) => {
  const b = new Barrier(3);
  t.teardown(() => b.close());
  const kids = [start(t, 'brokenThenPass', [b]), start(t, 'brokenThenPass', [b])];
  t.ok(await until(() => b.nWaiting === 2, 10_000), 'two children wait');
  b.reset();
  t.equal(b.broken, false, 'not broken after reset()');
  // Both children get BrokenBarrierError, then wait again; we make the third party.
  t.ok(await until(() => b.nWaiting === 2, 10_000), 'both children wait again');
  const mine = b.wait({ timeout: 10_000 });
  const codes = [];
  for (const k of kids) {
    const e = await exitOf(k, 5_000);
    t.equal(e.signal, null, k.stderr());
    codes.push((e.code ?? 0) - 10);
  }
  t.same([mine, ...codes].sort(), [0, 1, 2], 'the round after reset(): indices 0..2');
  t.equal(b.nWaiting, 0);
  t.equal(b.broken, false);
});

t.test('a waiter SIGKILLed while waiting breaks the barrier within 2 s', async (t) => {
  const b = new Barrier(3);
  t.teardown(() => b.close());
  const victim = start(t, 'waitOnce', [b, 30_000]);
  t.ok(await until(() => b.nWaiting === 1, 10_000), 'victim waits');
  const survivor = start(t, 'waitOnce', [b, 30_000]);
  t.ok(await until(() => b.nWaiting === 2, 10_000), 'survivor waits');
  const t0 = Date.now();
  victim.proc.kill('SIGKILL');
  const e = await exitOf(survivor, 2_000);
  t.same(e, { code: BROKEN, signal: null }, `survivor got BrokenBarrierError within 2 s (${Date.now() - t0} ms) ${survivor.stderr()}`);
  t.equal((await exitOf(victim)).signal, 'SIGKILL');
  t.equal(b.broken, true);
  t.throws(() => b.wait({ timeout: 1000 }), broken, 'we see it broken too');
  b.reset();
  t.equal(b.broken, false);
});

t.test('a waiter SIGKILLed while the parent is blocked in wait(): the parent is released', async (t) => {
  const b = new Barrier(3);
  const shm = new SharedMemory({ size: 8 });
  t.teardown(() => {
    b.close();
    shm.close();
  });
  const victim = start(t, 'waitOnce', [b, 30_000]);
  t.ok(await until(() => b.nWaiting === 1, 10_000), 'victim waits');
  // Our event loop is blocked in wait() below: another child kills the victim.
  const killer = start(t, 'killLater', [victim.proc.pid, 300, shm]);
  t.throws(() => b.wait({ timeout: 10_000 }), broken, 'BrokenBarrierError');
  const released = Date.now();
  const killedAt = new Float64Array(shm.buffer)[0];
  t.ok(killedAt > 0, 'the killer killed the victim');
  t.ok(released - killedAt < 2_000, `released within 2 s of the kill (${released - killedAt} ms)`);
  t.same(await exitOf(killer), { code: 0, signal: null }, killer.stderr());
  t.equal((await exitOf(victim)).signal, 'SIGKILL');
  t.equal(b.broken, true);
});

t.test('Barrier(1) passes at once', async (t) => {
  const b = new Barrier(1);
  t.teardown(() => b.close());
  for (let i = 0; i < 3; i++) t.equal(b.wait({ timeout: 0 }), 0, `wait #${i} returns index 0`);
  t.equal(b.nWaiting, 0);
  t.equal(b.broken, false);
});
