// Barrier for a fixed number of parties, across processes. Waiters sleep on
// the generation word (slot +16); the arrivals' tokens are recorded so that a
// dead waiter breaks the barrier for everyone (BrokenBarrierError).
import { binding } from './binding';
import { BrokenBarrierError } from './errors';
import { BARRIER_BROKEN_I, BARRIER_COUNT_I, BARRIER_PARTIES_I, KIND, MAX_PARTIES, S, barrierUnits } from './layout';
import { Primitive, contextOf, takeAttach } from './primitive';
import { BaseHandle, TOKEN, unexpected } from './runtime';
import { parseTimeout, validateInteger, validateObject } from './validate';
import type { WaitOptions } from './event';
import { AsyncOptions, init as initAsync, parseAsyncOptions, wait } from './async';

export interface BarrierOptions {
  /** Default timeout of wait() in ms; a wait that times out breaks the barrier. */
  timeout?: number;
}

export class Barrier extends Primitive {
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

  /** Waits for all parties; returns this caller's arrival index (0 .. parties-1). */
  wait(opts?: WaitOptions): number {
    if (!this._i32) this._closed();
    const dflt = (this._timeout as Float64Array)[0];
    let timeout = dflt;
    if (opts !== undefined) {
      validateObject('options', opts);
      if (opts.timeout !== undefined) timeout = parseTimeout(opts.timeout, 'options.timeout');
    }
    const r = binding.barrierWait(this._buf as ArrayBuffer, this._off, TOKEN, timeout);
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
      if (!this._i32) this._closed();
      let timeout = (this._timeout as Float64Array)[0];
      let signal: AbortSignal | undefined;
      if (opts !== undefined) {
        const o = parseAsyncOptions(opts);
        signal = o.signal;
        if ((opts as AsyncOptions).timeout !== undefined) timeout = o.timeout;
      }
      if (signal?.aborted) return Promise.reject(signal.reason);
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
    if (!this._i32) this._closed();
    const st = binding.barrierReset(this._buf as ArrayBuffer, this._off, TOKEN);
    if (st !== S.OK) throw unexpected(st, 'Barrier.reset()');
  }

  /** Breaks the barrier: current and future waiters get BrokenBarrierError until reset(). */
  abort(): void {
    if (!this._i32) this._closed();
    const st = binding.barrierAbort(this._buf as ArrayBuffer, this._off, TOKEN);
    if (st !== S.OK) throw unexpected(st, 'Barrier.abort()');
  }

  get parties(): number {
    const i32 = this._i32 ?? this._closed();
    return i32[this._base + BARRIER_PARTIES_I];
  }

  get nWaiting(): number {
    const i32 = this._i32 ?? this._closed();
    return Atomics.load(i32, this._base + BARRIER_COUNT_I);
  }

  get broken(): boolean {
    const i32 = this._i32 ?? this._closed();
    return Atomics.load(i32, this._base + BARRIER_BROKEN_I) !== 0;
  }

  handle(): BaseHandle {
    return this._handle('Barrier');
  }

  /** @internal */
  override _beforeClose(): void {
    this._timeout = null;
  }
}
