// Queue, SimpleQueue, JoinableQueue (lib/ipc/): the contract of API.md
// "Message passing" with real processes and real SIGKILLs. Children are
// spawn-context Processes running test/fixtures/queue-child.ts.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  attach, ClosedError, ContextError, getContext, QueueEmptyError, QueueFullError, QueueShutDownError,
} from '../dist/index.js';
import { Lock, SharedMemory } from './lib/spawn';
import { exitOf, sleep, starter, within } from './lib/children';
import { check, message } from './fixtures/queue-child';

const ctx = getContext('spawn');
const { Queue, SimpleQueue, JoinableQueue } = ctx;
const ROOT = path.join(__dirname, '..');
const FIXTURE = path.join(ROOT, 'build', 'fixtures', 'queue-child.js');
process.execArgv = process.execArgv.filter((a) => !a.includes('@tapjs/'));
const start = starter(FIXTURE);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { binding } = require('../dist/core/binding.js') as { binding: { stats(): { mapped: number; shm: number } } };

const spills = (): string[] => fs.readdirSync('/dev/shm').filter((f) => f.startsWith('forksafe.fsq-'));
const fdCount = (): number => fs.readdirSync('/proc/self/fd').length;

t.test('values of every kind, FIFO, qsize exact, nowait and timeouts', async (t) => {
  const q = new Queue();
  t.teardown(() => q.close());
  const lock = new Lock();
  const values: unknown[] = [
    'a string', '', 'ünïcödé ✓', Buffer.from('buf'), new Uint8Array([9, 8]), new ArrayBuffer(3),
    new Int32Array([1, -2, 3]), new Float64Array([0.5]), new BigInt64Array([-5n]), new DataView(new ArrayBuffer(2)),
    42, -0, null, undefined, true, { a: [1, { b: 'c' }] }, [1, 2, 3], new Map([[1, 2]]), new Set(['x']), new Date(0),
    123n, { lock },
  ];
  for (const v of values) q.put(v);
  t.equal(q.qsize(), values.length, 'qsize() counts every message');
  t.equal(q.empty(), false);
  const got = values.map(() => q.get());
  t.equal(q.qsize(), 0);
  t.equal(q.empty(), true);
  for (let i = 0; i < values.length - 1; i++) {
    const v = values[i];
    if (v instanceof DataView) t.ok(got[i] instanceof DataView && (got[i] as DataView).byteLength === 2, 'a DataView');
    else t.same(got[i], v, `value ${i} (${Object.prototype.toString.call(v)})`);
    if (v !== null && typeof v === 'object') t.equal(Object.getPrototypeOf(got[i]), Object.getPrototypeOf(v), `value ${i}: same class`);
  }
  t.ok(Buffer.isBuffer(got[3]), 'a Buffer arrives as a Buffer');
  const l2 = (got[values.length - 1] as { lock: InstanceType<typeof Lock> }).lock;
  t.ok(l2 instanceof Lock && l2 !== lock, 'a Lock inside a message arrives attached');
  lock.acquire();
  t.equal(l2.isOwned(), true, '... to the same lock (held through the original, owned as seen through the copy)');
  lock.release();
  l2.close();
  lock.close();
  t.throws(() => q.getNowait(), QueueEmptyError, 'getNowait() on empty: QueueEmptyError');
  t.throws(() => q.get({ timeout: 30 }), { code: 'ERR_FORKSAFE_QUEUE_EMPTY' });
  t.throws(() => q.put(() => 1), { code: 'ERR_INVALID_ARG_TYPE' }, 'a function throws in put() itself');
  t.throws(() => q.put({ f: Symbol('s') }), 'a symbol too');
  t.equal(q.qsize(), 0, 'nothing was enqueued by the failed puts');
  for (let i = 0; i < 1000; i++) q.put(i);
  let ok = true;
  for (let i = 0; i < 1000; i++) if (q.get() !== i) ok = false;
  t.ok(ok, '1000 in, 1000 out in order');
});

