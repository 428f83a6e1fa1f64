'use strict';
// A small process pool on forksafe's public API: worker processes from the
// forkserver, one SharedMemory mailbox per worker, and each Process's `exited`
// promise to notice a worker that dies mid-task (SIGKILL, the OOM killer, a
// crash) instead of waiting forever for its result. Read README.md.
const { EventEmitter } = require('node:events');
const os = require('node:os');
const path = require('node:path');
const v8 = require('node:v8');
const { getContext, startForkserver } = require('forksafe');
const mb = require('./mailbox.js');

const WORKER = path.join(__dirname, 'worker.js');

/** A task was lost because its worker process died while running it. */
class WorkerDiedError extends Error {
  constructor(pid, exit, taskId, runs) {
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    const tries = runs > 1 ? ` (run ${runs} times; every worker died)` : '';
    super(`worker pid ${pid} ${how} while running task #${taskId}${tries}`);
    this.name = 'WorkerDiedError';
    this.code = 'ERR_POOL_WORKER_DIED';
    this.pid = pid;
    this.signal = exit.signal;
    this.exitCode = exit.code;
    this.taskId = taskId;
  }
}

/** run() after close(), or a task dropped by terminate(). */
class PoolClosedError extends Error {
  constructor(message = 'the pool is closed') {
    super(message);
    this.name = 'PoolClosedError';
    this.code = 'ERR_POOL_CLOSED';
  }
}

/** A worker died before it could serve (its module does not load, for example). */
class WorkerStartError extends Error {
  constructor(pid, exit, module) {
    const how = exit.error ? `could not be started (${exit.error.message})` : `exited with code ${exit.code}`;
    super(`worker pid ${pid} ${how} before serving any task, 3 times in a row: does ${module} load? (its stderr says)`);
    this.name = 'WorkerStartError';
    this.code = 'ERR_POOL_WORKER_START';
    this.pid = pid;
  }
}

/** A task's exception, re-created in the parent from the worker's description. */
function taskError(info, pid, taskId) {
  const e = new Error(info.message);
  e.name = info.name;
  if (info.code !== undefined) e.code = info.code;
  e.stack = `${info.stack ?? `${info.name}: ${info.message}`}\n    at <pool worker pid ${pid}, task #${taskId}>`;
  return e;
}

/** The parent's side of one worker process and its mailbox. */
class Worker {
  constructor(ctx, opts, onExit) {
    this.mailbox = new ctx.SharedMemory({ size: mb.HEADER + opts.mailboxBytes });
    try {
      this.proc = new ctx.Process({
        target: { module: WORKER, export: 'serve' },
        args: [this.mailbox, opts.module, opts.export],
        name: 'forksafe-pool-worker',
      }).start();
    } catch (e) {
      this.mailbox.close();
      throw e;
    }
    this.pid = this.proc.pid;
    this.job = null; // the task it is running
    this.exit = null; // { code, signal } once it has died
    this.finalState = null; // its mailbox state when it died (nobody writes it after that)
    this.death = new AbortController(); // ends our waits on its mailbox when it dies
    // A 'spawn' Process's exited rejects if node cannot be spawned: a death all the same.
    this.exited = this.proc.exited.catch((e) => ({ code: null, signal: null, error: e })).then((exit) => {
      this.finalState = mb.state(this.mailbox);
      this.exit = exit;
      this.death.abort();
      onExit(this);
    });
  }

  state() {
    return this.exit ? this.finalState : mb.state(this.mailbox);
  }

  /** 'changed' once the mailbox state is no longer `value`; 'died' if the worker dies first. */
  async waitWhile(value) {
    try {
      await mb.waitWhile(this.mailbox, value, this.death.signal);
    } catch (e) {
      if (!this.death.signal.aborted) throw e;
    }
    // It may have posted its reply and died right after: the state word decides.
    return this.state() !== value ? 'changed' : 'died';
  }
}

