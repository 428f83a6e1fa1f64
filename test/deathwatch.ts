// The death watcher (native/core/deathwatch_linux.cc): a waiter blocked on a
// primitive whose holder is SIGKILLed is woken through the holder's pidfd,
// not by its liveness slice. To test the mechanism rather than a speed, the
// slice is made 10 minutes long (an internal knob, binding._deathwatch) while
// every bound here is 20 s at most: a wait only ends in time if the watcher
// woke it, and the watcher's wake counter must have moved. Also: a holder
// dead (and reaped) before the wait registers, a pid reused by another
// process, pidfds closed when no wait needs them (and reused while they
// linger), the slice alone when the watcher is off, and fork(): the child
// has none of the parent's watcher fds and a working watcher of its own.
// Fixtures: test/fixtures/deathwatch-child.ts (Process roles),
// deathwatch-fork.ts (a fork() scenario, run with forkFlags()).
import t from 'tap';
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BrokenBarrierError, forkFlags, OwnerDiedError } from '../dist/index.js';
import { Barrier, Condition, Lock, RLock, Semaphore, SharedMemory } from './lib/spawn';
import { exitOf, sleep, starter, until, within } from './lib/children';
import type { Child } from './lib/children';

interface DwStats {
  supported: number;
  enabled: boolean;
  running: boolean;
  wakes: number;
  deaths: number;
  deadAtAdd: number;
  adds: number;
  pidfds: number;
  watched: number;
  sliceMs: number;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { binding } = require('../dist/core/binding.js') as {
  binding: { _deathwatch(o?: { enabled?: boolean; sliceMs?: number; lingerMs?: number }): DwStats };
};
const dw = binding._deathwatch;

const ROOT = path.join(__dirname, '..');
const FIXTURE = path.join(ROOT, 'build', 'fixtures', 'deathwatch-child.js');
const FORK_FIXTURE = path.join(ROOT, 'build', 'fixtures', 'deathwatch-fork.js');
const READY = 0;
const GO = 16;
const CTL_SIZE = 128;
const LONG_SLICE = 600_000; // 10 min: longer than any bound below
const BOUND = 15_000;

// Children start without tap's loader hooks (the fixtures are prebuilt JS).
process.execArgv = process.execArgv.filter((a) => !a.includes('@tapjs/'));
const start = starter(FIXTURE);

if (dw().supported !== 1) {
  t.pass('no pidfd_open or futex_waitv on this kernel: the watcher is off, slices do the work (tested elsewhere)');
  t.end();
} else {
  dw({ sliceMs: LONG_SLICE, enabled: true });
  t.teardown(() => {
    dw({ sliceMs: 50, enabled: true, lingerMs: 1000 });
  });
  tests();
}

/** A child in `role` holding `prim`; resolves once it said READY. go() lets it die. */
async function armed(t: tap.Test, role: string, prim: unknown, delayMs = 100): Promise<{ child: Child; go(): void; ctl: SharedMemory }> {
  const ctl = new SharedMemory({ size: CTL_SIZE });
  t.teardown(() => ctl.close());
  const i32 = new Int32Array(ctl.buffer);
  const child = start(t, role, [prim, ctl, delayMs]);
  const ready = await until(() => Atomics.load(i32, READY) === 1, BOUND);
  t.ok(ready, `${role}: the child is in place`, { stderr: child.stderr() });
  return {
    child,
    ctl,
    go() {
      Atomics.store(i32, GO, 1);
      ctl.notify(GO);
    },
  };
}

/** Pids of this process's pidfds (their fdinfo has a Pid: line), one per fd. */
function pidfdPids(): number[] {
  const out: number[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const m = /^Pid:\s+(-?\d+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
      if (m) out.push(Number(m[1]));
    } catch {
      /* the readdir's own fd, closed meanwhile */
    }
  }
  return out;
}
function pidfdCount(): number {
  return pidfdPids().length;
}
function pidfdsOf(pid: number): number {
  return pidfdPids().filter((p) => p === pid).length;
}

function tests(): void {
  t.test('Lock and RLock, acquire(): the holder SIGKILLed -> OwnerDiedError, woken by the watcher', async (t) => {
    for (const [name, L] of [['Lock', Lock], ['RLock', RLock]] as const) {
      const lock = new L();
      t.teardown(() => lock.close());
      const { child, go } = await armed(t, 'lockHolder', lock);
      const w0 = dw().wakes;
      go();
      let err: unknown = null;
      let got: boolean | null = null;
      try {
        got = lock.acquire({ timeout: BOUND });
      } catch (e) {
        err = e;
      }
      t.ok(err instanceof OwnerDiedError, `${name}: OwnerDiedError (not ${got === false ? 'a timeout: the slice is 10 min' : String(err ?? got)})`);
      t.equal((err as OwnerDiedError)?.pid, child.proc.pid, `${name}: .pid is the holder's`);
      t.ok(dw().wakes > w0, `${name}: the watcher woke the waiter`);
      t.ok(lock.isOwned(), `${name}: held by the waiter`);
      if (lock.isOwned()) {
        lock.markConsistent();
        lock.release();
      }
      t.same(await exitOf(child), { code: null, signal: 'SIGKILL' }, `${name}: the holder died by SIGKILL`);
    }
  });

  t.test('Lock, acquireAsync(): the holder SIGKILLed -> OwnerDiedError, woken by the watcher', async (t) => {
    const lock = new Lock();
    t.teardown(() => lock.close());
    const { child, go } = await armed(t, 'lockHolder', lock);
    const w0 = dw().wakes;
    const p = lock.acquireAsync({ timeout: BOUND }).then((v) => ({ v }), (e: unknown) => ({ e }));
    await sleep(50); // the waiter thread is asleep on the word
    go();
    const r = (await within(p, BOUND + 5000, 'acquireAsync')) as { v?: boolean; e?: unknown };
    t.ok(r.e instanceof OwnerDiedError, `OwnerDiedError (got ${JSON.stringify(r.v ?? String(r.e))})`);
    t.equal((r.e as OwnerDiedError)?.pid, child.proc.pid, ".pid is the holder's");
    t.ok(dw().wakes > w0, 'the watcher woke the waiter thread');
    if (lock.isOwned()) {
      lock.markConsistent();
      lock.release();
    }
    await exitOf(child);
  });

  t.test('Condition: the notifier dies holding the lock -> wait()/waitAsync() re-acquire gets OwnerDiedError', async (t) => {
    // The re-acquire after a notification has no timeout (a condition wait
    // ends with the lock held): a 30 s slice bounds this test if the watcher
    // fails, and the elapsed time (with the wake counter) tells.
    dw({ sliceMs: 30_000 });
    t.teardown(() => {
      dw({ sliceMs: LONG_SLICE });
    });
    for (const how of ['sync', 'async'] as const) {
      const lock = new Lock();
      const cond = new Condition(lock);
      t.teardown(() => {
        cond.close();
        lock.close();
      });
      const ctl = new SharedMemory({ size: CTL_SIZE });
      t.teardown(() => ctl.close());
      const i32 = new Int32Array(ctl.buffer);
      const child = start(t, 'condNotifier', [cond, ctl, 100]);
      cond.acquire();
      const w0 = dw().wakes;
      Atomics.store(i32, GO, 1);
      ctl.notify(GO);
      let err: unknown = null;
      let got: unknown = null;
      const t0 = Date.now();
      try {
        got = how === 'sync' ? cond.wait({ timeout: BOUND }) : await within(cond.waitAsync({ timeout: BOUND }), 40_000, 'waitAsync');
      } catch (e) {
        err = e;
      }
      const ms = Date.now() - t0;
      t.ok(ms < 20_000, `${how}: settled after ${ms} ms, not by the 30 s slice`);
      t.ok(err instanceof OwnerDiedError, `${how}: OwnerDiedError on re-acquiring (got ${String(err ?? got)})`, { stderr: child.stderr() });
      t.equal((err as OwnerDiedError)?.pid, child.proc.pid, `${how}: .pid is the notifier's`);
      t.equal(Atomics.load(i32, READY), 1, `${how}: the child had notified`);
      t.ok(dw().wakes > w0, `${how}: the watcher woke the waiter`);
      t.ok(lock.isOwned(), `${how}: the lock is held again`);
      if (lock.isOwned()) {
        lock.markConsistent();
        lock.release();
      }
      await exitOf(child);
    }
  });

  t.test('Semaphore(undoOnExit): the holder SIGKILLed -> its unit comes back to acquire()/acquireAsync()', async (t) => {
    for (const how of ['sync', 'async'] as const) {
      const sem = new Semaphore(1, { undoOnExit: true });
      t.teardown(() => sem.close());
      const { child, go } = await armed(t, 'semHolder', sem);
      t.equal(sem.value, 0, `${how}: the child holds the only unit`);
      const w0 = dw().wakes;
      let got: unknown;
      if (how === 'sync') {
        go();
        got = sem.acquire({ timeout: BOUND });
      } else {
        const p = sem.acquireAsync({ timeout: BOUND });
        await sleep(50);
        go();
        got = await within(p, BOUND + 5000, 'acquireAsync');
      }
      t.equal(got, true, `${how}: acquired the unit the dead holder had`);
      t.ok(dw().wakes > w0, `${how}: the watcher woke the waiter`);
      if (got === true) sem.release();
      t.equal(sem.value, 1, `${how}: one unit, as at the start`);
      await exitOf(child);
    }
  });

  t.test('Barrier: an arrived party SIGKILLed -> wait()/waitAsync() break (BrokenBarrierError) long before their timeout', async (t) => {
    for (const how of ['sync', 'async'] as const) {
      const b = new Barrier(3);
      t.teardown(() => b.close());
      const { child, go } = await armed(t, 'barrierParty', b);
      const w0 = dw().wakes;
      const t0 = Date.now();
      let err: unknown = null;
      try {
        if (how === 'sync') {
          go();
          b.wait({ timeout: BOUND });
        } else {
          const p = b.waitAsync({ timeout: BOUND });
          await sleep(50);
          go();
          await within(p, BOUND + 5000, 'waitAsync');
        }
      } catch (e) {
        err = e;
      }
      const ms = Date.now() - t0;
      t.ok(err instanceof BrokenBarrierError, `${how}: BrokenBarrierError`);
      // A broken barrier is also what a timeout gives: the wake counter and
      // a generous bound (2/3 of the timeout) tell the two apart.
      t.ok(ms < (BOUND * 2) / 3, `${how}: broken after ${ms} ms, not by the ${BOUND} ms timeout`);
      t.ok(dw().wakes > w0, `${how}: the watcher woke the waiter`);
      await exitOf(child);
    }
  });

  t.test('a holder dead and reaped before the wait began: OwnerDiedError at once (pidfd_open says ESRCH)', async (t) => {
    for (const how of ['sync', 'async'] as const) {
      const lock = new Lock();
      t.teardown(() => lock.close());
      const child = start(t, 'lockHolderDiesNow', [lock]);
      t.same(await exitOf(child), { code: null, signal: 'SIGKILL' }, `${how}: the holder died (and was reaped)`);
      t.equal(lock.owner()?.pid, child.proc.pid, `${how}: the word still names it`);
      const d0 = dw().deadAtAdd;
      let err: unknown = null;
      try {
        if (how === 'sync') lock.acquire({ timeout: BOUND });
        else await within(lock.acquireAsync({ timeout: BOUND }), BOUND + 5000, 'acquireAsync');
      } catch (e) {
        err = e;
      }
      t.ok(err instanceof OwnerDiedError, `${how}: OwnerDiedError without waiting for a slice`);
      t.equal((err as OwnerDiedError)?.pid, child.proc.pid, `${how}: .pid`);
      t.ok(dw().deadAtAdd > d0, `${how}: found dead when registering`);
      if (lock.isOwned()) {
        lock.markConsistent();
        lock.release();
      }
    }
  });

  t.test("pid reused: the lock word names a pid that now belongs to another process -> OwnerDiedError", async (t) => {
    // A live process that never touched the arena, and a participant entry
    // claiming that its pid started at another time: the pid was reused.
    const other = child_process.spawn('sleep', ['60'], { stdio: 'ignore' });
    t.teardown(() => {
      other.kill('SIGKILL');
    });
    const pid = other.pid as number;
    t.ok(pid > 0, 'a live process');
    const lock = new Lock();
    t.teardown(() => lock.close());
    const internal = lock as unknown as { _buf: ArrayBuffer; _i32: Int32Array; _w: number };
    const part = new Int32Array(internal._buf, 128, 128 * 4);
    const part64 = new BigUint64Array(internal._buf, 128, 128 * 2);
    let slot = -1;
    for (let i = 0; i < 128 && slot < 0; i++) if (Atomics.load(part, i * 4) === 0) slot = i;
    t.ok(slot >= 0, 'a free participant entry');
    part64[slot * 2 + 1] = 1n; // start time 1: not the live process's
    Atomics.store(part, slot * 4, pid);
    Atomics.store(part, slot * 4 + 1, 1); // state: start valid
    t.teardown(() => {
      Atomics.store(part, slot * 4 + 1, 0);
      Atomics.store(part, slot * 4, 0);
    });
    // Held by thread 1 of that pid, with the waiters bit.
    Atomics.store(internal._i32, internal._w, (pid | (1 << 22) | 0x80000000) | 0);
    const d0 = dw().deadAtAdd;
    let err: unknown = null;
    try {
      lock.acquire({ timeout: BOUND });
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof OwnerDiedError, 'OwnerDiedError');
    t.equal((err as OwnerDiedError)?.pid, pid, '.pid is the pid in the word');
    t.ok(dw().deadAtAdd > d0, 'found dead when registering: the start time differs');
    t.equal(other.exitCode, null, 'the other process is untouched');
    if (lock.isOwned()) {
      lock.markConsistent();
      lock.release();
    }
  });

  t.test('pidfds: reused while they linger, closed when the process dies or the linger ends; none left', async (t) => {
    const base = pidfdCount();
    dw({ lingerMs: 60_000 });
    const lock = new Lock();
    t.teardown(() => lock.close());
    const ctl = new SharedMemory({ size: CTL_SIZE });
    t.teardown(() => ctl.close());
    const child = start(t, 'lockHolderForever', [lock, ctl]);
    t.ok(await until(() => new Int32Array(ctl.buffer)[READY] === 1, BOUND), 'the child holds the lock');
    const pid = child.proc.pid as number;
    const own = pidfdsOf(pid); // Process keeps one of its own for join()
    const a0 = dw().adds;
    t.equal(lock.acquire({ timeout: 100 }), false, 'a wait that times out (sync)');
    t.equal(await lock.acquireAsync({ timeout: 100 }), false, 'and one that times out (async)');
    t.equal(dw().adds - a0, 1, 'one pidfd opened for both waits');
    t.equal(dw().watched, 0, 'nobody watches it now');
    t.equal(dw().pidfds, 1, 'it lingers');
    t.equal(pidfdsOf(pid), own + 1, 'as a real fd of ours');
    child.proc.kill('SIGKILL');
    await exitOf(child);
    t.ok(await until(() => dw().pidfds === 0, 5000), 'closed when the process died');
    t.equal(pidfdCount(), base, 'no pidfd left');

    // A short linger: closed by the watcher's timer while the holder lives.
    dw({ lingerMs: 100 });
    const lock2 = new Lock();
    t.teardown(() => lock2.close());
    Atomics.store(new Int32Array(ctl.buffer), READY, 0);
    const child2 = start(t, 'lockHolderForever', [lock2, ctl]);
    t.ok(await until(() => new Int32Array(ctl.buffer)[READY] === 1, BOUND), 'a second holder');
    const pid2 = child2.proc.pid as number;
    const own2 = pidfdsOf(pid2);
    t.equal(lock2.acquire({ timeout: 100 }), false, 'a wait that times out');
    t.ok(await until(() => dw().pidfds === 0, 5000), 'closed once the linger ended');
    t.equal(pidfdsOf(pid2), own2, 'the fd is gone');
    t.equal(child2.proc.exitCode, null, 'the holder still lives');
    child2.proc.kill('SIGKILL');
    await exitOf(child2);
    t.equal(pidfdCount(), base, 'no pidfd left');
    dw({ lingerMs: 1000 });
  });

  t.test('watcher off: the slice alone still recovers (and the watcher wakes nobody)', async (t) => {
    dw({ enabled: false, sliceMs: 50 });
    t.teardown(() => {
      dw({ enabled: true, sliceMs: LONG_SLICE });
    });
    const lock = new Lock();
    t.teardown(() => lock.close());
    const { child, go } = await armed(t, 'lockHolder', lock);
    const w0 = dw().wakes;
    go();
    let err: unknown = null;
    try {
      lock.acquire({ timeout: BOUND });
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof OwnerDiedError, 'OwnerDiedError through the slice');
    t.equal(dw().wakes, w0, 'no wake from the watcher');
    if (lock.isOwned()) {
      lock.markConsistent();
      lock.release();
    }
    await exitOf(child);
  });

  t.test("fork(): the child has none of the parent's watcher fds, and its own watcher wakes it", async (t) => {
    // Through env -i, as a user's program starts: tap's process tracker puts its
    // --import hooks (a thread of their own, which fork() refuses) back otherwise.
    const r = child_process.spawnSync('env', ['-i', `PATH=${process.env.PATH ?? ''}`, process.execPath, ...forkFlags(), FORK_FIXTURE], {
      cwd: ROOT, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL',
    });
    const lines = (r.stdout ?? '').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, any>); // eslint-disable-line @typescript-eslint/no-explicit-any
    const child = lines.find((l) => l.who === 'child');
    const parent = lines.find((l) => l.who === 'parent');
    t.equal(r.status, 0, 'the fixture ran to the end', { stderr: r.stderr?.slice(-2000), stdout: r.stdout?.slice(-2000), signal: r.signal });
    t.ok(parent && child, 'both reported', { lines });
    if (!parent || !child) return;
    t.equal(parent.parentTimedOut, false, "the parent's wait on C0's lock timed out");
    t.equal(parent.parentBefore.running, true, "the parent's watcher ran before the fork");
    t.ok(parent.parentBefore.pidfds >= 1, 'and kept a pidfd of C0 open');
    t.ok(parent.parentPidfdsBefore >= 1, 'which is a real fd of the parent');
    t.equal(child.pidfdsOfHolder, 0, "the child has no pidfd of C0: the parent's were closed in it");
    t.equal(child.statsAfterFork.running, false, 'no watcher thread in the child right after fork()');
    t.equal(child.statsAfterFork.pidfds, 0, 'and no pidfd in its books');
    t.equal(child.error?.ctor, 'OwnerDiedError', 'the child, waiting on C0, got OwnerDiedError', { child });
    t.equal(child.error?.pid, parent.c0pid, "with C0's pid");
    t.equal(child.wokenByWatcher, true, "woken by the child's own watcher (the slice is 10 min)");
    t.equal(child.running, true, 'which started in the child');
    t.same(parent.e1, { code: 0, signal: null }, 'the child exited 0');
    t.same(parent.e0, { code: null, signal: 'SIGKILL' }, 'C0 died by SIGKILL');
    t.equal(parent.parentAfter.pidfds, 0, "the parent's lingering pidfd closed when C0 died");
    t.equal(parent.pidfdsOfHolderAfter, 0, 'no pidfd of C0 left in the parent');
  });
}
