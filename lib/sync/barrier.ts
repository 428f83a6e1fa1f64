// Barrier for a fixed number of parties, across processes. Waiters sleep on
// the generation word (slot +16); the arrivals' tokens are recorded so that a
// dead waiter breaks the barrier for everyone (BrokenBarrierError).
import { binding } from '../core/binding';
import { BrokenBarrierError, TimeoutError, invalidThis } from '../core/errors';
import { BARRIER_BROKEN_I, BARRIER_COUNT_I, BARRIER_PARTIES_I, KIND, MAX_PARTIES, S, barrierUnits } from '../core/layout';
import { Primitive, takeAttach } from '../core/primitive';
import { contextOf, registerType } from '../core/registry';
import { BaseHandle, TOKEN, unexpected } from '../core/runtime';
import { parseTimeout, signalAborted, signalReason, validateInteger, validateObject, validateSignal } from '../core/validate';
import type { WaitOptions } from './event';
import { AsyncOptions, init as initAsync, wait } from '../core/async';

export interface BarrierOptions {
  /** Default timeout of wait() in ms; a wait that times out breaks the barrier. */
  timeout?: number;
}

export class Barrier extends Primitive {
  #barrier = true;
  /** @internal */ _timeout: Float64Array | null = null;

  constructor(parties: number, opts?: BarrierOptions) {
    super();
    const h = takeAttach();
    if (h) {
      this._attach(h, KIND.Barrier);
    } else {
      validateInteger('parties', parties, 1, MAX_PARTIES);
      validateObject('options', opts);
      const timeout = opts === undefined ? -1 : parseTimeout(opts.timeout, 'options.timeout');
      this._create(contextOf(new.target), KIND.Barrier, barrierUnits(parties));
      (this._i32 as Int32Array)[this._base + BARRIER_PARTIES_I] = parties;
      new Float64Array(this._buf as ArrayBuffer, this._off + 48, 1)[0] = timeout;
    }
    this._timeout = new Float64Array(this._buf as ArrayBuffer, this._off + 48, 1);
  }

  /** @internal Whether `o` is a real Barrier. */
  static _isBarrier(o: unknown): o is Barrier {
    return typeof o === 'object' && o !== null && #barrier in o;
  }

  // Every public method validates `this` and reads its arguments first (a
  // getter there may run any code, close() included), then checks `closed`,
  // then touches shared memory.

  /** Waits for all parties; returns this caller's arrival index (0 .. parties-1). */
  wait(opts?: WaitOptions): number {
    if (!Barrier._isBarrier(this)) throw invalidThis('Barrier');
    let timeout: number | undefined;
    if (opts !== undefined) {
      validateObject('options', opts);
      const t = opts.timeout;
      if (t !== undefined) timeout = parseTimeout(t, 'options.timeout');
    }
    if (!this._i32) this._closed();
    const r = binding.barrierWait(this._buf as ArrayBuffer, this._off, TOKEN, timeout ?? (this._timeout as Float64Array)[0]);
    if (typeof r === 'number') throw unexpected(r, 'Barrier.wait()');
    const [st, index] = r;
    if (st === S.OK) return index;
    if (st === S.BROKEN) {
      throw new BrokenBarrierError(
        'Barrier.wait(): the barrier is broken (aborted, reset while waiting, a wait timed out, or a waiter died)',
      );
    }
    throw unexpected(st, 'Barrier.wait()');
  }

  /**
   * wait() without blocking the event loop: resolves with the arrival index.
   * A timeout breaks the barrier (as for wait()); so does an abort, which
   * rejects this wait with signal.reason and the others with BrokenBarrierError.
   */
  waitAsync(opts?: AsyncOptions): Promise<number> {
    try {
      if (!Barrier._isBarrier(this)) throw invalidThis('Barrier');
      let timeout: number | undefined;
      let signal: AbortSignal | undefined;
      if (opts !== undefined) {
        validateObject('options', opts);
        const t = (opts as AsyncOptions).timeout;
        if (t !== undefined) timeout = parseTimeout(t, 'options.timeout');
        signal = validateSignal('options.signal', (opts as AsyncOptions).signal);
      }
      if (!this._i32) this._closed();
      timeout ??= (this._timeout as Float64Array)[0];
      if (signalAborted(signal)) return Promise.reject(signalReason(signal as AbortSignal));
      const buf = this._buf as ArrayBuffer, off = this._off, seg = this._seg;
      const broken = (): BrokenBarrierError => new BrokenBarrierError(
        'Barrier.waitAsync(): the barrier is broken (aborted, reset while waiting, a wait timed out, or a waiter died)');
      initAsync(); // before arriving: the completion must have somewhere to go
      const [st, index, id] = binding.asyncBarrier(seg, buf, off, TOKEN, timeout);
      if (st === S.OK) return Promise.resolve(index);
      if (st === S.BROKEN) return Promise.reject(broken());
      if (st !== S.TIMED_OUT || id <= 0) return Promise.reject(unexpected(st, 'Barrier.waitAsync()'));
      return wait(this, signal, () => id, {
        map: (s2, i) => {
          if (s2 === S.OK) return i;
          if (s2 === S.BROKEN) throw broken();
          throw unexpected(s2, 'Barrier.waitAsync()');
        },
      }, () => this._idle());
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Returns the barrier to its initial state; current waiters get BrokenBarrierError. */
  reset(): void {
    if (!Barrier._isBarrier(this)) throw invalidThis('Barrier');
    if (!this._i32) this._closed();
    const st = binding.barrierReset(this._buf as ArrayBuffer, this._off, TOKEN);
    // Its internal lock is waited for at most 1 s (a holder that keeps it longer
    // was stopped, or the word was overwritten: docs/robustness.md).
    if (st === S.TIMED_OUT) throw new TimeoutError("Barrier.reset(): the barrier's internal lock was not free within 1 s");
    if (st !== S.OK) throw unexpected(st, 'Barrier.reset()');
  }

  /** Breaks the barrier: current and future waiters get BrokenBarrierError until reset(). */
  abort(): void {
    if (!Barrier._isBarrier(this)) throw invalidThis('Barrier');
    if (!this._i32) this._closed();
    const st = binding.barrierAbort(this._buf as ArrayBuffer, this._off, TOKEN);
    if (st !== S.OK) throw unexpected(st, 'Barrier.abort()');
  }

  get parties(): number {
    const i32 = this?._i32;
    if (i32 == null || !Barrier._isBarrier(this)) barrierGone(this);
    return i32[this._base + BARRIER_PARTIES_I];
  }

  get nWaiting(): number {
    const i32 = this?._i32;
    if (i32 == null || !Barrier._isBarrier(this)) barrierGone(this);
    return Atomics.load(i32, this._base + BARRIER_COUNT_I);
  }

  get broken(): boolean {
    const i32 = this?._i32;
    if (i32 == null || !Barrier._isBarrier(this)) barrierGone(this);
    return Atomics.load(i32, this._base + BARRIER_BROKEN_I) !== 0;
  }

  handle(): BaseHandle {
    if (!Barrier._isBarrier(this)) throw invalidThis('Barrier');
    return this._handle('Barrier');
  }

  /** @internal */
  override _beforeClose(): void {
    this._timeout = null;
  }
}

function barrierGone(self: unknown): never {
  return Primitive._gone(self, Barrier._isBarrier, 'Barrier');
}

registerType('Barrier', Barrier);
