// Argument validation for the public surface. Messages name the parameter,
// what was expected and what was received (Node's conventions).
import { invalidArgType, outOfRange } from './errors';

export function validateObject(name: string, value: unknown): void {
  if (value !== undefined && (value === null || typeof value !== 'object' || Array.isArray(value))) {
    throw invalidArgType(name, 'of type object', value);
  }
}

/** Timeout in ms: undefined/Infinity = forever (-1 for native), 0 = try once. */
export function timeoutOf(opts: unknown, name = 'options'): number {
  if (opts === undefined) return -1;
  validateObject(name, opts);
  const t = (opts as { timeout?: unknown }).timeout;
  return parseTimeout(t, `${name}.timeout`);
}

export function parseTimeout(t: unknown, name: string): number {
  if (t === undefined || t === Infinity) return -1;
  if (typeof t !== 'number') throw invalidArgType(name, 'of type number', t);
  if (Number.isNaN(t) || t < 0) throw outOfRange(name, '>= 0 (milliseconds) or Infinity', t);
  return t;
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

export function validateSignal(name: string, value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || typeof (value as AbortSignal).aborted !== 'boolean') {
    throw invalidArgType(name, 'an instance of AbortSignal', value);
  }
  return value as AbortSignal;
}

export function validateFunction(name: string, value: unknown): asserts value is (...a: unknown[]) => unknown {
  if (typeof value !== 'function') throw invalidArgType(name, 'of type function', value);
}
