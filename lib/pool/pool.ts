// Pool: a process pool on the package's own Process and Pipe, in any context
// (the default, 'forkserver', starts workers in milliseconds). Each worker has
// a duplex Pipe; the parent keeps the queue of tasks, gives each worker up to
// PREFETCH tasks at a time (so it never waits for the parent between two),
// and sees a death through Process.exited: the task that was running gets
// WorkerDiedError (or runs again while `retries` last), the ones queued
// behind it on that worker go back to the front, a replacement starts. Only
// repeated start failures break the pool. docs/pool.md.
import { EventEmitter } from 'node:events';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  PoolBrokenError, PoolClosedError, QueueFullError, TimeoutError, WorkerDiedError,
  invalidArgType, outOfRange,
} from '../core/errors';
import type { StartMethod } from '../core/layout';
import { defaultMethod, checkMethod, contextClass } from '../core/registry';
import { resolveModule, moduleSpec } from '../core/util';
import { parseTimeout, validateObject, validateSignal, onAbort, offAbort, signalReason } from '../core/validate';
import { Process, ForkProcess } from '../process/process';
import { makePipe, Connection } from '../ipc/pipe';
import type { ErrorInfo, WorkerSpec } from './worker';
import { decodeResult, encodeTask, KIND } from './wire';

const WORKER_MODULE = path.join(__dirname, 'worker.js');
const PREFETCH = 32; // tasks a worker holds at once: one running, the others waiting in its pipe (only while tasks queue up)
const START_FAILURES = 3; // consecutive failed starts that break the pool
const SPIN_MS = 0.15;

export interface PoolOptions {
  module: string | URL;
  export?: string;
  workers?: number;
  context?: StartMethod | { method: StartMethod };
  initializer?: string;
  initArgs?: unknown[];
  maxTasksPerWorker?: number;
  maxWorkerMemory?: number;
  taskTimeout?: number;
  retries?: number;
  maxQueue?: number;
}

export interface RunOptions {
  name?: string;
  timeout?: number;
  signal?: AbortSignal;
  retries?: number;
}

interface Task {
  id: number;
  name: string;
  args: unknown[]; // a chunk: one call per element
  resolve(v: unknown[]): void;
  reject(e: unknown): void;
  retries: number;
  attempt: number;
  timeout: number; // ms, -1 none
  signal: AbortSignal | undefined;
  abort: (() => void) | null;
  queuedAt: number;
  startedAt: number;
  worker: Worker | null;
  timer: NodeJS.Timeout | null;
  done: boolean;
}

interface Worker {
  proc: Process | ForkProcess;
  conn: Connection;
  pid: number;
  ready: boolean;
  tasks: Task[]; // sent, in order: tasks[0] is running (once ready)
  served: number;
  retiring: boolean;
  dead: boolean;
  killedFor: Error | null; // why the pool killed it (timeout, abort): the running task's error
  exitPending: boolean; // the exit request did not fit in its pipe yet
  initFailure: Error | null; // what its initializer or module load threw
}

/** A histogram of milliseconds: count, mean, min, max and percentiles from log buckets. */
class Histogram {
  count = 0;
  sum = 0;
  min = Infinity;
  max = 0;
  private buckets = new Uint32Array(128); // bucket k: [2^(k/4 - 10), 2^((k+1)/4 - 10)) ms, 1 µs to 70 min

  add(ms: number): void {
    this.count++;
    this.sum += ms;
    if (ms < this.min) this.min = ms;
    if (ms > this.max) this.max = ms;
    const k = Math.max(0, Math.min(127, Math.floor((Math.log2(Math.max(ms, 1e-6)) + 10) * 4)));
    this.buckets[k]++;
  }

  percentile(p: number): number {
    if (this.count === 0) return 0;
    let n = Math.ceil(this.count * p);
    for (let k = 0; k < 128; k++) {
      n -= this.buckets[k];
      if (n <= 0) return Math.min(this.max, 2 ** ((k + 1) / 4 - 10));
    }
    return this.max;
  }

  toJSON(): { count: number; mean: number; min: number; p50: number; p90: number; p99: number; max: number } {
    return {
      count: this.count, mean: this.count ? this.sum / this.count : 0, min: this.count ? this.min : 0,
      p50: this.percentile(0.5), p90: this.percentile(0.9), p99: this.percentile(0.99), max: this.max,
    };
  }
}

