// forksafe: shared-memory primitives and processes for Node.js, with every
// primitive bound to the context that made it. See README.md and API.md.
// The declarations use Node's types (Buffer, NodeJS.Signals...): say where they
// come from, so a consumer with "types": [] still type-checks (@types/node is an
// optional peer dependency, as for any Node library).
/// <reference types="node" preserve="true" />
import { getContext } from './context';

export { getContext, getStartMethods } from './context';
export type { Context } from './context';
export type { StartMethod } from './core/layout';
export { Lock, RLock } from './sync/lock';
export type { AcquireOptions, LockGuard, LockHandle } from './sync/lock';
export { Semaphore, BoundedSemaphore } from './sync/semaphore';
export type { SemaphoreOptions } from './sync/semaphore';
export { Event } from './sync/event';
export type { WaitOptions } from './sync/event';
export { Condition } from './sync/condition';
export { Barrier } from './sync/barrier';
export type { BarrierOptions } from './sync/barrier';
export { SharedMemory } from './sync/shared-memory';
export type { SharedMemoryOptions } from './sync/shared-memory';
export { Process } from './process/process';
export type { ProcessOptions, ExitInfo, Target } from './process/process';
export { Queue, SimpleQueue, JoinableQueue, Connection, Pipe } from './ipc';
export type { QueueOptions } from './ipc';
export { Pool } from './pool';
export type { PoolOptions, RunOptions } from './pool';
export { attach } from './core/attach';
export { setForkserverPreload, startForkserver, stopForkserver, forkserverPid } from './process/forkserver';
export { fork, exit, atfork, forkSafety, forkFlags, ForkedChild, ForkChildUnwind } from './fork';
export type { AtforkHooks } from './fork';
export type { BaseHandle as Handle } from './core/runtime';
export {
  ForksafeError, ContextError, OwnerDiedError, NotOwnerError, DeadlockError, NotRecoverableError,
  ClosedError, ForkUnsafeError, BrokenBarrierError, TimeoutError,
  QueueEmptyError, QueueFullError, QueueShutDownError, PeerClosedError, CorruptError,
  WorkerDiedError, PoolClosedError, PoolBrokenError,
} from './core/errors';

// Instantiate the default context eagerly so its classes are the top-level ones.
getContext();
