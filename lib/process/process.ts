// Process for the 'spawn' context: a fresh `node` running forksafe's bootstrap
// (dist/bootstrap.js), which loads only the target module (never the parent's
// main script), attaches the primitives found in args, calls the export and
// exits with its result. Segments reach the child as inherited fds.
import * as child_process from 'node:child_process';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import type { Readable } from 'node:stream';
import { binding } from '../core/binding';
import { ContextError, ForksafeError, invalidArgType, invalidThis, notCloneable } from '../core/errors';
import { contextOf } from '../core/registry';
import { toWire } from '../core/handoff';
import type { StartMethod } from '../core/layout';
import { validateObject } from '../core/validate';
import {
  ExitInfo, dropFlags, exitInfo, loadForkedTarget, moduleSpec, replaceEnv, resolveModule, unknownSignal, validSignal,
} from '../core/util';

/**
 * What a child runs. `module`: an absolute path, a file: URL (e.g.
 * `new URL('./worker.js', import.meta.url)`), a package name, or a path
 * starting with ./ or ../, which resolves against process.cwd() at start(),
 * not against the caller's file (use require.resolve() or a URL in libraries).
 */
export type Target = ((...args: never[]) => unknown) | { module: string | URL; export?: string };

export interface ProcessOptions {
  target: Target;
  args?: unknown[];
  name?: string;
  env?: NodeJS.ProcessEnv;
  stdio?: 'inherit' | 'pipe';
  /** Node flags of the child (default: the parent's execArgv minus --inspect*, --eval and similar). */
  execArgv?: string[];
}

export type { ExitInfo };

/** The payload the bootstrap reads from fd 3. */
export interface BootPayload {
  module: string;
  export: string | null;
  args: unknown[];
  fds: number[];
  name: string | null;
}

// Flags of the parent that must not reach the child: they would run the
// parent's code again, or fight over the same debugger port.
const DROP = /^--(inspect|inspect-brk|inspect-port|debug-port|eval|print|input-type|test|watch)(=|$)|^-[ep]$/;
const TAKES_VALUE = /^(-e|-p|--eval|--print|--inspect-port|--debug-port|--input-type)$/;

function childExecArgv(): string[] {
  return dropFlags(process.execArgv, DROP, TAKES_VALUE);
}

/** `env` as child_process takes it: every defined value as a string. */
function envStrings(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  // for...in, as child_process: inherited keys count (Object.create(process.env)).
  // eslint-disable-next-line guard-for-in
  for (const k in env) if (env[k] !== undefined) out[k] = String(env[k]);
  return out;
}



/**
 * The options as read once, each property exactly once (a getter could
 * otherwise pass validation and then return something else at start()).
 * A target object is copied the same way; arrays are kept (args are read at
 * start(), as documented).
 */
function snapshotOptions(opts: ProcessOptions): ProcessOptions {
  if (opts === null || typeof opts !== 'object') throw invalidArgType('options', 'of type object', opts);
  validateObject('options', opts);
  const { target, args, name, env, stdio, execArgv } = opts;
  let t: Target = target;
  if (t !== null && typeof t === 'object') {
    const { module, export: exp } = t;
    t = exp === undefined ? { module } : { module, export: exp };
  }
  const out: ProcessOptions = { target: t };
  if (args !== undefined) out.args = args;
  if (name !== undefined) out.name = name;
  if (env !== undefined) out.env = env;
  if (stdio !== undefined) out.stdio = stdio;
  if (execArgv !== undefined) out.execArgv = Array.isArray(execArgv) ? [...execArgv] : execArgv;
  return out;
}

/**
 * v8.serialize(payload) for a child, or — before anything is spawned — a
 * TypeError ERR_INVALID_ARG_TYPE naming the first `options.args[i]` that
 * cannot be structured-cloned (a function, a symbol, a SharedArrayBuffer...),
 * with the clone error as its cause. `wire` is `args` after toWire().
 */
function serializeArgs(payload: unknown, wire: unknown[], args: unknown[]): Buffer {
  try {
    return v8.serialize(payload);
  } catch (e) {
    for (let i = 0; i < wire.length; i++) {
      try {
        v8.serialize(wire[i]);
      } catch (inner) {
        throw notCloneable(`options.args[${i}]`, args[i], inner);
      }
    }
    throw e;
  }
}

export class Process {
  #process = true;

  /** @internal Whether `o` is a real Process. */
  static _isProcess(o: unknown): o is Process {
    return typeof o === 'object' && o !== null && #process in o;
  }

