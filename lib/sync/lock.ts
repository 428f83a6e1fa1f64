// Lock and RLock: owner-checked per JS thread, robust to owner death.
//
// The lock word (Int32 at slot +16) is 0 when free, else the owner's token
// (pid | JS-thread index << 22) with bit 31 set when someone may be sleeping.
// The uncontended paths are one compare-exchange in JS; everything that may
// block or needs a wake-up goes to native (native/core/sync.cc).
import { binding } from '../core/binding';
import {
  DeadlockError, NotOwnerError, NotRecoverableError, OwnerDiedError, TimeoutError, badHandle, invalidThis,
} from '../core/errors';
import {
  KIND, LOCK_DIED_PID_I, LOCK_DIED_TID_I, LOCK_WORD_I, PID_MASK, S,
  THREAD_SHIFT, TOKEN_MASK, WORD_NOT_RECOVERABLE,
} from '../core/layout';
import { Primitive, takeAttach } from '../core/primitive';
import { contextOf, registerType } from '../core/registry';
import { BaseHandle, abandonIfHeld, onToken, unexpected } from '../core/runtime';

let TOKEN = 0;
onToken((t) => {
  TOKEN = t;
});
import { signalAborted, signalReason, timeoutOf, validateObject } from '../core/validate';
import { AsyncOptions, parseAsyncOptions, wait } from '../core/async';

export interface AcquireOptions {
  timeout?: number;
}

export interface LockGuard extends Disposable {
  release(): void;
}

export interface LockHandle extends BaseHandle {
  type: 'Lock' | 'RLock';
}

// Every public method reads and validates its arguments first (a getter there
// may run any code, close() included), then checks that `this` is a live
// instance, and only then touches shared memory. Internal *T methods take
// arguments already validated.

function lockGone(self: unknown): never {
  return Primitive._gone(self, LockBase._isLock, 'Lock or RLock');
}

abstract class LockBase extends Primitive {
  #lock = true;
  /** @internal Int32 index of the lock word. */ _w = 0;
  /** @internal */ abstract readonly _recursive: boolean;

  /** @internal Whether `o` is a real Lock or RLock. */
  static _isLock(o: unknown): o is LockBase {
    return typeof o === 'object' && o !== null && #lock in o;
  }

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

  /** @internal Acquires with a validated timeout (-1: forever); ClosedError if closed. */
  abstract _acquireT(timeout: number): boolean;
  abstract acquire(opts?: AcquireOptions): boolean;
  abstract release(): void;

  /** Acquires and returns a guard for `using g = lock.lock()`. Throws TimeoutError on timeout. */
  lock(opts?: AcquireOptions): LockGuard {
    if (!LockBase._isLock(this)) throw invalidThis('Lock or RLock');
    return this._lockT(opts === undefined ? -1 : timeoutOf(opts));
  }

