// Bad arguments of every public constructor and method: Node-style TypeError
// (ERR_INVALID_ARG_TYPE) or RangeError (ERR_OUT_OF_RANGE) with a message that
// names the parameter; closed objects throw ClosedError from every method;
// close() is idempotent and Symbol.dispose closes.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  ClosedError, ForksafeError, getContext,
} from '../dist/index.js';
import { Barrier, BoundedSemaphore, Condition, Event, Lock, Process, RLock, Semaphore, SharedMemory } from './lib/spawn';

const TARGETS = path.join(__dirname, '..', 'build', 'fixtures', 'misc-targets.js');

type Kind = 'type' | 'range';

// Asserts fn() throws a TypeError ERR_INVALID_ARG_TYPE ('type') or a RangeError
// ERR_OUT_OF_RANGE ('range'), whose message names `param` when given.
function bad(t: tap.Test, what: string, kind: Kind, fn: () => unknown, param?: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  const e = err as Error & { code?: string };
  const Cls = kind === 'type' ? TypeError : RangeError;
  const code = kind === 'type' ? 'ERR_INVALID_ARG_TYPE' : 'ERR_OUT_OF_RANGE';
  if (err === undefined) {
    t.fail(`${what}: accepted (expected ${Cls.name} ${code})`);
    return;
  }
  t.ok(e instanceof Cls && e.code === code, `${what}: ${Cls.name} ${code}`, {
    got: `${e?.constructor?.name} ${e?.code}: ${e?.message}`,
  });
  if (param) t.match(e.message, param, `${what}: the message names '${param}'`);
}

t.test('Lock and RLock', async (t) => {
  for (const L of [Lock, RLock]) {
    const n = L.name;
    const l = new L();
    t.teardown(() => l.close());
    bad(t, `new ${n}(5)`, 'type', () => new L(5 as never), 'options');
    bad(t, `new ${n}('x')`, 'type', () => new L('x' as never), 'options');
    bad(t, `new ${n}(null)`, 'type', () => new L(null as never), 'options');
    bad(t, `new ${n}([])`, 'type', () => new L([] as never), 'options');
    bad(t, `${n}.acquire({timeout: -1})`, 'range', () => l.acquire({ timeout: -1 }), 'timeout');
    bad(t, `${n}.acquire({timeout: NaN})`, 'range', () => l.acquire({ timeout: NaN }), 'timeout');
    bad(t, `${n}.acquire({timeout: -Infinity})`, 'range', () => l.acquire({ timeout: -Infinity }), 'timeout');
    bad(t, `${n}.acquire({timeout: 'x'})`, 'type', () => l.acquire({ timeout: 'x' as never }), 'timeout');
    bad(t, `${n}.acquire({timeout: null})`, 'type', () => l.acquire({ timeout: null as never }), 'timeout');
    bad(t, `${n}.acquire({timeout: 10n})`, 'type', () => l.acquire({ timeout: 10n as never }), 'timeout');
    bad(t, `${n}.acquire(5)`, 'type', () => l.acquire(5 as never), 'options');
    bad(t, `${n}.acquire('x')`, 'type', () => l.acquire('x' as never), 'options');
    bad(t, `${n}.acquire(null)`, 'type', () => l.acquire(null as never), 'options');
    bad(t, `${n}.lock({timeout: -1})`, 'range', () => l.lock({ timeout: -1 }), 'timeout');
    bad(t, `${n}.lock(5)`, 'type', () => l.lock(5 as never), 'options');
    t.notOk(l.locked(), `${n}: none of the bad calls acquired it${l.locked() ? ' (LIBRARY BUG: acquire(badOptions) takes a free RLock before validating its options)' : ''}`);
    while (l.isOwned()) l.release();
    t.equal(l.acquire({ timeout: Infinity }), true, `${n}.acquire({timeout: Infinity}) is valid (forever)`);
    l.release();
    t.equal(l.acquire({}), true, `${n}.acquire({}) is valid`);
    l.release();
  }
});

