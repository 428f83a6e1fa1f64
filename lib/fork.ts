// fork() of the running Node process, atfork hooks, and the child's fixups.
// Read docs/fork.md: every hazard of forking Node and what is done about it.
import * as asyncHooks from 'node:async_hooks';
import * as crypto from 'node:crypto';
import * as util from 'node:util';
import { isMainThread } from 'node:worker_threads';
import { binding } from './binding';
import { ContextError, ForkUnsafeError, ForksafeError, invalidArgType, invalidThis } from './errors';
import { setToken } from './runtime';
import { forgetAfterFork } from './async';
import { timeoutOf, validateObject } from './validate';
import { ExitInfo, exitCodeOf, exitInfo, moduleHooksSuspected, unknownSignal, validSignal } from './util';

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

// Workers as Node reports them (on a later tick): a second census beside the
// threads' (below), with the worker's threadId, which is -1 once it has exited.
const liveWorkers = new Set<{ threadId: number }>();
process.on('worker', (w: { threadId: number; once(e: string, f: () => void): void }) => {
  liveWorkers.add(w);
  w.once('exit', () => liveWorkers.delete(w));
});

// ---- threads ----------------------------------------------------------------------
// A thread running besides the main one is the seed hazard itself: it can hold
// a lock (a forksafe one, malloc's, V8's) at the instant of fork(), and the
// child would have the lock and not the thread. forkSafety() therefore counts
// the process's real threads (/proc/self/task), whatever started them: a
// Worker created in this very tick (already running), one started by a module
// that ran before forksafe was loaded, a native addon's thread. What it leaves
// out are the threads of Node and libuv that are idle by construction in a
// --single-threaded process, and forksafe's own waiter threads (parked around
// fork()):
// - Node's platform: the delayed-task scheduler, the V8 worker pool (no work is
//   posted to it under --single-threaded; on V8 14 with --minor-ms either,
//   hazard 4b), the SIGUSR1 inspector watchdog (sleeps in sem_wait);
// - libuv's threadpool: work in flight on it is refused by the request count.
// Node 24+ names these threads; Node 22 leaves Node's own with the main
// thread's name. There they are told apart by count and age: Node starts
// them before any JavaScript runs, so they are the oldest threads after the
// main one, as many as the V8 pool size (--v8-pool-size, default 4) plus the
// watchdog (unless --disable-sigusr1).
const NODE_HELPER = /^(?:node-)?(?:DelayedTaskSche|V8Worker|SignalInspector)$/;
const LIBUV_POOL = /^(?:node-)?libuv-worker$/;
const OWN_THREAD = /^forksafe-/;

function nodeFlag(name: string): string | undefined {
  const all = [...process.execArgv, ...((process.env.NODE_OPTIONS ?? '').split(/\s+/))];
  let v: string | undefined;
  for (let i = 0; i < all.length; i++) {
    const a = all[i];
    if (a === name) v = all[i + 1]?.startsWith('--') === false ? all[i + 1] : '';
    else if (a.startsWith(`${name}=`)) v = a.slice(name.length + 1);
  }
  return v;
}

/** How many of Node's own threads carry no name of their own (Node 22: all but the scheduler). */
function unnamedNodeHelpers(named: boolean): number {
  if (named) return 0;
  const flag = nodeFlag('--v8-pool-size');
  let pool = flag === undefined || flag === '' ? 4 : Number(flag);
  if (!Number.isInteger(pool) || pool < 0) pool = 4;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  if (pool === 0) pool = Math.max(1, (require('node:os') as typeof import('node:os')).availableParallelism() - 1);
  const watchdog = process.features.inspector && nodeFlag('--disable-sigusr1') === undefined ? 1 : 0;
  return pool + watchdog;
}