  /** @internal */ _method: StartMethod;
  /** @internal */ _opts: ProcessOptions;
  /** @internal */ _owner = process.pid;
  /** @internal */ _child: child_process.ChildProcess | null = null;
  /** @internal */ _pidfd = -1;
  /** @internal */ _exit: ExitInfo | null = null;
  /** @internal Known from join() before libuv has reaped the child. */ _joined: ExitInfo | null = null;
  /** @internal */ _resolve!: (e: ExitInfo) => void;
  /** @internal */ _reject!: (e: Error) => void;
  /** Resolves with {code, signal} when the child has exited, whatever killed it. */
  readonly exited: Promise<ExitInfo>;
  readonly name: string | null;
  /** With stdio: 'pipe'. */
  stdout: Readable | null = null;
  stderr: Readable | null = null;

  constructor(options: ProcessOptions) {
    const opts = snapshotOptions(options);
    this._method = contextOf(new.target);
    const t = opts.target;
    if (typeof t === 'function') {
      throw invalidArgType(
        'options.target',
        `{ module, export } for the '${this._method}' context (a function cannot cross into a new process: ` +
          "put it in a module and name it, or use getContext('fork'))",
        t,
      );
    }
    if (t === null || typeof t !== 'object') {
      throw invalidArgType('options.target', 'an object { module: string | URL, export?: string }', t);
    }
    moduleSpec('options.target.module', t.module);
    if (t.export !== undefined && typeof t.export !== 'string') {
      throw invalidArgType('options.target.export', 'of type string', t.export);
    }
    if (opts.args !== undefined && !Array.isArray(opts.args)) throw invalidArgType('options.args', 'an array', opts.args);
    if (opts.name !== undefined && typeof opts.name !== 'string') throw invalidArgType('options.name', 'of type string', opts.name);
    if (opts.env !== undefined) validateObject('options.env', opts.env);
    if (opts.execArgv !== undefined &&
        (!Array.isArray(opts.execArgv) || !opts.execArgv.every((a) => typeof a === 'string'))) {
      throw invalidArgType('options.execArgv', 'an array of strings', opts.execArgv);
    }
    if (opts.stdio !== undefined && opts.stdio !== 'inherit' && opts.stdio !== 'pipe') {
      throw invalidArgType('options.stdio', "'inherit' or 'pipe'", opts.stdio);
    }
    if (this._method === 'forkserver') {
      if (opts.stdio === 'pipe') {
        throw invalidArgType('options.stdio',
          "'inherit' for the 'forkserver' context (its workers write to the parent's stdout/stderr; " +
            "to capture a worker's output use getContext('spawn').Process with stdio: 'pipe', see docs/forkserver.md)",
          opts.stdio);
      }
      if (opts.execArgv !== undefined) {
        throw invalidArgType('options.execArgv',
          "undefined for the 'forkserver' context (workers run the forkserver's node flags: setForkserverPreload(modules, { execArgv }))",
          opts.execArgv);
      }
    }
    this._opts = opts;
    this.name = opts.name ?? null;
    this.exited = new Promise<ExitInfo>((res, rej) => {
      this._resolve = res;
      this._reject = rej;
    });
    this.exited.catch(() => {}); // a spawn failure is reported; it must not be "unhandled"
  }

  /** Spawns the child. Context rules are checked first: nothing starts if they fail. */
  start(): this {
    if (!Process._isProcess(this)) throw invalidThis('Process');
    if (this._child || this._fsPid !== null) throw new ForksafeError('Process.start(): already started', 'ERR_FORKSAFE_STARTED');
    this._checkOwner('start()');
    if (this._method === 'forkserver') return this._startForkserver();
    const t = this._opts.target as { module: string | URL; export?: string };
    const fds = new Set<number>();
    const args = toWire(this._opts.args ?? [], this._method, `a Process`, fds);
    const fdList = [...fds];
    const payload: BootPayload = {
      module: resolveModule(t.module),
      export: t.export ?? null,
      args,
      fds: fdList.map((_, i) => 4 + i),
      name: this.name,
    };
    const wire = serializeArgs(payload, args, this._opts.args ?? []); // before anything starts
    const out = this._opts.stdio === 'pipe' ? 'pipe' : 'inherit';
    // The payload travels in a memfd written now, not through a pipe written
    // by the event loop: the parent may block right after start().
    const payloadFd = binding.payloadFd(wire);
    let child: child_process.ChildProcess;
    try {
      child = child_process.spawn(
        process.execPath,
        [...(this._opts.execArgv ?? childExecArgv()), path.join(__dirname, '..', 'bootstrap.js')],
        {
          stdio: ['inherit', out, out, payloadFd, ...fdList],
          env: this._opts.env ?? process.env,
          argv0: this.name ?? undefined,
        },
      );
    } finally {
      binding.closeFd(payloadFd);
    }
    this._child = child;
    if (child.pid !== undefined) {
      try {
        this._pidfd = binding.pidfdOpen(child.pid);
      } catch {
        this._pidfd = -1; // join() then falls back to exit events only
      }
    }
    this.stdout = child.stdout;
    this.stderr = child.stderr;
    child.on('error', (err) => {
      if (!this._exit) {
        this._closePidfd();
        this._reject(err);
      }
    });
    child.on('exit', (code, signal) => {
      this._settle({ code, signal });
    });
    return this;
  }

