// Queue, SimpleQueue and JoinableQueue: one shared segment each (a SharedMemory
// of the queue's context holding one Ring), usable from any process or thread
// that has it (handle()/attach(), Process args, fork() children), with sync
// and async methods. docs/messaging.md.
import { ClosedError, ContextError, invalidArgType, invalidThis, outOfRange } from '../core/errors';
import type { StartMethod } from '../core/layout';
import { constructAttached, takeAttach } from '../core/primitive';
import { contextClass, contextOf, registerType } from '../core/registry';
import { BaseHandle } from '../core/runtime';
import { parseTimeout, signalAborted, signalReason, timeoutOf, validateObject, validateSignal, onAbort, offAbort } from '../core/validate';
import { SharedMemory } from '../sync/shared-memory';
import { Channel, Hooks, QueueEmptyError, QueueFullError, QueueShutDownError } from './channel';
import { Encoded } from './codec';
import { FLAG_JOINABLE, H, HEADER_BYTES, HOLDERS_AT, HOLDERS_N, initRing, Ring, ringCap, SLICE_MS, sliceBefore, TRANSIT_N } from './ring';
import { Holders } from './holders';
import { onForkChild } from '../fork';

// Live queues of this thread, for fork(): a child holds them too.
const live = new Set<WeakRef<Queue>>();
onForkChild(() => {
  for (const r of [...live]) {
    const q = r.deref();
    if (!q) live.delete(r);
    else q._holders?.forked();
  }
});

export interface QueueOptions {
  /** Messages; 0 (default): no count limit. */
  maxsize?: number;
  /** Bytes of the shared ring (default 1 MiB, rounded up to a power of two, at least 4 KiB). */
  capacity?: number;
}

const DEFAULT_CAPACITY = 1 << 20;
const PUT_WHERE = 'a message put into a queue';
const MAX_CAPACITY = 1 << 30;

interface PendingGet {
  resolve(v: unknown): void;
  reject(e: unknown): void;
  deadline: number; // ms, -1: none
  signal: AbortSignal | undefined;
  abort: (() => void) | null;
}
interface PendingPut {
  e: Encoded;
  resolve(): void;
  reject(e: unknown): void;
  deadline: number;
  signal: AbortSignal | undefined;
  abort: (() => void) | null;
}

type Kind = 'Queue' | 'SimpleQueue' | 'JoinableQueue';

function checkOpts(opts: unknown, kind: Kind): { maxsize: number; capacity: number } {
  if (opts === undefined) return { maxsize: 0, capacity: DEFAULT_CAPACITY };
  validateObject('options', opts);
  const o = opts as QueueOptions;
  const maxsize = o.maxsize;
  const capacity = o.capacity;
  let m = 0, c = DEFAULT_CAPACITY;
  if (maxsize !== undefined && kind !== 'SimpleQueue') {
    if (typeof maxsize !== 'number') throw invalidArgType('options.maxsize', 'of type number', maxsize);
    if (!Number.isInteger(maxsize) || maxsize < 0 || maxsize > 0x7fffffff) throw outOfRange('options.maxsize', 'an integer >= 0 and <= 2147483647', maxsize);
    m = maxsize;
  }
  if (capacity !== undefined) {
    if (typeof capacity !== 'number') throw invalidArgType('options.capacity', 'of type number', capacity);
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_CAPACITY) throw outOfRange('options.capacity', `an integer >= 1 and <= ${MAX_CAPACITY}`, capacity);
    c = capacity;
  }
  return { maxsize: m, capacity: c };
}

/** Timeout of a sync call: ms, -1 forever. */
function syncTimeout(opts: unknown): number {
  return opts === undefined ? -1 : timeoutOf(opts);
}

function asyncOpts(opts: unknown): { timeout: number; signal: AbortSignal | undefined } {
  if (opts === undefined) return { timeout: -1, signal: undefined };
  validateObject('options', opts);
  const o = opts as { timeout?: unknown; signal?: unknown };
  const timeout = parseTimeout(o.timeout, 'options.timeout');
  return { timeout, signal: validateSignal('options.signal', o.signal) };
}