// Under qemu-user (an arm64 Node on an x86-64 machine), the emulator runs one
// thread of its own in every process (its RCU thread, started before the
// program and again in a forked child; qemu takes its locks around fork()
// itself). qemu answers /proc/self/exe with the program, the kernel's
// /proc/thread-self/exe names qemu.
let emulatorThreadCount: number | undefined;
function emulatorThreads(): number {
  if (emulatorThreadCount === undefined) {
    emulatorThreadCount = 0;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const fs = require('node:fs') as typeof import('node:fs');
      if (/^qemu-/.test(fs.readlinkSync('/proc/thread-self/exe').split('/').pop() ?? '')) emulatorThreadCount = 1;
    } catch {
      /* no /proc/thread-self: not emulated */
    }
  }
  return emulatorThreadCount;
}

/** The names of the threads running besides this one that fork() would lose. */
function foreignThreads(): string[] {
  const threads = binding.threads();
  const named = threads.some(([, n]) => /V8Worker$/.test(n)) || Number(process.versions.node.split('.')[0]) >= 24;
  const rest = threads
    .filter(([, n]) => !NODE_HELPER.test(n) && !LIBUV_POOL.test(n) && !OWN_THREAD.test(n))
    .sort((a, b) => a[0] - b[0]);
  // The oldest: the emulator's, then (Node 22) Node's own unnamed ones.
  const runtime = emulatorThreads() + unnamedNodeHelpers(named);
  return rest.slice(Math.min(runtime, rest.length)).map(([tid, n]) => `${n || '?'} (tid ${tid})`);
}

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
  const foreign = foreignThreads();
  const workers = [...liveWorkers].filter((w) => w.threadId >= 0).length;
  if (workers > 0 || foreign.length > 0) {
    const n = Math.max(workers, foreign.length);
    const hooks = moduleHooksSuspected();
    reasons.push(
      `${n} thread(s) running besides this one (worker_threads or native threads${foreign.length ? `: ${foreign.join(', ')}` : ''}): ` +
        'one may hold a lock at the instant of fork(), and the child would have the lock but not the thread; terminate them first' +
        (hooks ? ` (node was started with ${hooks}: module customization hooks run on a thread of their own, and a child's import() would wait for it forever)` : ''),
    );
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
  for (const fn of childSetups) fn();
}

// The parent's async waits, copied into the child, reject there with
// ContextError. A fork(main) child does it once it has left the caller's
// frames (the termination drops the microtask queue, and with it the
// reactions to promises settled before it).
function rejectParentWaits(): void {
  forgetAfterFork(new ContextError('this async wait was started in the parent process before fork(): it does not exist in the child'));
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
  #forkedChild = true;

  /** @internal Whether `o` is a real ForkedChild. */
  static _isForkedChild(o: unknown): o is ForkedChild {
    return typeof o === 'object' && o !== null && #forkedChild in o;
  }

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
    if (!ForkedChild._isForkedChild(this)) throw invalidThis('ForkedChild');
    return (this._exit ?? this._joined)?.code ?? null;
  }

  get signalCode(): NodeJS.Signals | null {
    if (!ForkedChild._isForkedChild(this)) throw invalidThis('ForkedChild');
    return (this._exit ?? this._joined)?.signal ?? null;
  }

  /** Blocks until the child exits (true) or the timeout passes (false). */
  join(opts?: { timeout?: number }): boolean {
    if (!ForkedChild._isForkedChild(this)) throw invalidThis('ForkedChild');
    this._check('join()');
    if (this._exit) return true;
    const timeout = opts === undefined ? -1 : timeoutOf(opts);
    const r = binding.pidfdWait(this._pidfd, timeout);
    if (r === null) return false;
    this._poll(); // reaps it now: `exited` resolves on the next microtask
    return true;
  }

  kill(signal: NodeJS.Signals | number = 'SIGTERM'): void {
    if (!ForkedChild._isForkedChild(this)) throw invalidThis('ForkedChild');
    this._check('kill()');
    if (this._exit) return;
    const n = validSignal(signal);
    if (n === undefined) throw unknownSignal(signal);
    binding.pidfdKill(this._pidfd, n);
  }
}

