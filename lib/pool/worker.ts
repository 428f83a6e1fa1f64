// The worker side of a Pool: the target every pool worker Process runs
// (dist/pool/worker.js, export `serve`). It loads the task module, runs the
// initializer, says it is ready, then runs tasks in the order they come on
// its Connection and answers each one, with its RSS. docs/pool.md.
import { loadForkedTarget } from '../core/util';
import type { Connection } from '../ipc/pipe';

export interface WorkerSpec {
  module: string;
  initializer: string | null;
  initArgs: unknown[];
}

/** Messages parent -> worker: [id, exportName, args] (a chunk: args is an array of arguments), or [0, 'exit']. */
export type ToWorker = [number, string, unknown[]] | [0, 'exit'];
/** Messages worker -> parent: [id, 1, values, rss] | [id, 0, error, rss] | [0, 'ready', null, rss] | [0, 'initfail', error, rss]. */
export type FromWorker = [number, number | string, unknown, number];

export interface ErrorInfo {
  name: string;
  message: string;
  stack?: string;
  code?: unknown;
  props?: Record<string, unknown>;
}

export function errorInfo(e: unknown): ErrorInfo {
  if (e instanceof Error) {
    const props: Record<string, unknown> = {};
    for (const k of Object.keys(e)) {
      if (k === 'code' || k === 'name' || k === 'message' || k === 'stack') continue;
      const v = (e as unknown as Record<string, unknown>)[k];
      if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) props[k] = v;
    }
    return { name: e.name, message: e.message, stack: e.stack, code: (e as { code?: unknown }).code, props };
  }
  return { name: 'Error', message: `a non-Error was thrown: ${String(e)}` };
}

const rss = (): number => process.memoryUsage.rss();
const IDLE_MS = 1;

function resolveFn(mod: Record<string, unknown>, name: string): (...a: unknown[]) => unknown {
  const f = name === 'default' ? (typeof mod.default === 'function' ? mod.default : mod) : mod[name];
  if (typeof f !== 'function') throw new TypeError(`the task module has no function export '${name}'`);
  return f as (...a: unknown[]) => unknown;
}

export async function serve(conn: Connection, spec: WorkerSpec): Promise<number> {
  let mod: Record<string, unknown>;
  try {
    mod = await loadForkedTarget(spec.module);
    if (spec.initializer) await resolveFn(mod, spec.initializer)(...spec.initArgs);
  } catch (e) {
    conn.send([0, 'initfail', errorInfo(e), rss()]);
    return 3;
  }
  const fns = new Map<string, (...a: unknown[]) => unknown>();
  conn.send([0, 'ready', null, rss()]);
  for (;;) {
    // The next task is usually there already (the pool sends two at a time)
    // or comes within microseconds: a short synchronous wait (it spins, then
    // sleeps at most IDLE_MS) takes it without an event-loop round trip;
    // after that the worker waits asynchronously, so a task's timers run.
    let m: ToWorker;
    try {
      try {
        m = conn.recv({ timeout: IDLE_MS }) as ToWorker;
      } catch (e) {
        if ((e as { code?: string }).code !== 'ERR_FORKSAFE_QUEUE_EMPTY') throw e;
        m = (await conn.recvAsync()) as ToWorker;
      }
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_FORKSAFE_PEER_CLOSED') return 0; // the pool is gone
      throw e;
    }
    if (m[0] === 0) return 0;
    const [id, name, chunk] = m as [number, string, unknown[]];
    let fn = fns.get(name);
    const out: unknown[] = [];
    try {
      if (!fn) {
        fn = resolveFn(mod, name);
        fns.set(name, fn);
      }
      for (const arg of chunk) {
        let v = fn(arg);
        if (v !== null && typeof v === 'object' && typeof (v as PromiseLike<unknown>).then === 'function') v = await v;
        out.push(v);
      }
      conn.send([id, 1, out, rss()]);
    } catch (e) {
      conn.send([id, 0, errorInfo(e), rss()]);
    }
  }
}
