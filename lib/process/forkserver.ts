// The parent's side of the forkserver: started on first use (one per JS
// thread), asked to fork over a private socketpair, watched through a status
// table in shared memory. Read docs/forkserver.md.
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Socket } from 'node:net';
import { binding } from '../core/binding';
import { ForksafeError, invalidArgType } from '../core/errors';
import { forkFlags, onForkChild } from '../fork';
import {
  defaultExecArgv, sanitizeNodeOptions, FS, STATUS_BYTES, FrameReader, FsMessage, FsRequest, encodeFrame, entryWord,
} from './forkserver-protocol';
import { SharedMemory } from '../sync/shared-memory';
import { contextClass } from '../core/registry';
import { exitInfo, moduleSpec, resolveModule } from '../core/util';
import type { ExitInfo } from '../core/util';

let preload: string[] = [];
let serverExecArgv: string[] | null = null;
let startTimeout = 60_000;


/**
 * Modules the forkserver loads once, before it forks any worker (like Python's
 * set_forkserver_preload), for the forkserver this thread starts next.
 * `execArgv`: the forkserver's node flags (default: the parent's, minus
 * --inspect*, --eval, --import/--loader; left out: the value set before).
 * `startTimeout`: how long a start may wait for node to boot and the preload to
 * load, and for a running forkserver to serve a request (default 60,000 ms);
 * then the forkserver is killed and start() throws.
 *
 * While this thread's forkserver runs, its preload and flags cannot change
 * (its workers are forks of what it loaded): a call asking for the same
 * modules and options is a no-op, any other throws
 * ERR_FORKSAFE_FORKSERVER_STARTED instead of being silently ignored. Call it
 * before the first start, or stopForkserver() first.
 */
export function setForkserverPreload(modules: Array<string | URL>, opts?: { execArgv?: string[]; startTimeout?: number }): void {
  if (!Array.isArray(modules)) throw invalidArgType('modules', "an array of module names, paths or 'file:' URLs", modules);
  const specs = modules.map((m, i) => moduleSpec(`modules[${i}]`, m));
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) throw invalidArgType('options', 'of type object', opts);
  const ea = opts?.execArgv;
  if (ea !== undefined && (!Array.isArray(ea) || !ea.every((a) => typeof a === 'string'))) {
    throw invalidArgType('options.execArgv', 'an array of strings', ea);
  }
  const st = opts?.startTimeout;
  if (st !== undefined && (typeof st !== 'number' || !(st > 0))) {
    throw invalidArgType('options.startTimeout', 'a positive number of milliseconds (or Infinity)', st);
  }
  const next: ServerConfig = {
    preload: specs.map(resolveModule),
    execArgv: ea !== undefined ? [...ea] : serverExecArgv,
    startTimeout: st ?? startTimeout,
  };
  if (server && !server.dead && !server.alive()) server.markDead('it exited');
  if (server && !server.dead) {
    const running: ServerConfig = { preload: server.preload, execArgv: server.execArgv, startTimeout: server.timeout };
    if (JSON.stringify(running) === JSON.stringify(next)) return; // what runs already
    throw new ForksafeError(
      `forksafe: setForkserverPreload(): this thread's forkserver (pid ${server.pid}) is already running with ` +
        `${describeConfig(running)}; it cannot change to ${describeConfig(next)} (its workers are forks of what it ` +
        'loaded). Call setForkserverPreload() before the first Process.start() or startForkserver(), pass the same ' +
        'modules and options, or await stopForkserver() first (it kills the running workers).',
      'ERR_FORKSAFE_FORKSERVER_STARTED',
    );
  }
  preload = next.preload;
  serverExecArgv = next.execArgv;
  startTimeout = next.startTimeout;
}

interface ServerConfig {
  preload: string[];
  execArgv: string[] | null; // null: the parent's (filtered)
  startTimeout: number;
}

function describeConfig(c: ServerConfig): string {
  const ea = c.execArgv === null ? "the parent's execArgv" : `execArgv ${JSON.stringify(c.execArgv)}`;
  return `preload ${JSON.stringify(c.preload)}, ${ea}, startTimeout ${c.startTimeout} ms`;
}

/** What a forkserver Process needs from its server. */
export interface FsClient {
  _fsId: number;
  _settle(e: ExitInfo): void;
}

const SLICE_MS = 50; // liveness checks of the forkserver while blocked
const PID_MAX = 4194304; // PID_MAX_LIMIT: no pid is larger
const SIG_MAX = 64; // SIGRTMAX