// ---- leaving the caller's code in a fork(main) child ---------------------------------
// A fork(main) child must run none of the code that called fork(): no catch, no
// finally, no continuation of an awaiting caller. A JavaScript exception cannot
// give that (every catch and finally on the stack sees it), so the child leaves
// with V8's termination (binding.terminate(): Isolate::TerminateExecution, what
// worker.terminate() uses): an exception no catch and no finally sees, which
// unwinds every JS frame down to the native code that called into JS and ends
// there (V8 clears it once no JS frame is left; a microtask checkpoint it
// crosses drops its queue). `main` runs after that, from the event loop, on a
// stack with none of the caller on it. docs/fork.md, hazard 19.
//
// Node's own JS frames that the termination skips leave two things undone that
// Node does for an uncaught exception (its handler clears the async id stack,
// the timers' `finally` blocks move the immediate queue on). The child does
// them itself, with two internals read once in the parent (below):
// - the async id stack: timers and immediates push their async context in JS
//   and pop it after the callback; skipped, the native pop that follows finds
//   the wrong id and Node aborts ("async hook stack has become corrupted").
//   clearAsyncIdStack() (what Node's uncaught-exception handler calls) empties
//   it, and a native pop on an empty stack is a no-op.
// - an immediate that was not the first of its batch: processImmediate() would
//   start again from it (its `finally` never moved outstandingQueue on) and
//   fail on it; it is made a no-op that runs once more, and the immediate count
//   that run takes again is given back.
interface NodeInternals {
  clearAsyncIdStack(): void;
  resources: unknown[]; // the resources whose async context JS pushed (timers, immediates...)
  immediateInfo: Uint32Array;
  kCount: number;
  Immediate: abstract new (...a: never[]) => object;
  Timeout: abstract new (...a: never[]) => object;
}

let internals: NodeInternals | null | undefined; // undefined: not looked up yet

/** Reads a function's closure variables through an in-process inspector session. */
function closureVars(session: import('node:inspector').Session, fn: unknown, names: string[]): Record<string, unknown> {
  const post = (method: string, params: object): Record<string, unknown> => {
    let result: Record<string, unknown> | undefined;
    let error: Error | null = null;
    // An in-process session answers synchronously.
    (session.post as (m: string, p: object, cb: (e: Error | null, r: Record<string, unknown>) => void) => void)(
      method, params, (e, r) => { error = e; result = r; });
    if (error) throw error;
    if (!result) throw new Error(`inspector ${method}: no answer`);
    return result;
  };
  const slot = globalThis as { __forksafeInternal?: unknown };
  const out: Record<string, unknown> = {};
  try {
    slot.__forksafeInternal = fn;
    const fnId = (post('Runtime.evaluate', { expression: 'globalThis.__forksafeInternal' }).result as { objectId: string }).objectId;
    const internal = post('Runtime.getProperties', { objectId: fnId, ownProperties: true }).internalProperties as
      Array<{ name: string; value: { objectId?: string } }>;
    const scopesId = internal.find((p) => p.name === '[[Scopes]]')?.value.objectId;
    if (!scopesId) return out;
    const scopes = post('Runtime.getProperties', { objectId: scopesId, ownProperties: true }).result as
      Array<{ value?: { objectId?: string; description?: string } }>;
    for (const sc of scopes) {
      if (!sc.value?.objectId || /^Global/.test(sc.value.description ?? '')) continue;
      const vars = post('Runtime.getProperties', { objectId: sc.value.objectId, ownProperties: true }).result as
        Array<{ name: string; value?: { objectId?: string; value?: unknown } }>;
      for (const v of vars) {
        if (!names.includes(v.name) || v.name in out || !v.value) continue;
        if (v.value.objectId) {
          post('Runtime.callFunctionOn', {
            objectId: v.value.objectId,
            functionDeclaration: 'function () { globalThis.__forksafeInternal = this; }',
          });
          out[v.name] = slot.__forksafeInternal;
        } else {
          out[v.name] = v.value.value;
        }
      }
    }
    return out;
  } finally {
    delete slot.__forksafeInternal;
  }
}

