// attach(handle): re-creates a primitive in this process or thread from the
// plain object its handle() returned (possibly after JSON round trips).
import { badHandle } from './errors';
import { getContext, getStartMethods } from './context';

const TYPES = ['Lock', 'RLock', 'Semaphore', 'BoundedSemaphore', 'Event', 'Condition', 'Barrier', 'SharedMemory'];
import { constructAttached } from './primitive';
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
  if (!TYPES.includes(b.type)) throw badHandle(`unknown type '${String(b.type)}'`);
  if (!getStartMethods().includes(b.context)) throw badHandle(`context '${b.context}' is not available here`);
  const C = (getContext(b.context) as unknown as Record<string, unknown>)[b.type];
  return constructAttached(C as new () => T, b);
}