/**
 * The status table is written by another process (the forkserver): every word
 * the parent acts on is checked. A value it never writes means the table (or
 * the forkserver) cannot be trusted any more: the forkserver is given up on
 * (killed, its workers with it: PR_SET_PDEATHSIG) with this reason.
 */
function corrupt(what: string, value: number): string {
  return `its status table is corrupt (${what} = ${value}), so it was stopped`;
}

/** An exit frame's code and signal, as the forkserver must send them. */
function validExit(m: unknown): m is { id: number; code: number | null; signal: NodeJS.Signals | null } {
  const e = m as { id?: unknown; code?: unknown; signal?: unknown } | null;
  return !!e && typeof e === 'object' && Number.isInteger(e.id) &&
    (e.code === null || (Number.isInteger(e.code) && (e.code as number) >= 0 && (e.code as number) <= 255)) &&
    (e.signal === null || (typeof e.signal === 'string' && /^SIG[A-Z0-9+-]+$/.test(e.signal)));
}

export class FsServer {
  readonly proc: child_process.ChildProcess;
  readonly sock: Socket;
  readonly fd: number;
  readonly status: SharedMemory;
  readonly words: Int32Array;
  readonly pidfd: number;
  readonly pid: number;
  readonly live = new Map<number, FsClient>();
  private readonly free: number[] = [];
  private readonly reader = new FrameReader();
  dead = false;
  deathReason = '';
  /** READY was seen 1: it never goes back (the forkserver writes it once). */
  ready = false;
  readonly preload = preload; // as this forkserver was started with
  readonly execArgv = serverExecArgv;
  readonly timeout = startTimeout;
  readonly bootDeadline = Date.now() + startTimeout;

