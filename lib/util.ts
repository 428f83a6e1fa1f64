// Small helpers shared by the process-related modules.
import * as os from 'node:os';

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
