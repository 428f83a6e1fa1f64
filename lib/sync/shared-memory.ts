// SharedMemory: a region of shared bytes exposed as an ArrayBuffer, plus
// Atomics.wait/notify that work across processes (futex on the Int32 at an
// index). Anonymous (memfd) unless persistent, in which case it is a /dev/shm
// object named "forksafe.<name>" that outlives every process until unlink().
import { binding } from '../core/binding';
import { ClosedError, ContextError, ForksafeError, badHandle, invalidArgType, invalidThis, outOfRange } from '../core/errors';
import { CTX_NAME, S, SEG_SHM, StartMethod } from '../core/layout';
import { takeAttach } from '../core/primitive';
import { attach } from '../core/attach';
import { contextOf, registerType } from '../core/registry';
import { BaseHandle, openSegment, segmentHandle, unexpected } from '../core/runtime';
import { signalAborted, signalReason, timeoutOf, validateBoolean, validateInteger, validateObject } from '../core/validate';
import { AsyncOptions, cancelAll, parseAsyncOptions, wait } from '../core/async';

export interface SharedMemoryOptions {
  size: number;
  name?: string;
  persistent?: boolean;
}

export interface SharedMemoryHandle extends BaseHandle {
  type: 'SharedMemory';
}

const NAME_RE = /^[A-Za-z0-9._-]{1,37}$/;
const PREFIX = '/forksafe.';
const MAX_SIZE = 2 ** 40;

function randomName(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return `shm-${(require('node:crypto') as typeof import('node:crypto')).randomBytes(12).toString('hex')}`;
}

export class SharedMemory {
  #shm = true;
  /** @internal */ _seg = 0;
  /** @internal The segment's id (hex), which names it after close() too. */ _id = '';
  /** @internal unlink() of a memfd segment already ran on this object. */ _unlinked = false;
  /** @internal */ _ab: ArrayBuffer | null = null;
  /** @internal */ _abId = 0;
  /** @internal */ _i32: Int32Array | null = null;
  /** @internal */ _method: StartMethod = 'spawn';
  /** @internal */ _name: string | null = null;
  /** @internal */ _persistent = false;
  /** @internal */ _size = 0;
  /** @internal */ _pending: Set<number> | null = null;
  /** @internal */ _closedReason: Error | null = null;

  constructor(opts: SharedMemoryOptions) {
    const h = takeAttach();
    let seg: number;
    if (h) {
      this._method = h.context;
      seg = openSegment(h.segment, SEG_SHM, h.context, 'SharedMemory');
    } else {
      if (opts === null || typeof opts !== 'object') throw invalidArgType('options', 'of type object', opts);
      validateObject('options', opts);
      const size = validateInteger('options.size', opts.size, 1, MAX_SIZE);
      const persistent = validateBoolean('options.persistent', opts.persistent) ?? false;
      let name = opts.name;
      if (name !== undefined) {
        if (typeof name !== 'string') throw invalidArgType('options.name', 'of type string', name);
        if (!NAME_RE.test(name)) throw outOfRange('options.name', '1-37 characters of [A-Za-z0-9._-]', name);
      }
      this._method = contextOf(new.target);
      if (persistent && this._method === 'fork') {
        throw new ContextError("a persistent SharedMemory is reachable by name from any process: create it from getContext('spawn')");
      }
      if (persistent && name === undefined) name = randomName();
      const full = persistent ? PREFIX + name : (name ?? null);
      let [st, s] = binding.shmCreate(
        this._method === 'fork' ? 2 : this._method === 'forkserver' ? 3 : 1, size, full, persistent,
      );
      if (st === S.EXISTS) {
        [st, s] = binding.shmOpenName(full as string);
        if (st === S.OK) {
          const existing = (binding.segInfo(s) as { dataSize: number }).dataSize;
          if (existing !== size) {
            binding.segRelease(s);
            throw outOfRange('options.size', `${existing} (the size of the existing segment '${name}')`, size);
          }
        }
      }
      if (st === S.RANGE) throw outOfRange('options.size', `>= 1 and <= ${MAX_SIZE}`, size);
      if (st !== S.OK) throw new ForksafeError(`SharedMemory: cannot create segment (status ${st})`, 'ERR_FORKSAFE_INTERNAL');
      seg = s;
    }
    try {
      const info = binding.segInfo(seg);
      if (!info) throw badHandle('segment vanished');
      this._persistent = info.persistent;
      this._id = info.id;
      this._name = info.name ? (info.name.startsWith(PREFIX) ? info.name.slice(PREFIX.length) : info.name) : null;
      const [ab, id] = binding.buffer(seg, true);
      this._ab = ab;
      this._abId = id;
      this._size = ab.byteLength;
      this._i32 = new Int32Array(ab, 0, Math.floor(ab.byteLength / 4));
      this._seg = seg;
    } finally {
      binding.segRelease(seg); // the buffer holds the view from now on
    }
  }