t.test('Semaphore and BoundedSemaphore', async (t) => {
  for (const S of [Semaphore, BoundedSemaphore]) {
    const n = S.name;
    bad(t, `new ${n}(-1)`, 'range', () => new S(-1), 'value');
    bad(t, `new ${n}(1.5)`, 'range', () => new S(1.5), 'value');
    bad(t, `new ${n}(NaN)`, 'range', () => new S(NaN), 'value');
    bad(t, `new ${n}(2 ** 31)`, 'range', () => new S(2 ** 31), 'value');
    bad(t, `new ${n}(Infinity)`, 'range', () => new S(Infinity), 'value');
    bad(t, `new ${n}('1')`, 'type', () => new S('1' as never), 'value');
    bad(t, `new ${n}(null)`, 'type', () => new S(null as never), 'value');
    bad(t, `new ${n}(1, 5)`, 'type', () => new S(1, 5 as never), 'options');
    bad(t, `new ${n}(1, {undoOnExit: 'yes'})`, 'type', () => new S(1, { undoOnExit: 'yes' as never }), 'undoOnExit');
    const s = new S(2);
    t.teardown(() => s.close());
    bad(t, `${n}.release(0)`, 'range', () => s.release(0), 'n');
    bad(t, `${n}.release(-1)`, 'range', () => s.release(-1), 'n');
    bad(t, `${n}.release(1.5)`, 'range', () => s.release(1.5), 'n');
    bad(t, `${n}.release(NaN)`, 'range', () => s.release(NaN), 'n');
    bad(t, `${n}.release('1')`, 'type', () => s.release('1' as never), 'n');
    bad(t, `${n}.release(null)`, 'type', () => s.release(null as never), 'n');
    bad(t, `${n}.acquire({timeout: -1})`, 'range', () => s.acquire({ timeout: -1 }), 'timeout');
    bad(t, `${n}.acquire({timeout: 'x'})`, 'type', () => s.acquire({ timeout: 'x' as never }), 'timeout');
    bad(t, `${n}.acquire(5)`, 'type', () => s.acquire(5 as never), 'options');
    t.equal(s.value, 2, `${n}: the bad calls changed nothing`);
  }
  const full = new Semaphore(2 ** 31 - 1);
  t.teardown(() => full.close());
  bad(t, 'Semaphore.release() past 2^31-1', 'range', () => full.release(1), 'n');
  t.equal(full.value, 2 ** 31 - 1, 'the overflowing release changed nothing');
  const b = new BoundedSemaphore(2);
  t.teardown(() => b.close());
  bad(t, 'BoundedSemaphore.release() above its initial value', 'range', () => b.release(), 'n');
  b.acquire();
  bad(t, 'BoundedSemaphore.release(2) above its initial value', 'range', () => b.release(2), 'n');
  b.release();
  t.equal(b.value, 2, 'a release within the bound is fine');
});

t.test('Event', async (t) => {
  bad(t, 'new Event(5)', 'type', () => new Event(5 as never), 'options');
  const e = new Event();
  t.teardown(() => e.close());
  bad(t, 'Event.wait({timeout: -1})', 'range', () => e.wait({ timeout: -1 }), 'timeout');
  bad(t, "Event.wait({timeout: 'x'})", 'type', () => e.wait({ timeout: 'x' as never }), 'timeout');
  bad(t, 'Event.wait(5)', 'type', () => e.wait(5 as never), 'options');
  bad(t, 'Event.wait(null)', 'type', () => e.wait(null as never), 'options');
});

