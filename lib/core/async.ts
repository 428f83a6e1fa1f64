// The async twins' plumbing: every …Async method that cannot complete at once
// submits a wait to the native waiter threads (native/core/waiter_linux.cc)
// and gets its completion back here, on this JS thread, through one
// thread-safe function. No JS polling, no libuv threadpool.
//
// Abort and close: the native op is cancelled; it completes with CANCELLED,
// or with its real result if it won the race. A lock or semaphore unit that
// was granted to an aborted/closed wait is given back before the promise
// rejects, so nothing is left acquired.
import { binding } from './binding';
import { ClosedError } from './errors';
import { validateObject, parseTimeout, validateSignal, offAbort, onAbort, signalReason } from './validate';

export const CANCELLED = 100;

export interface AsyncOptions {
  timeout?: number;
  signal?: AbortSignal;
}

interface Pending {
  settle(status: number, index: number): void;
  reject(reason: Error): void;
}

const pending = new Map<number, Pending>();
let initialised = false;

export function init(): void {
  if (initialised) return;
  initialised = true;
  binding.asyncInit((id: number, status: number, index: number) => {
    const p = pending.get(id);
    if (!p) return;
    pending.delete(id);
    p.settle(status, index);
  });
}

/**
 * Reads and validates async options (each property once). Call it before
 * checking `closed` and before touching shared memory: a getter here may run
 * any code, close() included.
 */
export function parseAsyncOptions(opts: unknown): { timeout: number; signal: AbortSignal | undefined } {
  if (opts === undefined) return { timeout: -1, signal: undefined };
  validateObject('options', opts);
  const o = opts as AsyncOptions;
  const timeout = parseTimeout(o.timeout, 'options.timeout');
  return { timeout, signal: validateSignal('options.signal', o.signal) };
}

/** What an object with pending async waits needs: a set to register them in. */
export interface Waitable {
  _pending: Set<number> | null;
  _closedReason: Error | null;
}

export interface Completion<T> {
  /** Maps a native completion status to a value; throws to reject. */
  map(status: number, index: number): T;
  /** Gives back what a wait obtained when its promise will reject (abort/close). */
  undo?(status: number): void;
}

/**
 * Submits via `submit` (which returns the native op id) and returns the
 * promise of its completion. Abort and close are wired to cancellation.
 *
 * Everything that may throw happens before the native wait is armed, and
 * nothing after it can: a wait armed by submit() always has its completion
 * registered, so it can never take a unit or a lock that nobody awaits.
 * `signal` must come from validateSignal() (a real AbortSignal: its listener
 * is added through EventTarget's own method, running no user code).
 */
export function wait<T>(owner: Waitable, signal: AbortSignal | undefined, submit: () => number,
  c: Completion<T>, onIdle: () => void): Promise<T> {
  init();
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  let id = 0;
  let aborted: unknown = undefined;
  let isAborted = false;
  const abort = (): void => {
    isAborted = true;
    aborted = signalReason(signal as AbortSignal);
    if (id > 0) binding.asyncCancel(id);
  };
  if (signal) onAbort(signal, abort);
  try {
    id = submit(); // arms the native wait: the last step that may throw
  } catch (e) {
    if (signal) offAbort(signal, abort);
    throw e;
  }
  owner._pending ??= new Set();
  owner._pending.add(id);
  pending.set(id, {
    reject(reason) {
      if (signal) offAbort(signal, abort);
      owner._pending?.delete(id);
      reject(reason);
    },
    settle(status, index) {
      if (signal) offAbort(signal, abort);
      owner._pending?.delete(id);
      const closed = owner._closedReason;
      if (isAborted || closed) {
        if (status !== CANCELLED && c.undo) {
          try {
            c.undo(status);
          } catch {
            // the object may be closed under us; nothing more to give back
          }
        }
        if (owner._pending?.size === 0) onIdle();
        reject(isAborted ? aborted : closed);
        return;
      }
      if (owner._pending?.size === 0) onIdle();
      try {
        resolve(c.map(status, index));
      } catch (e) {
        reject(e);
      }
    },
  });
  return promise;
}

/** Cancels every pending wait of `owner`; they reject with ClosedError. */
export function cancelAll(owner: Waitable, what: string): boolean {
  if (!owner._pending || owner._pending.size === 0) return false;
  owner._closedReason = new ClosedError(what);
  for (const id of owner._pending) binding.asyncCancel(id);
  return true;
}

/** In a fork()ed child: the parent's pending waits do not exist here; their promises reject. */
export function forgetAfterFork(reason: Error): void {
  const all = [...pending.values()];
  pending.clear();
  for (const p of all) {
    try {
      p.reject(reason);
    } catch {
      // nothing to do
    }
  }
}

export function stats(): { threads: number; pending: number; threadPending: number } {
  return binding.asyncStats();
}
