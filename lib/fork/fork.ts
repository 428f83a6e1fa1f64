// fork() of the running Node process. Read docs/fork.md: every hazard of
// forking Node and what is done about it. The rest of lib/fork: atfork.ts
// (hooks), safety.ts (forkSafety, forkFlags), child.ts (the child's fixups),
// leave.ts (a fork(main) child leaving its caller), children.ts (ForkedChild).
import * as util from 'node:util';
import { isMainThread } from 'node:worker_threads';
import { binding } from '../core/binding';
import { ForkUnsafeError, invalidArgType } from '../core/errors';
import { validateObject } from '../core/validate';
import { runHooks, runPrepareHooks } from './atfork';
import { forkSafety } from './safety';
import { rejectParentWaits, setUpChild, warmChildSetup } from './child';
import { leaveCaller, nodeInternals } from './leave';
import { ForkedChild } from './children';

/**
 * Forks this Node process. Without `main`: returns null in the child and a
 * ForkedChild in the parent. With `main`: the child runs it and exits when it
 * settles (its number, 0, or 1 if it throws); the parent gets the ForkedChild.
 */
export function fork(main?: () => unknown, opts?: { force?: boolean }): ForkedChild | null {
  if (main !== undefined && typeof main !== 'function') throw invalidArgType('main', 'of type function', main);
  validateObject('options', opts);
  const force = opts?.force;
  if (force !== undefined && typeof force !== 'boolean') throw invalidArgType('options.force', 'of type boolean', force);
  if (!isMainThread) throw new ForkUnsafeError(['fork() must be called from the main thread, not a worker_thread']);
  const safety = forkSafety();
  if (!safety.safe && !force) throw new ForkUnsafeError(safety.reasons);
  runPrepareHooks(); // a throw aborts: nothing forked
  warmChildSetup();
  if (main !== undefined) nodeInternals();
  const pid = binding.fork();
  if (pid !== 0) {
    const child = new ForkedChild(pid);
    runHooks('parent');
    return child;
  }
  try {
    setUpChild();
    runHooks('child');
  } catch (e) {
    // The child cannot be made safe (e.g. out of fds): it must not go on running
    // the parent's code as if it were the parent.
    try {
      process.stderr.write(`forksafe: fork() child set-up failed: ${util.inspect(e)}\n`);
    } finally {
      binding.exitNow(70);
    }
  }
  if (main === undefined) {
    rejectParentWaits();
    return null;
  }
  leaveCaller(main);
}
