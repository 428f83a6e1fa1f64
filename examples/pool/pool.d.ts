// Types of pool.js (for TypeScript users and test/pool.ts).
import { EventEmitter } from 'node:events';

export interface PoolOptions {
  /** Path of the task module; every worker loads it once. */
  module: string;
  /** Its task function (default: the default export). */
  export?: string;
  /** Worker processes (default: one per CPU). */
  workers?: number;
  /** How many times a task whose worker died is run again (default 0). */
  retries?: number;
  /** The largest serialized task or result, in bytes (default 1 MiB). */
  mailboxBytes?: number;
  /** Start method of the workers (default 'forkserver'). */
  method?: 'forkserver' | 'spawn';
}

export class Pool extends EventEmitter {
  constructor(opts: PoolOptions);
  readonly size: number;
  /** Pids of the worker processes alive now. */
  readonly pids: number[];
  run<R = unknown>(task: unknown): Promise<R>;
  map<R = unknown>(tasks: Iterable<unknown>): Promise<R[]>;
  ready(): Promise<void>;
  close(opts?: { timeout?: number }): Promise<void>;
  terminate(): Promise<void>;
  on(event: 'spawn', listener: (pid: number) => void): this;
  on(event: 'exit', listener: (e: { pid: number; code: number | null; signal: NodeJS.Signals | null }) => void): this;
  on(event: 'retry', listener: (e: { taskId: number; pid: number; code: number | null; signal: NodeJS.Signals | null }) => void): this;
}

export class WorkerDiedError extends Error {
  readonly code: 'ERR_POOL_WORKER_DIED';
  readonly pid: number;
  readonly signal: NodeJS.Signals | null;
  readonly exitCode: number | null;
  readonly taskId: number;
}

export class PoolClosedError extends Error {
  readonly code: 'ERR_POOL_CLOSED';
}

export class WorkerStartError extends Error {
  readonly code: 'ERR_POOL_WORKER_START';
  readonly pid: number;
}