class Pool extends EventEmitter {
  /**
   * @param {object} opts
   * @param {string} opts.module    the task module (path); every worker loads it once
   * @param {string} [opts.export]  its task function (default: the default export)
   * @param {number} [opts.workers] number of worker processes (default: one per CPU)
   * @param {number} [opts.retries] how many times a task whose worker died is run again (default 0)
   * @param {number} [opts.mailboxBytes] the largest serialized task or result (default 1 MiB)
   * @param {'forkserver'|'spawn'} [opts.method] start method (default 'forkserver')
   */
  constructor(opts) {
    super();
    const {
      module, export: exportName = null, workers = os.availableParallelism?.() ?? os.cpus().length,
      retries = 0, mailboxBytes = 1 << 20, method = 'forkserver',
    } = opts ?? {};
    if (typeof module !== 'string' || module === '') throw new TypeError('Pool: opts.module must be the path of the task module');
    if (exportName !== null && typeof exportName !== 'string') throw new TypeError('Pool: opts.export must be a string');
    for (const [k, v, min] of [['workers', workers, 1], ['retries', retries, 0], ['mailboxBytes', mailboxBytes, 64]]) {
      if (!Number.isInteger(v) || v < min) throw new RangeError(`Pool: opts.${k} must be an integer >= ${min} (got ${v})`);
    }
    this.size = workers;
    this._opts = { module: path.resolve(module), export: exportName, retries, mailboxBytes };
    this._ctx = getContext(method);
    this._workers = new Set(); // every worker not yet retired
    this._idle = []; // started workers with nothing to do
    this._queue = []; // tasks waiting for a worker: { id, bytes, runs, resolve, reject }
    this._busy = 0;
    this._nextId = 0;
    this._broken = null; // the error every task gets once workers cannot start
    this._closing = false;
    this._terminated = false;
    this._closed = null;
    this._drained = null; // close() waits on this: nothing queued, nothing running
    this._gone = []; // resolvers waiting for the last worker to go
    // Start the forkserver without blocking the event loop, then the workers.
    this._started = (method === 'forkserver' ? startForkserver() : Promise.resolve()).then(() => {
      for (let i = 0; i < workers && !this._closing; i++) this._spawn();
    });
    this._started.catch((e) => this._fail(e));
  }

  /** Runs one task on some worker; resolves with the task function's result. */
  run(task) {
    if (this._closing) return Promise.reject(new PoolClosedError());
    if (this._broken) return Promise.reject(this._broken);
    let bytes;
    try {
      bytes = v8.serialize(task); // fails here, in the caller, for data that cannot cross
      if (bytes.length > this._opts.mailboxBytes) {
        throw new RangeError(`task of ${bytes.length} bytes does not fit in the mailbox (mailboxBytes: ${this._opts.mailboxBytes})`);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      this._queue.push({ id: this._nextId++, bytes, runs: 0, resolve, reject });
      this._dispatch();
    });
  }

  /** Runs every task; resolves with the results in order (rejects with the first error, like Promise.all). */
  map(tasks) {
    return Promise.all(Array.from(tasks, (task) => this.run(task)));
  }

  /** Pids of the worker processes alive now. */
  get pids() {
    return [...this._workers].filter((w) => !w.exit).map((w) => w.pid);
  }

  /** Resolves once `size` workers have started and are serving (or the pool is broken). */
  async ready() {
    await this._started;
    for (;;) {
      if (this._broken) throw this._broken;
      const waiting = [...this._workers].filter((w) => w.state() === mb.STARTING);
      if (!waiting.length) return;
      await Promise.all(waiting.map((w) => w.waitWhile(mb.STARTING)));
    }
  }

  /**
   * Finishes the tasks already given, then stops every worker (a worker still
   * running after `timeout` ms is SIGKILLed). Resolves when all have exited.
   */
  close({ timeout = 5000 } = {}) {
    this._closed ??= this._shutdown(timeout);
    return this._closed;
  }

  /** Kills every worker now; queued and running tasks reject with PoolClosedError. */
  async terminate() {
    this._closing = true;
    this._terminated = true;
    for (const job of this._queue.splice(0)) job.reject(new PoolClosedError(`the pool was terminated before task #${job.id} ran`));
    await this._started.catch(() => {});
    for (const w of this._workers) w.proc.kill('SIGKILL');
    await this._noWorkers();
  }

  // ------------------------------------------------------------ internals

