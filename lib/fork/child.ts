// The fork() child's fixups: its own pid, token and randomness, an _exit on
// every way out, synchronous stdio, and what other modules register with
// onForkChild(). docs/fork.md, hazards 5-10.
import * as crypto from 'node:crypto';
import * as util from 'node:util';
import { binding } from '../core/binding';
import { ContextError, invalidArgType } from '../core/errors';
import { setToken } from '../core/runtime';
import { forgetAfterFork } from '../core/async';
import { forgetWorkers } from './safety';

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
export function warmChildSetup(): void {
  if (warmed) return;
  warmed = true;
  for (let k = 0; k < 24; k++) drainRandomCaches();
  freshRandom(); // compiled here, not in each child
}

export function setUpChild(): void {
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
  forgetWorkers();
  for (const fn of childSetups) fn();
}

// The parent's async waits, copied into the child, reject there with
// ContextError. A fork(main) child does it once it has left the caller's
// frames (the termination drops the microtask queue, and with it the
// reactions to promises settled before it).
export function rejectParentWaits(): void {
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

export function isForkedChild(): boolean {
  return forked;
}