  constructor() {
    this.status = new (contextClass(SharedMemory, 'spawn'))({ size: STATUS_BYTES });
    this.words = new Int32Array(this.status.buffer);
    for (let i = FS.ENTRIES - 1; i >= 0; i--) this.free.push(i);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      FORKSAFE_FS_PARENT: String(process.pid),
      FORKSAFE_FS_STATUS: JSON.stringify(this.status.handle()),
      FORKSAFE_FS_PRELOAD: JSON.stringify(preload),
    };
    const nodeOptions = sanitizeNodeOptions(process.env.NODE_OPTIONS);
    if (nodeOptions) env.NODE_OPTIONS = nodeOptions;
    else delete env.NODE_OPTIONS;
    this.proc = child_process.spawn(
      process.execPath,
      [...(serverExecArgv ?? defaultExecArgv()), ...forkFlags(), path.join(__dirname, '..', 'forkserver-main.js')],
      { stdio: ['ignore', 'inherit', 'inherit', 'pipe'], env },
    );
    if (this.proc.pid === undefined || !this.proc.stdio[3]) {
      this.proc.on('error', () => {}); // reported here, synchronously
      this.status.close();
      throw new ForksafeError('forksafe: could not start the forkserver (spawn of node failed)', 'ERR_FORKSAFE_FORKSERVER');
    }
    this.pid = this.proc.pid;
    try {
      this.pidfd = binding.pidfdOpen(this.pid);
    } catch (e) {
      this.proc.kill('SIGKILL'); // libuv still owns and reaps it
      this.proc.unref();
      (this.proc.stdio[3] as Socket).destroy();
      this.status.close();
      throw e;
    }
    // If this JS thread ends first (a worker_thread), the forkserver dies with it
    // (PR_SET_PDEATHSIG) and its reaper, this thread's loop, is gone: the addon
    // kills and reaps it then.
    binding.ownChild(this.pidfd);
    this.sock = this.proc.stdio[3] as Socket;
    this.fd = (this.sock as unknown as { _handle: { fd: number } })._handle.fd;
    this.sock.on('data', (chunk: Buffer) => {
      let msgs: unknown[];
      try {
        msgs = this.reader.push(chunk);
      } catch (e) {
        // A corrupt frame: this forkserver cannot be trusted any more.
        this.markDead(`it sent a corrupt message (${(e as Error).message})`);
        return;
      }
      for (const m of msgs as FsMessage[]) {
        if (!validExit(m)) {
          this.markDead('it sent a corrupt exit message');
          return;
        }
        this.finish(m.id, { code: m.code, signal: m.signal }); // exit frames
      }
    });
    this.proc.on('error', (err) => this.onDeath(`the forkserver failed: ${err.message}`));
    this.sock.on('error', () => {}); // the 'exit' of the forkserver reports
    this.proc.on('exit', (code, signal) => this.onDeath(`the forkserver (pid ${this.pid}) exited (${signal ?? `code ${code}`})`));
    this.idle();
  }

  /** Keeps the parent's loop alive only while a worker is running. */
  private idle(): void {
    if (this.live.size === 0) {
      this.sock.unref();
      this.proc.unref();
    } else {
      this.sock.ref();
      this.proc.ref();
    }
  }

  /** Settles a client and gives its entry back. */
  finish(id: number, e: ExitInfo): void {
    const c = this.live.get(id);
    if (!c) return;
    this.live.delete(id);
    Atomics.store(this.words, entryWord(id) + FS.E_STATE, FS.FREE);
    this.free.push(id);
    c._settle(e);
    this.idle();
  }

  private onDeath(why: string): void {
    if (this.dead) return;
    this.markDead(why);
  }

  markDead(why: string): void {
    this.dead = true;
    this.deathReason = why;
    // Its workers die with it (PR_SET_PDEATHSIG = SIGKILL), unless they had
    // exited already and the table says so.
    for (const id of [...this.live.keys()]) this.finish(id, this.exitFromTable(id) ?? { code: null, signal: 'SIGKILL' });
    if (this.pidfd >= 0) {
      // Given up on while still running (a broken channel): end it, through its
      // pidfd (never a reused pid). libuv reaps it.
      try {
        binding.pidfdKill(this.pidfd, 9);
      } catch {
        // gone already
      }
      binding.disownChild(this.pidfd);
      binding.closeFd(this.pidfd);
    }
    (this as { pidfd: number }).pidfd = -1;
    this.status.close();
    this.sock.destroy();
    if (server === this) server = null;
  }

  /** Synchronous liveness: the forkserver's pidfd reports its exit (without reaping it). */
  alive(): boolean {
    if (this.dead) return false;
    return binding.pidfdWait(this.pidfd, 0) === null;
  }

  /** The exit the table reports for entry `id`, or null (not exited, or not a valid exit: code -1..255, signal 0..64). */
  exitFromTable(id: number): ExitInfo | null {
    const w = entryWord(id);
    if (Atomics.load(this.words, w + FS.E_STATE) !== FS.EXITED) return null;
    const code = Atomics.load(this.words, w + FS.E_CODE);
    const signal = Atomics.load(this.words, w + FS.E_SIGNAL);
    if (code < -1 || code > 255 || signal < 0 || signal > SIG_MAX) return null;
    return exitInfo({ code: code < 0 ? null : code, signal });
  }

  /** Blocks until word `i` is no longer `v`, the forkserver dies, or `deadline`. */
  private waitWhile(i: number, v: number, deadline: number): 'changed' | 'dead' | 'timed-out' {
    for (;;) {
      if (Atomics.load(this.words, i) !== v) return 'changed';
      if (!this.alive()) return Atomics.load(this.words, i) !== v ? 'changed' : 'dead';
      const left = deadline - Date.now();
      if (left <= 0) return 'timed-out';
      this.status.wait(i, v, { timeout: Math.min(SLICE_MS, left) });
    }
  }

  /** Blocks until the forkserver has loaded its preload; throws if it cannot. */
  waitReady(): void {
    const r = this.waitWhile(FS.READY, FS.READY_BOOTING, this.bootDeadline);
    const state = Atomics.load(this.words, FS.READY);
    if (r === 'changed' && state === FS.READY_OK) {
      this.ready = true;
      return;
    }
    const why = state === FS.READY_FAILED ? this.errorText()
      : state !== FS.READY_BOOTING ? corrupt('READY', state)
      : r === 'timed-out' ? `it did not finish starting (node, then the preload: ${this.preload.join(', ') || 'none'}) within ` +
        `${this.timeout} ms (setForkserverPreload(modules, { startTimeout }))`
        : 'it exited while starting';
    this.markDead(why);
    throw new ForksafeError(`forksafe: the forkserver could not start: ${why}`, 'ERR_FORKSAFE_FORKSERVER');
  }

  private errorText(): string {
    const area = new Uint8Array(this.status.buffer, FS.ERROR_OFFSET, FS.ERROR_BYTES);
    const end = area.indexOf(0);
    return Buffer.from(area.subarray(0, end < 0 ? area.length : end)).toString('utf8');
  }

  /** Writes a frame synchronously (EAGAIN waited out while the forkserver lives). */
  send(buf: Buffer): void {
    const nap = new Int32Array(new SharedArrayBuffer(4));
    const deadline = Date.now() + this.timeout;
    let off = 0;
    while (off < buf.length) {
      try {
        off += fs.writeSync(this.fd, buf, off, buf.length - off);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' && Date.now() > deadline) {
          this.markDead(`it did not read a request within ${this.timeout} ms (its event loop was blocked or stopped; startTimeout)`);
          throw this.deadError();
        }
        if (code === 'EAGAIN' && this.alive()) {
          Atomics.wait(nap, 0, 0, 1); // it reads from its event loop, which never blocks on us
          continue;
        }
        this.markDead(code === 'EAGAIN' ? 'it exited' : `its channel failed (${code ?? String(e)})`);
        throw this.deadError();
      }
    }
  }

  deadError(): ForksafeError {
    return new ForksafeError(`forksafe: the forkserver is gone: ${this.deathReason || 'it exited'}; the next start brings up a new one`,
      'ERR_FORKSAFE_FORKSERVER');
  }

  /** Asks for a worker; blocks until the forkserver reports its pid. */
  start(c: FsClient, req: Omit<FsRequest & { t: 'start' }, 'id' | 't'>): number {
    const id = this.free.pop();
    if (id === undefined) {
      throw new ForksafeError(`forksafe: ${FS.ENTRIES} forkserver workers are running; wait for one to exit`, 'ERR_FORKSAFE_TOO_MANY_PROCESSES');
    }
    let frame: Buffer;
    try {
      frame = encodeFrame({ t: 'start', id, ...req }); // a DataCloneError here is the caller's, not the forkserver's
    } catch (e) {
      this.free.push(id);
      throw e;
    }
    const w = entryWord(id);
    Atomics.store(this.words, w + FS.E_PID, 0);
    Atomics.store(this.words, w + FS.E_CODE, -1);
    Atomics.store(this.words, w + FS.E_SIGNAL, 0);
    Atomics.store(this.words, w + FS.E_STATE, FS.REQUESTED);
    try {
      this.send(frame);
    } catch (e) {
      if (!this.dead) Atomics.store(this.words, w + FS.E_STATE, FS.FREE);
      this.free.push(id);
      throw unserved(e as Error);
    }
    const r = this.waitWhile(w + FS.E_STATE, FS.REQUESTED, Date.now() + this.timeout);
    const state = Atomics.load(this.words, w + FS.E_STATE);
    if (r === 'timed-out') {
      // Alive but not serving (its event loop busy or stopped): not to be trusted.
      this.free.push(id);
      this.markDead(`it did not serve a start within ${this.timeout} ms (its event loop was blocked or stopped; startTimeout)`);
      throw this.deadError();
    }
    if (r === 'changed' && state !== FS.STARTED && state !== FS.EXITED && state !== FS.FAILED) {
      // Written by nobody: the forkserver sets STARTED, EXITED or FAILED.
      this.free.push(id);
      this.markDead(corrupt(`entry ${id} state`, state));
      throw this.deadError();
    }
    if (r === 'dead' || state === FS.FAILED) {
      const why = state === FS.FAILED ? this.errorText() : '';
      Atomics.store(this.words, w + FS.E_STATE, FS.FREE);
      this.free.push(id);
      if (state === FS.FAILED) throw new ForksafeError(`forksafe: the forkserver could not fork: ${why}`, 'ERR_FORKSAFE_FORKSERVER');
      this.markDead('it died before it forked this worker');
      // Never served: no worker was reported, and one forked in that instant dies
      // at once (its parent is gone: PR_SET_PDEATHSIG and the ppid check).
      throw unserved(this.deadError());
    }
    const pid = Atomics.load(this.words, w + FS.E_PID);
    c._fsId = id;
    this.live.set(id, c);
    this.idle();
    if (!(pid > 0 && pid <= PID_MAX)) {
      // A worker may run with no pid to show for it: stopping the forkserver
      // stops it (PR_SET_PDEATHSIG) and settles it as SIGKILL.
      this.markDead(corrupt(`entry ${id} pid`, pid));
      throw this.deadError();
    }
    return pid;
  }

  /** join(): blocks until the worker's exit is in the table, or the timeout. */
  join(id: number, timeoutMs: number): ExitInfo | null {
    const w = entryWord(id);
    const deadline = timeoutMs < 0 ? Infinity : Date.now() + timeoutMs;
    const r = this.waitWhile(w + FS.E_STATE, FS.STARTED, deadline);
    if (r === 'timed-out') return null;
    const e = this.exitFromTable(id);
    if (e) return e;
    // After STARTED the forkserver writes only EXITED (with a valid exit):
    // anything else, and it is given up on (its workers are killed with it).
    if (r === 'changed' && !this.dead) {
      const state = Atomics.load(this.words, w + FS.E_STATE);
      this.markDead(corrupt(state === FS.EXITED ? `entry ${id} exit (code, signal)` : `entry ${id} state`,
        state === FS.EXITED ? Atomics.load(this.words, w + FS.E_CODE) : state));
    }
    return { code: null, signal: 'SIGKILL' }; // dead forkserver: its workers were killed
  }

  kill(id: number, signal: number): void {
    if (this.dead || !this.live.has(id)) return;
    try {
      this.send(encodeFrame({ t: 'kill', id, signal }));
    } catch {
      // gone: its workers are gone with it
    }
  }
}

