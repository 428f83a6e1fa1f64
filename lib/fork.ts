// fork() of the running Node process, atfork hooks, and the child's fixups.
// Read docs/fork.md: every hazard of forking Node and what is done about it.
import * as asyncHooks from 'node:async_hooks';
import * as crypto from 'node:crypto';
import * as util from 'node:util';
import { isMainThread } from 'node:worker_threads';
import { binding } from './binding';
import { ContextError, ForkUnsafeError, ForksafeError, invalidArgType } from './errors';
import { setToken } from './runtime';
import { forgetAfterFork } from './async';
import { timeoutOf, validateObject } from './validate';
import { ExitInfo, exitInfo, unknownSignal, validSignal } from './util';

export type { ExitInfo };

export interface AtforkHooks {
  prepare?(): void;
  parent?(): void;
  child?(): void;
}

const hooks: AtforkHooks[] = [];

/** Registers hooks for forks made by forksafe. Returns a function that unregisters them. */
export function atfork(h: AtforkHooks): () => void {
  if (h === null || typeof h !== 'object') throw invalidArgType('hooks', 'of type object', h);
  for (const k of ['prepare', 'parent', 'child'] as const) {
    if (h[k] !== undefined && typeof h[k] !== 'function') throw invalidArgType(`hooks.${k}`, 'of type function', h[k]);
  }
  const entry = { prepare: h.prepare, parent: h.parent, child: h.child };
  hooks.push(entry);
  return () => {
    const i = hooks.indexOf(entry);
    if (i >= 0) hooks.splice(i, 1);
  };
}

// ---- safety ----------------------------------------------------------------------

const liveWorkers = new Set<object>();
process.on('worker', (w: { once(e: string, f: () => void): void }) => {
  liveWorkers.add(w);
  w.once('exit', () => liveWorkers.delete(w));
});

// Module customization hooks registered with module.register() run on a
// thread of their own, which a forked child does not have: its import() would
// never finish. Registrations made after forksafe was loaded are seen here.
let hooksRegistered: string | null = null;
{
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Module = require('node:module') as { register?: (...a: unknown[]) => unknown };
  const register = Module.register;
  if (typeof register === 'function') {
    Module.register = function (this: unknown, ...a: unknown[]) {
      hooksRegistered ??= String(a[0]);
      return register.apply(this, a);
    };
  }
}

// ---- V8 14's young-generation GC in a child -------------------------------------
// Node keeps a pool of V8 worker threads waiting on one condition variable.
// Under --single-threaded V8 posts them nothing, so a forked child (which has
// none of them) never misses them. V8 14 (Node 26) posts one task at every
// scavenge all the same. In a child that is fatal twice over: its copy of the
// pool's condvar still counts the parent's threads as waiters, so the post's
// pthread_cond_signal() can wait forever for them (the child hangs in a GC:
// 13 of 30 GC-heavy children, 20 of 20 GC-heavy forkserver workers), and a
// task nobody runs keeps Node's DrainTasks() waiting once the loop is empty
// (the child never exits naturally). With --minor-ms V8 14 collects the young
// generation by mark-sweep, which posts nothing under --single-threaded
// (measured: 0 of 4 pool threads woke through scavenges, full GCs and
// old-to-new writes, against 4 of 4 with the scavenger). docs/fork.md, hazard 4b.

/** V8 14+ posts GC work to its pool even under --single-threaded (V8 11.3-13.6 do not: measured). */
const SCAVENGER_POSTS = Number(process.versions.v8.split('.')[0]) >= 14;

/**
 * The node flags a process needs on its command line for fork() to be safe in
 * it, on this Node: `--single-threaded`, and `--minor-ms` on Node 26 (V8 14).
 */
export function forkFlags(): string[] {
  return SCAVENGER_POSTS ? ['--single-threaded', '--minor-ms'] : ['--single-threaded'];
}

// libuv threadpool work shows up in getActiveResourcesInfo() as these requests
// (Node 20-24; Node 26 lists no requests there at all: measured on 26.12.1).
const THREADPOOL = /ReqCallback$|ReqPromise$|^GetAddrInfoReqWrap$|^GetNameInfoReqWrap$|Job$|^Zlib$|^FileHandleCloseReq$/;
const LISTS_REQUESTS = Number(process.versions.node.split('.')[0]) < 26;

