// Pool: a process pool on Process and Pipe (docs/pool.md).
export { Pool } from './pool';
export type { PoolOptions, RunOptions } from './pool';