/** Marks an error of a start the forkserver never served: the caller may retry it once on a new forkserver. */
function unserved(e: Error): Error {
  (e as Error & { _fsUnserved?: boolean })._fsUnserved = true;
  return e;
}

export function isUnserved(e: unknown): boolean {
  return !!(e as { _fsUnserved?: boolean } | null)?._fsUnserved;
}

let server: FsServer | null = null;

/** The running forkserver, started (and waited for) if there is none. */
export function forkserver(): FsServer {
  if (server && !server.dead && !server.alive()) server.markDead('it exited');
  // READY is written once: a ready forkserver whose word says otherwise now
  // had its table overwritten. Replaced, rather than waited on until startTimeout.
  if (server && !server.dead && server.ready) {
    const state = Atomics.load(server.words, FS.READY);
    if (state !== FS.READY_OK) server.markDead(corrupt('READY', state));
  }
  if (!server || server.dead) server = new FsServer();
  const s = server;
  // Started here, or by a startForkserver() still waiting: wait until it is ready.
  if (Atomics.load(s.words, FS.READY) !== FS.READY_OK) s.waitReady(); // throws (and forgets it) if it cannot start
  else s.ready = true;
  return s;
}

/**
 * Starts the forkserver now without blocking the event loop (the first
 * Process.start() would otherwise wait for node to boot and the preload to load).
 */