// Where getActiveResourcesInfo() no longer names requests, an async_hooks hook
// names them: every request-like resource from its creation until its callback
// ran (after) or it was destroyed. Only in a process that can fork at all
// (--single-threaded), and with trackPromises: false (an option since Node 24),
// so promises pay nothing; measured cost on Node 26: process.nextTick +150 ns, setImmediate
// +330 ns (docs/fork.md, hazard 10). The count stays libuv's own.
const REQUEST_RESOURCE = /REQ|REQUEST$|^ZLIB$|^(WRITE|SHUTDOWN|CONNECT)WRAP$/;
const DISPLAY: Record<string, string> = {
  FSREQCALLBACK: 'FSReqCallback', FSREQPROMISE: 'FSReqPromise', FILEHANDLECLOSEREQ: 'FileHandleCloseReq',
  GETADDRINFOREQWRAP: 'GetAddrInfoReqWrap', GETNAMEINFOREQWRAP: 'GetNameInfoReqWrap', ZLIB: 'Zlib',
  WRITEWRAP: 'WriteWrap', SHUTDOWNWRAP: 'ShutdownWrap', CONNECTWRAP: 'ConnectWrap',
};
const liveRequests = new Map<number, string>();
let requestHook: { disable(): unknown } | null = null;

if (!LISTS_REQUESTS && process.execArgv.includes('--single-threaded')) {
  requestHook = asyncHooks.createHook({
    trackPromises: false,
    init(id: number, type: string) {
      if (REQUEST_RESOURCE.test(type)) liveRequests.set(id, DISPLAY[type] ?? type);
    },
    after(id: number) {
      liveRequests.delete(id);
    },
    destroy(id: number) {
      liveRequests.delete(id);
    },
  } as asyncHooks.HookCallbacks).enable();
}

/** Stops naming requests (the forkserver: its workers must not carry the hook). */
export function stopNamingRequests(): void {
  requestHook?.disable();
  requestHook = null;
  liveRequests.clear();
}

/** The names of the `count` requests in flight, as far as they are known. */
function requestNames(count: number): string[] {
  if (LISTS_REQUESTS || requestHook === null) {
    return process.getActiveResourcesInfo().filter((r) => THREADPOOL.test(r));
  }
  // Oldest first: an entry whose callback never came is the first to be dropped.
  return [...liveRequests.values()].slice(-count);
}

/** Why fork() would refuse now (empty when it would not). */
export function forkSafety(): { safe: boolean; reasons: string[] } {
  const reasons: string[] = [];
  if (!isMainThread) reasons.push('fork() must be called from the main thread, not a worker_thread');
  if (!process.execArgv.includes('--single-threaded')) {
    reasons.push(
      'V8 is not single-threaded: start node with --single-threaded on the command line (V8 would wait in ' +
        'the child for background GC threads that do not exist there; NODE_OPTIONS cannot carry this flag)',
    );
  }
  if (SCAVENGER_POSTS && !process.execArgv.includes('--minor-ms')) {
    reasons.push(
      `V8 ${process.versions.v8} posts garbage-collection work to its thread pool at every young-generation GC, ` +
        'even under --single-threaded, and a child (which has none of those threads) would hang in a GC or at exit: ' +
        'start node with --single-threaded --minor-ms (see forkFlags())',
    );
  }
  if (liveWorkers.size > 0) {
    reasons.push(`${liveWorkers.size} worker_thread(s) running (a child would have none of them); terminate them first`);
  }
  if (hooksRegistered !== null) {
    reasons.push(
      `module customization hooks were registered (module.register('${hooksRegistered}')): Node runs them on a thread ` +
        'a forked child would not have, so its import() would never finish',
    );
  }
  // The loop's own count of requests in flight is the truth (it includes
  // crypto/zlib jobs, and getActiveResourcesInfo() may list a request whose
  // callback is running right now); the names only describe them.
  const reqs = binding.activeRequests();
  const pool = reqs > 0 ? requestNames(reqs) : [];
  if (reqs > 0) {
    const counts = new Map<string, number>();
    for (const r of pool) counts.set(r, (counts.get(r) ?? 0) + 1);
    const named = [...counts].map(([k, n]) => `${k} x${n}`).join(', ');
    reasons.push(
      `${reqs} libuv request(s) in flight (threadpool work: fs, dns, crypto, zlib; or socket ` +
        `writes)${named ? ` (${named})` : ''}: await them before fork() (their completion would be lost in the child)`,
    );
  }
  for (const [name, s] of [['stdout', process.stdout], ['stderr', process.stderr]] as const) {
    const pendingBytes = (s as { writableLength?: number }).writableLength ?? 0;
    if (pendingBytes > 0) {
      reasons.push(`process.${name} has ${pendingBytes} bytes not yet written: wait for its 'drain' event (the child would write them again)`);
    }
  }
  return { safe: reasons.length === 0, reasons };
}

