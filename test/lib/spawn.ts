// The 'spawn' context's classes under the top-level names. Most test files
// were written for spawn-context Processes (stdio: 'pipe', execArgv) and the
// primitives handed to them; the default context is 'forkserver' on Linux
// (tested in test/forkserver.ts), so they import their classes from here.
import {
  getContext,
  Lock as L, RLock as RL, Semaphore as S, BoundedSemaphore as BS, Event as E, Condition as C,
  Barrier as B, SharedMemory as SM, Process as P,
} from '../../dist/index.js';

const ctx = getContext('spawn');
export const Lock: typeof L = ctx.Lock;
export type Lock = L;
export const RLock: typeof RL = ctx.RLock;
export type RLock = RL;
export const Semaphore: typeof S = ctx.Semaphore;
export type Semaphore = S;
export const BoundedSemaphore: typeof BS = ctx.BoundedSemaphore;
export type BoundedSemaphore = BS;
export const Event: typeof E = ctx.Event;
export type Event = E;
export const Condition: typeof C = ctx.Condition;
export type Condition = C;
export const Barrier: typeof B = ctx.Barrier;
export type Barrier = B;
export const SharedMemory: typeof SM = ctx.SharedMemory;
export type SharedMemory = SM;
export const Process: typeof P = ctx.Process as typeof P;
export type Process = P;
