// Lock and RLock: owner-checked per JS thread, robust to owner death.
//
// The lock word (Int32 at slot +16) is 0 when free, else the owner's token
// (pid | JS-thread index << 22) with bit 31 set when someone may be sleeping.
// The uncontended paths are one compare-exchange in JS; everything that may
// block or needs a wake-up goes to native (native/core/sync.cc).
import { binding } from './binding';
import {
  DeadlockError, NotOwnerError, NotRecoverableError, OwnerDiedError, TimeoutError, badHandle,
} from './errors';
import {
  KIND, LOCK_DIED_PID_I, LOCK_DIED_TID_I, LOCK_WORD_I, PID_MASK, S,
  THREAD_SHIFT, TOKEN_MASK, WORD_NOT_RECOVERABLE,
} from './layout';
import { Primitive, contextOf, takeAttach } from './primitive';
import { BaseHandle, onToken, unexpected } from './runtime';

let TOKEN = 0;
onToken((t) => {
  TOKEN = t;
});
import { timeoutOf, validateObject } from './validate';
import { AsyncOptions, parseAsyncOptions, wait } from './async';

export interface AcquireOptions {
  timeout?: number;
}

export interface LockGuard extends Disposable {
  release(): void;
}

export interface LockHandle extends BaseHandle {
  type: 'Lock' | 'RLock';
}

abstract class LockBase extends Primitive {
  /** @internal Int32 index of the lock word. */ _w = 0;
  /** @internal */ abstract readonly _recursive: boolean;

  /** @internal */
  _setup(): void {
    this._w = this._base + LOCK_WORD_I;
  }

  /** @internal Maps a native status after an acquire attempt. */
  _result(st: number): boolean {
    switch (st) {
      case S.OK:
        return true;
      case S.TIMED_OUT:
        return false;
      case S.OWNER_DIED: {
        const i32 = this._i32 as Int32Array;
        throw new OwnerDiedError(i32[this._base + LOCK_DIED_PID_I], i32[this._base + LOCK_DIED_TID_I], `${this.constructor.name}.acquire()`);
      }
      case S.NOT_RECOVERABLE:
        throw new NotRecoverableError(
          `${this.constructor.name} is not recoverable: a previous owner died holding it and the next owner ` +
            'released it without markConsistent()',
        );
      case S.DEADLOCK:
        throw new DeadlockError(`${this.constructor.name}.acquire(): the calling thread already holds this lock`);
      case S.BAD_HANDLE:
        throw badHandle('lock slot is not valid');
      default:
        throw unexpected(st, `${this.constructor.name}.acquire()`);
    }
  }

  /** @internal */
  _slowAcquire(timeout: number): boolean {
    return this._result(binding.lockAcquire(this._buf as ArrayBuffer, this._off, TOKEN, timeout, this._recursive));
  }

  /** @internal */
  _slowRelease(): void {
    const st = binding.lockRelease(this._buf as ArrayBuffer, this._off, TOKEN, this._recursive);
    if (st === S.OK) return;
    if (st === S.NOT_OWNER) {
      throw new NotOwnerError(`${this.constructor.name}.release(): the calling thread does not hold this lock`);
    }
    throw unexpected(st, `${this.constructor.name}.release()`);
  }

  abstract acquire(opts?: AcquireOptions): boolean;
  abstract release(): void;

  /** Acquires and returns a guard for `using g = lock.lock()`. Throws TimeoutError on timeout. */
  lock(opts?: AcquireOptions): LockGuard {
    if (!this.acquire(opts)) {
      throw new TimeoutError(`${this.constructor.name}.lock(): not acquired within ${timeoutOf(opts)} ms`);
    }
    let done = false;
    const release = (): void => {
      if (done) return;
      done = true;
      this.release();
    };
    return { release, [Symbol.dispose]: release };
  }