// ---- the child -----------------------------------------------------------------------

/** Thrown in a child made by fork(main) to leave the parent's code: do not catch it. */
export class ForkChildUnwind extends Error {
  constructor() {
    super('forksafe: this is a fork(main) child leaving the code that called fork(); rethrow this error');
    this.name = 'ForkChildUnwind';
  }
}

let forked = false; // true in a process made by fork()
const childSetups: Array<() => void> = [];

/** Other modules register what a child must reset (ForkedChild registry, Process objects...). */
export function onForkChild(fn: () => void): void {
  childSetups.push(fn);
}

/** Ends the process the way a forked child must: `_exit` with the code. */
export function exit(code = 0): never {
  if (typeof code !== 'number' || !Number.isInteger(code)) throw invalidArgType('code', 'an integer', code);
  if (!forked) process.exit(code);
  process.exitCode = code;
  process.exit(code); // 'exit' listeners run, then reallyExit -> _exit
  throw new Error('unreachable');
}

// xoshiro128** (32-bit words, Math.imul): two outputs make one 53-bit double.
function freshRandom(): () => number {
  const seed = binding.seed();
  let a = seed[0] | 1, b = seed[1], c = seed[2], d = seed[3];
  const next = (): number => {
    const r = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return r;
  };
  return () => ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

// crypto.randomUUID() serves from a cached batch of random bytes (128 UUIDs):
// a child would repeat the parent's next ids. crypto.randomInt() serves from a
// 6 KiB cache too (6 bytes a call). The child uses both batches up; the refill
// comes from OpenSSL, which reseeds after fork.
function drainRandomCaches(): void {
  for (let i = 0; i < 128; i++) crypto.randomUUID();
  for (let i = 0; i < 1024; i++) crypto.randomInt(1);
}

// Run cold in every child, drainRandomCaches() costs ~10 ms: V8 compiles
// randomInt() with TurboFan right there (synchronously: --single-threaded), and
// the child pays it again at every fork. Running the same function hot here,
// once, leaves optimized code that every child inherits (~1 ms in the child).
let warmed = false;
function warmChildSetup(): void {
  if (warmed) return;
  warmed = true;
  for (let k = 0; k < 24; k++) drainRandomCaches();
  freshRandom(); // compiled here, not in each child
}

function setUpChild(): void {
  forked = true;
  setToken(binding.token());
  Object.defineProperty(process, 'pid', { value: binding.pid(), writable: false, enumerable: true, configurable: true });
  drainRandomCaches();
  // Math.random continues the parent's sequence and V8 has no reseed: a fresh
  // generator seeded from the OS.
  Math.random = freshRandom();
  // Every exit path ends in _exit with the code Node would have used: Node's
  // own teardown touches threads a forked child does not have.
  (process as unknown as { reallyExit(code?: number): void }).reallyExit = (code?: number) => {
    binding.exitNow(typeof code === 'number' ? code : 0);
  };
  // The loop ran dry: Node emits 'exit' and then tears down (which would
  // crash here). Once 'beforeExit' has been seen, an 'exit' listener placed
  // after every listener registered so far ends the process with _exit.
  // (A 'beforeExit' listener that schedules more work keeps the loop going.)
  let armed = false;
  process.on('beforeExit', () => {
    if (armed) return;
    armed = true;
    process.once('exit', (code) => binding.exitNow(typeof code === 'number' ? code : 0));
  });
  process.on('uncaughtException', (err) => {
    if (err instanceof ForkChildUnwind) return;
    if (process.listenerCount('uncaughtException') > 1) return; // the program handles it
    process.stderr.write(`${util.inspect(err)}\n`);
    process.exit(1);
  });
  makeStdioSynchronous();
  liveWorkers.clear();
  forgetAfterFork(new ContextError('this async wait was started in the parent process before fork(): it does not exist in the child'));
  for (const fn of childSetups) fn();
}

// stdout/stderr on a pipe or socket are asynchronous in Node: what libuv has
// queued when the child _exit()s would be lost. In the child they write
// synchronously instead (as Node does for files), waiting out EAGAIN.
function makeStdioSynchronous(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const fs = require('node:fs') as typeof import('node:fs');
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (const [stream, fd] of [[process.stdout, 1], [process.stderr, 2]] as const) {
    const s = stream as unknown as {
      _type?: string; _isStdio?: boolean;
      _write(chunk: Buffer, enc: string, cb: (e?: Error | null) => void): void;
      _writev?: unknown;
    };
    if (s._type !== 'pipe') continue; // files and ttys are written synchronously already
    const writeAll = (buf: Buffer): void => {
      let off = 0;
      while (off < buf.length) {
        try {
          off += fs.writeSync(fd, buf, off, buf.length - off);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
          Atomics.wait(nap, 0, 0, 1); // the reader is slow: wait 1 ms
        }
      }
    };
    s._write = (chunk, enc, cb) => {
      try {
        writeAll(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as unknown as string, enc as BufferEncoding));
        cb();
      } catch (e) {
        cb(e as Error);
      }
    };
    s._writev = undefined;
  }
}