t.test('Condition', async (t) => {
  bad(t, 'new Condition(5)', 'type', () => new Condition(5 as never), 'lock');
  bad(t, 'new Condition({})', 'type', () => new Condition({} as never), 'lock');
  bad(t, 'new Condition(null)', 'type', () => new Condition(null as never), 'lock');
  const sem = new Semaphore(1);
  t.teardown(() => sem.close());
  bad(t, 'new Condition(a Semaphore)', 'type', () => new Condition(sem as never), 'lock');
  const c = new Condition();
  t.teardown(() => c.close());
  c.acquire();
  bad(t, 'Condition.wait({timeout: -1})', 'range', () => c.wait({ timeout: -1 }), 'timeout');
  bad(t, "Condition.wait({timeout: 'x'})", 'type', () => c.wait({ timeout: 'x' as never }), 'timeout');
  bad(t, 'Condition.wait(5)', 'type', () => c.wait(5 as never), 'options');
  bad(t, 'Condition.waitFor(5)', 'type', () => c.waitFor(5 as never), 'pred');
  bad(t, 'Condition.waitFor(fn, {timeout: -1})', 'range', () => c.waitFor(() => false, { timeout: -1 }), 'timeout');
  bad(t, 'Condition.notify(-1)', 'range', () => c.notify(-1), 'n');
  bad(t, 'Condition.notify(1.5)', 'range', () => c.notify(1.5), 'n');
  bad(t, "Condition.notify('1')", 'type', () => c.notify('1' as never), 'n');
  bad(t, 'Condition.acquire({timeout: -1})', 'range', () => c.acquire({ timeout: -1 }), 'timeout');
  bad(t, 'Condition.lockGuard(5)', 'type', () => c.lockGuard(5 as never), 'options');
  t.ok(c.lock.isOwned(), 'the condition lock is still held after the bad calls');
  c.release();
});

t.test('Barrier', async (t) => {
  bad(t, 'new Barrier(0)', 'range', () => new Barrier(0), 'parties');
  bad(t, 'new Barrier(-1)', 'range', () => new Barrier(-1), 'parties');
  bad(t, 'new Barrier(1e9)', 'range', () => new Barrier(1e9), 'parties');
  bad(t, 'new Barrier(1.5)', 'range', () => new Barrier(1.5), 'parties');
  bad(t, "new Barrier('2')", 'type', () => new Barrier('2' as never), 'parties');
  bad(t, 'new Barrier()', 'type', () => new (Barrier as unknown as new () => Barrier)(), 'parties');
  bad(t, 'new Barrier(2, 5)', 'type', () => new Barrier(2, 5 as never), 'options');
  bad(t, 'new Barrier(2, {timeout: -1})', 'range', () => new Barrier(2, { timeout: -1 }), 'timeout');
  bad(t, "new Barrier(2, {timeout: 'x'})", 'type', () => new Barrier(2, { timeout: 'x' as never }), 'timeout');
  const b = new Barrier(2);
  t.teardown(() => b.close());
  bad(t, 'Barrier.wait({timeout: -1})', 'range', () => b.wait({ timeout: -1 }), 'timeout');
  bad(t, "Barrier.wait({timeout: 'x'})", 'type', () => b.wait({ timeout: 'x' as never }), 'timeout');
  bad(t, 'Barrier.wait(5)', 'type', () => b.wait(5 as never), 'options');
  t.equal(b.nWaiting, 0, 'no bad call registered as a waiter');
  t.equal(b.broken, false, 'no bad call broke the barrier');
});

