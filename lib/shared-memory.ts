// SharedMemory: a region of shared bytes exposed as an ArrayBuffer, plus
// Atomics.wait/notify that work across processes (futex on the Int32 at an
// index). Anonymous (memfd) unless persistent, in which case it is a /dev/shm
// object named "forksafe.<name>" that outlives every process until unlink().
import { binding } from './binding';
import { ClosedError, ContextError, ForksafeError, badHandle, invalidArgType, outOfRange } from './errors';
import { CTX_NAME, S, SEG_SHM, StartMethod } from './layout';
import { contextOf, takeAttach } from './primitive';
import type { Context } from './context';
import { getContext } from './context';
import { BaseHandle, openSegment, segmentHandle } from './runtime';
import { timeoutOf, validateBoolean, validateInteger, validateObject } from './validate';
import { AsyncOptions, cancelAll, parseAsyncOptions, wait } from './async';

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
  /** @internal */ _seg = 0;
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
      this._name = info.name ? (info.name.startsWith(PREFIX) ? info.name.slice(PREFIX.length) : info.name) : null;
      const [ab, id] = binding.buffer(seg, true);
      this._ab = ab;
      this._abId = id;
      this._size = ab.byteLength;
      this._i32 = new Int32Array(ab, 0, ab.byteLength >> 2);
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
      return attachShared(h);
    } finally {
      binding.segRelease(seg);
    }
  }

  get context(): Context {
    return getContext(this._method);
  }

  /** The mapping itself: typed arrays and Atomics work on it. Detached (empty) after close(). */
  get buffer(): ArrayBuffer {
    return this._ab ?? this._closed();
  }

  get size(): number {
    return this._size;
  }

  get name(): string | null {
    return this._name;
  }

  get persistent(): boolean {
    return this._persistent;
  }

  get closed(): boolean {
    return this._ab === null;
  }

  /** @internal */
  _closed(): never {
    throw new ClosedError('SharedMemory');
  }

  /** @internal */
  _index(index: unknown): number {
    const i32 = this._i32 ?? this._closed();
    return validateInteger('index', index, 0, i32.length - 1);
  }

  /** Like Atomics.wait on the Int32 at `index`, but across processes. */
  wait(index: number, value: number, opts?: { timeout?: number }): 'ok' | 'not-equal' | 'timed-out' {
    const i = this._index(index);
    validateInteger('value', value, -0x80000000, 0xffffffff);
    const st = binding.wordWait(this._ab as ArrayBuffer, i * 4, value | 0, opts === undefined ? -1 : timeoutOf(opts));
    if (st === S.OK) return 'ok';
    if (st === S.NOT_EQUAL) return 'not-equal';
    if (st === S.TIMED_OUT) return 'timed-out';
    throw new ForksafeError(`SharedMemory.wait(): unexpected status ${st}`, 'ERR_FORKSAFE_INTERNAL');
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
      const i = this._index(index);
      validateInteger('value', value, -0x80000000, 0xffffffff);
      const { timeout, signal } = parseAsyncOptions(opts);
      if (signal?.aborted) return Promise.reject(signal.reason);
      const i32 = this._i32 as Int32Array;
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
          throw new ForksafeError(`SharedMemory.waitAsync(): unexpected status ${st}`, 'ERR_FORKSAFE_INTERNAL');
        },
      }, () => {});
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Wakes up to `count` waiters on the Int32 at `index` in every process; returns how many woke. */
  notify(index: number, count: number = Infinity): number {
    const i = this._index(index);
    if (count !== Infinity) validateInteger('count', count, 0, 0x7fffffff);
    if (count === 0) return 0; // FUTEX_WAKE with 0 would still wake one (Atomics.notify wakes none)
    const n = count === Infinity ? 0x7fffffff : count;
    // This process's async waits first (they count as registered from the
    // moment waitAsync() returned, even before their waiter thread sleeps),
    // then sleepers in every process.
    const local = binding.asyncNotifyLocal(this._ab as ArrayBuffer, i * 4, n);
    if (local >= n) return local;
    return local + binding.wordWake(this._ab as ArrayBuffer, i * 4, n - local);
  }

  handle(): SharedMemoryHandle {
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
    const ab = this._ab;
    if (!ab) return;
    this._ab = null;
    this._i32 = null;
    cancelAll(this, 'SharedMemory'); // pending waitAsync reject with ClosedError; each op holds its own view
    binding.dropBuffer(ab, this._abId);
  }

  /** Removes a persistent segment's name; the memory goes when its last user unmaps it. */
  unlink(): void {
    if (!this._persistent || !this._name) {
      throw new ForksafeError('SharedMemory.unlink(): only persistent segments have a name to unlink', 'ERR_FORKSAFE_NOT_PERSISTENT');
    }
    binding.shmUnlink(PREFIX + this._name);
  }

  [Symbol.dispose](): void {
    this.close();
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

// Late-bound to avoid a cycle with attach.ts.
function attachShared(h: BaseHandle): SharedMemory {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('./attach') as typeof import('./attach')).attach<SharedMemory>(h);
}
