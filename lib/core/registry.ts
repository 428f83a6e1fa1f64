// Start methods and the classes that make each handle type, known to core
// without importing them: every class module registers its class here when it
// loads (lib/sync/*), and a context's classes are subclasses made here, once
// per (class, method), that carry their method in a static marker
// (CONTEXT_OF). So `new ctx.Lock()` binds to ctx, `instanceof Lock` holds,
// and attach(), the hand-off and a Condition's lock all find the very class
// objects lib/context.ts puts in a context, with no import of lib/sync or of
// the context module from core.
import { ForksafeError, invalidArgType } from './errors';
import type { StartMethod } from './layout';

/** Static marker on a context's subclasses: which context `new` binds to. */
export const CONTEXT_OF = Symbol('forksafe.context');

export const METHODS: readonly StartMethod[] = ['fork', 'spawn', 'forkserver'];

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

/** Validates a start method argument (getContext's rules); returns it. */
export function checkMethod(method: unknown): StartMethod {
  if (method === undefined) return defaultMethod();
  if (typeof method !== 'string') throw invalidArgType('method', "one of 'fork', 'spawn', 'forkserver'", method);
  if (!METHODS.includes(method as StartMethod)) {
    const e = new TypeError(`The argument 'method' must be one of 'fork', 'spawn', 'forkserver'. Received '${String(method)}'`);
    (e as TypeError & { code: string }).code = 'ERR_INVALID_ARG_VALUE';
    throw e;
  }
  if (!getStartMethods().includes(method as StartMethod)) {
    throw new ForksafeError(
      `the '${method}' start method is not available in this release of forksafe (available: ${getStartMethods().join(', ')})`,
      'ERR_FORKSAFE_UNSUPPORTED',
    );
  }
  return method as StartMethod;
}

/** Which context `new C()` binds to: C's marker, else the default context. */
export function contextOf(ctor: unknown): StartMethod {
  const m = (ctor as { [CONTEXT_OF]?: StartMethod })[CONTEXT_OF];
  return m ?? defaultMethod();
}

type Ctor = abstract new (...args: never[]) => unknown;

// Handle type name ('Lock', 'SharedMemory'...) → the class that makes it.
const types = new Map<string, Ctor>();
// Base class → method → its subclass for that context.
const bound = new Map<Ctor, Map<StartMethod, Ctor>>();

/** Called by each class module as it loads: objects of `C` can be handed to processes and attached. */
export function registerType(name: string, C: Ctor): void {
  types.set(name, C);
}

/** The class registered for a handle type, or undefined. */
export function typeClass(name: string): Ctor | undefined {
  return types.get(name);
}

/** Whether `v` is an object of a registered class (a primitive or a SharedMemory). */
export function isRegisteredObject(v: object): boolean {
  for (const C of types.values()) if (v instanceof C) return true;
  return false;
}

/** `Base` as the class of context `method`: Base itself for the default context, else its subclass. */
export function contextClass<T extends Ctor>(Base: T, method: StartMethod): T {
  if (method === defaultMethod()) return Base;
  let m = bound.get(Base);
  if (!m) bound.set(Base, (m = new Map()));
  let Sub = m.get(method);
  if (!Sub) {
    Sub = class extends (Base as unknown as new (...args: unknown[]) => object) {};
    Object.defineProperty(Sub, CONTEXT_OF, { value: method });
    Object.defineProperty(Sub, 'name', { value: Base.name });
    m.set(method, Sub);
  }
  return Sub as T;
}
