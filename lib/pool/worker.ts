// The worker side of a Pool: the target every pool worker Process runs
// (dist/pool/worker.js, export `serve`). It loads the task module, runs the
// initializer, says it is ready, then runs tasks in the order they come on
// its Connection and answers each one, with its RSS. docs/pool.md.
import type { StartMethod } from '../core/layout';
import { loadForkedTarget } from '../core/util';
import type { Connection } from '../ipc/pipe';
import { decodeTask, encodeResult, KIND } from './wire';

export interface WorkerSpec {
  module: string;
  initializer: string | null;
  initArgs: unknown[];
  method: StartMethod;
  /** Report RSS with every answer (maxWorkerMemory is set): reading it costs ~8 us. */
  rss: boolean;
}

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
  const m = spec.method;
  let mod: Record<string, unknown>;
  try {
    mod = await loadForkedTarget(spec.module);
    if (spec.initializer) await resolveFn(mod, spec.initializer)(...spec.initArgs);
  } catch (e) {
    conn.send(encodeResult(0, KIND.INITFAIL, [errorInfo(e)], rss(), m));
    return 3;
  }
  const fns = new Map<string, (...a: unknown[]) => unknown>();
  conn.send(encodeResult(0, KIND.READY, [], rss(), m));
  for (;;) {
    // The next task is usually there already (the pool sends up to 32 at a
    // time while tasks queue up) or comes within microseconds: a short
    // synchronous wait (it spins, then sleeps at most IDLE_MS) takes it
    // without an event-loop round trip; after that the worker waits
    // asynchronously, so a task's timers run.
    let buf: Buffer;
    try {
      try {
        buf = conn.recv({ timeout: IDLE_MS }) as Buffer;
      } catch (e) {
        if ((e as { code?: string }).code !== 'ERR_FORKSAFE_QUEUE_EMPTY') throw e;
        buf = (await conn.recvAsync()) as Buffer;
      }
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_FORKSAFE_PEER_CLOSED') return 0; // the pool is gone
      throw e;
    }
    const { id, name, args } = decodeTask(buf);
    if (id === 0) return 0; // asked to exit
    let fn = fns.get(name);
    const out: unknown[] = [];
    let reply: Buffer;
    try {
      if (!fn) {
        fn = resolveFn(mod, name);
        fns.set(name, fn);
      }
      for (const arg of args) {
        let v = fn(arg);
        if (v !== null && typeof v === 'object' && typeof (v as PromiseLike<unknown>).then === 'function') v = await v;
        out.push(v);
      }
      reply = encodeResult(id, KIND.OK, out, spec.rss ? rss() : 0, m);
    } catch (e) {
      reply = encodeResult(id, KIND.ERROR, [errorInfo(e)], spec.rss ? rss() : 0, m);
    }
    conn.send(reply);
  }
}