function runHooks(kind: 'parent' | 'child'): void {
  for (const h of [...hooks]) {
    const fn = h[kind];
    if (!fn) continue;
    try {
      fn();
    } catch (e) {
      process.emitWarning(`forksafe atfork ${kind} hook threw: ${util.inspect(e)}`);
    }
  }
}

// ---- the parent's view of a child ------------------------------------------------------------


const children = new Map<number, ForkedChild>();
let keepAlive: NodeJS.Timeout | null = null;
let sigchldInstalled = false;

function reapAll(): void {
  for (const c of [...children.values()]) c._poll();
}

function watch(c: ForkedChild): void {
  if (!sigchldInstalled) {
    sigchldInstalled = true;
    process.on('SIGCHLD', reapAll);
  }
  children.set(c.pid, c);
  // A running child keeps the event loop alive, as a child_process does.
  keepAlive ??= setInterval(reapAll, 1000); // also a backstop for a coalesced SIGCHLD
}

function unwatch(c: ForkedChild): void {
  children.delete(c.pid);
  if (children.size === 0 && keepAlive) {
    clearInterval(keepAlive);
    keepAlive = null;
  }
}

onForkChild(() => {
  // The parent's children are not ours: their copies are inert, and their
  // pidfds (copied fds) are closed here.
  for (const c of children.values()) {
    c._owner = -1;
    if (c._pidfd >= 0) binding.closeFd(c._pidfd);
    c._pidfd = -1;
  }
  children.clear();
  if (keepAlive) {
    clearInterval(keepAlive);
    keepAlive = null;
  }
});

/** The parent's handle on a process made by fork(). */
export class ForkedChild {
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  /** @internal */ _owner: number;
  /** @internal */ _pidfd: number;
  /** @internal */ _exit: ExitInfo | null = null;
  /** @internal */ _joined: ExitInfo | null = null;
  /** @internal */ _resolve!: (e: ExitInfo) => void;

  /** @internal */
  constructor(pid: number) {
    this.pid = pid;
    this._owner = process.pid;
    this._pidfd = binding.pidfdOpen(pid);
    this.exited = new Promise((res) => {
      this._resolve = res;
    });
    watch(this);
    this._poll(); // it may be gone already
  }

