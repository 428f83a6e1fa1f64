// SharedMemory: the buffer, data across processes, wait/notify across
// processes, persistent named segments in /dev/shm, anonymous ones never
// there, close(), extreme sizes and index checks.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  ClosedError,
} from '../dist/index.js';
import { Process, SharedMemory } from './lib/spawn';
import { Child, exitOf, sleep, starter, until } from './lib/children';

const FIXTURE = path.join(__dirname, '..', 'build', 'fixtures', 'sync-shm.js');

// Process children inherit process.execArgv, as child_process.fork() children do.
// Under tap that includes its --import hooks (TypeScript, mock, processinfo: about
// 2 s of CPU per child); the fixtures are precompiled JS and need none of them.
process.execArgv = process.execArgv.filter((a) => !a.includes('@tapjs/'));

const OK = 10;
const NOT_EQUAL = 11;
const TIMED_OUT = 12;
const MiB = 1024 * 1024;

const start = starter(FIXTURE);

// Whether the main thread of `pid` sleeps in a futex (the kernel's wchan).
function inFutex(pid: number): boolean {
  try {
    return /futex/.test(fs.readFileSync(`/proc/${pid}/wchan`, 'utf8'));
  } catch {
    return false;
  }
}

// Children counted themselves ready at Int32 [readyIndex] and sleep in a futex
// (twice, 50 ms apart: a shm.wait() follows the count at once).
async function allAsleep(a: Int32Array, readyIndex: number, kids: Child[], ms = 10_000): Promise<boolean> {
  const asleep = () => Atomics.load(a, readyIndex) === kids.length && kids.every((k) => inFutex(k.proc.pid as number));
  if (!(await until(asleep, ms))) return false;
  await sleep(50);
  return asleep();
}

const pattern = (o: number) => (o * 7 + 3) & 255;

function uniqueName(tag: string): string {
  return `t-${tag}-${process.pid}-${Date.now().toString(36)}`;
}

