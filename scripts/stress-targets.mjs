// Process targets for scripts/stress.mjs (forksafe's bootstrap attaches the
// primitives passed in args before calling them). The holders SIGKILL
// themselves at a moment the parent chose; the chaos workers run until told
// to stop or killed. Every wait here is bounded; an exit code other than by
// SIGKILL says which wait ran out.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { OwnerDiedError } = require('../dist/index.js');

// ---- trials ---------------------------------------------------------------------------------
// ctl (SharedMemory, Int32 words): READY (child: in place), GO (parent: about
// to block); Float64 at T_KILL_BYTE: process.hrtime (ns) right before the
// child's last act (SIGKILL, or Event.set() then SIGKILL).
export const READY = 0;
export const GO = 16;
export const T_KILL_BYTE = 64;
export const CTL_SIZE = 128;

const pause = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function say(ctl) {
  Atomics.store(new Int32Array(ctl.buffer), READY, 1);
  ctl.notify(READY);
}

function awaitGo(ctl) {
  const i32 = new Int32Array(ctl.buffer);
  const deadline = Date.now() + 20_000;
  while (Atomics.load(i32, GO) === 0) {
    if (Date.now() > deadline) return false;
    ctl.wait(GO, 0, { timeout: 1000 });
  }
  return true;
}

function stamp(ctl) {
  new Float64Array(ctl.buffer, T_KILL_BYTE, 1)[0] = Number(process.hrtime.bigint());
}

function die(ctl) {
  stamp(ctl);
  process.kill(process.pid, 'SIGKILL');
  for (;;) pause(1000);
}

/** Lock / RLock: holds it; after GO and delayMs, dies holding it. */
export function lockHolder(lock, ctl, delayMs) {
  if (!lock.acquire({ timeout: 20_000 })) return 2;
  say(ctl);
  if (!awaitGo(ctl)) return 3;
  pause(delayMs);
  return die(ctl);
}

/** Semaphore (undoOnExit): takes a unit; after GO and delayMs, dies holding it. */
export function semHolder(sem, ctl, delayMs) {
  if (!sem.acquire({ timeout: 20_000 })) return 2;
  say(ctl);
  if (!awaitGo(ctl)) return 3;
  pause(delayMs);
  return die(ctl);
}

/** Barrier: arrives (waitAsync, so this thread stays free); after GO and delayMs, dies. */
export async function barrierParty(b, ctl, delayMs) {
  b.waitAsync({ timeout: 30_000 }).catch(() => {});
  say(ctl);
  const i32 = new Int32Array(ctl.buffer);
  const deadline = Date.now() + 20_000;
  while (Atomics.load(i32, GO) === 0) {
    if (Date.now() > deadline) return 3;
    await ctl.waitAsync(GO, 0, { timeout: 1000 });
  }
  await new Promise((r) => setTimeout(r, delayMs));
  return die(ctl);
}

/** Condition: after GO takes its lock (the parent's wait released it), notifies, dies holding the lock. */
export function condNotifier(cond, ctl, delayMs) {
  say(ctl);
  if (!awaitGo(ctl)) return 3;
  if (!cond.acquire({ timeout: 20_000 })) return 2;
  cond.notify();
  pause(delayMs);
  return die(ctl);
}

/** Event: after GO and delayMs, sets it and dies at once. */
export function eventSetter(ev, ctl, delayMs) {
  say(ctl);
  if (!awaitGo(ctl)) return 3;
  pause(delayMs);
  stamp(ctl);
  ev.set();
  process.kill(process.pid, 'SIGKILL');
  for (;;) pause(1000);
}

/** Event: after GO and delayMs, dies without setting it. */
export function eventNoSetter(ev, ctl, delayMs) {
  say(ctl);
  if (!awaitGo(ctl)) return 3;
  pause(delayMs);
  return die(ctl);
}

