// Entry point of the forkserver: `node --single-threaded dist/forkserver-main.js`,
// started by lib/process/forkserver.ts. It dies with its parent (PR_SET_PDEATHSIG),
// loads the preload modules once, then forks one worker per request read from
// fd 3 (its private socketpair with the parent). Read docs/forkserver.md.
//
// Parent -> forkserver, on fd 3: frames [u32 length][v8.serialize(request)].
// Forkserver -> parent: the status table in shared memory (ready word, and per
// start: state, pid, exit code, signal), then a frame on fd 3 for each exit,
// so the parent's `exited` promises settle from its event loop.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as v8 from 'node:v8';
import { pathToFileURL } from 'node:url';
import { binding } from './core/binding';
import { attach } from './core/attach';
import './context'; // registers every class and gives them their context getter
import { fromWire } from './core/handoff';
import { dynamicImport, loadForkedTarget, moduleHooksSuspected, needsImport, replaceEnv, signalNumber } from './core/util';
import { atfork, fork, forkFlags, ForkedChild, ForkChildUnwind, stopNamingRequests } from './fork';
import type { SharedMemory } from './sync/shared-memory';
import {
  FS, FsRequest, defaultExecArgv, encodeFrame, FrameReader, entryWord, sanitizeNodeOptions,
} from './process/forkserver-protocol';

const CHANNEL = 3;
const SIGKILL = 9;

// Frames to the parent are queued here and written without ever blocking: a
// parent blocked in start() or join() does not read its socket, and a
// forkserver blocked writing would stop serving it — both would wait forever.
// The status table is written before each frame, so blocked parents see it.
const outQueue: Buffer[] = [];
let outTimer: NodeJS.Timeout | null = null;
let isWorker = false; // set first thing in a worker: the queue is the forkserver's

function flush(): void {
  outTimer = null;
  while (outQueue.length && !isWorker) {
    const buf = outQueue[0];
    let n: number;
    try {
      n = fs.writeSync(CHANNEL, buf);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') {
        outTimer = setTimeout(flush, 2); // the parent is not reading now
        return;
      }
      if (code === 'EPIPE' || code === 'ECONNRESET') process.exit(0); // the parent is gone
      throw e;
    }
    if (n < buf.length) outQueue[0] = buf.subarray(n);
    else outQueue.shift();
  }
}

function writeFrame(msg: unknown): void {
  outQueue.push(encodeFrame(msg));
  if (!outTimer) flush();
}

function writeError(status: SharedMemory, message: string): void {
  const text = Buffer.from(message);
  const area = new Uint8Array(status.buffer, FS.ERROR_OFFSET, FS.ERROR_BYTES);
  area.set(text.subarray(0, FS.ERROR_BYTES - 1));
  area[Math.min(text.length, FS.ERROR_BYTES - 1)] = 0;
}

// Module hooks (--import/--loader) run on a thread that forked workers would
// not have: their import() would never finish. The parent starts us without
// them, but a wrapper of child_process.spawn (tap's process tracking, nyc's
// spawn-wrap...) may put them back. Then start again, in place (execve: same
// pid, same fd 3, same parent-death signal), without them.
function execWithoutHooks(): void {
  const flag = moduleHooksSuspected();
  if (!flag) return;
  if (process.env.FORKSAFE_FS_REEXEC) {
    throw new Error(`module hooks (${flag}) are still active after restarting without them: the forkserver cannot fork safely`);
  }
  const env: NodeJS.ProcessEnv = { ...process.env, FORKSAFE_FS_REEXEC: '1' };
  const opts = sanitizeNodeOptions(env.NODE_OPTIONS);
  if (opts) env.NODE_OPTIONS = opts;
  else delete env.NODE_OPTIONS;
  const argv = [process.execPath, ...defaultExecArgv(), ...forkFlags(), process.argv[1]];
  binding.execReplace(process.execPath, argv, Object.entries(env).map(([k, v]) => `${k}=${v ?? ''}`), [CHANNEL]);
}

