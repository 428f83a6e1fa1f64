// Contexts: namespaces of classes bound to a start method. The top-level
// classes are the default context's; another context's classes are
// subclasses that carry their method in a static marker (CONTEXT_OF), so
// `new ctx.Lock()` binds to ctx and `instanceof Lock` still holds.
import { ForksafeError, invalidArgType } from './errors';
import { StartMethod } from './layout';

/* Classes are required lazily: they import this module. */
/* eslint-disable @typescript-eslint/no-require-imports */
function classes() {
  return {
    ...(require('./lock') as typeof import('./lock')),
    ...(require('./semaphore') as typeof import('./semaphore')),
    ...(require('./event') as typeof import('./event')),
    ...(require('./condition') as typeof import('./condition')),
    ...(require('./barrier') as typeof import('./barrier')),
    ...(require('./shared-memory') as typeof import('./shared-memory')),
    ...(require('./process') as typeof import('./process')),
    ...(require('./primitive') as typeof import('./primitive')),
  };
}

type C = ReturnType<typeof classes>;

export interface Context {
  readonly method: StartMethod;
  readonly Lock: C['Lock'];
  readonly RLock: C['RLock'];
  readonly Semaphore: C['Semaphore'];
  readonly BoundedSemaphore: C['BoundedSemaphore'];
  readonly Event: C['Event'];
  readonly Condition: C['Condition'];
  readonly Barrier: C['Barrier'];
  readonly SharedMemory: C['SharedMemory'];
  readonly Process: C['Process'] | C['ForkProcess'];
}

const METHODS: readonly StartMethod[] = ['fork', 'spawn', 'forkserver'];
const contexts = new Map<StartMethod, Context>();

/** The start method used when none is named: 'forkserver' on Linux (the only platform shipped so far). */
export function defaultMethod(): StartMethod {
  return process.platform === 'linux' ? 'forkserver' : 'spawn';
}

/**
 * Start methods usable here: 'forkserver' (workers forked from a pre-warmed
 * zygote), 'spawn' (a fresh node), and 'fork' (fork() of this process; needs
 * node --single-threaded).
 */
export function getStartMethods(): StartMethod[] {
  return process.platform === 'linux' ? ['forkserver', 'spawn', 'fork'] : ['spawn'];
}

function bind<T extends abstract new (...args: never[]) => unknown>(Base: T, method: StartMethod, marker: symbol): T {
  const Sub = class extends (Base as unknown as new (...args: unknown[]) => object) {};
  Object.defineProperty(Sub, marker, { value: method });
  Object.defineProperty(Sub, 'name', { value: Base.name });
  return Sub as unknown as T;
}

export function getContext(method?: StartMethod): Context {
  if (method === undefined) method = defaultMethod();
  if (typeof method !== 'string') throw invalidArgType('method', "one of 'fork', 'spawn', 'forkserver'", method);
  let ctx = contexts.get(method);
  if (ctx) return ctx;
  if (!METHODS.includes(method)) {
    const e = new TypeError(`The argument 'method' must be one of 'fork', 'spawn', 'forkserver'. Received '${String(method)}'`);
    (e as TypeError & { code: string }).code = 'ERR_INVALID_ARG_VALUE';
    throw e;
  }
  if (!getStartMethods().includes(method)) {
    throw new ForksafeError(
      `the '${method}' start method is not available in this release of forksafe (available: ${getStartMethods().join(', ')})`,
      'ERR_FORKSAFE_UNSUPPORTED',
    );
  }
  const k = classes();
  const isDefault = method === defaultMethod();
  const b = <T extends abstract new (...args: never[]) => unknown>(Base: T): T =>
    (isDefault ? Base : bind(Base, method as StartMethod, k.CONTEXT_OF));
  const m = method;
  const obj = {
    method: m,
    Lock: b(k.Lock),
    RLock: b(k.RLock),
    Semaphore: b(k.Semaphore),
    BoundedSemaphore: b(k.BoundedSemaphore),
    Event: b(k.Event),
    Condition: b(k.Condition),
    Barrier: b(k.Barrier),
    SharedMemory: b(k.SharedMemory),
  } as Record<string, unknown>;
  if (m === 'fork') {
    obj.Process = k.ForkProcess;
  } else {
    obj.Process = b(k.Process); // 'spawn' and 'forkserver': one class, the start differs
  }
  ctx = Object.freeze(obj) as unknown as Context;
  contexts.set(method, ctx);
  return ctx;
}
