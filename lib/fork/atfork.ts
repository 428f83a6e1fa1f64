// atfork(): hooks run around every fork() forksafe makes (prepare in reverse
// order of registration, then parent or child in order), as pthread_atfork.
import * as util from 'node:util';
import { invalidArgType } from '../core/errors';

export interface AtforkHooks {
  prepare?(): void;
  parent?(): void;
  child?(): void;
}

const hooks: AtforkHooks[] = [];

/** Registers hooks for forks made by forksafe. Returns a function that unregisters them. */
export function atfork(h: AtforkHooks): () => void {
  if (h === null || typeof h !== 'object') throw invalidArgType('hooks', 'of type object', h);
  for (const k of ['prepare', 'parent', 'child'] as const) {
    if (h[k] !== undefined && typeof h[k] !== 'function') throw invalidArgType(`hooks.${k}`, 'of type function', h[k]);
  }
  const entry = { prepare: h.prepare, parent: h.parent, child: h.child };
  hooks.push(entry);
  return () => {
    const i = hooks.indexOf(entry);
    if (i >= 0) hooks.splice(i, 1);
  };
}


/** Runs every prepare hook, the last registered first. A throw propagates: nothing is forked. */
export function runPrepareHooks(): void {
  for (let i = hooks.length - 1; i >= 0; i--) hooks[i].prepare?.();
}

export function runHooks(kind: 'parent' | 'child'): void {
  for (const h of [...hooks]) {
    const fn = h[kind];
    if (!fn) continue;
    try {
      fn();
    } catch (e) {
      process.emitWarning(`forksafe atfork ${kind} hook threw: ${util.inspect(e)}`);
    }
  }
}