  /**
   * Acquires without blocking the event loop: a native waiter thread waits and
   * acquires for this JS thread, which then owns the lock exactly as after
   * acquire(). Resolves false on timeout; rejects with signal.reason on abort
   * (nothing is left acquired).
   */
  acquireAsync(opts?: AsyncOptions): Promise<boolean> {
    try {
      const { timeout, signal } = parseAsyncOptions(opts);
      const i32 = this._i32 ?? this._closed();
      if (signal?.aborted) return Promise.reject(signal.reason);
      const w = this._w;
      const old = Atomics.compareExchange(i32, w, 0, TOKEN);
      if (old === 0) {
        if (this._recursive) i32[w + 2] = 1;
        return Promise.resolve(true);
      }
      if ((old & TOKEN_MASK) === TOKEN) {
        if (!this._recursive) throw new DeadlockError(`${this.constructor.name}.acquireAsync(): the calling thread already holds this lock`);
        i32[w + 2] += 1;
        return Promise.resolve(true);
      }
      if (timeout === 0) return Promise.resolve(this._slowAcquire(0));
      const buf = this._buf as ArrayBuffer, off = this._off, rec = this._recursive, seg = this._seg;
      return wait(this, signal, () => {
        const id = binding.asyncLock(seg, buf, off, TOKEN, rec, timeout);
        if (id < 0) throw badHandle('lock slot is not valid');
        return id;
      }, {
        map: (st) => this._result(st),
        undo: (st) => {
          if (st === S.OK) binding.lockRelease(buf, off, TOKEN, rec);
          else if (st === S.OWNER_DIED) binding.lockAbandon(buf, off, TOKEN); // still owner-died for the next
        },
      }, () => this._idle());
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** `await using g = await lock.lockAsync()`: acquires, returns a guard. TimeoutError on timeout. */
  async lockAsync(opts?: AsyncOptions): Promise<LockGuard & AsyncDisposable> {
    if (!(await this.acquireAsync(opts))) {
      throw new TimeoutError(`${this.constructor.name}.lockAsync(): not acquired within ${parseAsyncOptions(opts).timeout} ms`);
    }
    let done = false;
    const release = (): void => {
      if (done) return;
      done = true;
      this.release();
    };
    return { release, [Symbol.dispose]: release, [Symbol.asyncDispose]: async () => release() };
  }

  /** Whether anyone (any process) holds the lock. */
  locked(): boolean {
    const i32 = this._i32 ?? this._closed();
    return (Atomics.load(i32, this._w) & TOKEN_MASK) > WORD_NOT_RECOVERABLE;
  }

  /** Who holds it (diagnostics): pid and forksafe JS-thread index, or null. */
  owner(): { pid: number; tid: number } | null {
    const i32 = this._i32 ?? this._closed();
    const t = Atomics.load(i32, this._w) & TOKEN_MASK;
    if (t <= WORD_NOT_RECOVERABLE) return null;
    return { pid: t & PID_MASK, tid: t >>> THREAD_SHIFT };
  }

  /** Whether the calling thread holds it. */
  isOwned(): boolean {
    const i32 = this._i32 ?? this._closed();
    return (Atomics.load(i32, this._w) & TOKEN_MASK) === TOKEN;
  }

  /** After OwnerDiedError: declares the protected state repaired. */
  markConsistent(): void {
    if (!this._i32) this._closed();
    const st = binding.lockMarkConsistent(this._buf as ArrayBuffer, this._off, TOKEN);
    if (st === S.OK) return;
    if (st === S.NOT_OWNER) throw new NotOwnerError(`${this.constructor.name}.markConsistent(): the calling thread does not hold this lock`);
    if (st === S.NOT_RECOVERABLE) throw new NotRecoverableError(`${this.constructor.name} is not recoverable`);
    throw unexpected(st, 'markConsistent()');
  }

  /** @internal Closing a lock this thread holds abandons it (next acquirer: OwnerDiedError). */
  override _beforeClose(): void {
    const i32 = this._i32;
    if (i32 && (Atomics.load(i32, this._w) & TOKEN_MASK) === TOKEN) {
      binding.lockAbandon(this._buf as ArrayBuffer, this._off, TOKEN);
    }
  }
}

/** A non-recursive, owner-checked, robust lock in shared memory. */
export class Lock extends LockBase {
  /** @internal */ readonly _recursive = false;

  constructor(opts?: Record<string, never>) {
    super();
    const h = takeAttach();
    if (h) {
      this._attach(h, KIND.Lock);
    } else {
      validateObject('options', opts);
      this._create(contextOf(new.target), KIND.Lock, 1);
    }
    this._setup();
  }

  // Fast paths: one CAS each. A free word (0) is always consistent, and an
  // inconsistent lock's word carries the waiters bit, so these CASes fail
  // whenever recovery state needs native attention.
  acquire(opts?: AcquireOptions): boolean {
    const i32 = this._i32;
    if (opts === undefined && i32 !== null && Atomics.compareExchange(i32, this._w, 0, TOKEN) === 0) return true;
    return this._acquireSlow(opts);
  }

  release(): void {
    const i32 = this._i32;
    if (i32 !== null && Atomics.compareExchange(i32, this._w, TOKEN, 0) === TOKEN) return;
    this._releaseSlow();
  }

  /** @internal */
  _acquireSlow(opts: AcquireOptions | undefined): boolean {
    const i32 = this._i32 ?? this._closed();
    const timeout = opts === undefined ? -1 : timeoutOf(opts);
    if ((Atomics.load(i32, this._w) & TOKEN_MASK) === TOKEN) {
      throw new DeadlockError('Lock.acquire(): the calling thread already holds this lock');
    }
    return this._slowAcquire(timeout);
  }

  /** @internal */
  _releaseSlow(): void {
    if (!this._i32) this._closed();
    this._slowRelease();
  }

  handle(): LockHandle {
    return this._handle('Lock') as LockHandle;
  }

}

/** A re-entrant lock: the owning thread may acquire it again; release() count-matched. */
export class RLock extends LockBase {
  /** @internal */ readonly _recursive = true;

  constructor(opts?: Record<string, never>) {
    super();
    const h = takeAttach();
    if (h) {
      this._attach(h, KIND.RLock);
    } else {
      validateObject('options', opts);
      this._create(contextOf(new.target), KIND.RLock, 1);
    }
    this._setup();
  }

  acquire(opts?: AcquireOptions): boolean {
    const i32 = this._i32 ?? this._closed();
    const timeout = opts === undefined ? -1 : timeoutOf(opts);
    const w = this._w;
    const old = Atomics.compareExchange(i32, w, 0, TOKEN);
    if (old === 0) {
      i32[w + 2] = 1; // count: written only by the owner
      return true;
    }
    if ((old & TOKEN_MASK) === TOKEN) {
      const c = i32[w + 2];
      if (c >= 0x7fffffff) throw new RangeError('RLock recursion depth overflow');
      i32[w + 2] = c + 1;
      return true;
    }
    return this._slowAcquire(timeout);
  }

  release(): void {
    const i32 = this._i32 ?? this._closed();
    const w = this._w;
    if ((Atomics.load(i32, w) & TOKEN_MASK) === TOKEN) {
      const c = i32[w + 2];
      if (c > 1) {
        i32[w + 2] = c - 1;
        return;
      }
      i32[w + 2] = 0;
      if (Atomics.compareExchange(i32, w, TOKEN, 0) === TOKEN) return;
      i32[w + 2] = c; // native release does the count and the state
    }
    this._slowRelease();
  }

  /** Recursion depth held by the calling thread (0 if it does not own it). */
  get depth(): number {
    const i32 = this._i32 ?? this._closed();
    return (Atomics.load(i32, this._w) & TOKEN_MASK) === TOKEN ? i32[this._w + 2] : 0;
  }

  handle(): LockHandle {
    return this._handle('RLock') as LockHandle;
  }

}

export { LockBase };