/** Looks the internals up once (in the parent, ~3 ms); null where they are not found. */
function nodeInternals(): NodeInternals | null {
  if (internals !== undefined) return internals;
  internals = null;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const inspector = require('node:inspector') as typeof import('node:inspector');
    const session = new inspector.Session();
    session.connect();
    try {
      const a = closureVars(session, asyncHooks.executionAsyncId, ['async_wrap', 'execution_async_resources']);
      const timeout = setTimeout(() => {}, 1);
      clearTimeout(timeout);
      const probe = setImmediate(() => {});
      clearImmediate(probe);
      const Immediate = probe.constructor as NodeInternals['Immediate'];
      const t = closureVars(session, (Immediate.prototype as { ref: unknown }).ref, ['immediateInfo', 'kCount']);
      const asyncWrap = a.async_wrap as { clearAsyncIdStack?: unknown } | undefined;
      if (typeof asyncWrap?.clearAsyncIdStack === 'function' && Array.isArray(a.execution_async_resources) &&
          t.immediateInfo instanceof Uint32Array && typeof t.kCount === 'number') {
        const clear = asyncWrap.clearAsyncIdStack as () => void;
        internals = {
          clearAsyncIdStack: () => clear.call(asyncWrap),
          resources: a.execution_async_resources,
          immediateInfo: t.immediateInfo,
          kCount: t.kCount,
          Immediate,
          Timeout: timeout.constructor as NodeInternals['Timeout'],
        };
      }
    } finally {
      session.disconnect();
    }
  } catch {
    internals = null;
  }
  return internals;
}

function runMain(main: () => unknown): void {
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
}

function leaveCaller(main: () => unknown): never {
  const nodeInt = internals; // looked up in the parent before forking
  if (!nodeInt) {
    // Without the internals the child cannot end the caller's frames cleanly:
    // it runs main here and unwinds with an exception (the caller's catch and
    // finally blocks see it).
    rejectParentWaits();
    runMain(main);
    throw new ForkChildUnwind();
  }
  // main runs from the event loop once the caller's frames are gone: at the
  // next tick Node runs, or the next check phase, whichever comes first.
  let started = false;
  const start = (): void => {
    if (started) return;
    started = true;
    clearImmediate(immediate);
    rejectParentWaits();
    runMain(main);
  };
  process.nextTick(start);
  const immediate = setImmediate(start);
  // The timers and immediates whose callbacks are on the stack being left.
  for (const r of new Set([...nodeInt.resources, asyncHooks.executionAsyncResource()])) {
    if (r instanceof nodeInt.Timeout) {
      // Its `finally` (re-arming an interval, or dropping the timer's ref) is
      // skipped: cleared, the child's timer count stays right and an
      // interval of the caller's does not fire again in the child.
      clearTimeout(r as unknown as NodeJS.Timeout);
    } else if (r instanceof nodeInt.Immediate) {
      const imm = r as { _idlePrev?: unknown; _destroyed?: boolean; _onImmediate?: unknown; _argv?: unknown };
      if (imm._idlePrev != null) {
        imm._destroyed = false;
        imm._onImmediate = () => {};
        imm._argv = undefined;
        nodeInt.immediateInfo[nodeInt.kCount]++;
      }
    }
  }
  nodeInt.clearAsyncIdStack();
  binding.terminate();
  // Termination takes effect at V8's next interrupt check: the first pass of
  // this loop. It never ends otherwise; the bound is only a last resort.
  for (let i = 0; i < 1e9; i++);
  throw new ForkChildUnwind();
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
  if (main !== undefined) nodeInternals();
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
  if (main === undefined) {
    rejectParentWaits();
    return null;
  }
  leaveCaller(main);
}


export function isForkedChild(): boolean {
  return forked;
}

export { ForksafeError };
