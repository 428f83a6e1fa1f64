// Message passing: Queue, SimpleQueue, JoinableQueue, Pipe()/Connection,
// in shared memory (docs/messaging.md).
export { Queue, SimpleQueue, JoinableQueue } from './queue';
export type { QueueOptions } from './queue';
export { Connection, Pipe, makePipe } from './pipe';