t.test('buffer and size', async (t) => {
  const s = new SharedMemory({ size: 100 });
  t.teardown(() => s.close());
  t.equal(s.size, 100);
  t.ok(s.buffer instanceof ArrayBuffer);
  t.equal(s.buffer.byteLength, 100, 'the buffer is exactly size bytes');
  t.equal(s.name, null);
  t.equal(s.persistent, false);
  t.equal(s.closed, false);
  t.ok(new Uint8Array(s.buffer).every((b) => b === 0), 'zero-filled');
  const a = new Int32Array(s.buffer);
  t.equal(a.length, 25);
  t.equal(Atomics.add(a, 24, 5), 0, 'Atomics work on it');
  t.equal(Atomics.load(a, 24), 5);
  t.equal(s.buffer, s.buffer, 'the same ArrayBuffer each time');
  t.throws(() => new SharedMemory({ size: 0 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => new SharedMemory({ size: -1 }), RangeError);
  t.throws(() => new SharedMemory({ size: 1.5 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => new SharedMemory({ size: '8' as unknown as number }), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => new SharedMemory(undefined as unknown as { size: number }), { code: 'ERR_INVALID_ARG_TYPE' });
});

t.test('data written in one process is read in another, both ways', async (t) => {
  const SIZE = 4096;
  const s = new SharedMemory({ size: SIZE });
  t.teardown(() => s.close());
  const u8 = new Uint8Array(s.buffer);
  const offsets = Array.from({ length: SIZE }, (_, i) => i);
  for (const o of offsets) u8[o] = pattern(o);
  const k = start(t, 'flip', [s, offsets, SIZE]);
  t.same(await exitOf(k), { code: 0, signal: null }, `child read our bytes ${k.stderr()}`);
  t.ok(offsets.every((o) => u8[o] === 255 - pattern(o)), "we read the child's bytes");
});

t.test('wait/notify in one process', async (t) => {
  const s = new SharedMemory({ size: 16 });
  t.teardown(() => s.close());
  t.equal(s.wait(0, 1), 'not-equal', 'value differs: not-equal at once');
  t.equal(s.wait(0, 0, { timeout: 0 }), 'timed-out', 'timeout 0');
  const t0 = performance.now();
  t.equal(s.wait(0, 0, { timeout: 50 }), 'timed-out', 'timeout 50');
  t.ok(performance.now() - t0 >= 40, 'waited about the timeout');
  t.equal(s.notify(0), 0, 'nobody waits: 0 woken');
  t.equal(s.notify(0, 0), 0);
  const a = new Int32Array(s.buffer);
  a[1] = -5;
  t.equal(s.wait(1, -5, { timeout: 10 }), 'timed-out', 'negative values compare as Int32');
  a[1] = -1;
  t.equal(s.wait(1, 0xffffffff, { timeout: 10 }), 'timed-out', '0xffffffff is -1 as an Int32');
  t.throws(() => s.wait(0, 0, { timeout: -1 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => s.notify(0, -1), { code: 'ERR_OUT_OF_RANGE' });
});

t.test("wait/notify across processes: 'ok', 'not-equal', 'timed-out'", async (t) => {
  const s = new SharedMemory({ size: 64 });
  t.teardown(() => s.close());
  const a = new Int32Array(s.buffer);

  // 'ok': the child sleeps on [0] == 0; we notify without changing the value.
  const sleeper = start(t, 'waitOn', [s, 0, 0, 10_000, 8]);
  t.ok(await allAsleep(a, 8, [sleeper]), 'child sleeps in wait()');
  let woken = 0;
  const end = Date.now() + 5_000;
  while (woken === 0 && Date.now() < end) {
    woken = s.notify(0, 1);
    if (woken === 0) await sleep(10);
  }
  t.equal(woken, 1, 'notify() woke the child');
  t.same(await exitOf(sleeper), { code: OK, signal: null }, `child: 'ok' ${sleeper.stderr()}`);

  // 'not-equal': [1] is 5, the child expects 0. 'timed-out': nobody notifies [2].
  Atomics.store(a, 1, 5);
  const ne = start(t, 'waitOn', [s, 1, 0, 10_000, 9]);
  const to = start(t, 'waitOn', [s, 2, 0, 200, 10]);
  t.same(await exitOf(ne), { code: NOT_EQUAL, signal: null }, `child: 'not-equal' ${ne.stderr()}`);
  t.same(await exitOf(to), { code: TIMED_OUT, signal: null }, `child: 'timed-out' ${to.stderr()}`);

  // The other way: we block in wait(), a child notifies us.
  const notifier = start(t, 'notifyLater', [s, 3, 300]);
  t.equal(s.wait(3, 0, { timeout: 10_000 }), 'ok', "woken by the child's notify()");
  t.same(await exitOf(notifier), { code: 0, signal: null }, `child's notify() returned 1 ${notifier.stderr()}`);
});

t.test('notify() returns the number of processes woken', async (t) => {
  const s = new SharedMemory({ size: 64 });
  t.teardown(() => s.close());
  const a = new Int32Array(s.buffer);
  const three = Array.from({ length: 3 }, () => start(t, 'waitOn', [s, 0, 0, 15_000, 8]));
  t.ok(await allAsleep(a, 8, three), '3 children sleep in wait()');
  t.equal(s.notify(0), 3, '3 waiting processes: notify() returns 3');
  for (const k of three) t.same(await exitOf(k), { code: OK, signal: null }, `woken: 'ok' ${k.stderr()}`);
  t.equal(s.notify(0), 0, 'none left');

  const two = Array.from({ length: 2 }, () => start(t, 'waitOn', [s, 1, 0, 15_000, 9]));
  t.ok(await allAsleep(a, 9, two), '2 children sleep in wait()');
  t.equal(s.notify(1, 1), 1, 'count 1: 1 woken');
  const zero = s.notify(1, 0);
  t.equal(zero, 0, 'count 0 wakes nobody, as Atomics.notify(ta, i, 0) (FUTEX_WAKE with 0 wakes one)');
  t.equal(zero + s.notify(1, 5), 1, 'count 5: the one left');
  for (const k of two) t.same(await exitOf(k), { code: OK, signal: null }, k.stderr());
});

t.test('non-persistent segments never appear in /dev/shm', async (t) => {
  const name = uniqueName('anon');
  const anon = new SharedMemory({ size: 4096 });
  const named = new SharedMemory({ size: 4096, name });
  t.teardown(() => {
    anon.close();
    named.close();
  });
  t.equal(named.name, name, 'a name without persistent: just a label');
  t.equal(named.persistent, false);
  const listed = () => fs.readdirSync('/dev/shm').filter((e) => e.includes(name));
  t.same(listed(), [], 'not in /dev/shm');
  const kids = [start(t, 'noDevShm', [anon, null]), start(t, 'noDevShm', [named, name])];
  for (const k of kids) t.same(await exitOf(k), { code: 0, signal: null }, `child maps nothing from /dev/shm ${k.stderr()}`);
  t.equal(new Uint8Array(anon.buffer)[0], 1, 'the child wrote to the anonymous segment');
  t.equal(new Uint8Array(named.buffer)[0], 1);
  const ours = fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes('/dev/shm/'));
  t.same(ours, [], 'we map nothing from /dev/shm either');
  t.same(listed(), [], 'still not in /dev/shm');
});

// SharedMemory.open(name), or a failed assertion saying why (null).
function openOrFail(t: tap.Test, name: string): SharedMemory | null {
  try {
    return SharedMemory.open(name);
  } catch (e) {
    t.fail(`SharedMemory.open('${name}') of an existing persistent segment threw: ${String(e)}`);
    return null;
  }
}

t.test('persistent named segment: /dev/shm/forksafe.<name>, mode 0600, unlink() removes it', async (t) => {
  const name = uniqueName('p');
  const file = `/dev/shm/forksafe.${name}`;
  t.teardown(() => fs.rmSync(file, { force: true }));
  const SIZE = 4096;
  const s = new SharedMemory({ name, persistent: true, size: SIZE });
  t.teardown(() => s.close());
  t.equal(s.name, name);
  t.equal(s.persistent, true);
  t.equal(s.size, SIZE);
  t.equal(s.buffer.byteLength, SIZE);
  const st = fs.statSync(file);
  t.ok(st.isFile(), `${file} exists`);
  t.equal(st.mode & 0o777, 0o600, 'mode 0600');
  t.ok(st.size >= SIZE, 'at least size bytes');
  const a = new Int32Array(s.buffer);
  Atomics.store(a, 0, 1234);
  s.unlink();
  t.equal(fs.existsSync(file), false, 'unlink() removed it from /dev/shm');
  t.equal(Atomics.load(a, 0), 1234, 'the mapping still works after unlink()');
  t.throws(() => SharedMemory.open(name), 'open() after unlink() throws');
  const fresh = new SharedMemory({ name, persistent: true, size: SIZE });
  t.teardown(() => fresh.close());
  t.equal(Atomics.load(new Int32Array(fresh.buffer), 0), 0, 'the same name after unlink(): a new, zeroed segment');
  fresh.unlink();
  t.equal(fs.existsSync(file), false);
  const anon = new SharedMemory({ size: 8 });
  anon.unlink(); // every segment: ported code calls it unconditionally (test/hostile.ts has the rest)
  t.throws(() => anon.unlink(), { code: 'ENOENT' }, 'a second unlink() of a non-persistent segment throws ENOENT');
  anon.close();
  t.throws(() => new SharedMemory({ name: 'bad/name', persistent: true, size: 8 }), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => SharedMemory.open('bad/name'), { code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => SharedMemory.open(42 as unknown as string), { code: 'ERR_INVALID_ARG_TYPE' });
});

t.test('SharedMemory.open(name) from another process, and again here after close()', async (t) => {
  const name = uniqueName('o');
  const file = `/dev/shm/forksafe.${name}`;
  t.teardown(() => fs.rmSync(file, { force: true }));
  const SIZE = 4096;
  const s = new SharedMemory({ name, persistent: true, size: SIZE });
  t.teardown(() => s.close());
  const a = new Int32Array(s.buffer);
  Atomics.store(a, 0, 1234);
  const k = start(t, 'openByName', [name, SIZE, 1234]);
  t.same(await exitOf(k), { code: 0, signal: null }, `child opened it by name ${k.stderr()}`);
  t.equal(Atomics.load(a, 1), 1235, "we see the child's write");
  s.close();
  t.ok(fs.existsSync(file), 'still in /dev/shm after close()');
  const again = openOrFail(t, name);
  if (again) {
    t.teardown(() => again.close());
    t.equal(again.persistent, true);
    t.equal(again.name, name);
    t.equal(again.size, SIZE);
    t.equal(Atomics.load(new Int32Array(again.buffer), 0), 1234, 'contents kept');
    again.unlink();
    t.equal(fs.existsSync(file), false, 'unlink() from the opened object');
  }
});

t.test('a persistent segment handed to a Process in args', async (t) => {
  const name = uniqueName('a');
  const file = `/dev/shm/forksafe.${name}`;
  t.teardown(() => fs.rmSync(file, { force: true }));
  const s = new SharedMemory({ name, persistent: true, size: 64 });
  t.teardown(() => s.close());
  const offsets = [0, 1, 63];
  const u8 = new Uint8Array(s.buffer);
  for (const o of offsets) u8[o] = pattern(o);
  const k = start(t, 'flip', [s, offsets, 64]);
  t.same(await exitOf(k), { code: 0, signal: null }, `child attached it and read our bytes ${k.stderr()}`);
  t.ok(offsets.every((o) => u8[o] === 255 - pattern(o)), "we see the child's writes");
  s.unlink();
});

t.test('a persistent segment created by a child outlives it', async (t) => {
  const name = uniqueName('c');
  const file = `/dev/shm/forksafe.${name}`;
  t.teardown(() => fs.rmSync(file, { force: true }));
  const k = start(t, 'createPersistent', [name, 8192, 777]);
  t.same(await exitOf(k), { code: 0, signal: null }, k.stderr());
  t.ok(fs.existsSync(file), 'still in /dev/shm after the child exited');
  t.equal(fs.statSync(file).mode & 0o777, 0o600);
  const s = openOrFail(t, name);
  if (s) {
    t.teardown(() => s.close());
    t.equal(s.size, 8192);
    t.equal(Atomics.load(new Int32Array(s.buffer), 0), 777, "the child's data");
    s.unlink();
    t.equal(fs.existsSync(file), false);
  }
});

t.test('close() detaches the buffer; later use throws ClosedError', async (t) => {
  const s = new SharedMemory({ size: 64 });
  const ab = s.buffer;
  const u8 = new Uint8Array(ab);
  const i32 = new Int32Array(ab);
  u8[0] = 9;
  s.close();
  t.equal(s.closed, true);
  t.equal(ab.byteLength, 0, 'buffer detached: byteLength 0');
  t.equal(u8.length, 0, 'typed arrays over it: length 0');
  t.equal(i32.length, 0);
  t.equal(u8[0], undefined, 'reads give undefined, not stale memory');
  t.throws(() => s.wait(0, 0, { timeout: 0 }), ClosedError, 'wait() after close()');
  t.throws(() => s.wait(0, 0, { timeout: 0 }), { code: 'ERR_FORKSAFE_CLOSED' });
  t.throws(() => s.notify(0), { code: 'ERR_FORKSAFE_CLOSED' }, 'notify() after close()');
  t.throws(() => s.buffer, { code: 'ERR_FORKSAFE_CLOSED' }, 'buffer after close()');
  t.throws(() => s.handle(), { code: 'ERR_FORKSAFE_CLOSED' });
  t.throws(
    () => new Process({ target: { module: FIXTURE, export: 'flip' }, args: [s, [], 64] }).start(),
    { code: 'ERR_FORKSAFE_CLOSED' },
    'a closed segment cannot be handed to a Process',
  );
  s.close(); // idempotent
  t.equal(s.closed, true);
});

t.test('size 1 and size 64 MiB', async (t) => {
  const one = new SharedMemory({ size: 1 });
  t.teardown(() => one.close());
  t.equal(one.size, 1);
  t.equal(one.buffer.byteLength, 1);
  new Uint8Array(one.buffer)[0] = pattern(0);
  t.throws(() => one.wait(0, 0, { timeout: 0 }), { code: 'ERR_OUT_OF_RANGE' }, 'no whole Int32 in 1 byte');
  const k1 = start(t, 'flip', [one, [0], 1]);

  const SIZE = 64 * MiB;
  const big = new SharedMemory({ size: SIZE });
  t.teardown(() => big.close());
  t.equal(big.size, SIZE);
  t.equal(big.buffer.byteLength, SIZE);
  const offsets = [0, SIZE - 1];
  for (let o = 4093; o < SIZE; o += MiB) offsets.push(o);
  const u8 = new Uint8Array(big.buffer);
  for (const o of offsets) u8[o] = pattern(o);
  const last = SIZE / 4 - 1;
  const lastValue = new Int32Array(big.buffer)[last];
  t.equal(big.wait(last, lastValue, { timeout: 0 }), 'timed-out', 'wait() on the last Int32');
  t.equal(big.notify(last), 0);
  const k2 = start(t, 'flip', [big, offsets, SIZE]);

  t.same(await exitOf(k1), { code: 0, signal: null }, `child read and wrote the 1-byte segment ${k1.stderr()}`);
  t.equal(new Uint8Array(one.buffer)[0], 255 - pattern(0));
  t.same(await exitOf(k2), { code: 0, signal: null }, `child read and wrote the 64 MiB segment ${k2.stderr()}`);
  t.ok(offsets.every((o) => u8[o] === 255 - pattern(o)), "we see the child's writes across 64 MiB");
});

t.test('index out of range: RangeError', async (t) => {
  const s = new SharedMemory({ size: 64 });
  t.teardown(() => s.close());
  for (const i of [16, -1, 1.5, 2 ** 31]) {
    t.throws(() => s.wait(i, 0, { timeout: 0 }), RangeError, `wait(${i})`);
    t.throws(() => s.notify(i), { code: 'ERR_OUT_OF_RANGE' }, `notify(${i})`);
  }
  t.throws(() => s.wait('0' as unknown as number, 0, { timeout: 0 }), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => s.wait(0, 2 ** 32, { timeout: 0 }), { code: 'ERR_OUT_OF_RANGE' }, 'value beyond 32 bits');
  t.equal(s.wait(15, 0, { timeout: 0 }), 'timed-out', 'the last index is fine');
  const odd = new SharedMemory({ size: 7 });
  t.teardown(() => odd.close());
  t.throws(() => odd.wait(1, 0, { timeout: 0 }), { code: 'ERR_OUT_OF_RANGE' }, 'a partial Int32 at the end is out of range');
  t.equal(odd.wait(0, 0, { timeout: 0 }), 'timed-out');
});
