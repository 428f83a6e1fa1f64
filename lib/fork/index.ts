// fork(), atfork hooks, forkSafety()/forkFlags(), the child's fixups and
// ForkedChild (what lib/process and the public surface use of lib/fork).
export { fork } from './fork';
export { atfork } from './atfork';
export type { AtforkHooks } from './atfork';
export { forkSafety, forkFlags, stopNamingRequests } from './safety';
export { exit, ForkChildUnwind, onForkChild, isForkedChild } from './child';
export { ForkedChild } from './children';
export type { ExitInfo } from './children';
