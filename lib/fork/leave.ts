// How a fork(main) child leaves the code that called fork() (docs/fork.md,
// hazard 19).
import * as asyncHooks from 'node:async_hooks';
import * as util from 'node:util';
import { binding } from '../core/binding';
import { exitCodeOf } from '../core/util';
import { ForkChildUnwind, rejectParentWaits } from './child';

// ---- leaving the caller's code in a fork(main) child ---------------------------------
// A fork(main) child must run none of the code that called fork(): no catch, no
// finally, no continuation of an awaiting caller. A JavaScript exception cannot
// give that (every catch and finally on the stack sees it), so the child leaves
// with V8's termination (binding.terminate(): Isolate::TerminateExecution, what
// worker.terminate() uses): an exception no catch and no finally sees, which
// unwinds every JS frame down to the native code that called into JS and ends
// there (V8 clears it once no JS frame is left; a microtask checkpoint it
// crosses drops its queue). `main` runs after that, from the event loop, on a
// stack with none of the caller on it. docs/fork.md, hazard 19.
//
// Node's own JS frames that the termination skips leave two things undone that
// Node does for an uncaught exception (its handler clears the async id stack,
// the timers' `finally` blocks move the immediate queue on). The child does
// them itself, with two internals read once in the parent (below):
// - the async id stack: timers and immediates push their async context in JS
//   and pop it after the callback; skipped, the native pop that follows finds
//   the wrong id and Node aborts ("async hook stack has become corrupted").
//   clearAsyncIdStack() (what Node's uncaught-exception handler calls) empties
//   it, and a native pop on an empty stack is a no-op.
// - an immediate that was not the first of its batch: processImmediate() would
//   start again from it (its `finally` never moved outstandingQueue on) and
//   fail on it; it is made a no-op that runs once more, and the immediate count
//   that run takes again is given back.
interface NodeInternals {
  clearAsyncIdStack(): void;
  resources: unknown[]; // the resources whose async context JS pushed (timers, immediates...)
  immediateInfo: Uint32Array;
  kCount: number;
  Immediate: abstract new (...a: never[]) => object;
  Timeout: abstract new (...a: never[]) => object;
}

let internals: NodeInternals | null | undefined; // undefined: not looked up yet

/** Reads a function's closure variables through an in-process inspector session. */
function closureVars(session: import('node:inspector').Session, fn: unknown, names: string[]): Record<string, unknown> {
  const post = (method: string, params: object): Record<string, unknown> => {
    let result: Record<string, unknown> | undefined;
    let error: Error | null = null;
    // An in-process session answers synchronously.
    (session.post as (m: string, p: object, cb: (e: Error | null, r: Record<string, unknown>) => void) => void)(
      method, params, (e, r) => { error = e; result = r; });
    if (error) throw error;
    if (!result) throw new Error(`inspector ${method}: no answer`);
    return result;
  };
  const slot = globalThis as { __forksafeInternal?: unknown };
  const out: Record<string, unknown> = {};
  try {
    slot.__forksafeInternal = fn;
    const fnId = (post('Runtime.evaluate', { expression: 'globalThis.__forksafeInternal' }).result as { objectId: string }).objectId;
    const internal = post('Runtime.getProperties', { objectId: fnId, ownProperties: true }).internalProperties as
      Array<{ name: string; value: { objectId?: string } }>;
    const scopesId = internal.find((p) => p.name === '[[Scopes]]')?.value.objectId;
    if (!scopesId) return out;
    const scopes = post('Runtime.getProperties', { objectId: scopesId, ownProperties: true }).result as
      Array<{ value?: { objectId?: string; description?: string } }>;
    for (const sc of scopes) {
      if (!sc.value?.objectId || /^Global/.test(sc.value.description ?? '')) continue;
      const vars = post('Runtime.getProperties', { objectId: sc.value.objectId, ownProperties: true }).result as
        Array<{ name: string; value?: { objectId?: string; value?: unknown } }>;
      for (const v of vars) {
        if (!names.includes(v.name) || v.name in out || !v.value) continue;
        if (v.value.objectId) {
          post('Runtime.callFunctionOn', {
            objectId: v.value.objectId,
            functionDeclaration: 'function () { globalThis.__forksafeInternal = this; }',
          });
          out[v.name] = slot.__forksafeInternal;
        } else {
          out[v.name] = v.value.value;
        }
      }
    }
    return out;
  } finally {
    delete slot.__forksafeInternal;
  }
}

