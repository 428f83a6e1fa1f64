// Garbage in every shared structure another process can write (arena slots,
// lock words, semaphore values and undo tables, events, condition and barrier
// state, SharedMemory and arena segment headers, the participant table, the
// forkserver's status table), between operations and while they run: every
// operation must then return or throw an
// Error with a code, in bounded time, without writing outside its slot. Each
// group runs in a child process (test/fixtures/fuzz-shared.ts) under a
// watchdog, so a crash or a hang fails here with the seed and the last
// operation instead of taking tap down.
//
// Deterministic: the seed of each group is printed. Replay one with
//   FORKSAFE_FUZZ_SEED=<seed> FORKSAFE_FUZZ_GROUP=<group> node scripts/run-tests.mjs test/fuzz-shared.ts
// and make a run longer with FORKSAFE_FUZZ_SCALE=<factor> (iterations x factor).
// Run under the sanitizers too: npm run test:sanitize.
import t from 'tap';
import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { forkFlags } from '../dist/index.js';

const ROOT = path.join(__dirname, '..');
const FIXTURE = path.join(ROOT, 'build', 'fixtures', 'fuzz-shared.js');

// Iterations per group in the normal suite (~20 s in all on an idle 2-core
// machine; more under the sanitizers).
const GROUPS: Array<[string, number]> = [
  ['lock', 600],
  ['semaphore', 500],
  ['event', 400],
  ['condition', 400],
  ['barrier', 300],
  ['shm', 400],
  ['segment', 200],
  ['participants', 80],
  ['forkserver', 12],
  // Rounds of 100 ms with a worker_thread writing garbage while the operations
  // run: the writes interleave as the scheduler has it, so a seed replays the
  // values, not the timing.
  ['race', 15],
];
const BASE_SEED = Number(process.env.FORKSAFE_FUZZ_SEED ?? 20240601);
const ONLY = process.env.FORKSAFE_FUZZ_GROUP;
const SCALE = Number(process.env.FORKSAFE_FUZZ_SCALE ?? 1);
// A group's child is killed (and the test fails as a hang) after this long.
const WATCHDOG_MS = Number(process.env.FORKSAFE_FUZZ_WATCHDOG_MS ?? 90_000) * Math.max(1, SCALE);

/** The seed of a group: the base seed when replaying one group, else derived from it. */
function seedOf(group: string): number {
  if (ONLY) return BASE_SEED;
  return (BASE_SEED + [...group].reduce((a, c) => (a * 31 + c.charCodeAt(0)) | 0, 7)) >>> 0;
}

// Children start without tap's loader hooks (the fixture is prebuilt JS).
function childEnv(trace: string): NodeJS.ProcessEnv {
  const opts = (process.env.NODE_OPTIONS ?? '').split(/\s+/).filter((a) => a && !a.includes('@tapjs'));
  return { ...process.env, NODE_OPTIONS: opts.join(' '), FUZZ_TRACE: trace };
}

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

function runGroup(group: string, seed: number, iterations: number, trace: string): Promise<Result> {
  const flags = group === 'participants' ? forkFlags() : [];
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = cp.spawn(process.execPath, [...flags, FIXTURE, group, String(seed), String(iterations)], {
      cwd: ROOT, env: childEnv(trace), stdio: ['ignore', 'pipe', 'pipe'], detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-(child.pid as number), 'SIGKILL'); // its forkserver and workers too
      } catch {
        child.kill('SIGKILL');
      }
    }, WATCHDOG_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, ms: Date.now() - t0 });
    });
  });
}

const lastLines = (s: string, n: number): string => s.trimEnd().split('\n').slice(-n).join('\n');

interface Summary {
  ops: number;
  outcomes: Record<string, number>;
  failures: Array<{ what: string; detail: string; where: string }>;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forksafe-fuzz-shared-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

for (const [group, n] of GROUPS) {
  if (ONLY && ONLY !== group) continue;
  const seed = seedOf(group);
  const iterations = Math.max(1, Math.round(n * SCALE));
  t.test(`${group}: garbage in its shared memory, every operation returns or throws a coded error (seed ${seed})`, async (t) => {
    t.comment(`replay: FORKSAFE_FUZZ_SEED=${seed} FORKSAFE_FUZZ_GROUP=${group} node scripts/run-tests.mjs test/fuzz-shared.ts`);
    const trace = path.join(dir, `${group}.trace`);
    const r = await runGroup(group, seed, iterations, trace);
    let tail = '';
    try {
      tail = lastLines(fs.readFileSync(trace, 'utf8'), 6);
    } catch {
      /* no trace */
    }
    const how = r.timedOut ? `hung (killed after ${WATCHDOG_MS} ms)` : r.signal ? `crashed (${r.signal})` : `exited with code ${r.code}`;
    t.ok(!r.timedOut && r.signal === null && r.code === 0,
      r.code === 0 && !r.timedOut ? `${iterations} iterations in ${(r.ms / 1000).toFixed(1)} s, the fuzzing process exited cleanly`
        : `LIBRARY BUG: the fuzzing process ${how}`,
      { seed, lastTraceLines: tail, stderr: lastLines(r.stderr, 15) });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    let s: Summary | null = null;
    try {
      s = JSON.parse(line) as Summary;
    } catch {
      /* no summary */
    }
    if (!s) {
      t.fail('no summary from the fuzzing process', { stdout: lastLines(r.stdout, 5) });
      return;
    }
    t.ok(s.ops >= iterations, `${s.ops} operations on corrupt shared state`);
    t.comment(`outcomes: ${JSON.stringify(s.outcomes)}`);
    t.same(s.failures, [], 'every operation returned or threw an Error with a code, in bounded time, and wrote only inside its slot');
  });
}