/** A FIFO with O(1) shift and unshift (an Array's shift() is O(n) once it is long). */
class Deque<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(v: T): void {
    this.items.push(v);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const v = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return v;
  }

  unshift(v: T): void {
    if (this.head > 0) this.items[--this.head] = v;
    else this.items.unshift(v);
  }

  remove(v: T): boolean {
    const i = this.items.indexOf(v, this.head);
    if (i < 0) return false;
    this.items.splice(i, 1);
    return true;
  }

  splice0(): T[] {
    const out = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return out;
  }
}

function posInt(name: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number') throw invalidArgType(name, 'of type number', v);
  if (!Number.isInteger(v) || v < min || v > max) throw outOfRange(name, `an integer >= ${min}`, v);
  return v;
}

const ERROR_CLASSES: Record<string, new (m: string) => Error> = {
  Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError,
};

function rebuildError(info: ErrorInfo): Error {
  const C = Object.prototype.hasOwnProperty.call(ERROR_CLASSES, info.name) ? ERROR_CLASSES[info.name] : Error;
  const e = new C(info.message);
  if (e.name !== info.name) e.name = info.name;
  if (info.stack) e.stack = info.stack;
  if (info.code !== undefined) (e as Error & { code: unknown }).code = info.code;
  for (const [k, v] of Object.entries(info.props ?? {})) (e as unknown as Record<string, unknown>)[k] = v;
  return e;
}

export class Pool<A = unknown, R = unknown> extends EventEmitter {
  readonly #method: StartMethod;
  readonly #spec: WorkerSpec;
  readonly #export: string;
  readonly #size: number;
  readonly #maxTasks: number;
  readonly #maxMemory: number;
  readonly #taskTimeout: number;
  readonly #retries: number;
  readonly #maxQueue: number;
  readonly #workers = new Set<Worker>();
  readonly #queue = new Deque<Task>();
  #nextId = 1;
  #closing = false;
  #closed = false;
  #broken: Error | null = null;
  #startFailures = 0;
  #killedStarts = 0; // consecutive starts ended by SIGKILL (not counted as failures)
  #idleWaiters: Array<() => void> = [];
  readonly #run = new Histogram();
  readonly #wait = new Histogram();
  readonly #counts = { completed: 0, failed: 0, retried: 0, workersStarted: 0, workersDied: 0, workersRetired: 0 };