// ---- chaos ----------------------------------------------------------------------------------
// Int32 words of the chaos SharedMemory:
export const C_COUNTER = 0; // incremented (non-atomically) only under the lock
export const C_INSIDE = 16; // pid of the process in the critical section, 0 when none
export const C_STOP = 32; // parent: 1 = finish the current increment and exit 0
export const C_VIOLATIONS = 48; // mutual exclusion seen broken
export const C_RECOVERIES = 64; // OwnerDiedError recoveries done
export const C_BAD = 80; // anything else unexpected (NotRecoverableError, a journal in a bad state)
export const C_SLOTS = 128; // slot s: 4 words at C_SLOTS + 4 s
// slot words: +0 committed (increments this slot's workers made, under the
// lock), +1 intent (1 while an increment is under way), +2 counter before it,
// +3 committed before it.
export const C_MAX_SLOTS = 32;
export const C_SIZE = (C_SLOTS + 4 * C_MAX_SLOTS) * 4;

/**
 * Repairs the state a dead holder left: an increment with its intent still
 * set is rolled back to the values journalled before it began (the journal
 * is written before the intent, the intent cleared last, so the rollback is
 * right at every point a holder can die, itself included). Then
 * markConsistent(). Called with the lock held after OwnerDiedError.
 */
export function recoverState(lock, i32, e, nSlots) {
  // Whoever is marked inside must be gone: the dead owner, or an earlier one
  // whose recoverer died before it had cleaned up.
  const inside = Atomics.load(i32, C_INSIDE);
  if (inside !== 0 && inside !== e.pid && alive(inside)) Atomics.add(i32, C_VIOLATIONS, 1);
  for (let s = 0; s < nSlots; s++) {
    const b = C_SLOTS + 4 * s;
    if (i32[b + 1] !== 0) {
      i32[C_COUNTER] = i32[b + 2];
      i32[b] = i32[b + 3];
      Atomics.store(i32, b + 1, 0);
    }
  }
  Atomics.store(i32, C_INSIDE, 0);
  Atomics.add(i32, C_RECOVERIES, 1);
  lock.markConsistent();
}

/** Running and not a zombie (from /proc/<pid>/stat). */
function alive(pid) {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st[st.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

function critical(i32, slot) {
  const me = process.pid;
  if (Atomics.exchange(i32, C_INSIDE, me) !== 0) Atomics.add(i32, C_VIOLATIONS, 1);
  const b = C_SLOTS + 4 * slot;
  i32[b + 2] = i32[C_COUNTER];
  i32[b + 3] = i32[b];
  Atomics.store(i32, b + 1, 1);
  i32[C_COUNTER] = i32[C_COUNTER] + 1; // deliberately not atomic: the lock makes it exact
  i32[b] = i32[b] + 1;
  Atomics.store(i32, b + 1, 0);
  if (Atomics.exchange(i32, C_INSIDE, 0) !== me) Atomics.add(i32, C_VIOLATIONS, 1);
}

/** A chaos worker: locked increments of the shared counter, journalled, until STOP. */
export async function chaosWorker(lock, shm, slot, nSlots, isAsync) {
  const i32 = new Int32Array(shm.buffer);
  const deadline = Date.now() + 120_000; // never outlive a broken parent for long
  while (Atomics.load(i32, C_STOP) === 0 && Date.now() < deadline) {
    try {
      const ok = isAsync ? await lock.acquireAsync({ timeout: 10_000 }) : lock.acquire({ timeout: 10_000 });
      if (!ok) return 5; // no progress for 10 s: a hang, the parent reports it
    } catch (e) {
      if (!(e instanceof OwnerDiedError)) {
        Atomics.add(i32, C_BAD, 1);
        console.error(`chaosWorker ${slot}: ${e?.stack ?? e}`);
        return 6;
      }
      recoverState(lock, i32, e, nSlots);
    }
    critical(i32, slot);
    lock.release();
    if (isAsync && (i32[C_COUNTER] & 63) === 0) await null; // let the loop breathe now and then
  }
  return 0;
}
