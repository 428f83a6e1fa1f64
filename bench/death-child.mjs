// The holder of bench/death.mjs: a forksafe Process target (the bootstrap
// attaches the primitives passed in args before calling it).
//
// Layout of the trial's SharedMemory (Int32 indices, Float64 at byte 64):
export const HELD = 0; // the child holds the lock (child stores 1 + notify)
export const WAITING = 16; // the parent is about to block in acquire (parent stores 1 + notify)
export const T_KILL_BYTE = 64; // Float64: process.hrtime (ns, CLOCK_MONOTONIC) right before the SIGKILL
export const SHM_SIZE = 128;

const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Takes the lock, says so, waits until the parent is about to block, lets it
 * fall asleep (`delayMs`: the bench draws it at random, so the kill lands at
 * any phase of the waiter's 50 ms liveness slice), notes the time and
 * SIGKILLs itself. Returns 2/3 (exit code) if a bounded wait ran out.
 */
export function holdThenDie(lock, shm, delayMs) {
  const i32 = new Int32Array(shm.buffer);
  const f64 = new Float64Array(shm.buffer, T_KILL_BYTE, 1);
  if (!lock.acquire({ timeout: 10_000 })) return 2;
  Atomics.store(i32, HELD, 1);
  shm.notify(HELD);
  const deadline = Date.now() + 10_000;
  while (Atomics.load(i32, WAITING) === 0) {
    if (Date.now() > deadline) return 3;
    shm.wait(WAITING, 0, { timeout: 1000 });
  }
  pause(delayMs);
  f64[0] = Number(process.hrtime.bigint());
  process.kill(process.pid, 'SIGKILL');
  return 4; // not reached
}