t.test('SharedMemory', async (t) => {
  bad(t, 'new SharedMemory()', 'type', () => new (SharedMemory as unknown as new () => SharedMemory)(), 'options');
  bad(t, 'new SharedMemory(5)', 'type', () => new SharedMemory(5 as never), 'options');
  bad(t, 'new SharedMemory({})', 'type', () => new SharedMemory({} as never), 'size');
  bad(t, 'new SharedMemory({size: 0})', 'range', () => new SharedMemory({ size: 0 }), 'size');
  bad(t, 'new SharedMemory({size: -1})', 'range', () => new SharedMemory({ size: -1 }), 'size');
  bad(t, 'new SharedMemory({size: 1.5})', 'range', () => new SharedMemory({ size: 1.5 }), 'size');
  bad(t, 'new SharedMemory({size: 2 ** 41})', 'range', () => new SharedMemory({ size: 2 ** 41 }), 'size');
  bad(t, "new SharedMemory({size: 'x'})", 'type', () => new SharedMemory({ size: 'x' as never }), 'size');
  bad(t, "new SharedMemory({size: '10'})", 'type', () => new SharedMemory({ size: '10' as never }), 'size');
  bad(t, "new SharedMemory({size: 8, name: 'a/b'})", 'range', () => new SharedMemory({ size: 8, name: 'a/b' }), 'name');
  bad(t, "new SharedMemory({size: 8, name: ''})", 'range', () => new SharedMemory({ size: 8, name: '' }), 'name');
  bad(t, 'new SharedMemory({size: 8, name: 38 chars})', 'range', () => new SharedMemory({ size: 8, name: 'a'.repeat(38) }), 'name');
  bad(t, "new SharedMemory({size: 8, name: '..'})", 'range', () => new SharedMemory({ size: 8, name: '../x' }), 'name');
  bad(t, 'new SharedMemory({size: 8, name: 5})', 'type', () => new SharedMemory({ size: 8, name: 5 as never }), 'name');
  bad(t, "new SharedMemory({size: 8, persistent: 'yes'})", 'type', () => new SharedMemory({ size: 8, persistent: 'yes' as never }), 'persistent');
  bad(t, 'SharedMemory.open(5)', 'type', () => SharedMemory.open(5 as never), 'name');
  bad(t, "SharedMemory.open('a/b')", 'range', () => SharedMemory.open('a/b'), 'name');
  t.notOk(fs.readdirSync('/dev/shm').some((e) => e.includes('a/b') || e === 'forksafe.'), 'nothing was created in /dev/shm');
  const s = new SharedMemory({ size: 64 }); // 16 Int32 slots
  t.teardown(() => s.close());
  bad(t, 'SharedMemory.wait(-1, 0)', 'range', () => s.wait(-1, 0), 'index');
  bad(t, 'SharedMemory.wait(16, 0) (index out of range)', 'range', () => s.wait(16, 0, { timeout: 0 }), 'index');
  bad(t, 'SharedMemory.wait(1e9, 0)', 'range', () => s.wait(1e9, 0), 'index');
  bad(t, 'SharedMemory.wait(1.5, 0)', 'range', () => s.wait(1.5, 0), 'index');
  bad(t, 'SharedMemory.wait(NaN, 0)', 'range', () => s.wait(NaN, 0), 'index');
  bad(t, "SharedMemory.wait('0', 0)", 'type', () => s.wait('0' as never, 0), 'index');
  bad(t, "SharedMemory.wait(0, 'x')", 'type', () => s.wait(0, 'x' as never), 'value');
  bad(t, 'SharedMemory.wait(0, 2 ** 33)', 'range', () => s.wait(0, 2 ** 33), 'value');
  bad(t, 'SharedMemory.wait(0, 0.5)', 'range', () => s.wait(0, 0.5), 'value');
  bad(t, 'SharedMemory.wait(0, 1, {timeout: -1})', 'range', () => s.wait(0, 1, { timeout: -1 }), 'timeout');
  bad(t, "SharedMemory.wait(0, 1, {timeout: 'x'})", 'type', () => s.wait(0, 1, { timeout: 'x' as never }), 'timeout');
  bad(t, 'SharedMemory.wait(0, 1, 5)', 'type', () => s.wait(0, 1, 5 as never), 'options');
  bad(t, 'SharedMemory.notify(-1)', 'range', () => s.notify(-1), 'index');
  bad(t, 'SharedMemory.notify(16)', 'range', () => s.notify(16), 'index');
  bad(t, 'SharedMemory.notify(0, -1)', 'range', () => s.notify(0, -1), 'count');
  bad(t, 'SharedMemory.notify(0, 1.5)', 'range', () => s.notify(0, 1.5), 'count');
  bad(t, "SharedMemory.notify(0, 'x')", 'type', () => s.notify(0, 'x' as never), 'count');
  t.equal(s.wait(15, 0, { timeout: 0 }), 'timed-out', 'the last index is valid');
  t.equal(s.notify(0, 0), 0, 'notify(0, 0) is valid');
});