  constructor(opts: PoolOptions) {
    super();
    if (opts === null || typeof opts !== 'object') throw invalidArgType('options', 'of type object', opts);
    validateObject('options', opts);
    const o = opts;
    const moduleOpt = o.module;
    const exp = o.export;
    const workers = posInt('options.workers', o.workers, 1, 1024);
    const context = o.context;
    const initializer = o.initializer;
    const initArgs = o.initArgs;
    const maxTasks = posInt('options.maxTasksPerWorker', o.maxTasksPerWorker, 1);
    const maxMemory = posInt('options.maxWorkerMemory', o.maxWorkerMemory, 1);
    const taskTimeout = o.taskTimeout === undefined ? -1 : parseTimeout(o.taskTimeout, 'options.taskTimeout');
    const retries = posInt('options.retries', o.retries, 0, 1000);
    const maxQueue = posInt('options.maxQueue', o.maxQueue, 0);
    if (moduleOpt === undefined) throw invalidArgType('options.module', 'a path, a package name or a file: URL', moduleOpt);
    const mod = resolveModule(moduleSpec('options.module', moduleOpt));
    if (exp !== undefined && typeof exp !== 'string') throw invalidArgType('options.export', 'of type string', exp);
    if (initializer !== undefined && typeof initializer !== 'string') throw invalidArgType('options.initializer', 'of type string', initializer);
    if (initArgs !== undefined && !Array.isArray(initArgs)) throw invalidArgType('options.initArgs', 'an array', initArgs);
    let method: StartMethod;
    if (context === undefined) method = defaultMethod();
    else if (typeof context === 'string') method = checkMethod(context);
    else if (context !== null && typeof context === 'object' && typeof (context as { method?: unknown }).method === 'string') {
      method = checkMethod((context as { method: StartMethod }).method);
    } else throw invalidArgType('options.context', "a start method or a Context (getContext('spawn'))", context);
    this.#method = method;
    this.#spec = { module: mod, initializer: initializer ?? null, initArgs: initArgs ?? [], method, rss: (maxMemory ?? 0) > 0 };
    this.#export = exp ?? 'default';
    this.#size = workers ?? Math.max(1, os.availableParallelism());
    this.#maxTasks = maxTasks ?? 0;
    this.#maxMemory = maxMemory ?? 0;
    this.#taskTimeout = taskTimeout;
    this.#retries = retries ?? 0;
    this.#maxQueue = maxQueue ?? -1;
    for (let i = 0; i < this.#size; i++) this.#spawn();
  }

  /** Workers the pool keeps running. */
  get size(): number {
    return this.#size;
  }

  get pids(): number[] {
    return [...this.#workers].filter((w) => !w.dead).map((w) => w.pid);
  }

  /** Tasks not running yet: queued here, or sent to a worker behind the one it runs. */
  #waiting(): number {
    let n = this.#queue.length;
    for (const w of this.#workers) n += Math.max(0, w.tasks.length - 1);
    return n;
  }

  /** Workers, ready or starting, with nothing to do: a task for each of them is not waiting. */
  #freeWorkers(): number {
    let n = 0;
    for (const w of this.#workers) if (!w.retiring && !w.dead && w.tasks.length === 0) n++;
    return n;
  }

  /** Tasks given and not yet settled (queued + running). */
  get pending(): number {
    let n = this.#queue.length;
    for (const w of this.#workers) n += w.tasks.length;
    return n;
  }

  /** Counters and run/wait-time histograms (ms). */
  stats(): Record<string, unknown> {
    return { ...this.#counts, queued: this.#queue.length, pending: this.pending, runTime: this.#run.toJSON(), waitTime: this.#wait.toJSON() };
  }

  // ---- workers ---------------------------------------------------------------------
  #spawn(): void {
    if (this.#closed || this.#broken) return;
    const [mine, theirs] = makePipe(this.#method);
    const C = this.#method === 'fork' ? ForkProcess : contextClass(Process, this.#method);
    let proc: Process | ForkProcess;
    try {
      proc = new (C as typeof Process)({ target: { module: WORKER_MODULE, export: 'serve' }, args: [theirs, this.#spec], name: 'forksafe-pool' });
      proc.start();
    } catch (e) {
      mine.close();
      theirs.close();
      this.#startFailed(e);
      return;
    }
    theirs.close(); // the child holds its own (in transit until it attaches)
    const w: Worker = {
      proc, conn: mine, pid: proc.pid as number, ready: false, tasks: [], served: 0, retiring: false, dead: false,
      killedFor: null, exitPending: false, initFailure: null,
    };
    this.#workers.add(w);
    this.#counts.workersStarted++;
    process.nextTick(() => this.emit('workerSpawn', { pid: w.pid })); // after the constructor: listeners are on by then
    void proc.exited.then((info) => this.#exited(w, info));
    void this.#listen(w);
  }

  #startFailed(cause: unknown): void {
    this.#startFailures++;
    if (this.#startFailures >= START_FAILURES) {
      const e = new PoolBrokenError(`the pool cannot start workers (${this.#startFailures} failed starts in a row)`, cause);
      this.#broken = e;
      for (const t of this.#queue.splice0()) this.#fail(t, e);
      for (const w of this.#workers) for (const t of w.tasks.splice(0)) this.#fail(t, e);
      this.#notifyIdle();
    } else {
      setImmediate(() => this.#spawn());
    }
  }

  async #listen(w: Worker): Promise<void> {
    for (;;) {
      let m: unknown;
      try {
        m = await w.conn.recvAsync();
      } catch {
        return; // closed or the worker is gone: #exited handles it
      }
      this.#onMessage(w, m as Buffer);
    }
  }

  /**
   * A task went to an idle worker: its answer usually comes within
   * microseconds, so a short synchronous wait (at most SPIN_MS, only then)
   * takes it without the round trip through the waiter thread and the event
   * loop that the listener's recvAsync() costs (~70 us here).
   */
  #expect(w: Worker): void {
    queueMicrotask(() => {
      if (w.dead || !w.ready || w.tasks.length === 0 || !w.conn.readable) return;
      let m: unknown;
      try {
        m = w.conn._recvWithin(SPIN_MS);
      } catch {
        return;
      }
      if (m !== undefined) this.#onMessage(w, m as Buffer);
    });
  }

  #onMessage(w: Worker, buf: Buffer): void {
    let id: number, kind: number, rss: number, values: unknown[];
    try {
      ({ id, kind, rss, values } = decodeResult(buf));
    } catch {
      this.#kill(w, new WorkerDiedError(w.pid, null, null, 'a worker sent a message the pool cannot read'));
      return;
    }
    const value = kind === KIND.OK ? values : values[0];
    if (id === 0) {
      if (kind === KIND.READY) {
        w.ready = true;
        this.#startFailures = 0;
        this.#killedStarts = 0;
        const t = w.tasks[0];
        if (t) this.#started(t);
        this.#dispatch();
      } else if (kind === KIND.INITFAIL) {
        w.retiring = true;
        w.initFailure = rebuildError(value as ErrorInfo);
      }
      return;
    }
    // By id: a worker answers in order, but the listener's recvAsync() and
    // #expect() may hand two answers over in the other order.
    const i = w.tasks.findIndex((x) => x.id === id);
    if (i < 0) return; // a task the pool gave up on (aborted, or its worker was being killed)
    const [t] = w.tasks.splice(i, 1);
    w.served++;
    this.#settle(t, kind === KIND.OK, value);
    const next = w.tasks[0];
    if (i === 0 && next) this.#started(next);
    if (w.exitPending) {
      w.exitPending = false;
      this.#sendExit(w);
    }
    if ((this.#maxTasks > 0 && w.served >= this.#maxTasks) || (this.#maxMemory > 0 && rss > this.#maxMemory)) this.#retire(w);
    this.#dispatch();
  }


  #retire(w: Worker): void {
    if (w.retiring) return;
    w.retiring = true;
    this.#counts.workersRetired++;
    // The tasks already sent to it are in its pipe and will run: the exit
    // request goes behind them. A replacement starts now.
    this.#sendExit(w);
    this.#spawn();
  }

  #sendExit(w: Worker): void {
    try {
      if (!w.conn._trySend(encodeTask(0, '', [], this.#method))) w.exitPending = true; // sent after its next result
    } catch {
      w.proc.kill('SIGKILL');
    }
  }

  #exited(w: Worker, info: { code: number | null; signal: NodeJS.Signals | null }): void {
    // What it sent before it went (results, an initializer's error) is read first.
    for (let i = 0; i < 1000 && !w.dead; i++) {
      let m: unknown;
      try {
        m = w.conn._recvWithin(0);
      } catch {
        break;
      }
      if (m === undefined) break;
      this.#onMessage(w, m as Buffer);
    }
    w.dead = true;
    this.#workers.delete(w);
    w.conn.close();
    this.emit('workerExit', { pid: w.pid, code: info.code, signal: info.signal });
    const [running, ...rest] = w.tasks.splice(0);
    for (const t of rest.reverse()) {
      t.worker = null;
      this.#queue.unshift(t);
    }
    if (!w.ready) {
      // It died before it was ready: a failed start.
      if (!this.#closed) this.#counts.workersDied++;
      const initFailed = w.initFailure !== null;
      const cause = w.initFailure ?? new WorkerDiedError(w.pid, info.signal, info.code, 'a worker died while starting');
      if (running) this.#queue.unshift(running);
      // SIGKILL is the OOM killer or an operator, not the task module: the
      // worker is started again (after a growing pause) without counting
      // towards breaking the pool. Anything else (an initializer that throws,
      // a module that does not load, a crash, an exit) counts.
      if (!this.#closed) {
        if (info.signal === 'SIGKILL' && !initFailed) {
          this.#killedStarts++;
          const ms = Math.min(1000, 5 * 2 ** Math.min(8, this.#killedStarts - 1));
          setTimeout(() => this.#spawn(), ms);
        } else this.#startFailed(cause);
      }
      this.#dispatch();
      this.#notifyIdle();
      return;
    }
    if (!this.#closed && (!w.retiring || running)) this.#counts.workersDied++;
    if (running) {
      if (running.timer) clearTimeout(running.timer);
      running.timer = null;
      running.worker = null;
      const err = w.killedFor ?? new WorkerDiedError(w.pid, info.signal, info.code);
      if (!w.killedFor && running.attempt <= running.retries) {
        running.attempt++;
        this.#counts.retried++;
        this.emit('retry', { id: running.id, attempt: running.attempt, error: err });
        this.#queue.unshift(running);
      } else {
        this.#fail(running, err);
      }
    }
    if (!this.#closed && !this.#broken && (!w.retiring || running) && this.#liveCount() < this.#size) this.#spawn();
    this.#dispatch();
    this.#notifyIdle();
  }

  #liveCount(): number {
    let n = 0;
    for (const w of this.#workers) if (!w.dead && !w.retiring) n++;
    return n;
  }

  #kill(w: Worker, why: Error): void {
    if (w.dead) return;
    w.killedFor = why;
    w.proc.kill('SIGKILL');
  }

  // ---- tasks ------------------------------------------------------------------------
  #started(t: Task): void {
    t.startedAt = performance.now();
    this.#wait.add(t.startedAt - t.queuedAt);
    if (t.timeout >= 0 && t.timeout <= 0x7fffffff) { // longer: Node's timers cannot express it, and it is never reached
      t.timer = setTimeout(() => {
        t.timer = null;
        const w = t.worker;
        if (w && w.tasks[0] === t) this.#kill(w, new TimeoutError(`the task ran longer than ${t.timeout} ms: its worker (pid ${w.pid}) was killed`));
      }, t.timeout);
    }
  }

  #settle(t: Task, ok: boolean, value: unknown): void {
    if (t.timer) clearTimeout(t.timer);
    t.timer = null;
    if (t.done) return;
    t.done = true;
    if (t.signal && t.abort) offAbort(t.signal, t.abort);
    this.#run.add(performance.now() - t.startedAt);
    if (ok) {
      this.#counts.completed++;
      t.resolve(value as unknown[]);
    } else {
      this.#counts.failed++;
      t.reject(rebuildError(value as ErrorInfo));
    }
    this.#notifyIdle();
  }

  #fail(t: Task, e: unknown): void {
    if (t.timer) clearTimeout(t.timer);
    t.timer = null;
    if (t.done) return;
    t.done = true;
    if (t.signal && t.abort) offAbort(t.signal, t.abort);
    this.#counts.failed++;
    t.reject(e);
    this.#notifyIdle();
  }

  #dispatch(): void {
    if (this.#queue.length === 0) return;
    for (const w of this.#workers) {
      if (!w.ready || w.retiring || w.dead) continue;
      // More than one task per worker only when tasks queue up (then the worker
      // never waits for us between two); otherwise each goes to an idle worker.
      const depth = this.#queue.length > this.#workers.size ? Math.min(PREFETCH, 1 + Math.ceil(this.#queue.length / this.#workers.size)) : 1;
      while (w.tasks.length < depth && this.#queue.length > 0) {
        if (this.#maxTasks > 0 && w.served + w.tasks.length >= this.#maxTasks) break;
        const t = this.#queue.shift() as Task;
        if (t.done) continue;
        // A task with a timeout or a signal is not sent behind another: its
        // timer starts when it runs, and an abort must find it not yet sent.
        if (w.tasks.length > 0 && (t.timeout >= 0 || t.signal)) {
          this.#queue.unshift(t);
          break;
        }
        t.worker = w;
        w.tasks.push(t);
        let sent: boolean;
        try {
          // Never blocks: a full pipe (big arguments) waits for the worker to
          // drain it, which the next result shows; blocking here would stop
          // this event loop while the worker waits for us to read its results.
          sent = w.conn._trySend(encodeTask(t.id, t.name, t.args, this.#method));
        } catch (e) {
          w.tasks.pop();
          t.worker = null;
          if ((e as { code?: string }).code === 'ERR_FORKSAFE_PEER_CLOSED') {
            this.#queue.unshift(t); // the worker is going: its exit starts another
            break;
          }
          this.#fail(t, e); // not serializable, a primitive of another context...
          continue;
        }
        if (!sent) {
          w.tasks.pop();
          t.worker = null;
          this.#queue.unshift(t);
          // Full, or its index lock busy this instant: the next answer of this
          // worker dispatches again, and if it holds nothing no answer comes,
          // so try again shortly in any case.
          this.#retrySoon();
          break;
        }
        if (w.tasks.length === 1) {
          this.#started(t);
          this.#expect(w);
        }
      }
      if (this.#queue.length === 0) return;
    }
  }

  #retryTimer: NodeJS.Timeout | null = null;

  #retrySoon(): void {
    if (this.#retryTimer) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      this.#dispatch();
    }, 1);
  }

  #submit(name: string, args: unknown[], o: { timeout: number; signal: AbortSignal | undefined; retries: number }): Promise<unknown[]> {
    if (this.#closing || this.#closed) return Promise.reject(new PoolClosedError());
    if (this.#broken) return Promise.reject(this.#broken);
    if (this.#maxQueue >= 0 && this.#waiting() >= this.#maxQueue + this.#freeWorkers()) {
      return Promise.reject(new QueueFullError(`the pool's queue holds ${this.#maxQueue} tasks (maxQueue)`));
    }
    if (o.signal?.aborted) return Promise.reject(signalReason(o.signal));
    return new Promise<unknown[]>((resolve, reject) => {
      const t: Task = {
        id: this.#nextId++, name, args, resolve, reject, retries: o.retries, attempt: 1, timeout: o.timeout,
        signal: o.signal, abort: null, queuedAt: performance.now(), startedAt: 0, worker: null, timer: null, done: false,
      };
      if (o.signal) {
        const signal = o.signal;
        t.abort = () => {
          const reason = signalReason(signal);
          const w = t.worker;
          if (w && w.tasks[0] === t && w.ready) this.#kill(w, reason as Error);
          else {
            if (w) {
              const i = w.tasks.indexOf(t);
              if (i >= 0) w.tasks.splice(i, 1); // sent but not started: the worker will answer an id nobody waits for
            }
            this.#queue.remove(t);
            this.#fail(t, reason);
          }
        };
        onAbort(signal, t.abort);
      }
      this.#queue.push(t);
      this.#dispatch();
    });
  }

  #runOpts(opts: RunOptions | undefined): { name: string; timeout: number; signal: AbortSignal | undefined; retries: number } {
    if (opts === undefined) return { name: this.#export, timeout: this.#taskTimeout, signal: undefined, retries: this.#retries };
    validateObject('options', opts);
    const name = opts.name;
    if (name !== undefined && typeof name !== 'string') throw invalidArgType('options.name', 'of type string', name);
    const timeout = opts.timeout === undefined ? this.#taskTimeout : parseTimeout(opts.timeout, 'options.timeout');
    const signal = validateSignal('options.signal', opts.signal);
    const retries = posInt('options.retries', opts.retries, 0, 1000);
    return { name: name ?? this.#export, timeout, signal, retries: retries ?? this.#retries };
  }

  /** Runs the task function with `arg` in a worker. */
  async run(arg: A, opts?: RunOptions): Promise<R> {
    const o = this.#runOpts(opts);
    const [v] = await this.#submit(o.name, [arg], o);
    return v as R;
  }

  /** Runs every item (in chunks of `chunksize`), results in order; the iterable is read as workers free up. */
  async map(items: Iterable<A>, opts?: RunOptions & { chunksize?: number }): Promise<R[]> {
    const out: R[] = [];
    for await (const v of this.imap(items, opts)) out.push(v);
    return out;
  }

  /** Results in the order of the items; at most a bounded number of items in flight. */
  imap(items: Iterable<A> | AsyncIterable<A>, opts?: RunOptions & { chunksize?: number }): AsyncIterableIterator<R> {
    return this.#imap(items, opts, true);
  }

  /** Results as they complete. */
  imapUnordered(items: Iterable<A> | AsyncIterable<A>, opts?: RunOptions & { chunksize?: number }): AsyncIterableIterator<R> {
    return this.#imap(items, opts, false);
  }

  async *#imap(items: Iterable<A> | AsyncIterable<A>, opts: (RunOptions & { chunksize?: number }) | undefined, ordered: boolean): AsyncIterableIterator<R> {
    const chunksize = posInt('options.chunksize', opts?.chunksize, 1) ?? 1;
    const o = this.#runOpts(opts === undefined ? undefined : { name: opts.name, timeout: opts.timeout, signal: opts.signal, retries: opts.retries });
    if (items === null || (typeof items !== 'object' && typeof items !== 'string')) throw invalidArgType('items', 'an iterable', items);
    const it = (Symbol.asyncIterator in (items as object))
      ? (items as AsyncIterable<A>)[Symbol.asyncIterator]()
      : (items as Iterable<A>)[Symbol.iterator]();
    // Chunks in flight: enough to keep every worker fed, never more than maxQueue lets wait.
    let limit = Math.max(4, this.#size * PREFETCH * 2);
    if (this.#maxQueue >= 0) limit = Math.max(1, Math.min(limit, this.#maxQueue + this.#size));
    // Completed chunks, in completion order; `wake` resolves the loop's wait.
    const done: Array<{ k: number; v: unknown[] | null; e: unknown }> = [];
    let wake: (() => void) | null = null;
    const results = new Map<number, { v: unknown[] | null; e: unknown }>();
    let nextIn = 0, nextOut = 0, inflight = 0, ended = false;
    const fill = async (): Promise<void> => {
      while (!ended && inflight < limit) {
        const chunk: A[] = [];
        while (chunk.length < chunksize) {
          const r = await it.next();
          if (r.done) {
            ended = true;
            break;
          }
          chunk.push(r.value);
        }
        if (chunk.length === 0) break;
        const k = nextIn++;
        inflight++;
        const settle = (x: { k: number; v: unknown[] | null; e: unknown }): void => {
          done.push(x);
          const w = wake;
          wake = null;
          w?.();
        };
        this.#submit(o.name, chunk, o).then((v) => settle({ k, v, e: null }), (e) => settle({ k, v: null, e }));
      }
    };
    try {
      await fill();
      while (inflight > 0) {
        if (done.length === 0) await new Promise<void>((r) => (wake = r));
        const batch = done.splice(0);
        inflight -= batch.length;
        for (const r of batch) {
          if (ordered) {
            results.set(r.k, r);
            while (results.has(nextOut)) {
              const x = results.get(nextOut) as { v: unknown[] | null; e: unknown };
              results.delete(nextOut);
              nextOut++;
              if (x.e) throw x.e;
              for (const v of x.v as unknown[]) yield v as R;
            }
          } else {
            if (r.e) throw r.e;
            for (const v of r.v as unknown[]) yield v as R;
          }
        }
        await fill();
      }
    } finally {
      if (!ended && typeof it.return === 'function') await it.return();
    }
  }

  #notifyIdle(): void {
    if (this.pending > 0 && !this.#broken) return;
    for (const f of this.#idleWaiters.splice(0)) f();
  }

  /** Finishes what was given, then stops the workers. run() rejects PoolClosedError from now on. */
  async close(opts?: { timeout?: number }): Promise<void> {
    const timeout = opts === undefined ? -1 : (validateObject('options', opts), parseTimeout(opts.timeout, 'options.timeout'));
    this.#closing = true;
    if (this.pending > 0 && !this.#broken) {
      await new Promise<void>((res) => {
        this.#idleWaiters.push(res);
        if (timeout >= 0) setTimeout(res, timeout).unref();
      });
    }
    await this.#stop(false);
  }

  /** Kills the workers now; pending tasks reject with PoolClosedError. */
  async terminate(): Promise<void> {
    this.#closing = true;
    await this.#stop(true);
  }

  async #stop(kill: boolean): Promise<void> {
    this.#closed = true;
    const err = new PoolClosedError();
    for (const t of this.#queue.splice0()) this.#fail(t, err);
    const all = [...this.#workers];
    for (const w of all) {
      for (const t of w.tasks.splice(0)) this.#fail(t, err);
      if (kill) w.proc.kill('SIGKILL');
      else this.#sendExit(w);
    }
    const timer = kill ? null : setTimeout(() => all.forEach((w) => w.dead || w.proc.kill('SIGKILL')), 5000);
    await Promise.all(all.map((w) => w.proc.exited));
    if (timer) clearTimeout(timer);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

