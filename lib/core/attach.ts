// attach(handle): re-creates a primitive in this process or thread from the
// plain object its handle() returned (possibly after JSON round trips). The
// class comes from the registry (core/registry.ts), as the handle's context
// has it.
import { badHandle } from './errors';
import { constructAttached } from './primitive';
import { contextClass, getStartMethods, typeClass } from './registry';
import { checkBaseHandle } from './runtime';

export function attach<T = unknown>(handle: unknown): T {
  let h = handle;
  if (typeof h === 'string') {
    try {
      h = JSON.parse(h);
    } catch {
      throw badHandle('not JSON');
    }
  } else if (h !== null && typeof h === 'object') {
    // A handle is plain data: copied once, so that getters or a Proxy cannot
    // pass the checks below and then answer differently when the fields are used.
    try {
      h = JSON.parse(JSON.stringify(h));
    } catch {
      throw badHandle('not plain data (it cannot be copied as JSON)');
    }
  }
  const b = checkBaseHandle(h);
  const C = typeof b.type === 'string' ? typeClass(b.type) : undefined;
  if (!C) throw badHandle(`unknown type '${String(b.type)}'`);
  if (!getStartMethods().includes(b.context)) throw badHandle(`context '${b.context}' is not available here`);
  return constructAttached(contextClass(C, b.context) as unknown as new () => T, b);
}
