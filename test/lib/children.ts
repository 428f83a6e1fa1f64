// Shared by the test files that run fixture roles as spawn-context Processes.
// (In test/lib/, so tap does not run it as a test file.)
import * as fs from 'node:fs';
import type tap from 'tap';
import { Process } from './spawn';

export interface Child {
  proc: Process;
  stderr: () => string;
}

/**
 * Returns start(t, role, args): starts a role of `fixture` (a compiled
 * build/fixtures/*.js module) as a Process; the test's teardown SIGKILLs it if
 * still running and waits for it to be reaped.
 */
export function starter(fixture: string): (t: tap.Test, role: string, args: unknown[]) => Child {
  return (t, role, args) => {
    const proc = new Process({ target: { module: fixture, export: role }, args, stdio: 'pipe' }).start();
    let err = '';
    proc.stdout?.resume();
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
    t.teardown(async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await proc.exited;
    });
    return { proc, stderr: () => err };
  };
}

// The child's exit, or {code: null, signal: 'TIMEOUT'} (and a SIGKILL) after `ms`.
export async function exitOf(c: Child, ms = 15_000): Promise<{ code: number | null; signal: string | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<null>((res) => (timer = setTimeout(() => res(null), ms)));
  const r = await Promise.race([c.proc.exited, timedOut]);
  clearTimeout(timer);
  if (r) return r;
  c.proc.kill('SIGKILL');
  await c.proc.exited;
  return { code: null, signal: 'TIMEOUT' };
}

export const sleep = (ms: number): Promise<unknown> => new Promise((r) => setTimeout(r, ms));

// State letter of /proc/<pid>/stat (Z = zombie), or null when the pid is gone.
export function procState(pid: number): string | null {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

// Polls `pred` every `every` ms for at most `ms`; true once it holds.
export async function until(pred: () => boolean, ms: number, every = 10): Promise<boolean> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) return false;
    await sleep(every);
  }
  return true;
}

// `p`, or a rejection naming `what` after `ms` (so a hang fails instead of stalling the run).
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

// `p`'s value, or null after `ms`.
export async function settled<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([p, new Promise<null>((res) => (timer = setTimeout(() => res(null), ms)))]);
  clearTimeout(timer);
  return r;
}
