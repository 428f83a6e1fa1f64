// The package's Pool (lib/pool/): API.md "Pool" with real processes and real
// signals. Task module: test/fixtures/pool-pkg-tasks.ts.
import t from 'tap';
import type { Test } from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  Pool, PoolClosedError, PoolBrokenError, QueueFullError, TimeoutError, WorkerDiedError, getContext,
} from '../dist/index.js';
import { within, sleep, procState } from './lib/children';

const TASKS = path.join(__dirname, '..', 'build', 'fixtures', 'pool-pkg-tasks.js');
process.execArgv = process.execArgv.filter((a) => !a.includes('@tapjs/'));

const gone = (pid: number): boolean => {
  const s = procState(pid);
  return s === null; // no process, and no zombie either
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Err = Error & { [k: string]: any };
const caught = (e: unknown): Err => e as Err;

async function closed(t: Test, pool: Pool, pids: number[]): Promise<void> {
  await within(pool.close(), 20_000, 'close()');
  let ok = true;
  for (let i = 0; i < 100 && !pids.every(gone); i++) await sleep(20);
  for (const p of pids) if (!gone(p)) ok = false;
  t.ok(ok, `no worker left after close(), no zombie (${pids.join(', ')})`);
}


for (const method of ['forkserver', 'spawn'] as const) {
  t.test(`${method}: run, map, imap, imapUnordered, chunksize, results in order, errors carried`, async (t) => {
    const pool = new Pool<number, number>({ module: TASKS, workers: 2, context: method });
    t.equal(pool.size, 2);
    t.equal(await within(pool.run(21), 20_000, 'run'), 42, 'run() of the default export');
    t.same(await pool.map([1, 2, 3, 4, 5, 6, 7]), [2, 4, 6, 8, 10, 12, 14], 'map');
    t.same(await pool.map(Array.from({ length: 100 }, (_, i) => i), { chunksize: 7 }), Array.from({ length: 100 }, (_, i) => i * 2), 'map with chunksize 7');
    const ordered: number[] = [];
    for await (const v of pool.imap([{ x: 1, ms: 40 }, { x: 2, ms: 0 }, { x: 3, ms: 10 }] as never, { name: 'slowDouble' })) ordered.push(v);
    t.same(ordered, [2, 4, 6], 'imap: in order');
    const unordered: number[] = [];
    for await (const v of pool.imapUnordered([{ x: 1, ms: 150 }, { x: 2, ms: 0 }] as never, { name: 'slowDouble' })) unordered.push(v);
    t.same(unordered, [4, 2], 'imapUnordered: as they complete');
    const err = (await pool.run('boom' as never, { name: 'throwIt' }).catch(caught)) as Err;
    t.match(err, { name: 'RangeError', message: 'boom', code: 'E_TASK', detail: 42 }, 'a task\'s throw: name, message, code and own fields');
    t.match(err.stack, /throwIt/, '... and its stack from the worker');
    t.equal(await pool.run(5), 10, 'the worker serves on after a throw');
    await t.rejects(pool.run(0 as never, { name: 'unclonable' }), { code: 'ERR_INVALID_ARG_TYPE' }, 'an unclonable result rejects, coded');
    await t.rejects(pool.run(0 as never, { name: 'noSuchExport' }), TypeError, 'a missing export rejects');
    const pids = pool.pids;
    t.equal(pids.length, 2, 'pool.pids');
    await closed(t, pool, pids);
    await t.rejects(pool.run(1), PoolClosedError, 'run() after close(): PoolClosedError');
  });
}

t.test('a worker SIGKILLed mid-task: WorkerDiedError naming pid and signal, a replacement serves; retries re-run', async (t) => {
  const pool = new Pool({ module: TASKS, workers: 2 });
  const events: string[] = [];
  pool.on('workerSpawn', () => events.push('spawn'));
  pool.on('workerExit', (e: { signal: string | null }) => events.push(`exit:${e.signal}`));
  pool.on('retry', () => events.push('retry'));
  await pool.run(1);
  const pid = await pool.run(null, { name: 'pid' }) as number;
  const t0 = performance.now();
  const err = (await within(pool.run(null, { name: 'kill' }), 10_000, 'the killed task').catch(caught)) as Err;
  const ms = performance.now() - t0;
  t.ok(err instanceof WorkerDiedError, 'WorkerDiedError');
  t.equal(err.code, 'ERR_FORKSAFE_WORKER_DIED');
  t.equal(err.signal, 'SIGKILL', 'it names the signal');
  t.ok(typeof err.pid === 'number' && err.pid > 0, `it names the pid (${err.pid})`);
  t.comment(`SIGKILL to WorkerDiedError: ${ms.toFixed(1)} ms`);
  const segv = (await pool.run(null, { name: 'segv' }).catch(caught)) as Err;
  t.match(segv, { code: 'ERR_FORKSAFE_WORKER_DIED', signal: 'SIGSEGV' }, 'a segfault');
  const exited = (await pool.run(7 as never, { name: 'exitWith' }).catch(caught)) as Err;
  t.match(exited, { code: 'ERR_FORKSAFE_WORKER_DIED', exitCode: 7, signal: null }, 'process.exit(7) in a task');
  t.same(await pool.map([1, 2, 3, 4]), [2, 4, 6, 8], 'replacements serve');
  t.equal(pool.pids.length, 2, 'two workers again');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forksafe-pool-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const r = await pool.run(path.join(dir, 'once') as never, { name: 'killOnce', retries: 1 }) as { firstPid: number; pid: number };
  t.not(r.firstPid, r.pid, 'with retries: 1 the task ran again in another worker and succeeded');
  t.ok(events.includes('retry') && events.filter((e) => e === 'exit:SIGKILL').length >= 2, `events: ${events.join(' ')}`);
  const s = pool.stats() as { completed: number; retried: number; workersDied: number; runTime: { count: number; p50: number } };
  t.ok(s.retried >= 1 && s.workersDied >= 4 && s.runTime.count > 0, `stats(): ${JSON.stringify({ retried: s.retried, died: s.workersDied, runs: s.runTime.count })}`);
  t.not(pid, 0);
  await closed(t, pool, pool.pids);
});

t.test('timeouts kill only the worker of the spinning task; aborts: queued removed, running killed', async (t) => {
  const pool = new Pool({ module: TASKS, workers: 2, taskTimeout: 3000 });
  await pool.run(1);
  const t0 = performance.now();
  const err = (await within(pool.run(null, { name: 'spin', timeout: 200 }), 10_000, 'spin').catch(caught)) as Err;
  t.ok(err instanceof TimeoutError, `TimeoutError after ${(performance.now() - t0).toFixed(0)} ms`);
  const err2 = (await within(pool.run(null, { name: 'spin' }), 10_000, 'spin (taskTimeout)').catch(caught)) as Err;
  t.ok(err2 instanceof TimeoutError, 'taskTimeout applies to every run');
  const busy = pool.run({ x: 1, ms: 300 } as never, { name: 'slowDouble' });
  t.equal(await pool.run(4), 8, 'the other worker serves meanwhile');
  t.equal(await busy, 2, 'the slow task on the other worker completed');
  // Abort a running task: its worker is killed and replaced.
  const ac = new AbortController();
  const running = pool.run(null, { name: 'spin', signal: ac.signal });
  await sleep(100);
  ac.abort(new Error('stop it'));
  await t.rejects(within(running, 5000, 'aborted'), { message: 'stop it' }, 'a running task aborted: rejects with the reason');
  // Abort queued tasks: removed, never run.
  const blockers = [pool.run({ x: 1, ms: 300 } as never, { name: 'slowDouble' }), pool.run({ x: 1, ms: 300 } as never, { name: 'slowDouble' })];
  const ac2 = new AbortController();
  const queued = pool.run(3, { signal: ac2.signal });
  ac2.abort();
  await t.rejects(queued, { name: 'AbortError' }, 'a queued task aborted');
  await Promise.all(blockers);
  t.equal(await pool.run(10), 20);
  await closed(t, pool, pool.pids);
});

t.test('recycling: maxTasksPerWorker and maxWorkerMemory replace workers', async (t) => {
  const pool = new Pool({ module: TASKS, workers: 1, maxTasksPerWorker: 3 });
  const pids: number[] = [];
  for (let i = 0; i < 7; i++) pids.push(await pool.run(null, { name: 'pid' }) as number);
  t.equal(new Set(pids).size, 3, `3 tasks per worker: ${pids.join(' ')}`);
  t.equal(pids[0], pids[2]);
  t.not(pids[2], pids[3]);
  await closed(t, pool, pool.pids);
  const mem = new Pool({ module: TASKS, workers: 1, maxWorkerMemory: 150 * 1024 * 1024 });
  const a = await mem.run(null, { name: 'pid' });
  await mem.run(200 as never, { name: 'alloc' });
  const b = await mem.run(null, { name: 'pid' });
  t.not(a, b, 'a worker above maxWorkerMemory after a task is replaced');
  await closed(t, mem, mem.pids);
});

t.test('initializer: once per worker; one that fails breaks the pool with the cause', async (t) => {
  const pool = new Pool({ module: TASKS, workers: 2, initializer: 'init', initArgs: ['a', 1] });
  const s = await pool.run(null, { name: 'initState' }) as { init: unknown[] };
  t.same(s.init, [['a', 1]], 'the initializer ran once, with initArgs');
  await closed(t, pool, pool.pids);
  const bad = new Pool({ module: TASKS, workers: 1, initializer: 'initFails' });
  const err = (await within(bad.run(1), 30_000, 'a run on a pool whose workers cannot start').catch(caught)) as Err;
  t.ok(err instanceof PoolBrokenError, `PoolBrokenError: ${err?.message}`);
  t.match(err.cause, { message: 'initializer failed on purpose' }, 'its cause is the initializer\'s error');
  await t.rejects(bad.run(2), PoolBrokenError, 'later runs reject at once');
  await within(bad.terminate(), 10_000, 'terminate');
  const missing = new Pool({ module: path.join(os.tmpdir(), 'no-such-module.js'), workers: 1 });
  await t.rejects(within(missing.run(1), 30_000, 'missing module'), PoolBrokenError, 'a task module that does not load');
  await missing.terminate();
});

t.test('close() finishes the work; terminate() rejects it; maxQueue; no zombie', async (t) => {
  const pool = new Pool({ module: TASKS, workers: 2, maxQueue: 3 });
  const two = await Promise.all([pool.run(200 as never, { name: 'pidAfter' }), pool.run(200 as never, { name: 'pidAfter' })]);
  t.not(two[0], two[1], 'both workers are up');
  const work = Array.from({ length: 5 }, (_, i) => pool.run({ x: i, ms: 100 } as never, { name: 'slowDouble' }));
  await t.rejects(pool.run(9), QueueFullError, 'beyond maxQueue: QueueFullError');
  t.ok(pool.pending >= 5, `pool.pending ${pool.pending}`);
  const pids = pool.pids;
  const c = pool.close();
  t.same(await Promise.all(work), [0, 2, 4, 6, 8], 'close() lets given tasks finish');
  await c;
  for (let i = 0; i < 100 && !pids.every(gone); i++) await sleep(20);
  t.ok(pids.every(gone), 'workers gone');
  const p2 = new Pool({ module: TASKS, workers: 2 });
  await p2.run(1);
  const pending = [p2.run(null, { name: 'spin' }), p2.run(null, { name: 'spin' }), p2.run(3)].map((p) => p.then(() => null, (e) => e));
  const pids2 = p2.pids;
  await within(p2.terminate(), 10_000, 'terminate');
  for (const e of await Promise.all(pending)) t.ok(e instanceof PoolClosedError, 'terminate(): PoolClosedError');
  for (let i = 0; i < 100 && !pids2.every(gone); i++) await sleep(20);
  t.ok(pids2.every(gone), 'terminate(): workers gone, reaped');
  const p3 = new Pool({ module: TASKS, workers: 1 });
  t.equal(await p3.run(2), 4);
  const pids3 = p3.pids;
  await p3[Symbol.asyncDispose]();
  t.ok(pids3.every((p) => procState(p) !== 'R'), 'asyncDispose closes');
});

t.test('primitives through tasks: locked increments are exact', async (t) => {
  const ctx = getContext('forkserver');
  const lock = new ctx.Lock();
  const shm = new ctx.SharedMemory({ size: 64 });
  const pool = new Pool({ module: TASKS, workers: 2 });
  const n = await Promise.all(Array.from({ length: 8 }, () => pool.run({ lock, shm, n: 5000 } as never, { name: 'increment' })));
  t.same(n, Array(8).fill(5000));
  t.equal(new Int32Array(shm.buffer)[0], 40_000, '8 x 5000 increments under the Lock, exact');
  const spawnLock = new (getContext('spawn').Lock)();
  await t.rejects(pool.run({ lock: spawnLock } as never, { name: 'echo' }), { code: 'ERR_FORKSAFE_CONTEXT_MISMATCH' }, 'a primitive of another context: ContextError');
  spawnLock.close();
  lock.close();
  shm.close();
  await closed(t, pool, pool.pids);
});

t.test('10,000 tasks while workers are SIGKILLed at random: no result lost or duplicated', async (t) => {
  const pool = new Pool<number, number>({ module: TASKS, workers: 2, retries: 50 });
  await pool.run(1);
  const killed = new Set<number>();
  const killOne = (): void => {
    const pids = pool.pids.filter((p) => !killed.has(p)); // one not killed already (its exit may not be seen yet)
    if (pids.length === 0) return;
    const p = pids[Math.floor(Math.random() * pids.length)];
    try {
      process.kill(p, 'SIGKILL');
      killed.add(p);
    } catch {
      /* already gone */
    }
  };
  const N = 10_000;
  const seen = new Map<number, number>();
  let i = 0;
  for await (const v of pool.imapUnordered((function* () { for (let k = 0; k < N; k++) yield k; })(), { chunksize: 2 })) {
    seen.set(v, (seen.get(v) ?? 0) + 1);
    i++;
    if (i % 250 === 0) killOne(); // 39 kills, at whatever the workers are doing then
  }
  const kills = killed.size;
  t.equal(i, N, `${N} results with ${kills} kills`);
  let ok = true;
  for (let k = 0; k < N; k++) if (seen.get(k * 2) !== 1) ok = false;
  t.ok(ok, 'each result exactly once');
  const s = () => pool.stats() as { retried: number; workersDied: number };
  const { until } = await import('./lib/children');
  t.ok(await until(() => s().workersDied >= kills, 10_000), `every kill was seen: ${s().workersDied} deaths of ${kills} kills`);
  t.ok(kills < 3 || s().retried > 0, `${s().retried} tasks re-run after their worker was killed`);
  await closed(t, pool, pool.pids);
});

t.test('imap reads a huge iterable lazily', async (t) => {
  const pool = new Pool<number, number>({ module: TASKS, workers: 2 });
  let pulled = 0;
  function* items(): Generator<number> {
    for (let k = 0; k < 10_000_000; k++) {
      pulled++;
      yield k;
    }
  }
  let got = 0;
  for await (const v of pool.imap(items())) {
    if (v !== got * 2) t.fail(`out of order: ${v}`);
    got++;
    if (got === 200) break;
  }
  t.ok(pulled < 400, `200 results taken from 10 million items: ${pulled} pulled from the iterator`);
  await closed(t, pool, pool.pids);
});

t.test('bad options are coded errors', async (t) => {
  t.throws(() => new Pool({} as never), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => new Pool({ module: TASKS, workers: 0 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => new Pool({ module: TASKS, context: 'nope' as never }), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => new Pool({ module: TASKS, initArgs: 'x' as never }), { code: 'ERR_INVALID_ARG_TYPE' });
});

t.test('regressions: big arguments both ways, retirement, close() after failures, maxQueue, long timeouts, the start failure\'s cause', async (t) => {
  const one = new Pool<string, string>({ module: TASKS, workers: 1, export: 'echo' });
  const items = Array.from({ length: 100 }, (_, i) => String(i).padEnd(30_000, 'x'));
  const out = await within(one.map(items), 30_000, 'map of 30 KB strings (both pipes full at once)');
  t.equal(out.length, 100, 'arguments and results that fill both pipes: no deadlock');
  t.equal(out[99], items[99]);
  await closed(t, one, one.pids);
  const mem = new Pool({ module: TASKS, workers: 1, maxWorkerMemory: 100 * 1024 * 1024 });
  await Promise.all(Array.from({ length: 4 }, () => mem.run(120 as never, { name: 'alloc' })));
  await sleep(500);
  t.ok(mem.pids.length <= 2, `retired workers exit: ${mem.pids.length} running for size 1`);
  await closed(t, mem, mem.pids);
  const p = new Pool({ module: TASKS, workers: 1 });
  const bad = p.run((() => 1) as never).then(() => null, (e) => e);
  const ac = new AbortController();
  const queued = p.run({ x: 1, ms: 10 } as never, { name: 'slowDouble', signal: ac.signal }).then(() => null, (e) => e);
  ac.abort();
  await within(p.close(), 10_000, 'close() after a task that cannot be sent and one aborted while queued');
  t.equal((await bad)?.code, 'ERR_INVALID_ARG_TYPE');
  t.equal((await queued)?.name, 'AbortError');
  const q0 = new Pool({ module: TASKS, workers: 2, maxQueue: 0 });
  t.equal(await q0.run(1), 2, 'maxQueue: 0 on a pool with free workers: runs');
  t.same(await q0.map(Array.from({ length: 50 }, (_, i) => i)), Array.from({ length: 50 }, (_, i) => i * 2), 'map() stays within maxQueue');
  await closed(t, q0, q0.pids);
  const lt = new Pool({ module: TASKS, workers: 1 });
  t.equal(await lt.run({ x: 100, ms: 50 } as never, { name: 'slowDouble', timeout: 2 ** 31 }), 200, 'a timeout beyond what a timer holds never fires');
  await closed(t, lt, lt.pids);
  for (let i = 0; i < 3; i++) {
    const b = new Pool({ module: TASKS, workers: 2, context: 'spawn', initializer: 'initFails' });
    const e = (await within(b.run(1), 30_000, 'broken pool').catch(caught)) as Err;
    t.match(e?.cause, { message: 'initializer failed on purpose' }, `the cause is the initializer's error (${i + 1})`);
    await b.terminate();
  }
});