t.test('Process', async (t) => {
  const P = Process as unknown as new (o?: unknown) => Process;
  bad(t, 'new Process()', 'type', () => new P(), 'options');
  bad(t, 'new Process(5)', 'type', () => new P(5), 'options');
  bad(t, 'new Process(null)', 'type', () => new P(null), 'options');
  bad(t, 'new Process({})', 'type', () => new P({}), 'target');
  bad(t, 'new Process({target: 5})', 'type', () => new P({ target: 5 }), 'target');
  bad(t, 'new Process({target: {}})', 'type', () => new P({ target: {} }), 'target');
  bad(t, 'new Process({target: {module: 5}})', 'type', () => new P({ target: { module: 5 } }), 'target');
  bad(t, "new Process({target: {module: ''}})", 'type', () => new P({ target: { module: '' } }), 'target');
  bad(t, 'new Process({target: {module, export: 5}})', 'type', () => new P({ target: { module: TARGETS, export: 5 } }), 'export');
  bad(t, 'new Process({target: {module}, args: 5})', 'type', () => new P({ target: { module: TARGETS }, args: 5 }), 'args');
  bad(t, "new Process({target: {module}, args: 'x'})", 'type', () => new P({ target: { module: TARGETS }, args: 'x' }), 'args');
  bad(t, 'new Process({target: {module}, name: 5})', 'type', () => new P({ target: { module: TARGETS }, name: 5 }), 'name');
  bad(t, 'new Process({target: {module}, env: 5})', 'type', () => new P({ target: { module: TARGETS }, env: 5 }), 'env');
  bad(t, "new Process({target: {module}, stdio: 'bogus'})", 'type', () => new P({ target: { module: TARGETS }, stdio: 'bogus' }), 'stdio');
  bad(t, "new Process({target: {module}, execArgv: '--x'})", 'type', () => new P({ target: { module: TARGETS }, execArgv: '--x' }), 'execArgv');
  bad(t, 'new Process({target: {module}, execArgv: [1]})', 'type', () => new P({ target: { module: TARGETS }, execArgv: [1] }), 'execArgv');
  let err: (TypeError & { code?: string }) | undefined;
  try {
    new P({ target: () => 1 });
  } catch (e) {
    err = e as TypeError & { code?: string };
  }
  t.ok(err instanceof TypeError && err.code === 'ERR_INVALID_ARG_TYPE', 'new Process({target: () => 1}): TypeError ERR_INVALID_ARG_TYPE');
  t.match(err?.message, /function cannot cross/, 'the message says a function cannot cross processes', { msg: err?.message });
  t.match(err?.message, /module/, 'and what to do instead (a module)');

  const p = new Process({ target: { module: TARGETS, export: 'ret' }, args: [0], execArgv: [] }).start();
  t.teardown(async () => {
    p.kill('SIGKILL');
    await p.exited;
  });
  bad(t, 'Process.join({timeout: -1})', 'range', () => p.join({ timeout: -1 }), 'timeout');
  bad(t, "Process.join({timeout: 'x'})", 'type', () => p.join({ timeout: 'x' as never }), 'timeout');
  bad(t, 'Process.join(5)', 'type', () => p.join(5 as never), 'options');
  t.throws(() => p.kill('SIGBOGUS' as never), TypeError, "Process.kill('SIGBOGUS'): TypeError (Node's ERR_UNKNOWN_SIGNAL)");
  t.ok(p.join({ timeout: 15_000 }), 'the process is unaffected by the bad calls');
  t.same(await p.exited, { code: 0, signal: null }, 'and exits normally');
});

