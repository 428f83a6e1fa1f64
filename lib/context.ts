// Contexts: namespaces of classes bound to a start method. The top-level
// classes are the default context's; another context's classes are
// subclasses that carry their method in a static marker (core/registry.ts),
// so `new ctx.Lock()` binds to ctx and `instanceof Lock` still holds.
// This module sits above the classes: it imports them, none imports it. It
// also gives every primitive and SharedMemory its `context` getter (the
// classes know only their method's name).
import { invalidThis } from './core/errors';
import { StartMethod } from './core/layout';
import { Primitive } from './core/primitive';
import { checkMethod, contextClass, defaultMethod, getStartMethods } from './core/registry';
import { Lock, RLock } from './sync/lock';
import { Semaphore, BoundedSemaphore } from './sync/semaphore';
import { Event } from './sync/event';
import { Condition } from './sync/condition';
import { Barrier } from './sync/barrier';
import { SharedMemory } from './sync/shared-memory';
import { Process, ForkProcess } from './process/process';
import { Queue, SimpleQueue, JoinableQueue } from './ipc/queue';
import { Connection, makePipe } from './ipc/pipe';

export { defaultMethod, getStartMethods };

export interface Context {
  readonly method: StartMethod;
  readonly Lock: typeof Lock;
  readonly RLock: typeof RLock;
  readonly Semaphore: typeof Semaphore;
  readonly BoundedSemaphore: typeof BoundedSemaphore;
  readonly Event: typeof Event;
  readonly Condition: typeof Condition;
  readonly Barrier: typeof Barrier;
  readonly SharedMemory: typeof SharedMemory;
  readonly Process: typeof Process | typeof ForkProcess;
  readonly Queue: typeof Queue;
  readonly SimpleQueue: typeof SimpleQueue;
  readonly JoinableQueue: typeof JoinableQueue;
  /** A pipe of this context: [a, b]; duplex false: a only receives, b only sends. */
  readonly Pipe: (duplex?: boolean) => [Connection, Connection];
}

const contexts = new Map<StartMethod, Context>();

export function getContext(method?: StartMethod): Context {
  const m = checkMethod(method);
  let ctx = contexts.get(m);
  if (ctx) return ctx;
  ctx = Object.freeze({
    method: m,
    Lock: contextClass(Lock, m),
    RLock: contextClass(RLock, m),
    Semaphore: contextClass(Semaphore, m),
    BoundedSemaphore: contextClass(BoundedSemaphore, m),
    Event: contextClass(Event, m),
    Condition: contextClass(Condition, m),
    Barrier: contextClass(Barrier, m),
    SharedMemory: contextClass(SharedMemory, m),
    // 'spawn' and 'forkserver': one class, the start differs; 'fork': its own.
    Process: m === 'fork' ? ForkProcess : contextClass(Process, m),
    Queue: contextClass(Queue, m),
    SimpleQueue: contextClass(SimpleQueue, m),
    JoinableQueue: contextClass(JoinableQueue, m),
    Pipe: (duplex?: boolean) => makePipe(m, duplex === undefined ? true : duplex),
  });
  contexts.set(m, ctx);
  return ctx;
}

declare module './core/primitive' {
  interface Primitive {
    /** The context that made this primitive. */
    readonly context: Context;
  }
}
declare module './ipc/queue' {
  interface Queue {
    /** The context that made this queue. */
    readonly context: Context;
  }
}
declare module './ipc/pipe' {
  interface Connection {
    /** The context that made this pipe. */
    readonly context: Context;
  }
}
declare module './sync/shared-memory' {
  interface SharedMemory {
    /** The context that made this SharedMemory. */
    readonly context: Context;
  }
}
Object.defineProperty(Primitive.prototype, 'context', {
  configurable: true,
  get(this: Primitive): Context {
    if (!Primitive._is(this)) throw invalidThis('a forksafe primitive');
    return getContext(this._method);
  },
});
Object.defineProperty(Queue.prototype, 'context', {
  configurable: true,
  get(this: Queue): Context {
    if (!Queue._isQueue(this)) throw invalidThis('Queue');
    return getContext(this._method);
  },
});
Object.defineProperty(Connection.prototype, 'context', {
  configurable: true,
  get(this: Connection): Context {
    if (!Connection._isConnection(this)) throw invalidThis('Connection');
    return getContext(this._method);
  },
});
Object.defineProperty(SharedMemory.prototype, 'context', {
  configurable: true,
  get(this: SharedMemory): Context {
    if (!SharedMemory._is(this)) throw invalidThis('SharedMemory');
    return getContext(this._method);
  },
});
