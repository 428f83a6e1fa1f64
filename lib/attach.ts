// attach(handle): re-creates a primitive in this process or thread from the
// plain object its handle() returned (possibly after JSON round trips).
import { badHandle } from './errors';
import { getContext } from './context';
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
  }
  const b = checkBaseHandle(h);
  const ctx = getContext(b.context);
  const C = (ctx as unknown as Record<string, unknown>)[b.type];
  const types = ['Lock', 'RLock', 'Semaphore', 'BoundedSemaphore', 'Event', 'Condition', 'Barrier', 'SharedMemory'];
  if (!types.includes(b.type) || typeof C !== 'function') throw badHandle(`unknown type '${b.type}'`);
  return constructAttached(C as new () => T, b);
}