  async _shutdown(timeout) {
    this._closing = true;
    await this._started.catch(() => {});
    await new Promise((resolve) => {
      this._drained = resolve;
      this._dispatch();
    });
    // Nothing queued or running: tell each worker to stop (once it has started).
    for (const w of this._workers) {
      w.waitWhile(mb.STARTING).then((r) => {
        if (r === 'changed' && !w.exit) mb.setState(w.mailbox, mb.STOP);
      });
    }
    const timer = setTimeout(() => {
      for (const w of this._workers) w.proc.kill('SIGKILL');
    }, timeout);
    try {
      await this._noWorkers();
    } finally {
      clearTimeout(timer);
    }
  }

  _spawn() {
    let w;
    try {
      w = new Worker(this._ctx, this._opts, (dead) => this._onExit(dead));
    } catch (e) {
      this._fail(e);
      return;
    }
    this._workers.add(w);
    this.emit('spawn', w.pid);
    w.waitWhile(mb.STARTING).then((r) => {
      if (r !== 'changed' || w.exit) return; // died while starting: _onExit reports it
      this._idle.push(w);
      this._dispatch();
    });
  }

  /** Hands queued tasks to idle workers. */
  _dispatch() {
    while (this._queue.length && this._idle.length) {
      const w = this._idle.shift();
      const job = this._queue.shift();
      this._runOn(w, job).catch((e) => job.reject(e));
    }
    if (this._drained && !this._queue.length && !this._busy) this._drained();
  }

  async _runOn(w, job) {
    w.job = job;
    job.runs++;
    this._busy++;
    let reply = null;
    try {
      mb.writeBytes(w.mailbox, job.bytes);
      mb.setState(w.mailbox, mb.TASK);
      if ((await w.waitWhile(mb.TASK)) === 'changed') reply = mb.readPayload(w.mailbox);
    } finally {
      this._busy--;
      w.job = null;
    }
    if (reply) {
      if (reply.ok) job.resolve(reply.value);
      else job.reject(taskError(reply.error, w.pid, job.id));
    } else if (this._terminated) {
      job.reject(new PoolClosedError(`the pool was terminated while task #${job.id} was running`));
    } else if (job.runs <= this._opts.retries) {
      this._queue.unshift(job); // run it again, first, on another worker
      this.emit('retry', { taskId: job.id, pid: w.pid, ...w.exit });
    } else {
      job.reject(new WorkerDiedError(w.pid, w.exit, job.id, job.runs));
    }
    if (w.exit) {
      this._retire(w);
    } else {
      mb.setState(w.mailbox, mb.IDLE);
      this._idle.push(w);
    }
    this._dispatch();
  }

  /** A worker process has exited. A busy worker is retired by _runOn, once its task is dealt with. */
  _onExit(w) {
    if (w.job) return;
    this._retire(w);
    this._dispatch();
  }

  /** Forgets a dead worker and starts its replacement. */
  _retire(w) {
    this._workers.delete(w);
    const i = this._idle.indexOf(w);
    if (i >= 0) this._idle.splice(i, 1);
    const started = w.state() !== mb.STARTING;
    w.mailbox.close();
    this.emit('exit', { pid: w.pid, ...w.exit });
    if (!this._terminated) {
      // A worker that dies before serving is a start failure only when it exited
      // by itself (its module throws, say), and only a few times in a row: one
      // killed by a signal while loading (the OOM killer again) is replaced.
      if (started || w.exit.signal) this._failedStarts = 0;
      else this._failedStarts = (this._failedStarts ?? 0) + 1;
      if (this._failedStarts >= 3) this._fail(new WorkerStartError(w.pid, w.exit, this._opts.module));
      else if (!this._broken && (!this._closing || this._queue.length)) this._spawn();
    }
    if (!this._workers.size) for (const resolve of this._gone.splice(0)) resolve();
  }

  /** Workers cannot start: every waiting task (and every later run()) gets `err`. */
  _fail(err) {
    this._broken ??= err;
    for (const job of this._queue.splice(0)) job.reject(this._broken);
    this._dispatch();
  }

  _noWorkers() {
    if (!this._workers.size) return Promise.resolve();
    return new Promise((resolve) => this._gone.push(resolve));
  }
}

module.exports = { Pool, WorkerDiedError, PoolClosedError, WorkerStartError };