t.test('maxsize, capacity, full(), blocking put with timeout', async (t) => {
  const q = new Queue({ maxsize: 3, capacity: 4096 });
  t.teardown(() => q.close());
  t.equal(q.maxsize, 3);
  t.equal(q.capacity, 4096);
  q.put(1); q.put(2); q.put(3);
  t.equal(q.full(), true);
  t.throws(() => q.putNowait(4), QueueFullError);
  const t0 = performance.now();
  t.throws(() => q.put(4, { timeout: 50 }), { code: 'ERR_FORKSAFE_QUEUE_FULL' });
  t.ok(performance.now() - t0 >= 45, 'put() waited out its timeout');
  t.equal(q.get(), 1);
  q.put(4);
  t.same([q.get(), q.get(), q.get()], [2, 3, 4]);
  // The ring's bytes bound too: 4 KiB holds a few 1 KiB messages, then a put blocks.
  const r = new Queue({ capacity: 4096 });
  t.teardown(() => r.close());
  let n = 0;
  try {
    for (; n < 100; n++) r.put(Buffer.alloc(1000), { timeout: 0 });
  } catch (e) {
    t.ok(e instanceof QueueFullError, `ring full after ${n} messages of 1000 bytes`);
  }
  t.ok(n >= 2 && n <= 4, `${n} fit in 4 KiB`);
  t.throws(() => new Queue({ maxsize: -1 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => new Queue({ capacity: 'x' as never }), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => new Queue(5 as never), { code: 'ERR_INVALID_ARG_TYPE' });
});

t.test('messages larger than the ring: in-ring big copies and spills, through a 64 KiB ring', async (t) => {
  const q = new Queue({ capacity: 65536 });
  t.teardown(() => q.close());
  const before = spills().length;
  for (const len of [1000, 10_000, 16_000, 20_000, 100_000, 3_000_000]) {
    const m = message(1, len, len);
    q.put(m);
    const back = q.get();
    t.same(check(back), [1, len], `${len} bytes arrive whole`);
  }
  t.equal(spills().length, before, 'no spill segment is left in /dev/shm');
  // Many big ones in flight at once, from a child, while we read.
  const c = start(t, 'producer', [q, 7, 30, 2_000_000]);
  let seq = 0;
  for (let i = 0; i < 30; i++) {
    const [id, s] = check(q.get({ timeout: 30_000 }));
    if (id !== 7 || s !== seq) t.fail(`got ${id}:${s}, expected 7:${seq}`);
    seq++;
  }
  t.equal(seq, 30, '30 messages up to 2 MB from a child, in order, whole');
  t.same(await exitOf(c), { code: 0, signal: null });
  t.equal(spills().length, before, 'no spill left');
});

t.test('across processes: handle()/attach(), Process args, kinds, primitives inside', async (t) => {
  const q = new Queue();
  t.teardown(() => q.close());
  const shm = new SharedMemory({ size: 64 });
  t.teardown(() => shm.close());
  new Uint8Array(shm.buffer)[0] = 77;
  const c = start(t, 'kinds', [q, shm]);
  t.equal(q.get({ timeout: 15_000 }), 'héllo');
  t.same(q.get(), Buffer.from([1, 2, 3]));
  t.same(q.get(), new Float64Array([1.5, -2]));
  const o = q.get() as { a: number; nested: { m: Map<number, string>; shm: InstanceType<typeof SharedMemory> } };
  t.equal(o.a, 1);
  t.same([...o.nested.m], [[1, 'x']]);
  t.ok(o.nested.shm instanceof SharedMemory, 'a SharedMemory the child put arrives attached');
  t.equal(new Uint8Array(o.nested.shm.buffer)[0], 77, '... to the same memory');
  o.nested.shm.close();
  t.same(await exitOf(c), { code: 0, signal: null });
  const q2 = attach<InstanceType<typeof Queue>>(JSON.parse(JSON.stringify(q.handle())));
  t.ok(q2 instanceof Queue, 'attach(handle) gives a Queue of the context');
  q2.put('via the copy');
  t.equal(q.get(), 'via the copy');
  q2.close();
  t.throws(() => q2.get(), ClosedError, 'a closed queue: ClosedError');
  const fsq = new (getContext('forkserver').Queue)();
  t.throws(() => start(t, 'kinds', [fsq, shm]), ContextError, 'a forkserver Queue to a spawn Process: ContextError before start');
  fsq.close();
  const jq = new JoinableQueue();
  t.throws(() => attach<unknown>({ ...jq.handle(), type: 'Queue' }), { code: 'ERR_FORKSAFE_CONTEXT_MISMATCH' },
    'a JoinableQueue handle relabelled as Queue is refused');
  jq.close();
});

t.test('async: getAsync/putAsync, 10,000 pending gets, abort and timeout races lose nothing', async (t) => {
  const q = new Queue();
  t.teardown(() => q.close());
  const N = 10_000;
  const pend = Array.from({ length: N }, () => q.getAsync());
  await sleep(20);
  for (let i = 0; i < N; i++) q.put(i);
  const got = await within(Promise.all(pend), 30_000, '10,000 pending getAsync');
  t.same(got, Array.from({ length: N }, (_, i) => i), '10,000 pending getAsync() served in order');
  // Abort / timeout races: whatever is put is got exactly once.
  let sent = 0;
  const seen = new Set<number>();
  let dup = 0;
  for (let round = 0; round < 1000; round++) {
    const ac = new AbortController();
    const p = q.getAsync(round % 2 ? { signal: ac.signal } : { timeout: round % 7 });
    if (round % 3 === 0) q.put(sent++);
    if (round % 2) ac.abort();
    try {
      const v = (await p) as number;
      if (seen.has(v)) dup++;
      seen.add(v);
    } catch (e) {
      if (!(e instanceof QueueEmptyError) && (e as Error).name !== 'AbortError') throw e;
    }
  }
  while (q.qsize() > 0) {
    const v = q.get() as number;
    if (seen.has(v)) dup++;
    seen.add(v);
  }
  t.equal(dup, 0, 'no message delivered twice');
  t.equal(seen.size, sent, `every one of the ${sent} messages delivered once`);
  // putAsync on a full queue, resolved by gets.
  const f = new Queue({ maxsize: 1 });
  t.teardown(() => f.close());
  await f.putAsync('a');
  const pp = f.putAsync('b');
  t.equal(f.get(), 'a');
  await within(pp, 5000, 'putAsync on a full queue');
  t.equal(f.get(), 'b');
  await t.rejects(f.putAsync('x', { timeout: 0 }).then(() => f.putAsync('y', { timeout: 30 })), QueueFullError);
  // close() rejects what is pending with ClosedError.
  const c = new Queue();
  const w = c.getAsync();
  c.close();
  await t.rejects(w, ClosedError, 'pending getAsync rejects at close()');
  await t.rejects(q.getAsync({ signal: 'x' as never }), { code: 'ERR_INVALID_ARG_TYPE' }, 'a fake signal');
});

t.test('shutdown(): put throws at once, get drains then throws, for await ends; immediate drops', async (t) => {
  const q = new Queue();
  t.teardown(() => q.close());
  q.put(1); q.put(2);
  const waiting = new Queue();
  t.teardown(() => waiting.close());
  const pend = waiting.getAsync();
  waiting.shutdown();
  await t.rejects(within(pend, 5000, 'pending getAsync at shutdown'), QueueShutDownError, 'a pending getAsync settles');
  q.shutdown();
  t.throws(() => q.put(3), QueueShutDownError);
  const out: unknown[] = [];
  for await (const v of q) out.push(v);
  t.same(out, [1, 2], 'for await drains, then ends');
  t.throws(() => q.get(), QueueShutDownError);
  const r = new Queue();
  t.teardown(() => r.close());
  r.put(1);
  r.shutdown({ immediate: true });
  t.throws(() => r.get(), QueueShutDownError, 'immediate: what is left is dropped');
  // Across processes: a consumer child blocked in get() ends at our shutdown.
  const s = new Queue();
  const out2 = new Queue();
  t.teardown(() => { s.close(); out2.close(); });
  const c = start(t, 'consumer', [s, out2, 0]);
  s.put(message(3, 0, 10));
  t.same(out2.get({ timeout: 15_000 }), [3, 0]);
  s.shutdown();
  t.same(await exitOf(c), { code: 0, signal: null }, 'the child\'s blocked get() threw QueueShutDownError at our shutdown');
});

t.test('SimpleQueue and worker_threads', async (t) => {
  const q = new SimpleQueue();
  t.teardown(() => q.close());
  t.equal(q.maxsize, 0, 'a SimpleQueue has no count limit');
  const h = q.handle();
  const w = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const { attach } = require(${JSON.stringify(path.join(ROOT, 'dist', 'index.js'))});
    const q = attach(workerData);
    for (let i = 0; i < 1000; i++) q.put({ i, from: 'worker' });
    q.close();
  `, { eval: true, workerData: h });
  const workerExited = new Promise((r) => w.once('exit', r)); // attached now: the worker may end before we look
  let ok = 0;
  for (let i = 0; i < 1000; i++) {
    const v = (await q.getAsync({ timeout: 15_000 })) as { i: number };
    if (v.i === i) ok++;
  }
  t.equal(ok, 1000, '1000 messages from a worker_thread, in order');
  await workerExited;
});

t.test('producers SIGKILLed at random instants of put(): nothing torn, no gap, no wait for the dead', async (t) => {
  const q = new Queue({ capacity: 1 << 16 });
  t.teardown(() => q.close());
  const before = spills().length;
  const KILLS = Number(process.env.FORKSAFE_QUEUE_KILLS ?? 200);
  const last = new Map<number, number>();
  let torn = 0, gaps = 0, got = 0, kills = 0, id = 0;
  const live = new Set<ReturnType<typeof start>>();
  const spawnOne = (): void => {
    id++;
    live.add(start(t, 'producer', [q, id, 0, 3_000_000]));
  };
  for (let i = 0; i < 3; i++) spawnOne();
  const deadline = Date.now() + 120_000;
  while (kills < KILLS && Date.now() < deadline) {
    // Read a while, then kill one producer at a random instant.
    const until = performance.now() + 5 + Math.random() * 40;
    while (performance.now() < until) {
      let m: unknown;
      try {
        m = q.get({ timeout: 50 });
      } catch (e) {
        if (e instanceof QueueEmptyError) continue;
        throw e;
      }
      got++;
      let pid: number, seq: number;
      try {
        [pid, seq] = check(m);
      } catch {
        torn++;
        continue;
      }
      const prev = last.get(pid) ?? -1;
      if (seq !== prev + 1) gaps++;
      last.set(pid, seq);
    }
    const victim = [...live][Math.floor(Math.random() * live.size)];
    victim.proc.kill('SIGKILL');
    await victim.proc.exited;
    live.delete(victim);
    kills++;
    spawnOne();
  }
  for (const c of live) c.proc.kill('SIGKILL');
  for (const c of live) await c.proc.exited;
  // Drain what the dead left committed; nothing may block.
  for (;;) {
    let m: unknown;
    try {
      m = q.get({ timeout: 300 });
    } catch (e) {
      if (e instanceof QueueEmptyError) break;
      throw e;
    }
    got++;
    try {
      const [pid, seq] = check(m);
      const prev = last.get(pid) ?? -1;
      if (seq !== prev + 1) gaps++;
      last.set(pid, seq);
    } catch {
      torn++;
    }
  }
  t.ok(kills >= Math.min(KILLS, 10), `${kills} producers SIGKILLed, ${got} messages received`);
  t.equal(torn, 0, 'no torn message');
  t.equal(gaps, 0, 'no gap in any producer\'s sequence');
  // The ring is whole and usable: a message through it now.
  q.put(message(999, 0, 5000));
  t.same(check(q.get({ timeout: 5000 })), [999, 0], 'the queue works after the kills');
  await sleep(200);
  const c = new Queue({ capacity: 1 << 16 });
  c.close();
  t.equal(spills().length, before, 'the spills of killed producers were removed from /dev/shm');
});

t.test('JoinableQueue: consumers SIGKILLed before taskDone(): redelivered, join() returns', async (t) => {
  const q = new JoinableQueue({ capacity: 1 << 16 });
  const out = new Queue();
  t.teardown(() => { q.close(); out.close(); });
  const N = 300;
  for (let i = 0; i < N; i++) q.put(message(1, i, i % 3 === 0 ? 30_000 : 100));
  const seen = new Map<number, number>();
  let kills = 0;
  const consumers = new Set<ReturnType<typeof start>>();
  for (let i = 0; i < 2; i++) consumers.add(start(t, 'joinConsumer', [q, out, 2]));
  const joined = q.joinAsync({ timeout: 90_000 });
  let done = false;
  void joined.then(() => (done = true));
  while (!done) {
    try {
      const [, seq] = out.get({ timeout: 20 }) as [number, number];
      seen.set(seq, (seen.get(seq) ?? 0) + 1);
    } catch (e) {
      if (!(e instanceof QueueEmptyError)) throw e;
    }
    if (kills < 20 && Math.random() < 0.05) {
      const victim = [...consumers][0];
      victim.proc.kill('SIGKILL');
      await victim.proc.exited;
      consumers.delete(victim);
      kills++;
      consumers.add(start(t, 'joinConsumer', [q, out, 2]));
    }
    await sleep(0);
  }
  t.equal(await joined, true, `join() returned after ${kills} consumer kills`);
  while (out.qsize() > 0) {
    const [, seq] = out.get() as [number, number];
    seen.set(seq, (seen.get(seq) ?? 0) + 1);
  }
  let missing = 0;
  for (let i = 0; i < N; i++) if (!seen.has(i)) missing++;
  t.equal(missing, 0, `every item delivered at least once (${[...seen.values()].filter((n) => n > 1).length} redelivered)`);
  q.shutdown();
  for (const c of consumers) t.same(await exitOf(c), { code: 0, signal: null }, 'a consumer ends at shutdown');
  // One consumer gets an item and dies without taskDone(): it goes back to the front.
  const j = new JoinableQueue();
  const ready = new Queue();
  t.teardown(() => { j.close(); ready.close(); });
  j.put('first');
  j.put('second');
  const h = start(t, 'getAndHang', [j, ready]);
  t.same(ready.get({ timeout: 15_000 }), ['got', 'first']);
  t.equal(j.join({ timeout: 50 }), false, 'join() waits for the unacknowledged item');
  h.proc.kill('SIGKILL');
  await h.proc.exited;
  t.equal(j.get({ timeout: 5000 }), 'first', 'the dead consumer\'s item comes back first');
  t.equal(j.get(), 'second');
  j.taskDone();
  j.taskDone();
  t.equal(j.join({ timeout: 5000 }), true, 'join() returns');
  t.throws(() => j.taskDone(), { code: 'ERR_OUT_OF_RANGE' }, 'one taskDone() too many: RangeError');
});

t.test('consumers SIGKILLed mid-get(): the queue stays usable, a big message is not lost with them', async (t) => {
  const q = new Queue({ capacity: 1 << 16 });
  const out = new Queue();
  t.teardown(() => { q.close(); out.close(); });
  let kills = 0;
  for (let round = 0; round < 15; round++) {
    for (let i = 0; i < 5; i++) q.put(message(round, i, 2_000_000));
    const c = start(t, 'consumer', [q, out, 0]);
    await sleep(5 + Math.random() * 30);
    c.proc.kill('SIGKILL');
    await c.proc.exited;
    kills++;
  }
  // The rest, read here: every message is whole; each consumer lost at most
  // the one it had got and not yet reported.
  let got = out.qsize();
  while (out.qsize() > 0) out.get();
  for (;;) {
    try {
      check(q.get({ timeout: 300 }));
      got++;
    } catch (e) {
      if (e instanceof QueueEmptyError) break;
      throw e;
    }
  }
  t.ok(got >= 75 - kills, `${got} of 75 messages received (at most one lost per killed consumer, ${kills} kills)`);
});

t.test('hostile shared memory: garbage in a live ring gives CorruptError or works, never a crash or a hang', async (t) => {
  let corrupt = 0, worked = 0, other = 0;
  const ROUNDS = Number(process.env.FORKSAFE_HOSTILE_ROUNDS ?? 300);
  for (let round = 0; round < ROUNDS; round++) {
    const q = new Queue({ capacity: 4096 });
    for (let i = 0; i < 5; i++) q.put(Buffer.alloc(50 + i * 100, i));
    const raw = attach<InstanceType<typeof SharedMemory>>({ ...q.handle(), type: 'SharedMemory' });
    const i32 = new Int32Array(raw.buffer);
    const n = 1 + Math.floor(Math.random() * 8);
    for (let k = 0; k < n; k++) {
      const at = Math.random() < 0.5 ? Math.floor(Math.random() * 32) : 64 + Math.floor(Math.random() * (i32.length - 64));
      const r = Math.random();
      i32[at] = r < 0.3 ? 0 : r < 0.5 ? -1 : r < 0.7 ? Math.floor(Math.random() * 10) : (Math.random() * 2 ** 32) | 0;
    }
    i32[16] = 0; // the index lock (H.LOCK): a garbage owner that is alive would make every call wait (tested below)
    try {
      for (let i = 0; i < 8; i++) {
        try {
          q.get({ timeout: 5 });
        } catch (e) {
          if (!(e instanceof QueueEmptyError)) throw e;
        }
        q.put(Buffer.alloc(10), { timeout: 5 });
      }
      worked++;
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'ERR_FORKSAFE_CORRUPT') corrupt++;
      else if (code === 'ERR_FORKSAFE_QUEUE_FULL' || code === 'ERR_FORKSAFE_QUEUE_SHUTDOWN') worked++;
      else {
        other++;
        t.comment(`round ${round}: ${String(e)}`);
      }
    }
    raw.close();
    q.close();
  }
  t.equal(other, 0, `${ROUNDS} corrupted rings: ${corrupt} CorruptError, ${worked} still working, no other outcome`);
  // A lock word naming a dead owner is taken over.
  const q = new Queue();
  t.teardown(() => q.close());
  const raw = attach<InstanceType<typeof SharedMemory>>({ ...q.handle(), type: 'SharedMemory' });
  new Int32Array(raw.buffer)[16] = 0x3fffff; // pid 4194303: no such process
  raw.close();
  q.put('after a dead lock holder');
  t.equal(q.get({ timeout: 5000 }), 'after a dead lock holder', 'a dead holder\'s index lock is taken over');
});

t.test('no fd, mapping or /dev/shm entry leaks after 10,000 queues', async (t) => {
  const fds = fdCount();
  const maps = binding.stats().mapped;
  const sp = spills().length;
  for (let i = 0; i < 10_000; i++) {
    const q = new Queue({ capacity: 4096 });
    q.put(i);
    q.get();
    q.close();
  }
  t.equal(fdCount(), fds, 'fds back to where they were');
  t.equal(binding.stats().mapped, maps, 'mappings back to where they were');
  t.equal(spills().length, sp, 'no /dev/shm entry');
});

t.test('fork(): a child inherits getContext(\'fork\') queues and pipes; one SIGKILLed mid-put leaves them whole', async (t) => {
  // Started through `env -i` with forkFlags(), as docs/fork.md tells users to run (tap's loader hooks would refuse fork()).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { forkFlags } = require('../dist/index.js') as typeof import('../dist/index.js');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const cp = require('node:child_process') as typeof import('node:child_process');
  const r = cp.spawnSync('env', ['-i', `PATH=${process.env.PATH ?? ''}`, process.execPath, ...forkFlags(),
    path.join(ROOT, 'build', 'fixtures', 'queue-fork.js')], { encoding: 'utf8', timeout: 60_000 });
  const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  let o: Record<string, unknown> = {};
  try {
    o = JSON.parse(line);
  } catch {
    t.fail(`no JSON from the fixture: ${r.stdout} ${r.stderr}`);
    return;
  }
  t.same(o, {
    inOrder: 200, big: true, pipe: 'from the child', jq: 'jq:work', joined: true,
    c1: { code: 0, signal: null }, c2: { code: null, signal: 'SIGKILL' }, torn: 0, after: 'still works',
    parentGot: 'p1', c3: { code: 0, signal: null }, joined2: true,
  }, 'the child used them; the killed one left nothing torn');
});

t.test('regressions: spills of untaken messages go with the last holder; pending async calls reject ClosedError at close()', async (t) => {
  const before = spills().length;
  const q = new Queue();
  q.put(Buffer.alloc(300 * 1024, 1));
  t.equal(spills().length, before + 1, 'a spilled message waits in /dev/shm');
  const q2 = attach<InstanceType<typeof Queue>>(q.handle());
  q.close();
  t.equal(spills().length, before + 1, 'another object still holds the queue: the spill stays');
  t.equal((q2.get() as Buffer).length, 300 * 1024, 'and is delivered');
  q2.put(Buffer.alloc(300 * 1024, 2));
  q2.shutdown({ immediate: true });
  q2.close();
  t.equal(spills().length, before, 'the last close removes the spill nobody took');
  const j = new JoinableQueue();
  j.put(1);
  j.get();
  const w = j.joinAsync().then(() => null, (e) => e);
  const g = new Queue();
  const pend = g.getAsync().then(() => null, (e) => e);
  j.close();
  g.close();
  t.ok((await w) instanceof ClosedError, 'joinAsync pending at close(): ClosedError');
  t.ok((await pend) instanceof ClosedError, 'getAsync pending at close(): ClosedError');
});
