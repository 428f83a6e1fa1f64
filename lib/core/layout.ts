// Mirrors native/core/layout.h and native/core/segment.h: the numbers the JS
// fast paths and the handle format depend on. Offsets are in bytes from the
// slot start; *_I are Int32Array indexes relative to the slot's first index.

export const CTX = { spawn: 1, fork: 2, forkserver: 3 } as const;
export type StartMethod = keyof typeof CTX;
export const CTX_NAME: Record<number, StartMethod> = { 1: 'spawn', 2: 'fork', 3: 'forkserver' };

export const SEG_ARENA = 1;
export const SEG_SHM = 2;

export const KIND = {
  Lock: 1,
  RLock: 2,
  Semaphore: 3,
  Event: 4,
  Condition: 5,
  Barrier: 6,
} as const;

export const UNIT = 64;
export const WAITERS_BIT = 0x80000000 | 0;
export const TOKEN_MASK = 0x7fffffff;
export const PID_MASK = 0x003fffff;
export const THREAD_SHIFT = 22;
/** Lock word markers (thread index 0: never a live token). */
export const WORD_ABANDONED = 1;
export const WORD_NOT_RECOVERABLE = 2;

// Lock/RLock
export const LOCK_WORD_I = 4; // +16
export const LOCK_STATE_I = 5; // +20: 0 consistent, 1 owner died, 2 not recoverable
export const LOCK_COUNT_I = 6; // +24
export const LOCK_DIED_PID_I = 7; // +28
export const LOCK_DIED_TID_I = 8; // +32

// Semaphore
export const SEM_VALUE_I = 4;
export const SEM_WAITERS_I = 5;
export const SEM_MAX_I = 6;
export const SEM_FLAGS_I = 7;
export const SEM_UNDO = 1;
export const SEM_BOUNDED = 2;
export const SEM_UNITS = 1;
export const SEM_UNDO_UNITS = 17; // (64 + 64 entries * 16) / 64
export const UNDO_ENTRIES = 64;

// Event
export const EVENT_FLAG_I = 4;
export const EVENT_WAITERS_I = 5;

// Barrier
export const BARRIER_GEN_I = 4;
export const BARRIER_COUNT_I = 5;
export const BARRIER_PARTIES_I = 6;
export const BARRIER_BROKEN_I = 7;
export const BARRIER_TIMEOUT_LO_I = 12; // int64 at +48
export const BARRIER_TIMEOUT_HI_I = 13;
export const MAX_PARTIES = 8192;
export function barrierUnits(parties: number): number {
  return Math.ceil((64 + parties * 4) / UNIT);
}

// Native statuses (native/core/segment.h Status)
export const S = {
  OK: 0,
  TIMED_OUT: 1,
  OWNER_DIED: 2,
  NOT_RECOVERABLE: 3,
  NOT_OWNER: 4,
  DEADLOCK: 5,
  BROKEN: 6,
  BAD_HANDLE: 7,
  CONTEXT: 8,
  RANGE: 9,
  TOO_MANY: 10,
  NOT_EQUAL: 11,
  EXISTS: 12,
  UNLINKED: 13,
} as const;
