// Condition: a notification sequence word (futex, slot +16) and a packed
// (waiters, tickets) counter (+24) so that notify(n) wakes at most n of the
// threads waiting at that moment, in any process. The lock is a separate
// Lock/RLock of the same context (a new RLock by default, as in Python).
import { binding } from '../core/binding';
import { ContextError, NotOwnerError, NotRecoverableError, OwnerDiedError, invalidArgType, invalidThis } from '../core/errors';
import { KIND, LOCK_DIED_PID_I, LOCK_DIED_TID_I, S } from '../core/layout';
import { Lock, LockBase, LockGuard, RLock, AcquireOptions } from './lock';
import { Primitive, takeAttach, constructAttached } from '../core/primitive';
import { contextClass, contextOf, registerType } from '../core/registry';
import { BaseHandle, TOKEN, checkBaseHandle, unexpected } from '../core/runtime';
import { signalAborted, signalReason, timeoutOf, validateFunction, validateInteger } from '../core/validate';
import { AsyncOptions, parseAsyncOptions, wait } from '../core/async';
import type { WaitOptions } from './event';
import { badHandle } from '../core/errors';

export interface ConditionHandle extends BaseHandle {
  lock: BaseHandle;
}

export class Condition extends Primitive {
  #condition = true;
  /** @internal */ _lock: LockBase;
  /** @internal */ _ownsLock: boolean;

  constructor(lock?: Lock | RLock) {
    super();
    const h = takeAttach() as ConditionHandle | null;
    if (h) {
      const lh = checkBaseHandle(h.lock);
      if (lh.context !== h.context) throw badHandle('condition and lock contexts differ');
      if (lh.type === 'Lock') this._lock = constructAttached(contextClass(Lock, lh.context), lh);
      else if (lh.type === 'RLock') this._lock = constructAttached(contextClass(RLock, lh.context), lh);
      else throw badHandle('condition lock is not a Lock or RLock');
      this._ownsLock = true;
      try {
        this._attach(h, KIND.Condition);
      } catch (e) {
        this._lock.close();
        throw e;
      }
    } else {
      const method = contextOf(new.target);
      if (lock === undefined) {
        this._lock = new (contextClass(RLock, method))();
        this._ownsLock = true;
      } else {
        if (!LockBase._isLock(lock)) throw invalidArgType('lock', 'an instance of Lock or RLock', lock);
        if (lock.closed) lock._closed();
        if (lock._method !== method) {
          throw new ContextError(
            `Condition of the '${method}' context cannot use a ${lock.constructor.name} of the '${lock._method}' ` +
              `context: create the lock from getContext('${method}') too.`,
          );
        }
        this._lock = lock;
        this._ownsLock = false;
      }
      this._create(method, KIND.Condition, 1);
    }
  }

  /** @internal Whether `o` is a real Condition. */
  static _isCond(o: unknown): o is Condition {
    return typeof o === 'object' && o !== null && #condition in o;
  }

  /** @internal A wait's status: notified (true), timed out (false), or the lock's recovery errors. */
  _result(st: number, what: string): boolean {
    const lock = this._lock;
    switch (st) {
      case S.OK:
        return true;
      case S.TIMED_OUT:
        return false;
      case S.OWNER_DIED: {
        const i32 = lock._i32 as Int32Array;
        throw new OwnerDiedError(i32[lock._base + LOCK_DIED_PID_I], i32[lock._base + LOCK_DIED_TID_I], `${what} re-acquiring its lock`);
      }
      case S.NOT_RECOVERABLE:
        throw new NotRecoverableError(`${what}: the lock is not recoverable`);
      default:
        throw unexpected(st, what);
    }
  }

  /** The underlying lock. */
  get lock(): Lock | RLock {
    if (!Condition._isCond(this)) throw invalidThis('Condition');
    return this._lock as Lock | RLock;
  }

  /** @internal The lock, after checking that neither it nor this condition is closed. */
  _live(): LockBase {
    if (!this._i32) this._closed();
    const lock = this._lock;
    if (!lock._i32) lock._closed();
    return lock;
  }

  // Every public method validates `this` and reads its arguments first (a
  // getter there may run any code, close() included), then checks `closed`,
  // then touches shared memory. *T methods take validated arguments.

  acquire(opts?: AcquireOptions): boolean {
    if (!Condition._isCond(this)) throw invalidThis('Condition');
    const timeout = opts === undefined ? -1 : timeoutOf(opts);
    return this._live()._acquireT(timeout);
  }

  release(): void {
    if (!Condition._isCond(this)) throw invalidThis('Condition');
    this._live().release();
  }

  lockGuard(opts?: AcquireOptions): LockGuard {
    if (!Condition._isCond(this)) throw invalidThis('Condition');
    const timeout = opts === undefined ? -1 : timeoutOf(opts);
    return this._live()._lockT(timeout);
  }

  /** Releases the lock, waits for notify (true) or the timeout (false), re-acquires the lock. */
  wait(opts?: WaitOptions): boolean {
    if (!Condition._isCond(this)) throw invalidThis('Condition');
    return this._waitT(opts === undefined ? -1 : timeoutOf(opts));
  }

