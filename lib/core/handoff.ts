// Handing primitives to another process: args are walked, every primitive is
// replaced by its handle (after the Context rules are checked), the rest is
// structured-cloned by the child's bootstrap. The inverse runs in the child.
import { ContextError, ForksafeError } from './errors';
import type { StartMethod } from './layout';
import { isRegisteredObject } from './registry';
import type { BaseHandle } from './runtime';

const MARK = '__forksafe_handle__';

interface Marked {
  [MARK]: BaseHandle;
}

/** What the hand-off needs of a primitive or a SharedMemory (every registered class has it). */
interface Shareable {
  readonly closed: boolean;
  handle(): BaseHandle;
  _checkContext(target: StartMethod, where: string): void;
}

function isShareable(v: object): v is Shareable {
  return isRegisteredObject(v);
}

/**
 * Replaces primitives by marked handles. Throws ContextError (before anything
 * starts) for a primitive of another context, and a clear error for a closed one.
 * `fds` collects the parent's fds of every segment involved.
 */
export function toWire(args: unknown[], method: StartMethod, where: string, fds: Set<number>): unknown[] {
  const seen = new Map<object, unknown>();
  const collect = (h: BaseHandle & { lock?: BaseHandle }): void => {
    if (h.segment.fd >= 0) fds.add(h.segment.fd);
    if (h.lock) collect(h.lock);
  };
  const walk = (v: unknown, path: string): unknown => {
    if (v === null || typeof v !== 'object') return v;
    if (seen.has(v)) return seen.get(v);
    if (isShareable(v)) {
      v._checkContext(method, where);
      if (v.closed) throw new ForksafeError(`${path} is a closed ${v.constructor.name}`, 'ERR_FORKSAFE_CLOSED');
      const h = v.handle();
      collect(h);
      const m = { [MARK]: h };
      seen.set(v, m);
      return m;
    }
    if (Array.isArray(v)) {
      const out: unknown[] = [];
      seen.set(v, out);
      v.forEach((x, i) => out.push(walk(x, `${path}[${i}]`)));
      return out;
    }
    if (v instanceof Map) {
      const out = new Map();
      seen.set(v, out);
      for (const [k, x] of v) out.set(walk(k, `${path} key`), walk(x, `${path}.get(${String(k)})`));
      return out;
    }
    if (v instanceof Set) {
      const out = new Set();
      seen.set(v, out);
      for (const x of v) out.add(walk(x, `${path} entry`));
      return out;
    }
    const proto = Object.getPrototypeOf(v);
    if (proto === Object.prototype || proto === null) {
      const out: Record<string, unknown> = {};
      seen.set(v, out);
      for (const k of Object.keys(v)) out[k] = walk((v as Record<string, unknown>)[k], `${path}.${k}`);
      return out;
    }
    return v; // typed arrays, dates, errors...: the structured clone decides
  };
  return args.map((a, i) => walk(a, `args[${i}]`));
}

export function fromWire(v: unknown, attach: (h: unknown) => unknown): unknown {
  const seen = new Map<object, unknown>();
  const walk = (x: unknown): unknown => {
    if (x === null || typeof x !== 'object') return x;
    if (seen.has(x)) return seen.get(x);
    if (MARK in (x as object) && Object.keys(x as object).length === 1) {
      const p = attach((x as Marked)[MARK]);
      seen.set(x, p);
      return p;
    }
    if (Array.isArray(x)) {
      seen.set(x, x);
      for (let i = 0; i < x.length; i++) x[i] = walk(x[i]);
      return x;
    }
    if (x instanceof Map) {
      const out = new Map();
      seen.set(x, out);
      for (const [k, y] of x) out.set(walk(k), walk(y));
      return out;
    }
    if (x instanceof Set) {
      const out = new Set();
      seen.set(x, out);
      for (const y of x) out.add(walk(y));
      return out;
    }
    const proto = Object.getPrototypeOf(x);
    if (proto === Object.prototype || proto === null) {
      seen.set(x, x);
      for (const k of Object.keys(x)) (x as Record<string, unknown>)[k] = walk((x as Record<string, unknown>)[k]);
    }
    return x;
  };
  return walk(v);
}

export { ContextError };