  /** @internal The worker's entry in the forkserver's status table. */ _fsId = -1;
  /** @internal */ _fsPid: number | null = null;
  /** @internal */ _fs: import('./forkserver').FsServer | null = null;

  /** @internal A worker forked by this thread's forkserver (started, and waited for, on first use). */
  _startForkserver(): this {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const fsrv = require('./forkserver') as typeof import('./forkserver');
    const t = this._opts.target as { module: string | URL; export?: string };
    const wire = toWire(this._opts.args ?? [], 'forkserver', 'a Process', new Set()); // Context rules first
    const args = serializeArgs(wire, wire, this._opts.args ?? []); // before anything starts
    const req = {
      module: resolveModule(t.module),
      export: t.export ?? null,
      args,
      name: this.name,
      env: this._opts.env ? envStrings(this._opts.env) : null,
    };
    let srv = fsrv.forkserver();
    try {
      this._fsPid = srv.start(this, req);
    } catch (e) {
      // The forkserver died before serving this start (e.g. killed just before):
      // once more, on a new one. A forkserver that dies again is reported.
      if (!fsrv.isUnserved(e)) throw e;
      srv = fsrv.forkserver();
      this._fsPid = srv.start(this, req);
    }
    this._fs = srv;
    return this;
  }

  /** @internal */
  _settle(e: ExitInfo): void {
    if (this._exit) return;
    this._exit = e;
    this._closePidfd();
    this._resolve(e);
  }

  /** @internal */
  _closePidfd(): void {
    if (this._pidfd >= 0) {
      binding.closeFd(this._pidfd);
      this._pidfd = -1;
    }
  }

  get pid(): number | null {
    if (!Process._isProcess(this)) throw invalidThis('Process');
    return this._fsPid ?? this._child?.pid ?? null;
  }

  get exitCode(): number | null {
    if (!Process._isProcess(this)) throw invalidThis('Process');
    return (this._exit ?? this._joined)?.code ?? null;
  }

  get signalCode(): NodeJS.Signals | null {
    if (!Process._isProcess(this)) throw invalidThis('Process');
    return (this._exit ?? this._joined)?.signal ?? null;
  }

  /** @internal Context rule 5: a Process handle works only in the process that started it. */
  _checkOwner(what: string): void {
    if (this._owner !== process.pid) {
      throw new ContextError(`Process.${what}: this Process was started by process ${this._owner}, not by ${process.pid} (a fork() child has a copy of it)`);
    }
  }

  /** Blocks until the child exits (true) or the timeout passes (false). Does not reap. */
  join(opts?: { timeout?: number }): boolean {
    if (!Process._isProcess(this)) throw invalidThis('Process');
    if (!this._child && this._fsPid === null) throw new ForksafeError('Process.join(): not started', 'ERR_FORKSAFE_NOT_STARTED');
    this._checkOwner('join()');
    if (this._exit || this._joined) return true;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const timeout = opts === undefined ? -1 : (require('../core/validate') as typeof import('../core/validate')).timeoutOf(opts);
    if (this._fs) {
      const e = this._fs.join(this._fsId, timeout);
      if (e === null) return false;
      this._joined = e; // `exited` settles from the event loop (the forkserver's exit message)
      return true;
    }
    if (this._pidfd < 0) return false;
    const r = binding.pidfdWait(this._pidfd, timeout);
    if (r === null) return false;
    // Known now (exitCode/signalCode). `exited` still settles on the 'exit'
    // event, after libuv has reaped the child: no zombie is ever observable.
    this._joined = exitInfo(r);
    return true;
  }

  kill(signal: NodeJS.Signals | number = 'SIGTERM'): void {
    if (!Process._isProcess(this)) throw invalidThis('Process');
    if (!this._child && this._fsPid === null) throw new ForksafeError('Process.kill(): not started', 'ERR_FORKSAFE_NOT_STARTED');
    this._checkOwner('kill()');
    const n = validSignal(signal);
    if (n === undefined) throw unknownSignal(signal);
    if (this._exit || this._joined) return;
    if (this._fs) {
      this._fs.kill(this._fsId, n);
      return;
    }
    this._child!.kill(signal);
  }
}

/**
 * Process for the 'fork' context: the child is a fork() of this process, so
 * `target` may be a function and `args` are passed by reference (the child has
 * a copy of them; this context's primitives in them are shared, not copied).
 * Needs what fork() needs (node --single-threaded, see forkSafety()).
 */