  /** @internal lock() with a validated timeout. */
  _lockT(timeout: number): LockGuard {
    if (!this._acquireT(timeout)) {
      throw new TimeoutError(`${this.constructor.name}.lock(): not acquired within ${timeout} ms`);
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
      if (!LockBase._isLock(this)) throw invalidThis('Lock or RLock');
      const { timeout, signal } = parseAsyncOptions(opts);
      return this._acquireAsyncT(timeout, signal);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** @internal acquireAsync() with validated options; may throw (callers reject). */
  _acquireAsyncT(timeout: number, signal: AbortSignal | undefined): Promise<boolean> {
    const i32 = this._i32 ?? this._closed();
    if (signalAborted(signal)) return Promise.reject(signalReason(signal as AbortSignal));
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
  }

  /** `await using g = await lock.lockAsync()`: acquires, returns a guard. TimeoutError on timeout. */
  async lockAsync(opts?: AsyncOptions): Promise<LockGuard & AsyncDisposable> {
    if (!LockBase._isLock(this)) throw invalidThis('Lock or RLock');
    const { timeout, signal } = parseAsyncOptions(opts);
    if (!(await this._acquireAsyncT(timeout, signal))) {
      throw new TimeoutError(`${this.constructor.name}.lockAsync(): not acquired within ${timeout} ms`);
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
    const i32 = this?._i32;
    if (i32 == null || !LockBase._isLock(this)) lockGone(this);
    return (Atomics.load(i32, this._w) & TOKEN_MASK) > WORD_NOT_RECOVERABLE;
  }

  /** Who holds it (diagnostics): pid and forksafe JS-thread index, or null. */
  owner(): { pid: number; tid: number } | null {
    const i32 = this?._i32;
    if (i32 == null || !LockBase._isLock(this)) lockGone(this);
    const t = Atomics.load(i32, this._w) & TOKEN_MASK;
    if (t <= WORD_NOT_RECOVERABLE) return null;
    return { pid: t & PID_MASK, tid: t >>> THREAD_SHIFT };
  }

  /** Whether the calling thread holds it. */
  isOwned(): boolean {
    const i32 = this?._i32;
    if (i32 == null || !LockBase._isLock(this)) lockGone(this);
    return (Atomics.load(i32, this._w) & TOKEN_MASK) === TOKEN;
  }

  /** After OwnerDiedError: declares the protected state repaired. */
  markConsistent(): void {
    if (this?._i32 == null || !LockBase._isLock(this)) lockGone(this);
    const st = binding.lockMarkConsistent(this._buf as ArrayBuffer, this._off, TOKEN);
    if (st === S.OK) return;
    if (st === S.NOT_OWNER) throw new NotOwnerError(`${this.constructor.name}.markConsistent(): the calling thread does not hold this lock`);
    if (st === S.NOT_RECOVERABLE) throw new NotRecoverableError(`${this.constructor.name} is not recoverable`);
    throw unexpected(st, 'markConsistent()');
  }

  /**
   * @internal Closing the thread's last object for a lock the thread holds
   * abandons it (next acquirer: OwnerDiedError). Closing one of several
   * objects for the same lock leaves it held: ownership is the thread's.
   */
  override _beforeClose(last: boolean): void {
    if (last && this._slot) abandonIfHeld(this._slot);
  }
}

/** A non-recursive, owner-checked, robust lock in shared memory. */
export class Lock extends LockBase {
  #plain = true;
  /** @internal */ readonly _recursive = false;

  /** @internal Whether `o` is a real Lock (not an RLock). */
  static _isPlain(o: unknown): o is Lock {
    return typeof o === 'object' && o !== null && #plain in o;
  }

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
  // whenever recovery state needs native attention. The brand check keeps
  // another object's `_i32` (a Semaphore's, a forgery's) out of the CAS.
  acquire(opts?: AcquireOptions): boolean {
    const i32 = this?._i32;
    if (opts === undefined && i32 != null && #plain in this && Atomics.compareExchange(i32, this._w, 0, TOKEN) === 0) return true;
    return lockAcquireSlow(this, opts);
  }

  release(): void {
    const i32 = this?._i32;
    if (i32 != null && #plain in this && Atomics.compareExchange(i32, this._w, TOKEN, 0) === TOKEN) return;
    lockReleaseSlow(this);
  }

  /** @internal */
  _acquireT(timeout: number): boolean {
    const i32 = this._i32 ?? this._closed();
    const w = this._w;
    if (Atomics.compareExchange(i32, w, 0, TOKEN) === 0) return true;
    if ((Atomics.load(i32, w) & TOKEN_MASK) === TOKEN) {
      throw new DeadlockError('Lock.acquire(): the calling thread already holds this lock');
    }
    return this._slowAcquire(timeout);
  }

  handle(): LockHandle {
    if (!Lock._isPlain(this)) throw invalidThis('Lock');
    return this._handle('Lock') as LockHandle;
  }
}

// Lock's slow paths, outside the class so that a call with a foreign `this`
// gets ERR_INVALID_THIS rather than "this._x is not a function".
function lockAcquireSlow(self: unknown, opts: AcquireOptions | undefined): boolean {
  if (!Lock._isPlain(self)) throw invalidThis('Lock');
  const timeout = opts === undefined ? -1 : timeoutOf(opts); // arguments first: a getter may close
  return self._acquireT(timeout);
}

function lockReleaseSlow(self: unknown): void {
  if (!Lock._isPlain(self)) throw invalidThis('Lock');
  if (!self._i32) self._closed();
  self._slowRelease();
}

/** A re-entrant lock: the owning thread may acquire it again; release() count-matched. */
export class RLock extends LockBase {
  #recursive = true;
  /** @internal */ readonly _recursive = true;

  /** @internal Whether `o` is a real RLock. */
  static _isRecursive(o: unknown): o is RLock {
    return typeof o === 'object' && o !== null && #recursive in o;
  }

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
    if (opts === undefined && this?._i32 != null && #recursive in this) return this._acquireT(-1);
    if (!RLock._isRecursive(this)) throw invalidThis('RLock');
    const timeout = opts === undefined ? -1 : timeoutOf(opts); // arguments first: a getter may close
    return this._acquireT(timeout);
  }

  /** @internal */
  _acquireT(timeout: number): boolean {
    const i32 = this._i32 ?? this._closed();
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
    const i32 = this?._i32;
    if (i32 == null || !(#recursive in this)) return rlockGone(this);
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
    const i32 = this?._i32;
    if (i32 == null || !RLock._isRecursive(this)) return rlockGone(this);
    return (Atomics.load(i32, this._w) & TOKEN_MASK) === TOKEN ? i32[this._w + 2] : 0;
  }

  handle(): LockHandle {
    if (!RLock._isRecursive(this)) throw invalidThis('RLock');
    return this._handle('RLock') as LockHandle;
  }
}

function rlockGone(self: unknown): never {
  return Primitive._gone(self, RLock._isRecursive, 'RLock');
}

export { LockBase };

registerType('Lock', Lock);
registerType('RLock', RLock);