  /** Opens an existing persistent segment by name. */
  static open(name: string): SharedMemory {
    if (typeof name !== 'string') throw invalidArgType('name', 'of type string', name);
    if (!NAME_RE.test(name)) throw outOfRange('name', '1-37 characters of [A-Za-z0-9._-]', name);
    const [st, seg] = binding.shmOpenName(PREFIX + name);
    if (st !== S.OK) {
      const e = new ForksafeError(`SharedMemory.open(): no persistent segment named '${name}'`, 'ENOENT');
      throw e;
    }
    const info = binding.segInfo(seg);
    const h: BaseHandle = {
      forksafe: 1, type: 'SharedMemory', context: CTX_NAME[info!.ctx] ?? 'spawn', // as made: 'spawn' or 'forkserver'
      segment: { id: info!.id, pid: 0, fd: -1, dev: '0', ino: '0', size: info!.size, name: PREFIX + name },
      offset: 0, generation: 1,
    };
    try {
      return attach<SharedMemory>(h);
    } finally {
      binding.segRelease(seg);
    }
  }

  /** @internal Whether `o` is a real SharedMemory. */
  static _is(o: unknown): o is SharedMemory {
    return typeof o === 'object' && o !== null && #shm in o;
  }

  /** The mapping itself: typed arrays and Atomics work on it. Detached (empty) after close(). */
  get buffer(): ArrayBuffer {
    if (!SharedMemory._is(this)) throw invalidThis('SharedMemory');
    return this._ab ?? this._closed();
  }

  get size(): number {
    if (!SharedMemory._is(this)) throw invalidThis('SharedMemory');
    return this._size;
  }

  get name(): string | null {
    if (!SharedMemory._is(this)) throw invalidThis('SharedMemory');
    return this._name;
  }

  get persistent(): boolean {
    if (!SharedMemory._is(this)) throw invalidThis('SharedMemory');
    return this._persistent;
  }

  get closed(): boolean {
    if (!SharedMemory._is(this)) throw invalidThis('SharedMemory');
    return this._ab === null;
  }

  /** @internal */
  _closed(): never {
    throw new ClosedError('SharedMemory');
  }

  // Every public method validates `this` and its arguments first (an options
  // getter may run any code, close() included), then checks `closed`, then
  // touches the mapping. An index is checked against the size, which close()
  // does not change.

  /** @internal */
  _index(index: unknown): number {
    return validateInteger('index', index, 0, Math.floor(this._size / 4) - 1);
  }

  /** Like Atomics.wait on the Int32 at `index`, but across processes. */
  wait(index: number, value: number, opts?: { timeout?: number }): 'ok' | 'not-equal' | 'timed-out' {
    if (!SharedMemory._is(this)) throw invalidThis('SharedMemory');
    const i = this._index(index);
    validateInteger('value', value, -0x80000000, 0xffffffff);
    const timeout = opts === undefined ? -1 : timeoutOf(opts);
    const ab = this._ab ?? this._closed();
    const st = binding.wordWait(ab, i * 4, value | 0, timeout);
    if (st === S.OK) return 'ok';
    if (st === S.NOT_EQUAL) return 'not-equal';
    if (st === S.TIMED_OUT) return 'timed-out';
    throw unexpected(st, 'SharedMemory.wait()');
  }

