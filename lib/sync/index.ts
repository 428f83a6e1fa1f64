// The synchronization primitives and SharedMemory, in one import. Loading
// them registers each class with core/registry.ts (attach() and the hand-off
// find them there).
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
