// Entry point of a 'spawn' child. Loads only the target module: the parent's
// main script is never re-run (Python's spawn re-imports __main__, a known
// trap). Reads its payload from fd 3, maps the segments inherited as fds,
// attaches the primitives in args, calls the target, exits with its result.
import * as fs from 'node:fs';
import * as v8 from 'node:v8';
import { pathToFileURL } from 'node:url';
import { binding } from './core/binding';
import { attach } from './core/attach';
import './context'; // registers every class and gives them their context getter
import { fromWire } from './core/handoff';
import { dynamicImport, exitCodeOf } from './core/util';
import type { BootPayload } from './process/process';


async function main(): Promise<number> {
  const payload = v8.deserialize(fs.readFileSync(3)) as BootPayload;
  fs.closeSync(3);
  if (payload.name) process.title = payload.name;
  const adopted: number[] = [];
  for (const fd of payload.fds) {
    const [st, seg] = binding.adoptFd(fd);
    if (st !== 0) throw new Error(`forksafe bootstrap: inherited fd ${fd} is not a forksafe segment (status ${st})`);
    adopted.push(seg);
  }
  const args = fromWire(payload.args, attach) as unknown[];
  for (const seg of adopted) binding.segRelease(seg); // attached objects hold their own views
  let ns: Record<string, unknown>;
  const spec = payload.module;
  const url = spec.startsWith('/') ? pathToFileURL(spec).href : spec;
  ns = (await dynamicImport(url)) as Record<string, unknown>;
  let fn: unknown;
  if (payload.export !== null) {
    fn = ns[payload.export] ?? (ns.default as Record<string, unknown> | undefined)?.[payload.export];
    if (typeof fn !== 'function') throw new TypeError(`forksafe: module '${spec}' has no exported function '${payload.export}'`);
  } else {
    const d = ns.default as { default?: unknown } | undefined;
    // CommonJS compiled from `export default fn` (TypeScript, Babel): exports.default = fn.
    fn = typeof d === 'function' ? d : (d && typeof d.default === 'function' ? d.default : undefined);
    if (typeof fn !== 'function') {
      throw new TypeError(`forksafe: module '${spec}' has no default export function; name one with target.export`);
    }
  }
  const result = await (fn as (...a: unknown[]) => unknown)(...args);
  // A number that is an exit code; else process.exitCode if the target set it; else 0.
  return exitCodeOf(result);
}

// Node runs no cleanup hooks on process.exit(): give back this process's slot
// references (and abandon locks still held) on 'exit' — whether the target
// returns or calls process.exit() itself.
process.on('exit', () => binding.releaseThreadRefs());
const exitWith = (code: number): never => process.exit(code);

main().then(
  (code) => exitWith(code),
  (err) => {
    console.error(err);
    exitWith(1);
  },
);
