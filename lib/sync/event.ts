// Event: a flag (Int32 at slot +16, the futex word) and a count of sleepers
// (+20). isSet/set/clear are plain atomics in JS; set() makes a wake-up
// syscall only when someone sleeps.
import { binding } from '../core/binding';
import { EVENT_FLAG_I, KIND, S } from '../core/layout';
import { Primitive, takeAttach } from '../core/primitive';
import { contextOf, registerType } from '../core/registry';
import { BaseHandle, unexpected } from '../core/runtime';
import { signalAborted, signalReason, timeoutOf, validateObject } from '../core/validate';
import { badHandle, invalidThis } from '../core/errors';
import { AsyncOptions, parseAsyncOptions, wait } from '../core/async';

export interface WaitOptions {
  timeout?: number;
}

function eventGone(self: unknown): never {
  return Primitive._gone(self, Event._isEvent, 'Event');
}

// Arguments are read and validated first (a getter may run any code, close()
// included), then `this` is checked to be a live Event, then shared memory.
export class Event extends Primitive {
  #event = true;
  /** @internal */ _f = 0;

  /** @internal Whether `o` is a real Event. */
  static _isEvent(o: unknown): o is Event {
    return typeof o === 'object' && o !== null && #event in o;
  }

  constructor(opts?: Record<string, never>) {
    super();
    const h = takeAttach();
    if (h) {
      this._attach(h, KIND.Event);
    } else {
      validateObject('options', opts);
      this._create(contextOf(new.target), KIND.Event, 1);
    }
    this._f = this._base + EVENT_FLAG_I;
  }

  isSet(): boolean {
    const i32 = this?._i32;
    if (i32 == null || !(#event in this)) eventGone(this);
    return Atomics.load(i32, this._f) === 1;
  }

  set(): void {
    const i32 = this?._i32;
    if (i32 == null || !(#event in this)) eventGone(this);
    const f = this._f;
    Atomics.store(i32, f, 1);
    if (Atomics.load(i32, f + 1) !== 0) binding.eventWake(this._buf as ArrayBuffer, this._off);
  }

  clear(): void {
    const i32 = this?._i32;
    if (i32 == null || !(#event in this)) eventGone(this);
    Atomics.store(i32, this._f, 0);
  }

  /** Blocks until set (true) or the timeout passes (false). */
  wait(opts?: WaitOptions): boolean {
    const timeout = opts === undefined ? -1 : timeoutOf(opts);
    const i32 = this?._i32;
    if (i32 == null || !(#event in this)) eventGone(this);
    if (Atomics.load(i32, this._f) === 1) return true;
    const st = binding.eventWait(this._buf as ArrayBuffer, this._off, timeout);
    if (st === S.OK) return true;
    if (st === S.TIMED_OUT) return false;
    throw unexpected(st, 'Event.wait()');
  }

  /** Resolves true when set, false on timeout; never blocks the event loop. */
  waitAsync(opts?: AsyncOptions): Promise<boolean> {
    try {
      const { timeout, signal } = parseAsyncOptions(opts);
      const i32 = this?._i32;
      if (i32 == null || !Event._isEvent(this)) eventGone(this);
      if (signalAborted(signal)) return Promise.reject(signalReason(signal as AbortSignal));
      if (Atomics.load(i32, this._f) === 1) return Promise.resolve(true);
      if (timeout === 0) return Promise.resolve(false);
      const buf = this._buf as ArrayBuffer, off = this._off, seg = this._seg;
      return wait(this, signal, () => {
        const id = binding.asyncEvent(seg, buf, off, timeout);
        if (id < 0) throw badHandle('event slot is not valid');
        return id;
      }, {
        map: (st) => {
          if (st === S.OK) return true;
          if (st === S.TIMED_OUT) return false;
          throw unexpected(st, 'Event.waitAsync()');
        },
      }, () => this._idle());
    } catch (e) {
      return Promise.reject(e);
    }
  }

  handle(): BaseHandle {
    if (!Event._isEvent(this)) throw invalidThis('Event');
    return this._handle('Event');
  }
}

registerType('Event', Event);
