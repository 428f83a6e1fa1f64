// Event: local semantics, a cross-process ping-pong, and one set() releasing
// many waiting processes.
import t from 'tap';
import * as path from 'node:path';
import { Event, SharedMemory } from './lib/spawn';
import { exitOf, sleep, starter, until } from './lib/children';

const FIXTURE = path.join(__dirname, '..', 'build', 'fixtures', 'sync-event.js');

// Process children inherit process.execArgv, as child_process.fork() children do.
// Under tap that includes its --import hooks (TypeScript, mock, processinfo: about
// 2 s of CPU per child); the fixtures are precompiled JS and need none of them.
process.execArgv = process.execArgv.filter((a) => !a.includes('@tapjs/'));

const EVENT_WAITERS_I = 5; // lib/core/layout.ts: sleepers count, Int32 index in the slot

const start = starter(FIXTURE);

t.test('set, clear, isSet, wait with a timeout', async (t) => {
  const ev = new Event();
  t.teardown(() => ev.close());
  t.equal(ev.isSet(), false, 'starts cleared');
  t.equal(ev.wait({ timeout: 0 }), false, 'timeout 0 on a cleared event: false');
  const t0 = performance.now();
  t.equal(ev.wait({ timeout: 50 }), false, 'timeout 50: false');
  t.ok(performance.now() - t0 >= 40, 'waited about the timeout');
  ev.set();
  t.equal(ev.isSet(), true);
  t.equal(ev.wait(), true, 'a set event: wait() returns at once');
  t.equal(ev.wait({ timeout: 0 }), true);
  ev.set();
  t.equal(ev.isSet(), true, 'set() twice is fine');
  ev.clear();
  t.equal(ev.isSet(), false);
  t.equal(ev.wait({ timeout: 10 }), false);
  ev.clear();
  t.equal(ev.isSet(), false, 'clear() twice is fine');
  t.throws(() => ev.wait({ timeout: -2 }), { code: 'ERR_OUT_OF_RANGE' });
  ev.close();
  t.throws(() => ev.isSet(), { code: 'ERR_FORKSAFE_CLOSED' });
  t.throws(() => ev.wait({ timeout: 0 }), { code: 'ERR_FORKSAFE_CLOSED' });
});

t.test('wait() blocked in the parent is released by a child set()', async (t) => {
  const ev = new Event();
  t.teardown(() => ev.close());
  const k = start(t, 'setLater', [ev, 300]);
  t.equal(ev.wait({ timeout: 10_000 }), true, 'released by the child');
  t.same(await exitOf(k), { code: 0, signal: null }, k.stderr());
});

t.test('cross-process ping-pong: 1,000 round trips', async (t) => {
  const ping = new Event();
  const pong = new Event();
  const shm = new SharedMemory({ size: 8 });
  t.teardown(() => {
    ping.close();
    pong.close();
    shm.close();
  });
  const ROUNDS = 1000;
  const a = new Int32Array(shm.buffer);
  const k = start(t, 'pong', [ping, pong, shm, ROUNDS]);
  let done = 0;
  let mismatch = -1;
  for (let i = 0; i < ROUNDS; i++) {
    ping.set();
    if (!pong.wait({ timeout: 10_000 })) break;
    pong.clear();
    if (Atomics.load(a, 0) !== i + 1 && mismatch < 0) mismatch = i;
    done++;
  }
  t.equal(done, ROUNDS, 'every round answered');
  t.equal(mismatch, -1, "the child's count matched after every round");
  t.equal(Atomics.load(a, 0), ROUNDS, 'child counted 1,000 rounds');
  t.same(await exitOf(k), { code: 0, signal: null }, k.stderr());
  t.equal(ping.isSet(), false);
  t.equal(pong.isSet(), false);
});

t.test('one set() releases 4 waiting processes', async (t) => {
  const ev = new Event();
  const shm = new SharedMemory({ size: 8 });
  t.teardown(() => {
    ev.close();
    shm.close();
  });
  const a = new Int32Array(shm.buffer);
  const kids = Array.from({ length: 4 }, () => start(t, 'waiter', [ev, shm, 15_000]));
  const i32 = ev._i32 as Int32Array;
  const sleepers = () => Atomics.load(i32, ev._base + EVENT_WAITERS_I);
  t.ok(await until(() => Atomics.load(a, 0) === 4 && sleepers() === 4, 12_000), 'all 4 are asleep in wait()');
  await sleep(100);
  t.equal(Atomics.load(a, 1), 0, 'nobody released before set()');
  ev.set();
  for (const k of kids) t.same(await exitOf(k), { code: 0, signal: null }, `waiter returned true ${k.stderr()}`);
  t.equal(Atomics.load(a, 1), 4, 'all 4 released');
  t.equal(sleepers(), 0, 'no sleeper left counted');
});

t.test('waiters that time out are not released and leave no sleeper counted', async (t) => {
  const ev = new Event();
  const shm = new SharedMemory({ size: 8 });
  t.teardown(() => {
    ev.close();
    shm.close();
  });
  const kids = Array.from({ length: 2 }, () => start(t, 'waiter', [ev, shm, 200]));
  for (const k of kids) t.same(await exitOf(k), { code: 3, signal: null }, 'wait() timed out (exit 3)');
  t.equal(Atomics.load(ev._i32 as Int32Array, ev._base + EVENT_WAITERS_I), 0);
  ev.set();
  t.equal(ev.wait({ timeout: 0 }), true);
});