/** Looks the internals up once (in the parent, ~3 ms); null where they are not found. */
export function nodeInternals(): NodeInternals | null {
  if (internals !== undefined) return internals;
  internals = null;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const inspector = require('node:inspector') as typeof import('node:inspector');
    const session = new inspector.Session();
    session.connect();
    try {
      const a = closureVars(session, asyncHooks.executionAsyncId, ['async_wrap', 'execution_async_resources']);
      const timeout = setTimeout(() => {}, 1);
      clearTimeout(timeout);
      const probe = setImmediate(() => {});
      clearImmediate(probe);
      const Immediate = probe.constructor as NodeInternals['Immediate'];
      const t = closureVars(session, (Immediate.prototype as { ref: unknown }).ref, ['immediateInfo', 'kCount']);
      const asyncWrap = a.async_wrap as { clearAsyncIdStack?: unknown } | undefined;
      if (typeof asyncWrap?.clearAsyncIdStack === 'function' && Array.isArray(a.execution_async_resources) &&
          t.immediateInfo instanceof Uint32Array && typeof t.kCount === 'number') {
        const clear = asyncWrap.clearAsyncIdStack as () => void;
        internals = {
          clearAsyncIdStack: () => clear.call(asyncWrap),
          resources: a.execution_async_resources,
          immediateInfo: t.immediateInfo,
          kCount: t.kCount,
          Immediate,
          Timeout: timeout.constructor as NodeInternals['Timeout'],
        };
      }
    } finally {
      session.disconnect();
    }
  } catch {
    internals = null;
  }
  return internals;
}

function runMain(main: () => unknown): void {
  let result: unknown;
  try {
    result = main();
  } catch (e) {
    if (e instanceof ForkChildUnwind) throw e; // main forked again: this is the grandchild
    process.stderr.write(`${util.inspect(e)}\n`);
    process.exit(1);
  }
  if (result === null || (typeof result !== 'object' && typeof result !== 'function') ||
      typeof (result as PromiseLike<unknown>).then !== 'function') {
    process.exit(exitCodeOf(result));
  }
  (result as PromiseLike<unknown>).then(
    (v) => process.exit(exitCodeOf(v)),
    (e) => {
      if (e instanceof ForkChildUnwind) return; // main forked again: this is the grandchild
      process.stderr.write(`${util.inspect(e)}\n`);
      process.exit(1);
    },
  );
}

export function leaveCaller(main: () => unknown): never {
  const nodeInt = internals; // looked up in the parent before forking
  if (!nodeInt) {
    // Without the internals the child cannot end the caller's frames cleanly:
    // it runs main here and unwinds with an exception (the caller's catch and
    // finally blocks see it).
    rejectParentWaits();
    runMain(main);
    throw new ForkChildUnwind();
  }
  // main runs from the event loop once the caller's frames are gone: at the
  // next tick Node runs, or the next check phase, whichever comes first.
  let started = false;
  const start = (): void => {
    if (started) return;
    started = true;
    clearImmediate(immediate);
    rejectParentWaits();
    runMain(main);
  };
  process.nextTick(start);
  const immediate = setImmediate(start);
  // The timers and immediates whose callbacks are on the stack being left.
  for (const r of new Set([...nodeInt.resources, asyncHooks.executionAsyncResource()])) {
    if (r instanceof nodeInt.Timeout) {
      // Its `finally` (re-arming an interval, or dropping the timer's ref) is
      // skipped: cleared, the child's timer count stays right and an
      // interval of the caller's does not fire again in the child.
      clearTimeout(r as unknown as NodeJS.Timeout);
    } else if (r instanceof nodeInt.Immediate) {
      const imm = r as { _idlePrev?: unknown; _destroyed?: boolean; _onImmediate?: unknown; _argv?: unknown };
      if (imm._idlePrev != null) {
        imm._destroyed = false;
        imm._onImmediate = () => {};
        imm._argv = undefined;
        nodeInt.immediateInfo[nodeInt.kCount]++;
      }
    }
  }
  nodeInt.clearAsyncIdStack();
  binding.terminate();
  // Termination takes effect at V8's next interrupt check: the first pass of
  // this loop. It never ends otherwise; the bound is only a last resort.
  for (let i = 0; i < 1e9; i++);
  throw new ForkChildUnwind();
}
