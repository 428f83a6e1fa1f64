// Error classes of the public API (see API.md). Codes are fixed; messages say
// what happened and what to do.
import { types } from 'node:util';

export class ForksafeError extends Error {
  code: string;
  constructor(message: string, code = 'ERR_FORKSAFE', options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class ContextError extends ForksafeError {
  constructor(message: string) {
    super(message, 'ERR_FORKSAFE_CONTEXT_MISMATCH');
  }
}

export class OwnerDiedError extends ForksafeError {
  /** pid of the owner that died holding the lock. */
  readonly pid: number;
  /** forksafe JS-thread index of that owner within its process. */
  readonly tid: number;
  constructor(pid: number, tid: number, what: string) {
    super(
      `${what}: the previous owner (pid ${pid}, thread ${tid}) died holding it. ` +
        'The lock is now held by you: repair the state it protects, then call markConsistent() ' +
        'before release(), or it becomes unusable (NotRecoverableError).',
      'ERR_FORKSAFE_OWNER_DIED',
    );
    this.pid = pid;
    this.tid = tid;
  }
}

export class NotOwnerError extends ForksafeError {
  constructor(message: string) {
    super(message, 'ERR_FORKSAFE_NOT_OWNER');
  }
}

export class DeadlockError extends ForksafeError {
  constructor(message: string) {
    super(message, 'ERR_FORKSAFE_DEADLOCK');
  }
}

export class NotRecoverableError extends ForksafeError {
  constructor(message: string) {
    super(message, 'ERR_FORKSAFE_NOT_RECOVERABLE');
  }
}

export class ClosedError extends ForksafeError {
  constructor(what: string) {
    super(`${what} is closed`, 'ERR_FORKSAFE_CLOSED');
  }
}

export class ForkUnsafeError extends ForksafeError {
  readonly reasons: string[];
  constructor(reasons: string[]) {
    super(`fork() refused: ${reasons.join('; ')}`, 'ERR_FORKSAFE_FORK_UNSAFE');
    this.reasons = reasons;
  }
}

export class BrokenBarrierError extends ForksafeError {
  constructor(message = 'the barrier is broken') {
    super(message, 'ERR_FORKSAFE_BROKEN_BARRIER');
  }
}

/** A `lock()` guard that could not be taken in time (extension of API.md). */
export class TimeoutError extends ForksafeError {
  constructor(message: string) {
    super(message, 'ERR_FORKSAFE_TIMEOUT');
  }
}

export class QueueEmptyError extends ForksafeError {
  constructor(message = 'the queue is empty') {
    super(message, 'ERR_FORKSAFE_QUEUE_EMPTY');
  }
}

export class QueueFullError extends ForksafeError {
  constructor(message = 'the queue is full') {
    super(message, 'ERR_FORKSAFE_QUEUE_FULL');
  }
}

export class QueueShutDownError extends ForksafeError {
  constructor(message = 'the queue was shut down') {
    super(message, 'ERR_FORKSAFE_QUEUE_SHUTDOWN');
  }
}

export class PeerClosedError extends ForksafeError {
  constructor(message = 'the other end of the pipe is closed: no live process or thread holds it') {
    super(message, 'ERR_FORKSAFE_PEER_CLOSED');
  }
}

/** Shared memory of a queue or pipe that does not follow its layout: another process wrote over it. */
export class CorruptError extends ForksafeError {
  constructor(detail: string) {
    super(`the shared memory of a queue or pipe is corrupt (${detail}): a process wrote over it`, 'ERR_FORKSAFE_CORRUPT');
  }
}

/** A pool worker died (SIGKILL, the OOM killer, a crash, process.exit) while it ran the task. */
export class WorkerDiedError extends ForksafeError {
  readonly pid: number;
  readonly signal: string | null;
  readonly exitCode: number | null;
  constructor(pid: number, signal: string | null, exitCode: number | null, what = 'the worker running this task died') {
    super(`${what} (pid ${pid}, ${signal ? `signal ${signal}` : `exit code ${exitCode}`})`, 'ERR_FORKSAFE_WORKER_DIED');
    this.pid = pid;
    this.signal = signal;
    this.exitCode = exitCode;
  }
}

export class PoolClosedError extends ForksafeError {
  constructor(message = 'the pool is closed') {
    super(message, 'ERR_FORKSAFE_POOL_CLOSED');
  }
}

/** A pool whose workers fail to start again and again (extension of API.md): its cause is the last failure. */
export class PoolBrokenError extends ForksafeError {
  constructor(message: string, cause: unknown) {
    super(message, 'ERR_FORKSAFE_POOL_BROKEN', { cause });
  }
}

export function badHandle(detail: string): ForksafeError {
  return new ForksafeError(`invalid forksafe handle: ${detail}`, 'ERR_FORKSAFE_BAD_HANDLE');
}

// Node-style argument errors.
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return `function ${(value as { name?: string }).name || '<anonymous>'}`;
  if (typeof value === 'object') {
    // Hostile values: a Proxy's traps and a throwing `constructor` getter are
    // not run or not let through while an error message is being built.
    if (types.isProxy(value)) return 'a Proxy';
    try {
      const ctor = (value as object).constructor;
      const n = typeof ctor === 'function' ? ctor.name : undefined;
      return typeof n === 'string' && n ? `an instance of ${n}` : 'an object';
    } catch {
      return 'an object';
    }
  }
  let shown = String(value);
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  if (typeof value === 'string') shown = `'${shown}'`;
  return `type ${typeof value} (${shown})`;
}

export function invalidArgType(name: string, expected: string, actual: unknown): TypeError {
  const e = new TypeError(`The "${name}" argument must be ${expected}. Received ${describe(actual)}`);
  (e as TypeError & { code: string }).code = 'ERR_INVALID_ARG_TYPE';
  return e;
}

/** Node's error for a method or getter called on an object that is not an instance of its class. */
export function invalidThis(type: string): TypeError {
  const e = new TypeError(`Value of "this" must be of type ${type}`);
  (e as TypeError & { code: string }).code = 'ERR_INVALID_THIS';
  return e;
}

/**
 * A value in a Process's args that cannot be structured-cloned into the child
 * (a function, a symbol, a SharedArrayBuffer, a WeakMap, a Proxy...), found
 * before anything is spawned. The clone error is the cause.
 */
export function notCloneable(name: string, actual: unknown, cause: unknown): TypeError {
  const detail = cause instanceof Error ? `: ${cause.message}` : '';
  const e = new TypeError(
    `The "${name}" argument must be a structured-cloneable value (no functions, symbols, ` +
      `SharedArrayBuffers, WeakMaps, Proxies...). Received ${describe(actual)}${detail}`,
    { cause },
  );
  (e as TypeError & { code: string }).code = 'ERR_INVALID_ARG_TYPE';
  return e;
}

export function outOfRange(name: string, range: string, actual: unknown): RangeError {
  const e = new RangeError(
    `The value of "${name}" is out of range. It must be ${range}. Received ${String(actual)}`,
  );
  (e as RangeError & { code: string }).code = 'ERR_OUT_OF_RANGE';
  return e;
}
