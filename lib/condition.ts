// Condition: a notification sequence word (futex, slot +16) and a packed
// (waiters, tickets) counter (+24) so that notify(n) wakes at most n of the
// threads waiting at that moment, in any process. The lock is a separate
// Lock/RLock of the same context (a new RLock by default, as in Python).
import { binding } from './binding';
import { ClosedError, ContextError, NotOwnerError, NotRecoverableError, OwnerDiedError, invalidArgType } from './errors';
import { KIND, LOCK_DIED_PID_I, LOCK_DIED_TID_I, S } from './layout';
import { Lock, LockBase, LockGuard, RLock, AcquireOptions } from './lock';
import { Primitive, contextOf, takeAttach, constructAttached } from './primitive';
import { BaseHandle, TOKEN, checkBaseHandle, unexpected } from './runtime';
import { getContext } from './context';
import { timeoutOf, validateFunction, validateInteger } from './validate';
import { AsyncOptions, parseAsyncOptions, wait } from './async';
import type { WaitOptions } from './event';
import { badHandle } from './errors';

export interface ConditionHandle extends BaseHandle {
  lock: BaseHandle;
}

export class Condition extends Primitive {
  /** @internal */ _lock: LockBase;
  /** @internal */ _ownsLock: boolean;

  constructor(lock?: Lock | RLock) {
    super();
    const h = takeAttach() as ConditionHandle | null;
    if (h) {
      const lh = checkBaseHandle(h.lock);
      if (lh.context !== h.context) throw badHandle('condition and lock contexts differ');
      const ctx = getContext(lh.context);
      if (lh.type === 'Lock') this._lock = constructAttached(ctx.Lock, lh);
      else if (lh.type === 'RLock') this._lock = constructAttached(ctx.RLock, lh);
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
        this._lock = new (getContext(method).RLock)();
        this._ownsLock = true;
      } else {
        if (!(lock instanceof LockBase)) throw invalidArgType('lock', 'an instance of Lock or RLock', lock);
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
    return this._lock as Lock | RLock;
  }

  acquire(opts?: AcquireOptions): boolean {
    if (!this._i32) this._closed();
    return this._lock.acquire(opts);
  }

  release(): void {
    if (!this._i32) this._closed();
    this._lock.release();
  }

  lockGuard(opts?: AcquireOptions): LockGuard {
    if (!this._i32) this._closed();
    return this._lock.lock(opts);
  }

  /** Releases the lock, waits for notify (true) or the timeout (false), re-acquires the lock. */
  wait(opts?: WaitOptions): boolean {
    const lock = this._lock;
    if (!this._i32) this._closed();
    if (!lock._i32) lock._closed();
    const st = binding.condWait(
      lock._buf as ArrayBuffer, lock._off, lock._recursive,
      this._buf as ArrayBuffer, this._off, TOKEN, opts === undefined ? -1 : timeoutOf(opts),
    );
    if (st === S.NOT_OWNER) throw new NotOwnerError('Condition.wait(): cannot wait on an un-acquired lock');
    return this._result(st, 'Condition.wait()');
  }

  /** Waits until pred() is truthy; returns its last value as a boolean (false on timeout). */
  waitFor(pred: () => boolean, opts?: WaitOptions): boolean {
    if (!this._i32) this._closed();
    validateFunction('pred', pred);
    const timeout = opts === undefined ? -1 : timeoutOf(opts);
    const end = timeout < 0 ? Infinity : performance.now() + timeout;
    let result = pred();
    while (!result) {
      let wait: number | undefined;
      if (end !== Infinity) {
        wait = end - performance.now();
        if (wait <= 0) break;
      }
      this.wait(wait === undefined ? undefined : { timeout: wait });
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
      const { timeout, signal } = parseAsyncOptions(opts);
      const lock = this._lock;
      if (!this._i32) this._closed();
      if (!lock._i32) lock._closed();
      if (signal?.aborted) return Promise.reject(signal.reason);
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
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** waitFor() without blocking the event loop. */
  async waitForAsync(pred: () => boolean, opts?: AsyncOptions): Promise<boolean> {
    if (!this._i32) this._closed();
    validateFunction('pred', pred);
    const { timeout, signal } = parseAsyncOptions(opts);
    const end = timeout < 0 ? Infinity : performance.now() + timeout;
    let result = pred();
    while (!result) {
      let left: number | undefined;
      if (end !== Infinity) {
        left = end - performance.now();
        if (left <= 0) break;
      }
      await this.waitAsync({ timeout: left, signal });
      result = pred();
    }
    return Boolean(result);
  }

  acquireAsync(opts?: AsyncOptions): Promise<boolean> {
    if (!this._i32) return Promise.reject(new ClosedError('Condition'));
    return this._lock.acquireAsync(opts);
  }

  /** Wakes up to n threads waiting on this condition (any process). Caller must hold the lock. */
  notify(n = 1): void {
    validateInteger('n', n, 0, Number.MAX_SAFE_INTEGER);
    if (!this._i32) this._closed();
    if (!this._lock.isOwned()) throw new NotOwnerError('Condition.notify(): cannot notify on an un-acquired lock');
    binding.condNotify(this._buf as ArrayBuffer, this._off, n);
  }

  notifyAll(): void {
    this.notify(0xffffffff);
  }

  handle(): ConditionHandle {
    const h = this._handle('Condition') as ConditionHandle;
    h.lock = (this._lock as Lock).handle();
    return h;
  }

  /** @internal */
  override _beforeClose(): void {
    if (this._ownsLock) this._lock.close();
  }
}