export async function startForkserver(): Promise<{ pid: number }> {
  if (!server || server.dead || !server.alive()) {
    if (server && !server.dead) server.markDead('it exited');
    server = new FsServer();
  }
  const s = server;
  for (;;) {
    // A synchronous start() may settle it meanwhile (ready, failed, dead).
    if (s.dead) throw new ForksafeError(`forksafe: the forkserver could not start: ${s.deathReason}`, 'ERR_FORKSAFE_FORKSERVER');
    const state = Atomics.load(s.words, FS.READY);
    if (state !== FS.READY_BOOTING || !s.alive() || Date.now() >= s.bootDeadline) break;
    try {
      await s.status.waitAsync(FS.READY, FS.READY_BOOTING, { timeout: SLICE_MS });
    } catch (e) {
      if (!s.dead) throw e; // closed because it was marked dead: reported above
    }
  }
  s.waitReady(); // returns at once now, or throws why it failed
  return { pid: s.pid };
}

/**
 * Stops this thread's forkserver, if one runs: it is killed (SIGKILL), and its
 * running workers with it (their `exited` resolves with signal 'SIGKILL').
 * Resolves once it has exited; the next start brings up a new one, with what
 * setForkserverPreload() set by then.
 */
export async function stopForkserver(): Promise<void> {
  const s = server;
  if (!s || s.dead) return;
  const proc = s.proc;
  const exited = proc.exitCode !== null || proc.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.ref(); // keeps the loop alive until it is reaped
  s.markDead('it was stopped by stopForkserver()');
  await exited;
}

/** The forkserver's pid, or null when none is running (for tests and tools). */
export function forkserverPid(): number | null {
  return server && !server.dead ? server.pid : null;
}

onForkChild(() => {
  // A fork() child of the parent: the forkserver and its workers belong to the parent.
  if (server) {
    server.sock.destroy();
    server.proc.unref();
    if (server.pidfd >= 0) {
      binding.disownChild(server.pidfd); // never killed at this child's end
      binding.closeFd(server.pidfd);
    }
    server.dead = true;
    server = null;
  }
});
