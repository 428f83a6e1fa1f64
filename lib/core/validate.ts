// Argument validation for the public surface. Messages name the parameter,
// what was expected and what was received (Node's conventions).
import { types } from 'node:util';
import { invalidArgType, outOfRange } from './errors';

export function validateObject(name: string, value: unknown): void {
  if (value !== undefined && (value === null || typeof value !== 'object' || isArray(value))) {
    throw invalidArgType(name, 'of type object', value);
  }
}

function isArray(value: unknown): boolean {
  try {
    return Array.isArray(value);
  } catch {
    return true; // a revoked Proxy: not an object whose properties can be read
  }
}

/**
 * The longest timeout the kernel can express (KTIME_MAX, 2^63 - 1 ns, in ms:
 * about 292 years); native/core/platform.h's kForeverMs. A timeout at or
 * beyond it waits forever, exactly as Infinity does.
 */
export const FOREVER_MS = 9223372036854.775807;

/** Timeout in ms: undefined/Infinity (or >= FOREVER_MS) = forever (-1 for native), 0 = try once. */
export function timeoutOf(opts: unknown, name = 'options'): number {
  if (opts === undefined) return -1;
  validateObject(name, opts);
  const t = (opts as { timeout?: unknown }).timeout;
  return parseTimeout(t, `${name}.timeout`);
}

export function parseTimeout(t: unknown, name: string): number {
  if (t === undefined) return -1;
  if (typeof t !== 'number') throw invalidArgType(name, 'of type number', t);
  if (Number.isNaN(t) || t < 0) throw outOfRange(name, '>= 0 (milliseconds) or Infinity', t);
  return t >= FOREVER_MS ? -1 : t; // Infinity too: the one place a timeout becomes "forever"
}

export function validateInteger(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!Number.isInteger(value)) throw outOfRange(name, 'an integer', value);
  if (value < min || value > max) throw outOfRange(name, `>= ${min} and <= ${max}`, value);
  return value;
}

export function validateBoolean(name: string, value: unknown): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') throw invalidArgType(name, 'of type boolean', value);
  return value as boolean | undefined;
}

// AbortSignal's own accessors and EventTarget's listener methods, taken once:
// a signal's state is read and its listener added through them, never through
// properties of the object itself (an own `aborted` getter or
// `addEventListener` on a real signal would otherwise run user code between
// the checks and the wait they guard).
const abortedOf = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'aborted')!.get as (this: AbortSignal) => boolean;
const reasonOf = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'reason')!.get as (this: AbortSignal) => unknown;
const addListener = EventTarget.prototype.addEventListener;
const removeListener = EventTarget.prototype.removeEventListener;

/**
 * options.signal: undefined, or a real AbortSignal of this realm (brand
 * checked: its prototype is AbortSignal.prototype, it is not a Proxy, and
 * AbortSignal's own `aborted` getter accepts it). Anything else, a look-alike
 * `{ aborted: false }` included, is ERR_INVALID_ARG_TYPE.
 */
export function validateSignal(name: string, value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (value !== null && typeof value === 'object' && !types.isProxy(value) &&
      Object.getPrototypeOf(value) === AbortSignal.prototype) {
    try {
      abortedOf.call(value as AbortSignal); // throws ERR_INVALID_THIS for a forgery
      return value as AbortSignal;
    } catch {
      // fall through
    }
  }
  throw invalidArgType(name, 'an instance of AbortSignal', value);
}

/** Whether a validated signal is aborted (AbortSignal's own getter). */
export function signalAborted(signal: AbortSignal | undefined): boolean {
  return signal !== undefined && abortedOf.call(signal);
}

/** A validated signal's reason (AbortSignal's own getter). */
export function signalReason(signal: AbortSignal): unknown {
  return reasonOf.call(signal);
}

export function onAbort(signal: AbortSignal, fn: () => void): void {
  addListener.call(signal, 'abort', fn, { once: true });
}

export function offAbort(signal: AbortSignal, fn: () => void): void {
  removeListener.call(signal, 'abort', fn);
}

export function validateFunction(name: string, value: unknown): asserts value is (...a: unknown[]) => unknown {
  if (typeof value !== 'function') throw invalidArgType(name, 'of type function', value);
}