t.test('a closed primitive in Process args: refused before anything starts', async (t) => {
  const l = new Lock();
  l.close();
  const p = new Process({ target: { module: TARGETS, export: 'ret' }, args: [{ l }] });
  t.throws(() => p.start(), { code: 'ERR_FORKSAFE_CLOSED' }, 'start(): ERR_FORKSAFE_CLOSED');
  t.equal(p.pid, null, 'no process');
});

// ---- closed objects -------------------------------------------------------------

function closedErr(t: tap.Test, what: string, fn: () => unknown): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  const e = err as ForksafeError;
  t.ok(err instanceof ClosedError && e.code === 'ERR_FORKSAFE_CLOSED' && err instanceof ForksafeError,
    `${what} after close(): ClosedError ERR_FORKSAFE_CLOSED`, {
      got: err === undefined ? 'no error' : `${e?.constructor?.name} ${e?.code}: ${e?.message}`,
    });
}

t.test('every method of a closed object throws ClosedError', async (t) => {
  for (const method of ['spawn', 'fork'] as const) {
    const ctx = getContext(method);
    const m = (s: string) => `${method} ${s}`;
    for (const L of [ctx.Lock, ctx.RLock]) {
      const l = new L();
      l.close();
      t.equal(l.closed, true, m(`${L.name}.closed`));
      closedErr(t, m(`${L.name}.acquire()`), () => l.acquire());
      closedErr(t, m(`${L.name}.acquire({timeout: 0})`), () => l.acquire({ timeout: 0 }));
      closedErr(t, m(`${L.name}.release()`), () => l.release());
      closedErr(t, m(`${L.name}.lock()`), () => l.lock());
      closedErr(t, m(`${L.name}.locked()`), () => l.locked());
      closedErr(t, m(`${L.name}.owner()`), () => l.owner());
      closedErr(t, m(`${L.name}.isOwned()`), () => l.isOwned());
      closedErr(t, m(`${L.name}.markConsistent()`), () => l.markConsistent());
      closedErr(t, m(`${L.name}.handle()`), () => l.handle());
      if (l instanceof RLock) closedErr(t, m('RLock.depth'), () => (l as RLock).depth);
    }
    for (const S of [ctx.Semaphore, ctx.BoundedSemaphore]) {
      const s = new S(1, { undoOnExit: true });
      s.close();
      closedErr(t, m(`${S.name}.acquire()`), () => s.acquire({ timeout: 0 }));
      closedErr(t, m(`${S.name}.release()`), () => s.release());
      closedErr(t, m(`${S.name}.value`), () => s.value);
      closedErr(t, m(`${S.name}.undoOnExit`), () => s.undoOnExit);
      closedErr(t, m(`${S.name}.recover()`), () => s.recover());
      closedErr(t, m(`${S.name}.handle()`), () => s.handle());
    }
    const e = new ctx.Event();
    e.close();
    closedErr(t, m('Event.set()'), () => e.set());
    closedErr(t, m('Event.clear()'), () => e.clear());
    closedErr(t, m('Event.isSet()'), () => e.isSet());
    closedErr(t, m('Event.wait()'), () => e.wait({ timeout: 0 }));
    closedErr(t, m('Event.handle()'), () => e.handle());
    const b = new ctx.Barrier(2);
    b.close();
    closedErr(t, m('Barrier.wait()'), () => b.wait({ timeout: 0 }));
    closedErr(t, m('Barrier.reset()'), () => b.reset());
    closedErr(t, m('Barrier.abort()'), () => b.abort());
    closedErr(t, m('Barrier.parties'), () => b.parties);
    closedErr(t, m('Barrier.nWaiting'), () => b.nWaiting);
    closedErr(t, m('Barrier.broken'), () => b.broken);
    closedErr(t, m('Barrier.handle()'), () => b.handle());
    const shm = new ctx.SharedMemory({ size: 16 });
    const buf = shm.buffer;
    shm.close();
    t.equal(shm.closed, true, m('SharedMemory.closed'));
    t.equal(buf.byteLength, 0, m('SharedMemory.close() detaches the buffer it handed out'));
    closedErr(t, m('SharedMemory.buffer'), () => shm.buffer);
    closedErr(t, m('SharedMemory.wait()'), () => shm.wait(0, 0, { timeout: 0 }));
    closedErr(t, m('SharedMemory.notify()'), () => shm.notify(0));
    closedErr(t, m('SharedMemory.handle()'), () => shm.handle());
    // Condition with its own lock, and with a lock it was given.
    const own = new ctx.Condition();
    const given = new ctx.Lock();
    const withLock = new ctx.Condition(given);
    t.teardown(() => given.close());
    for (const [name, c] of [['Condition()', own], ['Condition(lock)', withLock]] as const) {
      c.close();
      t.equal(c.closed, true, m(`${name}.closed`));
      closedErr(t, m(`${name}.acquire()`), () => c.acquire({ timeout: 0 }));
      closedErr(t, m(`${name}.release()`), () => c.release());
      closedErr(t, m(`${name}.lockGuard()`), () => c.lockGuard({ timeout: 0 }));
      closedErr(t, m(`${name}.wait()`), () => c.wait({ timeout: 0 }));
      closedErr(t, m(`${name}.waitFor()`), () => c.waitFor(() => false, { timeout: 0 }));
      closedErr(t, m(`${name}.notify()`), () => c.notify());
      closedErr(t, m(`${name}.notifyAll()`), () => c.notifyAll());
      closedErr(t, m(`${name}.handle()`), () => c.handle());
    }
    t.equal(given.closed, false, m('closing a Condition leaves the lock it was given open'));
    if (given.isOwned()) given.release(); // taken through the closed Condition (a bug reported above)
    t.ok(given.acquire({ timeout: 0 }), m('and usable'));
    given.release();
  }
});

