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
