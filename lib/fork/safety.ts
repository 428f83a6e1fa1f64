// forkSafety() and forkFlags(): what would make a fork() of this process
// unsafe right now (threads, requests in flight, unwritten output, flags), and
// the node flags a process needs. docs/fork.md has every hazard.
import * as asyncHooks from 'node:async_hooks';
import { isMainThread } from 'node:worker_threads';
import { binding } from '../core/binding';
import { moduleHooksSuspected } from '../core/util';

// ---- safety ----------------------------------------------------------------------

// Workers as Node reports them (on a later tick): a second census beside the
// threads' (below), with the worker's threadId, which is -1 once it has exited.
const liveWorkers = new Set<{ threadId: number }>();

/** In a child: the parent's workers are not ours. */
export function forgetWorkers(): void {
  liveWorkers.clear();
}
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