  /** @internal */
  _check(what: string): void {
    if (this._owner !== process.pid) {
      throw new ContextError(`ForkedChild.${what}: this child (pid ${this.pid}) belongs to process ${this._owner < 0 ? 'that forked this one' : this._owner}, not to ${process.pid}`);
    }
  }

  /** @internal Reaps it if it has exited. */
  _poll(): void {
    if (this._exit || this._pidfd < 0) return;
    const r = binding.reapPidfd(this._pidfd);
    if (r === null) return;
    this._exit = exitInfo(r);
    binding.closeFd(this._pidfd);
    this._pidfd = -1;
    unwatch(this);
    this._resolve(this._exit);
  }

  get exitCode(): number | null {
    return (this._exit ?? this._joined)?.code ?? null;
  }

  get signalCode(): NodeJS.Signals | null {
    return (this._exit ?? this._joined)?.signal ?? null;
  }

  /** Blocks until the child exits (true) or the timeout passes (false). */
  join(opts?: { timeout?: number }): boolean {
    this._check('join()');
    if (this._exit) return true;
    const timeout = opts === undefined ? -1 : timeoutOf(opts);
    const r = binding.pidfdWait(this._pidfd, timeout);
    if (r === null) return false;
    this._poll(); // reaps it now: `exited` resolves on the next microtask
    return true;
  }

  kill(signal: NodeJS.Signals | number = 'SIGTERM'): void {
    this._check('kill()');
    if (this._exit) return;
    const n = validSignal(signal);
    if (n === undefined) throw unknownSignal(signal);
    binding.pidfdKill(this._pidfd, n);
  }
}

// ---- fork --------------------------------------------------------------------------------------

/**
 * Forks this Node process. Without `main`: returns null in the child and a
 * ForkedChild in the parent. With `main`: the child runs it and exits when it
 * settles (its number, 0, or 1 if it throws); the parent gets the ForkedChild.
 */
export function fork(main?: () => unknown, opts?: { force?: boolean }): ForkedChild | null {
  if (main !== undefined && typeof main !== 'function') throw invalidArgType('main', 'of type function', main);
  validateObject('options', opts);
  const force = opts?.force;
  if (force !== undefined && typeof force !== 'boolean') throw invalidArgType('options.force', 'of type boolean', force);
  if (!isMainThread) throw new ForkUnsafeError(['fork() must be called from the main thread, not a worker_thread']);
  const safety = forkSafety();
  if (!safety.safe && !force) throw new ForkUnsafeError(safety.reasons);
  for (let i = hooks.length - 1; i >= 0; i--) hooks[i].prepare?.(); // a throw aborts: nothing forked
  warmChildSetup();
  const pid = binding.fork();
  if (pid !== 0) {
    const child = new ForkedChild(pid);
    runHooks('parent');
    return child;
  }
  try {
    setUpChild();
    runHooks('child');
  } catch (e) {
    // The child cannot be made safe (e.g. out of fds): it must not go on running
    // the parent's code as if it were the parent.
    try {
      process.stderr.write(`forksafe: fork() child set-up failed: ${util.inspect(e)}\n`);
    } finally {
      binding.exitNow(70);
    }
  }
  if (main === undefined) return null;
  let result: unknown;
  try {
    result = main();
  } catch (e) {
    if (e instanceof ForkChildUnwind) throw e; // main forked again: this is the grandchild
    process.stderr.write(`${util.inspect(e)}\n`);
    process.exit(1);
  }
  if (result === null || (typeof result !== 'object' && typeof result !== 'function') ||
      typeof (result as PromiseLike<unknown>).then !== 'function') {
    process.exit(exitCodeOf(result));
  }
  (result as PromiseLike<unknown>).then(
    (v) => process.exit(exitCodeOf(v)),
    (e) => {
      if (e instanceof ForkChildUnwind) return; // main forked again: this is the grandchild
      process.stderr.write(`${util.inspect(e)}\n`);
      process.exit(1);
    },
  );
  // The parent's code after fork() must not run here: unwind it. The child's
  // uncaughtException handler swallows this; the event loop runs `main`.
  throw new ForkChildUnwind();
}

function exitCodeOf(v: unknown): number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 255 ? v : 0;
}

export function isForkedChild(): boolean {
  return forked;
}

export { ForksafeError };
