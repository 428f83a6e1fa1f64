// Small helpers shared by the process-related modules.
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { invalidArgType } from './errors';

const SIGNUMS = os.constants.signals as Record<string, number>;
const SIGNAMES: Record<number, NodeJS.Signals> = Object.fromEntries(
  Object.entries(SIGNUMS).map(([k, v]) => [v, k as NodeJS.Signals]),
);

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** {code, signal number} from the binding -> {code, signal name}. */
export function exitInfo(r: { code: number | null; signal: number }): ExitInfo {
  return { code: r.code, signal: r.signal ? (SIGNAMES[r.signal] ?? null) : null };
}

export function signalNumber(signal: NodeJS.Signals | number): number | undefined {
  return typeof signal === 'number' ? signal : SIGNUMS[signal];
}

// A real dynamic import (tsc turns `import()` into require() under CommonJS),
// so that ESM targets work as well as CommonJS ones.
// eslint-disable-next-line @typescript-eslint/no-implied-eval
export const dynamicImport = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<unknown>;

// Module customization hooks (--import/--loader, or module.register()) run on
// a thread of their own. A forked process has no such thread: its import()
// would wait for it forever. These flags are the sign that hooks may exist.
const HOOK_FLAGS = /(^|\s|")--(import|loader|experimental-loader)([=\s]|$)/;

export function moduleHooksSuspected(): string | null {
  const flags = `${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`;
  const m = HOOK_FLAGS.exec(flags);
  return m ? `--${m[2]}` : null;
}

/**
 * require() refused an ES module: before Node 20.19 any ES module
 * (ERR_REQUIRE_ESM), since then one with top-level await (ERR_REQUIRE_ASYNC_MODULE).
 */
export function needsImport(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return code === 'ERR_REQUIRE_ESM' || code === 'ERR_REQUIRE_ASYNC_MODULE';
}

/**
 * Loads a Process target in a forked process (fork context, forkserver
 * worker): CommonJS with require() (synchronous, on this thread), ESM with
 * import() — refused with a clear error where module hooks may be running,
 * since their thread did not survive the fork and import() would never finish.
 */
export async function loadForkedTarget(spec: string): Promise<Record<string, unknown>> {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const m = require(spec) as unknown;
    // Shaped like import()'s namespace of a CommonJS module: `default` is module.exports.
    if (typeof m === 'function') return Object.assign({}, m as unknown as Record<string, unknown>, { default: m });
    if (m !== null && typeof m === 'object') return { ...(m as Record<string, unknown>), default: 'default' in m ? (m as { default: unknown }).default : m };
    return { default: m };
  } catch (e) {
    if (!needsImport(e)) throw e;
  }
  const flag = moduleHooksSuspected();
  if (flag) {
    throw new Error(
      `forksafe: '${spec}' is an ES module, and this process was forked from one started with ${flag} (module hooks, ` +
        'which Node runs on a thread of their own that a forked process does not have: import() would never finish). ' +
        "Make the target CommonJS, start node without module hooks, or use getContext('spawn').",
    );
  }
  return (await dynamicImport(require('node:url').pathToFileURL(spec).href)) as Record<string, unknown>;
}

/**
 * Replaces this process's environment the way a new process would get it:
 * every old variable unset, every value a string (setenv, so native code and
 * TZ see it too), as child_process does with `env`.
 */
export function replaceEnv(env: NodeJS.ProcessEnv): void {
  for (const k of Object.keys(process.env)) delete process.env[k];
  for (const [k, v] of Object.entries(env)) if (v !== undefined) process.env[k] = String(v);
}

/** A signal as a number, or undefined when it is not one this platform knows (0 is allowed: a check). */
export function validSignal(signal: NodeJS.Signals | number): number | undefined {
  const n = signalNumber(signal);
  if (n === undefined || !Number.isInteger(n)) return undefined;
  return n === 0 || SIGNAMES[n] !== undefined ? n : undefined;
}

/** Node's error for a signal it does not know (child_process's kill() throws the same). */
export function unknownSignal(signal: unknown): TypeError {
  const e = new TypeError(`Unknown signal: ${String(signal)}`);
  (e as TypeError & { code: string }).code = 'ERR_UNKNOWN_SIGNAL';
  return e;
}

/**
 * Node flags without those `drop` matches (and, for a flag `takesValue`
 * matches, its value given as the next argument). `bare` gives the flag text of
 * an item (NODE_OPTIONS tokens may be quoted).
 */
export function dropFlags(argv: string[], drop: RegExp, takesValue: RegExp, bare = (a: string): string => a): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const flag = bare(argv[i]);
    if (drop.test(flag)) {
      if (takesValue.test(flag)) i++; // skip its value
      continue;
    }
    out.push(argv[i]);
  }
  return out;
}

/** A module given as a file: URL (a URL object or a 'file:' string). */
export function isFileUrl(spec: unknown): boolean {
  return spec instanceof URL || (typeof spec === 'string' && spec.startsWith('file:'));
}

/**
 * Checks a module specifier of the API (a Process target, a preload): a
 * non-empty string or a file: URL. Returns it as a string (a URL as its path).
 */
export function moduleSpec(name: string, spec: unknown): string {
  if (isFileUrl(spec)) {
    try {
      return fileURLToPath(spec as URL | string);
    } catch {
      throw invalidArgType(name, "a path, a package name or a 'file:' URL", spec);
    }
  }
  if (typeof spec !== 'string' || spec === '') throw invalidArgType(name, "a path, a package name or a 'file:' URL", spec);
  return spec;
}

/**
 * A Process target's module as the parent resolves it: an absolute path, a
 * file: URL, a path starting with ./ or ../ — relative to process.cwd(), not
 * to the caller's file — or a package name (resolved from process.cwd() too).
 */
export function resolveModule(spec: string | URL): string {
  if (typeof spec !== 'string' || isFileUrl(spec)) return fileURLToPath(spec);
  if (path.isAbsolute(spec)) return spec;
  if (spec.startsWith('./') || spec.startsWith('../')) return path.resolve(spec);
  try {
    return require.resolve(spec, { paths: [process.cwd()] });
  } catch {
    return spec; // a bare name the child may still resolve; it reports if not
  }
}

/**
 * The code a Process target or a fork(main) child exits with for its result: a number that is an
 * exit code, else `process.exitCode` if it was set (the target set it), else 0.
 */
export function exitCodeOf(v: unknown): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 255) return v;
  const c = process.exitCode;
  const n = typeof c === 'string' && /^-?\d+$/.test(c) ? Number(c) : c;
  return typeof n === 'number' && Number.isInteger(n) ? n & 0xff : 0;
}