export class Queue<T = unknown> {
  #queue = true;
  /** @internal */ _shm: SharedMemory | null = null;
  /** @internal */ _ch: Channel | null = null;
  /** @internal */ _method: StartMethod = 'spawn';
  /** @internal */ _gets: PendingGet[] = [];
  /** @internal */ _puts: PendingPut[] = [];
  /** @internal */ _pumpGet = false;
  /** @internal */ _pumpPut = false;
  /** @internal */ _holders: Holders | null = null;
  /** @internal */ _ref: WeakRef<Queue> | null = null;

  /** @internal */
  static _isQueue(o: unknown): o is Queue {
    return typeof o === 'object' && o !== null && #queue in o;
  }

  /** @internal Which kind this class makes. */
  static get _kind(): Kind {
    return 'Queue';
  }

  constructor(opts?: QueueOptions) {
    const h = takeAttach() as (BaseHandle & { kind?: unknown }) | null;
    const kind = (new.target as unknown as { _kind: Kind })._kind;
    if (h) {
      this._method = h.context;
      const shm = constructAttached(contextClass(SharedMemory, h.context), { ...h, type: 'SharedMemory' }) as SharedMemory;
      try {
        this._open(shm, kind);
      } catch (e) {
        shm.close();
        throw e;
      }
      this._holders?.arrived();
      return;
    }
    const { maxsize, capacity } = checkOpts(opts, kind);
    this._method = contextOf(new.target);
    const cap = ringCap(capacity);
    const shm = new (contextClass(SharedMemory, this._method))({ size: HEADER_BYTES + cap });
    const i32 = new Int32Array(shm.buffer);
    initRing(i32, 0, cap, maxsize, kind === 'JoinableQueue' ? FLAG_JOINABLE : 0);
    this._open(shm, kind);
  }

  /** @internal */
  _open(shm: SharedMemory, kind: Kind): void {
    const buf = shm.buffer;
    const ring = new Ring(buf, 0, buf.byteLength);
    const joinable = (ring.w(H.FLAGS) & FLAG_JOINABLE) !== 0;
    if (joinable !== (kind === 'JoinableQueue')) {
      throw new ContextError(`this handle is a ${joinable ? 'JoinableQueue' : 'Queue or SimpleQueue'}'s, not a ${kind}'s`);
    }
    this._shm = shm;
    this._ch = new Channel(ring, this._method, joinable);
    this._holders = new Holders(new Int32Array(buf), HOLDERS_AT, HOLDERS_N, TRANSIT_N, shm._id);
    this._holders.open();
    this._ref = new WeakRef(this);
    live.add(this._ref);
  }

  /** @internal */
  _c(what: string): Channel {
    if (!Queue._isQueue(this)) throw invalidThis('Queue');
    const ch = this._ch;
    if (!ch) throw new ClosedError(`${this.constructor.name} (${what})`);
    return ch;
  }

  /** @internal */ _hooks(): Hooks | undefined {
    return undefined;
  }

  /** The context that made this queue. */
  get method(): StartMethod {
    if (!Queue._isQueue(this)) throw invalidThis('Queue');
    return this._method;
  }

  get closed(): boolean {
    if (!Queue._isQueue(this)) throw invalidThis('Queue');
    return this._ch === null;
  }

  /** Puts `item`, blocking while the queue is full; QueueFullError on timeout. */
  put(item: T, opts?: { timeout?: number }): void {
    if (!Queue._isQueue(this)) throw invalidThis('Queue');
    const timeout = syncTimeout(opts);
    const ch = this._c('put()');
    const e = ch.encode(item, PUT_WHERE);
    if (!ch.put(e, timeout, this._hooks())) throw new QueueFullError();
  }

  putNowait(item: T): void {
    this.put(item, { timeout: 0 });
  }

  /** Takes the next item, blocking while the queue is empty; QueueEmptyError on timeout. */
  get(opts?: { timeout?: number }): T {
    if (!Queue._isQueue(this)) throw invalidThis('Queue');
    const timeout = syncTimeout(opts);
    const ch = this._c('get()');
    const got = ch.get(timeout, this._hooks());
    if (!got) throw new QueueEmptyError();
    return got.value as T;
  }

