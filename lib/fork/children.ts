// ForkedChild: the parent's handle on a process made by fork(), reaped
// through its pidfd (SIGCHLD, and a 1 s backstop that also keeps the loop
// alive while a child runs).
import { binding } from '../core/binding';
import { ContextError, invalidThis } from '../core/errors';
import { timeoutOf } from '../core/validate';
import { ExitInfo, exitInfo, unknownSignal, validSignal } from '../core/util';
import { onForkChild } from './child';

export type { ExitInfo };

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