async function main(): Promise<void> {
  execWithoutHooks();
  stopNamingRequests(); // workers forked from here must not carry lib/fork/safety.ts's async_hooks hook
  const parent = Number(process.env.FORKSAFE_FS_PARENT);
  // Die with the parent, and never outlive it even if it died already.
  if (binding.setPdeathsig(SIGKILL) !== parent) process.exit(0);
  const status = attach(JSON.parse(process.env.FORKSAFE_FS_STATUS ?? 'null')) as SharedMemory;
  const preload = JSON.parse(process.env.FORKSAFE_FS_PRELOAD ?? '[]') as string[];
  for (const k of ['FORKSAFE_FS_PARENT', 'FORKSAFE_FS_STATUS', 'FORKSAFE_FS_PRELOAD', 'FORKSAFE_FS_REEXEC']) delete process.env[k];
  const words = new Int32Array(status.buffer);
  const me = process.pid;
  let channel: net.Socket | null = null;
  const queue: FsRequest[] = []; // requests read, not served yet

  // First in every worker, before any hook a preload registers (atfork child
  // hooks run in registration order) and before the target: close the channel
  // (uv_close closes the fd at once), unmap the status table, drop the queue,
  // and die with the forkserver — checked against its pid taken before the
  // fork, so a forkserver already dead is seen (getppid() is then 1 or a reaper).
  atfork({
    child() {
      isWorker = true;
      if (binding.setPdeathsig(SIGKILL) !== me) binding.exitNow(1);
      try {
        if (outTimer) clearTimeout(outTimer);
        outTimer = null;
        outQueue.length = 0;
        queue.length = 0; // the forkserver's to serve, never a worker's
        channel?.destroy();
        status.close();
      } catch (e) {
        // A worker that still holds the channel must not run: it could read the parent's requests.
        process.stderr.write(`forksafe forkserver: worker set-up failed: ${e instanceof Error ? e.message : String(e)}\n`);
        binding.exitNow(70);
      }
    },
  });

  // Preload: each module's top level runs here, once, and every worker
  // inherits the result.
  for (const spec of preload) {
    try {
      try {
        require(spec);
      } catch (e) {
        if (!needsImport(e)) throw e;
        await dynamicImport(pathToFileURL(spec).href);
      }
    } catch (e) {
      writeError(status, `preload of '${spec}' failed in the forkserver: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      Atomics.store(words, FS.READY, FS.READY_FAILED);
      status.notify(FS.READY);
      process.exit(1);
    }
  }

  const children = new Map<number, ForkedChild>(); // by request id
  channel = new net.Socket({ fd: CHANNEL, readable: true, writable: false });
  const reader = new FrameReader();
  let draining = false;

  const serve = (req: FsRequest): void => {
    if (req.t === 'kill') {
      children.get(req.id)?.kill(req.signal);
      return;
    }
    const w = entryWord(req.id);
    let child: ForkedChild | null;
    try {
      child = fork(() => runWorker(req));
    } catch (e) {
      if (e instanceof ForkChildUnwind) throw e; // this is the worker, leaving the forkserver's code
      // Nothing was forked: the parent's start() throws with this message.
      writeError(status, e instanceof Error ? e.message : String(e));
      Atomics.store(words, w + FS.E_CODE, (e as { errno?: number }).errno ?? -1);
      Atomics.store(words, w + FS.E_STATE, FS.FAILED);
      status.notify(w + FS.E_STATE);
      return;
    }
    if (child === null) return; // unreachable: fork(main) never returns in the child
    children.set(req.id, child);
    Atomics.store(words, w + FS.E_PID, child.pid);
    Atomics.store(words, w + FS.E_STATE, FS.STARTED);
    status.notify(w + FS.E_STATE);
    child.exited.then((e) => {
      children.delete(req.id);
      Atomics.store(words, w + FS.E_CODE, e.code ?? -1);
      Atomics.store(words, w + FS.E_SIGNAL, e.signal ? (signalNumber(e.signal) ?? 0) : 0);
      Atomics.store(words, w + FS.E_STATE, FS.EXITED);
      status.notify(w + FS.E_STATE);
      writeFrame({ t: 'exit', id: req.id, pid: child!.pid, code: e.code, signal: e.signal });
    });
  };

  // Requests are served from a clean stack (an immediate), one at a time.
  const drain = (): void => {
    draining = false;
    while (queue.length) {
      const req = queue.shift()!;
      try {
        serve(req);
      } catch (e) {
        if (e instanceof ForkChildUnwind) throw e; // the worker leaving
        // One bad request must not take the forkserver (and every worker) down;
        // a start that failed is reported, so its parent does not wait for it.
        const msg = e instanceof Error ? e.message : String(e);
        process.stderr.write(`forksafe forkserver: request ${req.t} #${req.id} failed: ${msg}\n`);
        if (req.t === 'start' && Number.isInteger(req.id) && req.id >= 0 && req.id < FS.ENTRIES &&
            Atomics.load(words, entryWord(req.id) + FS.E_STATE) === FS.REQUESTED) {
          writeError(status, msg);
          Atomics.store(words, entryWord(req.id) + FS.E_STATE, FS.FAILED);
          status.notify(entryWord(req.id) + FS.E_STATE);
        }
      }
    }
  };
  channel.on('data', (chunk: Buffer) => {
    for (const msg of reader.push(chunk)) queue.push(msg as FsRequest);
    if (!draining && queue.length) {
      draining = true;
      setImmediate(drain);
    }
  });
  channel.on('end', () => process.exit(0)); // the parent closed the channel
  channel.on('error', () => process.exit(0));

  Atomics.store(words, FS.READY, FS.READY_OK);
  Atomics.store(words, FS.READY_PID, process.pid);
  status.notify(FS.READY);
}

/** In the worker: runs the target and returns its exit code (fork(main) exits with it). */
async function runWorker(req: FsRequest & { t: 'start' }): Promise<unknown> {
  // The atfork child hook of main() has closed the channel, unmapped the status
  // table and tied this worker's life to the forkserver's.
  if (req.name) process.title = req.name;
  if (req.env) replaceEnv(req.env);
  const args = fromWire(v8.deserialize(req.args), attach) as unknown[];
  const ns = await loadForkedTarget(req.module);
  const d = ns.default as { default?: unknown; [k: string]: unknown } | undefined;
  const fn = req.export !== null
    ? (ns[req.export] ?? d?.[req.export])
    : (typeof d === 'function' ? d : d?.default);
  if (typeof fn !== 'function') {
    throw new TypeError(
      req.export !== null
        ? `forksafe: module '${req.module}' has no exported function '${req.export}'`
        : `forksafe: module '${req.module}' has no default export function; name one with target.export`,
    );
  }
  return (fn as (...a: unknown[]) => unknown)(...args);
}

main().catch((e) => {
  process.stderr.write(`forksafe forkserver: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