  getNowait(): T {
    return this.get({ timeout: 0 });
  }

  putAsync(item: T, opts?: { timeout?: number; signal?: AbortSignal }): Promise<void> {
    try {
      if (!Queue._isQueue(this)) throw invalidThis('Queue');
      const { timeout, signal } = asyncOpts(opts);
      const ch = this._c('putAsync()');
      if (signalAborted(signal)) return Promise.reject(signalReason(signal as AbortSignal));
      const e = ch.encode(item, PUT_WHERE);
      if (this._puts.length === 0) {
        this._hooks()?.sendCheck?.();
        if (ch.tryPut(e, -1)) return Promise.resolve();
      }
      if (timeout === 0) return Promise.reject(new QueueFullError());
      return new Promise<void>((resolve, reject) => {
        const p: PendingPut = { e, resolve, reject, deadline: timeout < 0 ? -1 : performance.now() + timeout, signal, abort: null };
        if (signal) {
          p.abort = () => {
            const i = this._puts.indexOf(p);
            if (i >= 0) this._puts.splice(i, 1);
            reject(signalReason(signal));
          };
          onAbort(signal, p.abort);
        }
        this._puts.push(p);
        this._pumpPuts();
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  getAsync(opts?: { timeout?: number; signal?: AbortSignal }): Promise<T> {
    try {
      if (!Queue._isQueue(this)) throw invalidThis('Queue');
      const { timeout, signal } = asyncOpts(opts);
      const ch = this._c('getAsync()');
      if (signalAborted(signal)) return Promise.reject(signalReason(signal as AbortSignal));
      if (this._gets.length === 0) {
        const got = ch.tryGet();
        if (got) return Promise.resolve(got.value as T);
        this._hooks()?.emptyCheck?.();
      }
      if (timeout === 0) return Promise.reject(new QueueEmptyError());
      return new Promise<T>((resolve, reject) => {
        const p: PendingGet = { resolve: resolve as (v: unknown) => void, reject, deadline: timeout < 0 ? -1 : performance.now() + timeout, signal, abort: null };
        if (signal) {
          p.abort = () => {
            const i = this._gets.indexOf(p);
            if (i >= 0) this._gets.splice(i, 1);
            reject(signalReason(signal));
          };
          onAbort(signal, p.abort);
        }
        this._gets.push(p);
        this._pumpGets();
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** @internal Serves pending getAsync()s in order, waiting on the ring's put sequence between rounds. */
  _pumpGets(): void {
    if (this._pumpGet) return;
    this._pumpGet = true;
    const settle = (p: PendingGet, f: () => void): void => {
      if (p.signal && p.abort) offAbort(p.signal, p.abort);
      f();
    };
    const round = async (): Promise<void> => {
      try {
        while (this._gets.length > 0 && this._ch && this._shm) {
          const ch = this._ch;
          const ring = ch.ring;
          const seq = ring.w(H.PUTSEQ);
          // Serve what is there.
          while (this._gets.length > 0) {
            let got;
            try {
              got = ch.tryGet();
              if (!got) this._hooks()?.emptyCheck?.();
            } catch (e) {
              for (const p of this._gets.splice(0)) settle(p, () => p.reject(e));
              return;
            }
            if (!got) break;
            const p = this._gets.shift() as PendingGet;
            settle(p, () => p.resolve(got.value));
          }
          // Expire timeouts.
          const t = performance.now();
          let next = SLICE_MS;
          for (const p of [...this._gets]) {
            if (p.deadline >= 0 && p.deadline <= t) {
              this._gets.splice(this._gets.indexOf(p), 1);
              settle(p, () => p.reject(new QueueEmptyError()));
            } else if (p.deadline >= 0) next = Math.min(next, p.deadline - t);
          }
          if (this._gets.length === 0) break;
          ring.add(H.CWAIT, 1);
          let r: string;
          try {
            r = await this._shm.waitAsync(H.PUTSEQ, seq, { timeout: Math.max(1, next) });
          } finally {
            if (this._shm) ring.add(H.CWAIT, -1);
          }
          if (r === 'timed-out' && ring.w(H.PUTSEQ) === seq && this._ch) this._ch.repair();
        }
      } catch (e) {
        for (const p of this._gets.splice(0)) settle(p, () => p.reject(e));
      } finally {
        this._pumpGet = false;
        if (this._gets.length > 0 && this._ch) this._pumpGets();
      }
    };
    void round();
  }

  /** @internal */
  _pumpPuts(): void {
    if (this._pumpPut) return;
    this._pumpPut = true;
    const settle = (p: PendingPut, f: () => void): void => {
      if (p.signal && p.abort) offAbort(p.signal, p.abort);
      f();
    };
    const round = async (): Promise<void> => {
      try {
        while (this._puts.length > 0 && this._ch && this._shm) {
          const ch = this._ch;
          const ring = ch.ring;
          const seq = ring.w(H.GETSEQ);
          while (this._puts.length > 0) {
            const p = this._puts[0];
            let ok: boolean;
            try {
              this._hooks()?.sendCheck?.();
              ok = ch.tryPut(p.e, -1);
            } catch (e) {
              this._puts.shift();
              settle(p, () => p.reject(e));
              continue;
            }
            if (!ok) break;
            this._puts.shift();
            settle(p, () => p.resolve());
          }
          const t = performance.now();
          let next = SLICE_MS;
          for (const p of [...this._puts]) {
            if (p.deadline >= 0 && p.deadline <= t) {
              this._puts.splice(this._puts.indexOf(p), 1);
              settle(p, () => p.reject(new QueueFullError()));
            } else if (p.deadline >= 0) next = Math.min(next, p.deadline - t);
          }
          if (this._puts.length === 0) break;
          ring.add(H.PWAIT, 1);
          let r: string;
          try {
            r = await this._shm.waitAsync(H.GETSEQ, seq, { timeout: Math.max(1, next) });
          } finally {
            if (this._shm) ring.add(H.PWAIT, -1);
          }
          if (r === 'timed-out' && ring.w(H.GETSEQ) === seq && this._ch) this._ch.repair();
        }
      } catch (e) {
        for (const p of this._puts.splice(0)) settle(p, () => p.reject(e));
      } finally {
        this._pumpPut = false;
        if (this._puts.length > 0 && this._ch) this._pumpPuts();
      }
    };
    void round();
  }

  /** Messages in the queue at the instant read (put and not yet got). */
  qsize(): number {
    const ch = this._c('qsize()');
    const n = ch.ring.w(H.COUNT);
    return n > 0 ? n : 0;
  }

  empty(): boolean {
    return this.qsize() === 0;
  }

  full(): boolean {
    const ch = this._c('full()');
    const r = ch.ring;
    return r.maxsize > 0 && r.w(H.COUNT) + r.w(H.RESV) >= r.maxsize;
  }

  /** The queue's limit in messages (0: none). */
  get maxsize(): number {
    return this._c('maxsize').ring.maxsize;
  }

  /** Bytes of the shared ring. */
  get capacity(): number {
    return this._c('capacity').ring.cap;
  }

  /**
   * In every process: put() throws QueueShutDownError from now on; get()
   * drains what is left, then throws it (immediate: drops what is left, every
   * get() throws at once). Pending waits settle.
   */
  shutdown(opts?: { immediate?: boolean }): void {
    if (!Queue._isQueue(this)) throw invalidThis('Queue');
    let immediate = false;
    if (opts !== undefined) {
      validateObject('options', opts);
      const v = (opts as { immediate?: unknown }).immediate;
      if (v !== undefined && typeof v !== 'boolean') throw invalidArgType('options.immediate', 'of type boolean', v);
      immediate = v === true;
    }
    this._c('shutdown()').shutdown(immediate);
  }

  /** for await (const item of queue): ends when the queue is shut down (and drained). */
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      let v: T;
      try {
        v = await this.getAsync();
      } catch (e) {
        if (e instanceof QueueShutDownError) return;
        throw e;
      }
      yield v;
    }
  }

  handle(): BaseHandle {
    if (!Queue._isQueue(this)) throw invalidThis('Queue');
    const shm = this._shm;
    if (!shm) throw new ClosedError(this.constructor.name);
    const h = shm.handle() as BaseHandle;
    this._holders?.inTransit();
    return { ...h, type: (this.constructor as unknown as { _kind: Kind })._kind };
  }

  /** Releases this process's mapping. Pending async calls reject with ClosedError. Idempotent. */
  close(): void {
    if (!Queue._isQueue(this)) throw invalidThis('Queue');
    const shm = this._shm;
    if (!shm) return;
    const ch = this._ch as Channel;
    const holders = this._holders as Holders;
    this._shm = null;
    this._ch = null;
    this._holders = null;
    if (this._ref) live.delete(this._ref);
    // The last holder anywhere removes the spills of messages nobody will take.
    try {
      if (holders.close() && !holders.held()) ch.sweep();
    } catch {
      // a corrupt ring: closing still releases the mapping
    }
    const err = new ClosedError(this.constructor.name);
    for (const p of this._gets.splice(0)) {
      if (p.signal && p.abort) offAbort(p.signal, p.abort);
      p.reject(err);
    }
    for (const p of this._puts.splice(0)) {
      if (p.signal && p.abort) offAbort(p.signal, p.abort);
      p.reject(err);
    }
    shm.close();
  }

  [Symbol.dispose](): void {
    Queue.prototype.close.call(this);
  }

  /** @internal Context rule 2 for the hand-off to a process. */
  _checkContext(target: StartMethod, where: string): void {
    if (this._method !== target) {
      throw new ContextError(
        `${this.constructor.name} of the '${this._method}' context cannot be handed to ${where} of the '${target}' context: ` +
          `create it from getContext('${target}') instead.`,
      );
    }
  }
}

/** A Queue without limits: put/get/getAsync/empty/close/shutdown. */
export class SimpleQueue<T = unknown> extends Queue<T> {
  static override get _kind(): Kind {
    return 'SimpleQueue';
  }

  constructor(opts?: { capacity?: number }) {
    super(opts);
  }
}

export class JoinableQueue<T = unknown> extends Queue<T> {
  static override get _kind(): Kind {
    return 'JoinableQueue';
  }

  constructor(opts?: QueueOptions) {
    super(opts);
  }

  /**
   * Acknowledges the calling thread's oldest item that it got and has not
   * acknowledged. RangeError when there is none.
   */
  taskDone(): void {
    const ch = this._c('taskDone()');
    if (!ch.taskDone()) {
      const e = new RangeError('taskDone() called more times than this thread got items');
      (e as RangeError & { code: string }).code = 'ERR_OUT_OF_RANGE';
      throw e;
    }
  }

  /** Waits until every item put was acknowledged (true), or the timeout passed (false). */
  join(opts?: { timeout?: number }): boolean {
    if (!Queue._isQueue(this)) throw invalidThis('JoinableQueue');
    const timeout = syncTimeout(opts);
    return this._c('join()').join(timeout);
  }

  async joinAsync(opts?: { timeout?: number; signal?: AbortSignal }): Promise<boolean> {
    if (!Queue._isQueue(this)) throw invalidThis('JoinableQueue');
    const { timeout, signal } = asyncOpts(opts);
    const deadline = timeout < 0 ? -1 : performance.now() + timeout;
    for (;;) {
      const ch = this._c('joinAsync()');
      const shm = this._shm as SharedMemory;
      if (signalAborted(signal)) throw signalReason(signal as AbortSignal);
      const ring = ch.ring;
      const seq = ring.w(H.JOINSEQ);
      if (ring.w(H.UNFINISHED) <= 0) return true;
      const t = sliceBefore(deadline);
      if (t === 0) return false;
      ring.add(H.JWAIT, 1);
      let r: string;
      try {
        r = await shm.waitAsync(H.JOINSEQ, seq, { timeout: Math.max(1, t), signal });
      } catch (e) {
        if (!this._shm) throw new ClosedError(this.constructor.name);
        throw e;
      } finally {
        if (this._shm) ring.add(H.JWAIT, -1);
      }
      if (r === 'timed-out' && ring.w(H.JOINSEQ) === seq && this._ch) this._ch.repair();
    }
  }
}

registerType('Queue', Queue);
registerType('SimpleQueue', SimpleQueue);
registerType('JoinableQueue', JoinableQueue);