  /**
   * Like Atomics.waitAsync on the Int32 at `index`, across processes: a native
   * waiter thread waits; the event loop never blocks. In one process, async
   * waits on the same Int32 share one native waiter: a notify() wakes it (it
   * counts as one) and it resolves one of them, or all of them when the
   * value has changed.
   */
  waitAsync(index: number, value: number, opts?: AsyncOptions): Promise<'ok' | 'not-equal' | 'timed-out'> {
    try {
      if (!SharedMemory._is(this)) throw invalidThis('SharedMemory');
      const i = this._index(index);
      validateInteger('value', value, -0x80000000, 0xffffffff);
      const { timeout, signal } = parseAsyncOptions(opts);
      const i32 = this._i32 ?? this._closed();
      if (signalAborted(signal)) return Promise.reject(signalReason(signal as AbortSignal));
      if (Atomics.load(i32, i) !== (value | 0)) return Promise.resolve('not-equal');
      if (timeout === 0) return Promise.resolve('timed-out');
      const ab = this._ab as ArrayBuffer, seg = this._seg;
      return wait(this, signal, () => {
        const id = binding.asyncWord(seg, ab, i * 4, value | 0, timeout);
        if (id < 0) throw badHandle('shared memory is not valid');
        return id;
      }, {
        map: (st) => {
          if (st === S.OK) return 'ok' as const;
          if (st === S.TIMED_OUT) return 'timed-out' as const;
          throw unexpected(st, 'SharedMemory.waitAsync()');
        },
      }, () => {});
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Wakes up to `count` waiters on the Int32 at `index` in every process; returns how many woke. */
  notify(index: number, count: number = Infinity): number {
    if (!SharedMemory._is(this)) throw invalidThis('SharedMemory');
    const i = this._index(index);
    if (count !== Infinity) validateInteger('count', count, 0, 0x7fffffff);
    const ab = this._ab ?? this._closed();
    if (count === 0) return 0; // FUTEX_WAKE with 0 would still wake one (Atomics.notify wakes none)
    const n = count === Infinity ? 0x7fffffff : count;
    // This process's async waits first (they count as registered from the
    // moment waitAsync() returned, even before their waiter thread sleeps),
    // then sleepers in every process.
    const local = binding.asyncNotifyLocal(ab, i * 4, n);
    if (local >= n) return local;
    return local + binding.wordWake(ab, i * 4, n - local);
  }

  handle(): SharedMemoryHandle {
    if (!SharedMemory._is(this)) throw invalidThis('SharedMemory');
    if (!this._ab) this._closed();
    return {
      forksafe: 1,
      type: 'SharedMemory',
      context: this._method,
      segment: segmentHandle(this._seg),
      offset: 0,
      generation: 1,
    };
  }

  /** Unmaps it in this process; the buffer is detached. Idempotent. */
  close(): void {
    if (!SharedMemory._is(this)) throw invalidThis('SharedMemory');
    const ab = this._ab;
    if (!ab) return;
    this._ab = null;
    this._i32 = null;
    cancelAll(this, 'SharedMemory'); // pending waitAsync reject with ClosedError; each op holds its own view
    binding.dropBuffer(ab, this._abId);
  }

  /**
   * Works on every segment (ported Python code calls it unconditionally), and
   * after close() too. The segment is marked unlinked in its shared header, so
   * that a later attach() of its handle fails (ERR_FORKSAFE_BAD_HANDLE) in
   * every process; a persistent one also loses its /dev/shm name, as before.
   * Existing mappings keep working; the memory goes with the last of them. A
   * second unlink() throws ENOENT, as shm_unlink(2) does.
   */
  unlink(): void {
    if (!SharedMemory._is(this)) throw invalidThis('SharedMemory');
    if (this._persistent && this._name) {
      binding.shmUnlink(PREFIX + this._name, this._id); // throws ENOENT when already unlinked or the name is gone
      return;
    }
    // Not mapped here any more (closed): nothing of this process can attach it
    // (its handles name an fd that close() closed), so a first unlink() is done.
    binding.shmUnlink(null, this._id, this._unlinked); // throws ENOENT for a second unlink
    this._unlinked = true;
  }

  [Symbol.dispose](): void {
    SharedMemory.prototype.close.call(this);
  }

  /** @internal */
  _checkContext(target: StartMethod, where: string): void {
    if (this._method !== target) {
      throw new ContextError(
        `SharedMemory of the '${this._method}' context cannot be handed to ${where} of the '${target}' context: ` +
          `create it from getContext('${target}') instead.`,
      );
    }
  }
}


registerType('SharedMemory', SharedMemory);
