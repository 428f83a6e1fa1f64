// forksafe: shared-memory primitives and processes for Node.js, with every
// primitive bound to the context that made it. See README.md and API.md.
// The declarations use Node's types (Buffer, NodeJS.Signals...): say where they
// come from, so a consumer with "types": [] still type-checks (@types/node is an
// optional peer dependency, as for any Node library).
/// <reference types="node" preserve="true" />
import { getContext } from './context';

export { getContext, getStartMethods } from './context';
export type { Context } from './context';
export type { StartMethod } from './layout';
export { Lock, RLock } from './lock';
export type { AcquireOptions, LockGuard, LockHandle } from './lock';
export { Semaphore, BoundedSemaphore } from './semaphore';
export type { SemaphoreOptions } from './semaphore';
export { Event } from './event';
export type { WaitOptions } from './event';
export { Condition } from './condition';
export { Barrier } from './barrier';
export type { BarrierOptions } from './barrier';
export { SharedMemory } from './shared-memory';
export type { SharedMemoryOptions } from './shared-memory';
export { Process } from './process';
export type { ProcessOptions, ExitInfo, Target } from './process';
export { attach } from './attach';
export { setForkserverPreload, startForkserver, stopForkserver, forkserverPid } from './forkserver';
export { fork, exit, atfork, forkSafety, forkFlags, ForkedChild, ForkChildUnwind } from './fork';
export type { AtforkHooks } from './fork';
export type { BaseHandle as Handle } from './runtime';
export {
  ForksafeError, ContextError, OwnerDiedError, NotOwnerError, DeadlockError, NotRecoverableError,
  ClosedError, ForkUnsafeError, BrokenBarrierError, TimeoutError,
} from './errors';

// Instantiate the default context eagerly so its classes are the top-level ones.
getContext();