export class ForkProcess {
  #forkProcess = true;

  /** @internal Whether `o` is a real Process. */
  static _isForkProcess(o: unknown): o is ForkProcess {
    return typeof o === 'object' && o !== null && #forkProcess in o;
  }

  /** @internal */ _opts: ProcessOptions;
  /** @internal */ _child: import('../fork').ForkedChild | null = null;
  /** @internal */ _exited: Promise<ExitInfo>;
  /** @internal */ _resolve!: (e: ExitInfo) => void;
  readonly exited: Promise<ExitInfo>;
  readonly name: string | null;
  readonly stdout = null;
  readonly stderr = null;

  constructor(options: ProcessOptions) {
    const opts = snapshotOptions(options);
    const t = opts.target;
    if (typeof t !== 'function') {
      if (t === null || typeof t !== 'object' || (t.export !== undefined && typeof t.export !== 'string')) {
        throw invalidArgType('options.target', 'a function or { module: string | URL, export?: string }', t);
      }
      moduleSpec('options.target.module', t.module);
    }
    if (opts.args !== undefined && !Array.isArray(opts.args)) throw invalidArgType('options.args', 'an array', opts.args);
    if (opts.name !== undefined && typeof opts.name !== 'string') throw invalidArgType('options.name', 'of type string', opts.name);
    if (opts.env !== undefined) validateObject('options.env', opts.env);
    if (opts.stdio !== undefined && opts.stdio !== 'inherit') {
      throw invalidArgType('options.stdio', "'inherit' (a forked child shares the parent's stdio)", opts.stdio);
    }
    if (opts.execArgv !== undefined) {
      throw invalidArgType('options.execArgv', 'undefined (a forked child runs the same node as its parent)', opts.execArgv);
    }
    this._opts = opts;
    this.name = opts.name ?? null;
    this._exited = new Promise<ExitInfo>((res) => {
      this._resolve = res;
    });
    this.exited = this._exited;
  }

  start(): this {
    if (!ForkProcess._isForkProcess(this)) throw invalidThis('Process');
    if (this._child) throw new ForksafeError('Process.start(): already started', 'ERR_FORKSAFE_STARTED');
    const args = this._opts.args ?? [];
    toWire(args, 'fork', 'a Process', new Set()); // Context rules: throws before anything starts
    const opts = this._opts;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { fork } = require('../fork') as typeof import('../fork');
    const setup = (): void => {
      if (opts.name) process.title = opts.name;
      if (opts.env) replaceEnv(opts.env);
    };
    const t0 = opts.target;
    // The target runs as fork()'s main: none of the caller's code (catch,
    // finally, an awaiting caller) runs in the child (docs/fork.md, hazard 19).
    const child = (typeof t0 === 'function'
      ? fork(() => {
        setup();
        return (t0 as (...a: unknown[]) => unknown)(...args);
      })
      : fork(async () => {
      setup();
      const t = t0 as { module: string | URL; export?: string };
      const ns = await loadForkedTarget(resolveModule(t.module));
      const d = ns.default as { default?: unknown; [k: string]: unknown } | undefined;
      const fn = t.export !== undefined
        ? (ns[t.export] ?? d?.[t.export])
        : (typeof d === 'function' ? d : d?.default);
      if (typeof fn !== 'function') throw new TypeError(`forksafe: module '${t.module}' has no function to run (target.export)`);
      return (fn as (...a: unknown[]) => unknown)(...args);
    })) as import('../fork').ForkedChild;
    this._child = child;
    child.exited.then((e) => this._resolve(e));
    return this;
  }

  get pid(): number | null {
    if (!ForkProcess._isForkProcess(this)) throw invalidThis('Process');
    return this._child?.pid ?? null;
  }

  get exitCode(): number | null {
    if (!ForkProcess._isForkProcess(this)) throw invalidThis('Process');
    return this._child?.exitCode ?? null;
  }

  get signalCode(): NodeJS.Signals | null {
    if (!ForkProcess._isForkProcess(this)) throw invalidThis('Process');
    return this._child?.signalCode ?? null;
  }

  join(opts?: { timeout?: number }): boolean {
    if (!ForkProcess._isForkProcess(this)) throw invalidThis('Process');
    if (!this._child) throw new ForksafeError('Process.join(): not started', 'ERR_FORKSAFE_NOT_STARTED');
    return this._child.join(opts);
  }

  kill(signal: NodeJS.Signals | number = 'SIGTERM'): void {
    if (!ForkProcess._isForkProcess(this)) throw invalidThis('Process');
    if (!this._child) throw new ForksafeError('Process.kill(): not started', 'ERR_FORKSAFE_NOT_STARTED');
    this._child.kill(signal);
  }
}