  /** @internal wait() with a validated timeout. */
  _waitT(timeout: number): boolean {
    const lock = this._live();
    const st = binding.condWait(
      lock._buf as ArrayBuffer, lock._off, lock._recursive,
      this._buf as ArrayBuffer, this._off, TOKEN, timeout,
    );
    if (st === S.NOT_OWNER) throw new NotOwnerError('Condition.wait(): cannot wait on an un-acquired lock');
    return this._result(st, 'Condition.wait()');
  }

  /** Waits until pred() is truthy; returns its last value as a boolean (false on timeout). */
  waitFor(pred: () => boolean, opts?: WaitOptions): boolean {
    if (!Condition._isCond(this)) throw invalidThis('Condition');
    validateFunction('pred', pred);
    const timeout = opts === undefined ? -1 : timeoutOf(opts);
    // Owned first: whether the predicate or the clock decides, a caller without the lock is told so.
    if (!this._live().isOwned()) throw new NotOwnerError('Condition.waitFor(): cannot wait on an un-acquired lock');
    const end = timeout < 0 ? Infinity : performance.now() + timeout;
    let result = pred();
    while (!result) {
      let left = -1;
      if (end !== Infinity) {
        left = end - performance.now();
        if (left <= 0) break;
      }
      this._waitT(left); // checks `closed` again: pred() may have closed us
      result = pred();
    }
    return Boolean(result);
  }

  /**
   * wait() without blocking the event loop: the lock is released now, a native
   * waiter thread waits for a notification and re-acquires the lock for this
   * JS thread. Resolves true (notified) or false (timeout). On abort it rejects
   * with signal.reason once the lock is held again, as every wait ends.
   */
  waitAsync(opts?: AsyncOptions): Promise<boolean> {
    try {
      if (!Condition._isCond(this)) throw invalidThis('Condition');
      const { timeout, signal } = parseAsyncOptions(opts);
      return this._waitAsyncT(timeout, signal);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** @internal waitAsync() with validated options; may throw (callers reject). */
  _waitAsyncT(timeout: number, signal: AbortSignal | undefined): Promise<boolean> {
    const lock = this._live();
    if (signalAborted(signal)) return Promise.reject(signalReason(signal as AbortSignal));
    const lbuf = lock._buf as ArrayBuffer, loff = lock._off, lseg = lock._seg, rec = lock._recursive;
    const cbuf = this._buf as ArrayBuffer, coff = this._off, cseg = this._seg;
    return wait(this, signal, () => {
      const id = binding.asyncCond(lseg, lbuf, loff, rec, cseg, cbuf, coff, TOKEN, timeout);
      if (id === -S.NOT_OWNER) throw new NotOwnerError('Condition.waitAsync(): cannot wait on an un-acquired lock');
      if (id < 0) throw badHandle('condition slot is not valid');
      return id;
    }, {
      map: (st) => this._result(st, 'Condition.waitAsync()'),
    }, () => this._idle());
  }

  /** waitFor() without blocking the event loop. */
  async waitForAsync(pred: () => boolean, opts?: AsyncOptions): Promise<boolean> {
    if (!Condition._isCond(this)) throw invalidThis('Condition');
    validateFunction('pred', pred);
    const { timeout, signal } = parseAsyncOptions(opts);
    if (!this._live().isOwned()) throw new NotOwnerError('Condition.waitForAsync(): cannot wait on an un-acquired lock');
    const end = timeout < 0 ? Infinity : performance.now() + timeout;
    let result = pred();
    while (!result) {
      let left = -1;
      if (end !== Infinity) {
        left = end - performance.now();
        if (left <= 0) break;
      }
      await this._waitAsyncT(left, signal);
      result = pred();
    }
    return Boolean(result);
  }

  acquireAsync(opts?: AsyncOptions): Promise<boolean> {
    try {
      if (!Condition._isCond(this)) throw invalidThis('Condition');
      const { timeout, signal } = parseAsyncOptions(opts);
      return this._live()._acquireAsyncT(timeout, signal);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Wakes up to n threads waiting on this condition (any process). Caller must hold the lock. */
  notify(n = 1): void {
    if (!Condition._isCond(this)) throw invalidThis('Condition');
    validateInteger('n', n, 0, Number.MAX_SAFE_INTEGER);
    if (!this._live().isOwned()) throw new NotOwnerError('Condition.notify(): cannot notify on an un-acquired lock');
    binding.condNotify(this._buf as ArrayBuffer, this._off, n);
  }

  notifyAll(): void {
    if (!Condition._isCond(this)) throw invalidThis('Condition');
    this.notify(0xffffffff);
  }

  handle(): ConditionHandle {
    if (!Condition._isCond(this)) throw invalidThis('Condition');
    const h = this._handle('Condition') as ConditionHandle;
    h.lock = (this._lock as Lock).handle();
    return h;
  }

  /** @internal */
  override _beforeClose(): void {
    if (this._ownsLock) this._lock.close();
  }
}

registerType('Condition', Condition);
