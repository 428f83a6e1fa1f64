// forksafe Process targets used by bench/measure.mjs (they run in 'spawn'
// children started by forksafe's bootstrap, which attaches the primitives
// passed in args before calling the export). Return value = exit code.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
// Same path as the bootstrap loads, so the same module instance.
const { Lock } = require('../dist/index.js');

const LIMIT = { timeout: 10_000 }; // no wait in a bench may hang forever

/** The other end of the Event ping-pong: wait(ping); clear(ping); set(pong). */
export function pingpongChild(ping, pong, total) {
  for (let i = 0; i < total; i++) {
    if (!ping.wait(LIMIT)) return 2;
    ping.clear();
    pong.set();
  }
  return 0;
}

/** The async twin: await waitAsync(ping); clear(ping); set(pong). */
export async function asyncPingpongChild(ping, pong, total) {
  for (let i = 0; i < total; i++) {
    if (!(await ping.waitAsync(LIMIT))) return 2;
    ping.clear();
    pong.set();
  }
  return 0;
}

// Lock hand-off ping-pong with three locks and nothing else (a lock cannot be
// handed to a chosen process, and a releaser that at once re-acquires the same
// lock may win it back). The rotation forces strict alternation: in state k
// the parent holds L[k] and L[k+1], the child holds L[k+2] and waits for L[k].
// Parent: release L[k], then acquire L[k+2] (the child holds it). Child: gets
// L[k], releases L[k+2] (the parent gets it), then waits for L[k+1]: state k+1.
// Nobody ever waits for a lock it just released, and each round trip is two
// hand-offs: release → the other side's acquire returns.

/** The child of the 3-lock ping-pong; `ready` (an Event) only orders the start. */
export async function lockPingpongChild(locks, ready, total, isAsync) {
  if (!locks[2].acquire(LIMIT)) return 2;
  ready.set();
  for (let k = 0; k < total; k++) {
    const ok = isAsync ? await locks[k % 3].acquireAsync(LIMIT) : locks[k % 3].acquire(LIMIT);
    if (!ok) return 3;
    locks[(k + 2) % 3].release();
  }
  for (const l of locks) if (l.isOwned()) l.release();
  return 0;
}

// Int32 indices in the contended bench's SharedMemory, one cache line each.
export const COUNTER = 0;
export const READY = 16;
export const GO = 32;
export const DONE = 48;
export const SCRATCH = 64;
// Float64 pairs from byte 512: [start, end] of worker i's loop (process.hrtime
// is CLOCK_MONOTONIC, the same clock in every process).
export const TIMES_BYTE = 512;
export const MAX_WORKERS = 16;
export const SHM_SIZE = TIMES_BYTE + MAX_WORKERS * 16;

// One function for warm-up and the measured run, so the measured loop is the
// optimized one. The increment is deliberately not atomic: the lock is what
// makes the final total exact.
function increments(lock, i32, idx, k) {
  for (let i = 0; i < k; i++) {
    lock.acquire();
    i32[idx] = i32[idx] + 1;
    lock.release();
  }
}

/** K locked increments of the shared counter, started together with the others. */
export function contendedWorker(lock, shm, k, warm) {
  const i32 = new Int32Array(shm.buffer);
  const own = new Lock(); // warm-up on a private lock: no contention, same code
  increments(own, i32, SCRATCH, warm);
  own.close();
  const times = new Float64Array(shm.buffer, TIMES_BYTE, MAX_WORKERS * 2);
  const me = Atomics.add(i32, READY, 1);
  shm.notify(READY);
  const deadline = Date.now() + 30_000;
  while (Atomics.load(i32, GO) === 0) {
    if (Date.now() > deadline) return 3;
    shm.wait(GO, 0, { timeout: 1000 });
  }
  times[2 * me] = Number(process.hrtime.bigint());
  increments(lock, i32, COUNTER, k);
  times[2 * me + 1] = Number(process.hrtime.bigint());
  Atomics.add(i32, DONE, 1);
  shm.notify(DONE);
  return 0;
}

// Section 5b: the same job, sync and async in the same setup, also counting
// hand-offs between processes: each worker writes its number at LAST when it
// finds another's there (under the lock, on the counter's cache line).
export const LAST = 1;
export const SWITCHES = 80;

function incrementsCounted(lock, i32, idx, k, me) {
  let switches = 0;
  for (let i = 0; i < k; i++) {
    lock.acquire();
    i32[idx] = i32[idx] + 1;
    if (i32[LAST] !== me) {
      i32[LAST] = me;
      switches++;
    }
    lock.release();
  }
  return switches;
}

async function incrementsAsync(lock, i32, idx, k, me) {
  let switches = 0;
  for (let i = 0; i < k; i++) {
    await lock.acquireAsync();
    i32[idx] = i32[idx] + 1;
    if (i32[LAST] !== me) {
      i32[LAST] = me;
      switches++;
    }
    lock.release();
  }
  return switches;
}

/**
 * contendedWorker for section 5b: `await lock.acquireAsync()` (isAsync) or
 * `lock.acquire()`, and waiting for the start signal without blocking (async)
 * or blocking; counts hand-offs into SWITCHES.
 */
export async function handoffWorker(lock, shm, k, warm, isAsync) {
  const i32 = new Int32Array(shm.buffer);
  const own = new Lock();
  const scratch = new Int32Array(16); // warm-up: private lock, private counter
  if (isAsync) await incrementsAsync(own, scratch, 0, warm, -1);
  else incrementsCounted(own, scratch, 0, warm, -1);
  own.close();
  const times = new Float64Array(shm.buffer, TIMES_BYTE, MAX_WORKERS * 2);
  const me = Atomics.add(i32, READY, 1);
  shm.notify(READY);
  const deadline = Date.now() + 30_000;
  while (Atomics.load(i32, GO) === 0) {
    if (Date.now() > deadline) return 3;
    if (isAsync) await shm.waitAsync(GO, 0, { timeout: 1000 });
    else shm.wait(GO, 0, { timeout: 1000 });
  }
  times[2 * me] = Number(process.hrtime.bigint());
  const switches = isAsync ? await incrementsAsync(lock, i32, COUNTER, k, me) : incrementsCounted(lock, i32, COUNTER, k, me);
  times[2 * me + 1] = Number(process.hrtime.bigint());
  Atomics.add(i32, SWITCHES, switches);
  Atomics.add(i32, DONE, 1);
  shm.notify(DONE);
  return 0;
}
