// Semaphore and BoundedSemaphore. The value (Int32 at slot +16) is the futex
// word; acquire is one compare-exchange in JS when a unit is free.
// undoOnExit semaphores go through native on every call: each process's
// units are recorded in the slot so a dead process's units come back.
import { binding } from '../core/binding';
import { ForksafeError, badHandle, invalidThis, outOfRange } from '../core/errors';
import { KIND, S, SEM_BOUNDED, SEM_FLAGS_I, SEM_MAX_I, SEM_UNDO, SEM_UNDO_UNITS, SEM_UNITS, SEM_VALUE_I } from '../core/layout';
import { Primitive, takeAttach } from '../core/primitive';
import { contextOf, registerType } from '../core/registry';
import { BaseHandle, unexpected } from '../core/runtime';
import { signalAborted, signalReason, timeoutOf, validateBoolean, validateInteger, validateObject } from '../core/validate';
import type { AcquireOptions } from './lock';
import { AsyncOptions, parseAsyncOptions, wait } from '../core/async';

export interface SemaphoreOptions {
  /** Give back the units a process holds when it dies (like SysV SEM_UNDO). */
  undoOnExit?: boolean;
}

const MAX_VALUE = 0x7fffffff;

function semGone(self: unknown): never {
  return Primitive._gone(self, Semaphore._isSem, 'Semaphore');
}

// Every public method reads and validates its arguments first (a getter there
// may run any code, close() included), then checks that `this` is a live
// Semaphore, and only then touches shared memory.
export class Semaphore extends Primitive {
  #semaphore = true;
  /** @internal */ _v = 0;
  /** @internal */ _native = false; // undo or bounded: release goes native

  /** @internal Whether `o` is a real Semaphore or BoundedSemaphore. */
  static _isSem(o: unknown): o is Semaphore {
    return typeof o === 'object' && o !== null && #semaphore in o;
  }

  constructor(value = 1, opts?: SemaphoreOptions) {
    super();
    const h = takeAttach();
    if (h) {
      this._attach(h, KIND.Semaphore);
    } else {
      validateInteger('value', value, 0, MAX_VALUE);
      validateObject('options', opts);
      const undo = validateBoolean('options.undoOnExit', opts?.undoOnExit) ?? false;
      this._create(contextOf(new.target), KIND.Semaphore, undo ? SEM_UNDO_UNITS : SEM_UNITS);
      const i32 = this._i32 as Int32Array;
      const bounded = this._isBounded();
      i32[this._base + SEM_MAX_I] = value;
      i32[this._base + SEM_FLAGS_I] = (undo ? SEM_UNDO : 0) | (bounded ? SEM_BOUNDED : 0);
      Atomics.store(i32, this._base + SEM_VALUE_I, value);
    }
    const i32 = this._i32 as Int32Array;
    const flags = i32[this._base + SEM_FLAGS_I];
    if (h && (((flags & SEM_BOUNDED) !== 0) !== this._isBounded())) {
      this.close();
      throw badHandle('semaphore kind does not match the handle type');
    }
    this._v = this._base + SEM_VALUE_I;
    this._native = flags !== 0;
  }

  /** @internal */
  _isBounded(): boolean {
    return false;
  }

  /** Whether units held by a dying process are given back. */
  get undoOnExit(): boolean {
    const i32 = this?._i32;
    if (i32 == null || !Semaphore._isSem(this)) semGone(this);
    return (i32[this._base + SEM_FLAGS_I] & SEM_UNDO) !== 0;
  }