t.test('close() twice is fine; Symbol.dispose closes', async (t) => {
  const makers: Array<[string, () => { close(): void; closed: boolean; [Symbol.dispose](): void }]> = [
    ['Lock', () => new Lock()],
    ['RLock', () => new RLock()],
    ['Semaphore', () => new Semaphore(1)],
    ['BoundedSemaphore', () => new BoundedSemaphore(1)],
    ['Event', () => new Event()],
    ['Condition', () => new Condition()],
    ['Barrier', () => new Barrier(2)],
    ['SharedMemory', () => new SharedMemory({ size: 8 })],
  ];
  for (const [name, make] of makers) {
    const a = make();
    a.close();
    t.doesNotThrow(() => a.close(), `${name}: close() twice is fine`);
    t.doesNotThrow(() => a[Symbol.dispose](), `${name}: Symbol.dispose after close() is fine`);
    const b = make();
    b[Symbol.dispose]();
    t.equal(b.closed, true, `${name}: Symbol.dispose closes`);
    {
      using c = make();
      t.equal(c.closed, false, `${name}: open inside a 'using' block`);
      var leaked = c; // eslint-disable-line no-var
    }
    t.equal(leaked.closed, true, `${name}: closed at the end of a 'using' block`);
  }
  const l = new Lock();
  t.teardown(() => l.close());
  {
    using g = l.lock();
    t.ok(l.isOwned(), "lock() guard: held inside 'using'");
    void g;
  }
  t.notOk(l.locked(), "lock() guard: released at the end of 'using'");
  const g2 = l.lock();
  g2.release();
  t.doesNotThrow(() => g2.release(), 'a guard released twice is fine');
  t.doesNotThrow(() => g2[Symbol.dispose](), 'and disposed after release');
  t.notOk(l.locked(), 'still free');
});
