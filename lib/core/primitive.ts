// Base of every slot-backed primitive: context binding, handle(), close(),
// Symbol.dispose, and the "closed" guard used by every method.
import { ClosedError, ContextError, invalidThis } from './errors';
import { StartMethod } from './layout';
import { cancelAll } from './async';
import {
  allocSlot, attachSlot, BaseHandle, releaseSlot, segmentHandle, SlotRef, track, untrack,
} from './runtime';

// attach(): constructors of a primitive either create a new slot or, when a
// handle is pending here, attach to the slot it names.
let attaching: BaseHandle | null = null;

export function constructAttached<T>(C: new (...args: never[]) => T, h: BaseHandle): T {
  attaching = h;
  try {
    return new C();
  } finally {
    attaching = null;
  }
}

/** Returns (and clears) the handle being attached, if any. Call first thing in a constructor. */
export function takeAttach(): BaseHandle | null {
  const h = attaching;
  attaching = null;
  return h;
}

export abstract class Primitive {
  // Brand: only objects made by a primitive's constructor have it (methods
  // called with another `this` throw ERR_INVALID_THIS, never touch memory).
  #primitive = true;
  /** @internal */ _slot: SlotRef | null = null;
  /** @internal */ _i32: Int32Array | null = null;
  /** @internal */ _buf: ArrayBuffer | null = null;
  /** @internal */ _off = 0;
  /** @internal */ _base = 0;
  /** @internal */ _method: StartMethod = 'spawn';
  /** @internal Native async waits in flight (lib/core/async.ts). */ _pending: Set<number> | null = null;
  /** @internal */ _closedReason: Error | null = null;
  /** @internal A slot whose release waits for in-flight async waits. */ _deferred: SlotRef | null = null;

  /** @internal Whether `o` is a real primitive (any class). */
  static _is(o: unknown): o is Primitive {
    return typeof o === 'object' && o !== null && #primitive in o;
  }

  /** @internal */
  _create(method: StartMethod, kind: number, units: number): void {
    this._adopt(method, allocSlot(method, kind, units));
  }

  /** @internal */
  _attach(h: BaseHandle, kind: number): void {
    this._adopt(h.context, attachSlot(h.segment, h.offset, h.generation, kind, h.context, this.constructor.name));
  }

  private _adopt(method: StartMethod, slot: SlotRef): void {
    this._method = method;
    this._slot = slot;
    this._i32 = slot.view.i32;
    this._buf = slot.view.buf;
    this._off = slot.off;
    this._base = slot.base;
    track(this, slot);
  }

  /** @internal */
  _closed(): never {
    throw new ClosedError(this.constructor.name);
  }

  /**
   * @internal A method found `_i32` null or missing: ClosedError for a closed
   * instance of `is`'s class, ERR_INVALID_THIS for anything else.
   */
  static _gone(self: unknown, is: (o: unknown) => boolean, type: string): never {
    if (!is(self)) throw invalidThis(type);
    throw new ClosedError((self as Primitive).constructor.name);
  }

  /** @internal Base fields of this primitive's handle. */
  _handle(type: string): BaseHandle {
    const slot = this._slot ?? this._closed();
    return {
      forksafe: 1,
      type,
      context: this._method,
      segment: segmentHandle(slot.seg),
      offset: slot.off,
      generation: slot.gen,
    };
  }

  /**
   * @internal Called before the slot goes; subclasses release what they hold.
   * `last`: this was the thread's last live object for the slot.
   */
  _beforeClose(_last: boolean): void {}

  /** Releases this process's reference. Later use throws ClosedError. Idempotent. */
  close(): void {
    if (!Primitive._is(this)) throw invalidThis('a forksafe primitive');
    const slot = this._slot;
    if (!slot) return;
    const last = untrack(this, slot);
    this._beforeClose(last);
    this._slot = null;
    this._i32 = null;
    this._buf = null;
    // Pending async waits reject with ClosedError; the slot goes when the
    // last of them has settled (the waiter thread may still be looking at it).
    if (cancelAll(this, this.constructor.name)) {
      this._deferred = slot;
      return;
    }
    releaseSlot(slot);
  }

  /** @internal Called when the last pending async wait settled. */
  _idle(): void {
    const s = this._deferred;
    if (s && (!this._pending || this._pending.size === 0)) {
      this._deferred = null;
      releaseSlot(s);
    }
  }

  /** @internal The segment id (for native ops that hold a view of it). */
  get _seg(): number {
    return (this._slot ?? this._closed()).seg;
  }

  get closed(): boolean {
    if (!Primitive._is(this)) throw invalidThis('a forksafe primitive');
    return this._slot === null;
  }

  [Symbol.dispose](): void {
    Primitive.prototype.close.call(this);
  }

  /** @internal Enforces Context rule 2 when handing this to a process. */
  _checkContext(target: StartMethod, where: string): void {
    if (this._method !== target) {
      throw new ContextError(
        `${this.constructor.name} of the '${this._method}' context cannot be handed to ${where} ` +
          `of the '${target}' context: create it from getContext('${target}') instead.`,
      );
    }
  }
}