  acquire(opts?: AcquireOptions): boolean {
    const timeout = opts === undefined ? -1 : timeoutOf(opts); // arguments first: a getter may close
    const i32 = this?._i32;
    if (i32 == null || !(#semaphore in this)) semGone(this);
    if (!this._native) {
      const vi = this._v;
      let v = Atomics.load(i32, vi);
      while (v > 0) {
        const old = Atomics.compareExchange(i32, vi, v, v - 1);
        if (old === v) return true;
        v = old;
      }
      if (timeout === 0) return false;
    }
    return this._nativeAcquire(timeout, 'Semaphore.acquire()');
  }

  /** @internal */
  _nativeAcquire(timeout: number, what: string): boolean {
    const st = binding.semAcquire(this._buf as ArrayBuffer, this._off, timeout);
    if (st === S.OK) return true;
    if (st === S.TIMED_OUT) return false;
    if (st === S.TOO_MANY) {
      throw new ForksafeError(
        `${what}: more than 64 live processes use this undoOnExit semaphore`,
        'ERR_FORKSAFE_TOO_MANY_PROCESSES',
      );
    }
    throw unexpected(st, what);
  }

  /** Takes a unit without blocking the event loop. Resolves false on timeout. */
  acquireAsync(opts?: AsyncOptions): Promise<boolean> {
    try {
      const { timeout, signal } = parseAsyncOptions(opts); // arguments first: a getter may close
      const i32 = this?._i32;
      if (i32 == null || !Semaphore._isSem(this)) semGone(this);
      if (signalAborted(signal)) return Promise.reject(signalReason(signal as AbortSignal));
      if (!this._native) {
        const vi = this._v;
        let v = Atomics.load(i32, vi);
        while (v > 0) {
          const old = Atomics.compareExchange(i32, vi, v, v - 1);
          if (old === v) return Promise.resolve(true);
          v = old;
        }
      } else if (this._nativeAcquire(0, 'Semaphore.acquireAsync()')) {
        return Promise.resolve(true);
      }
      if (timeout === 0) return Promise.resolve(false);
      const buf = this._buf as ArrayBuffer, off = this._off, seg = this._seg;
      return wait(this, signal, () => {
        const id = binding.asyncSem(seg, buf, off, timeout);
        if (id < 0) throw badHandle('semaphore slot is not valid');
        return id;
      }, {
        map: (st) => {
          if (st === S.OK) return true;
          if (st === S.TIMED_OUT) return false;
          if (st === S.TOO_MANY) {
            throw new ForksafeError('Semaphore.acquireAsync(): more than 64 live processes use this undoOnExit semaphore', 'ERR_FORKSAFE_TOO_MANY_PROCESSES');
          }
          throw unexpected(st, 'Semaphore.acquireAsync()');
        },
        undo: (st) => {
          if (st === S.OK) binding.semRelease(buf, off, 1);
        },
      }, () => this._idle());
    } catch (e) {
      return Promise.reject(e);
    }
  }

  release(n = 1): void {
    validateInteger('n', n, 1, MAX_VALUE);
    const i32 = this?._i32;
    if (i32 == null || !(#semaphore in this)) semGone(this);
    if (!this._native) {
      const vi = this._v;
      const old = Atomics.add(i32, vi, n);
      if (old + n > MAX_VALUE || old + n < 0) {
        Atomics.sub(i32, vi, n);
        throw outOfRange('n', `<= ${MAX_VALUE - old} (the value would overflow)`, n);
      }
      if (Atomics.load(i32, vi + 1) !== 0) binding.wordWake(this._buf as ArrayBuffer, vi * 4, n);
      return;
    }
    const st = binding.semRelease(this._buf as ArrayBuffer, this._off, n);
    if (st === S.OK) return;
    if (st === S.RANGE) {
      const max = this._isBounded() ? i32[this._base + SEM_MAX_I] : MAX_VALUE;
      throw outOfRange('n', `such that the value stays <= ${max} (it is ${Atomics.load(i32, this._v)})`, n);
    }
    throw unexpected(st, 'Semaphore.release()');
  }

  /** Units available now. */
  get value(): number {
    const i32 = this?._i32;
    if (i32 == null || !(#semaphore in this)) semGone(this);
    return Atomics.load(i32, this._v);
  }

  /** undoOnExit: gives back the units of dead processes now; returns how many. */
  recover(): number {
    if (this?._i32 == null || !Semaphore._isSem(this)) semGone(this);
    return binding.semRecover(this._buf as ArrayBuffer, this._off);
  }

  handle(): BaseHandle {
    if (!Semaphore._isSem(this)) throw invalidThis('Semaphore');
    return this._handle(this._isBounded() ? 'BoundedSemaphore' : 'Semaphore');
  }
}

/** A Semaphore whose release() may not raise the value above its initial value. */
export class BoundedSemaphore extends Semaphore {
  /** @internal */
  override _isBounded(): boolean {
    return true;
  }
}

registerType('Semaphore', Semaphore);
registerType('BoundedSemaphore', BoundedSemaphore);
