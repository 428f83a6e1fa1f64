// Leaks: fds, mappings and the runtime's own counts return to their baseline
// after many primitives are closed or dropped; 10,000 primitives live at once
// under a 1024-fd limit; nothing is left in /dev/shm or in this process's maps
// after a SIGKILLed multi-process scenario; no zombie outlives `exited`.
import t from 'tap';
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  getContext,
} from '../dist/index.js';
import { Barrier, BoundedSemaphore, Condition, Event, Lock, Process, RLock, Semaphore, SharedMemory } from './lib/spawn';
import { procState, settled } from './lib/children';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const runtime = require('../dist/core/runtime.js') as { stats(): Record<string, number> };

const ROOT = path.join(__dirname, '..');
const TARGETS = path.join(ROOT, 'build', 'fixtures', 'misc-targets.js');
const MANY = path.join(ROOT, 'build', 'fixtures', 'misc-many.js');
const gc = (globalThis as { gc?: () => void }).gc;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Shared mappings made by forksafe: memfd arenas/segments, anonymous shared
// memory of the 'fork' context (shown as /dev/zero), persistent /dev/shm ones.
const FORKSAFE_MAP = /memfd:forksafe|\/dev\/zero \(deleted\)|\/dev\/shm\/forksafe\./;

interface Snapshot {
  fds: number;
  maps: number;
  forksafeMaps: number;
  stats: Record<string, number>;
}

function snapshot(): Snapshot {
  const maps = fs.readFileSync('/proc/self/maps', 'utf8').trimEnd().split('\n');
  return {
    fds: fs.readdirSync('/proc/self/fd').length,
    maps: maps.length,
    forksafeMaps: maps.filter((l) => FORKSAFE_MAP.test(l)).length,
    stats: runtime.stats(),
  };
}

async function collect(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    gc?.();
    await sleep(10);
  }
}

// Polls (gc + a tick) until the forksafe state is back to `base`, at most `ms`.
async function settle(base: Snapshot, ms: number): Promise<Snapshot> {
  const end = Date.now() + ms;
  let s = snapshot();
  // V8 hands freed heap pages back on a background thread (its unmapper), late on
  // a loaded machine: the total mapping count is waited for too, within the bound.
  while (Date.now() < end && (s.forksafeMaps !== base.forksafeMaps || JSON.stringify(s.stats) !== JSON.stringify(base.stats) ||
    s.maps > base.maps + MAPS_SLACK)) {
    gc?.();
    await sleep(20);
    s = snapshot();
  }
  return s;
}

// FDS_SLACK / MAPS_SLACK: node itself may open an fd or map a page meanwhile;
// forksafe's own mappings and counts must be exactly back.
const FDS_SLACK = 3;
const MAPS_SLACK = 40;

function compare(t: tap.Test, what: string, base: Snapshot, now: Snapshot): void {
  t.ok(now.fds <= base.fds + FDS_SLACK, `${what}: fds back to baseline (${base.fds} -> ${now.fds})`);
  t.ok(now.maps <= base.maps + MAPS_SLACK, `${what}: mapping count back to baseline (${base.maps} -> ${now.maps})`);
  t.equal(now.forksafeMaps, base.forksafeMaps, `${what}: forksafe mappings exactly back to baseline`);
  t.same(now.stats, base.stats, `${what}: runtime.stats() back to baseline`);
}

type Maker = [string, () => { close(): void }];

function makers(): Maker[] {
  const fork = getContext('fork');
  return [
    ['Lock', () => {
      const l = new Lock();
      l.acquire();
      l.release();
      return l;
    }],
    ['RLock', () => {
      const l = new RLock();
      l.acquire();
      l.acquire();
      l.release();
      l.release();
      return l;
    }],
    ['Semaphore', () => {
      const s = new Semaphore(1);
      s.acquire();
      s.release();
      return s;
    }],
    ['Semaphore undoOnExit', () => {
      const s = new Semaphore(1, { undoOnExit: true });
      s.acquire();
      s.release();
      return s;
    }],
    ['BoundedSemaphore', () => new BoundedSemaphore(2)],
    ['Event', () => {
      const e = new Event();
      e.set();
      e.wait({ timeout: 0 });
      return e;
    }],
    ['Condition', () => {
      const c = new Condition();
      c.acquire();
      c.notifyAll();
      c.release();
      return c;
    }],
    ['Condition(Lock)', () => {
      const l = new Lock();
      const c = new Condition(l);
      return { close: () => (c.close(), l.close()) };
    }],
    ['Barrier', () => {
      const b = new Barrier(1);
      b.wait({ timeout: 0 });
      return b;
    }],
    ['SharedMemory', () => {
      const s = new SharedMemory({ size: 4096 });
      new Uint8Array(s.buffer)[0] = 1;
      return s;
    }],
    ['fork Lock', () => new fork.Lock()],
    ['fork Event', () => new fork.Event()],
    ['fork SharedMemory', () => new fork.SharedMemory({ size: 100 })],
  ];
}

t.test('create and close 1,000 of each primitive: back to baseline', async (t) => {
  t.ok(gc, 'tests run with --expose-gc');
  // Warm-up: modules, per-thread state, and a V8 heap grown to what this loop
  // needs (Node 26's V8 maps ~45 more pages for it; the baseline is the steady state).
  for (const [, make] of makers()) for (let i = 0; i < 1000; i++) make().close();
  await collect();
  const base = snapshot();
  t.comment(`baseline: ${JSON.stringify(base)}`);
  for (const [name, make] of makers()) {
    for (let i = 0; i < 1000; i++) make().close();
    const s = snapshot();
    t.equal(s.forksafeMaps, base.forksafeMaps, `${name} x1000: no forksafe mapping left`);
    t.same(s.stats, base.stats, `${name} x1000: runtime.stats() at baseline`);
  }
  await collect();
  compare(t, 'after 13,000 create/close', base, snapshot());
});

t.test('drop 1,000 of each without close(): the GC gives everything back', async (t) => {
  const dropAll = () => {
    let held = 0;
    for (const [, make] of makers()) {
      for (let i = 0; i < 1000; i++) {
        const p = make();
        if (p) held++;
      }
    }
    return held;
  };
  // Warm-up: the V8 heap grown to what this workload needs, then given back.
  dropAll();
  await collect();
  const base = snapshot();
  t.equal(dropAll(), 13_000, 'made and dropped 13,000 primitives');
  // Some held locks dropped too: the backstop abandons them, no leak either.
  for (let i = 0; i < 100; i++) new Lock().acquire();
  const mid = snapshot();
  t.ok(mid.stats.views > base.stats.views || mid.forksafeMaps > base.forksafeMaps || mid.stats.mapped > base.stats.mapped,
    'before the GC something is still held (the test measures something)', { mid });
  const after = await settle(base, 10_000);
  compare(t, 'after gc()', base, after);
});

t.test('10,000 Locks, Events and Semaphores alive at once under ulimit -n 1024', async (t) => {
  const r = await new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => {
    const c = child_process.spawn('sh', ['-c', `ulimit -n 1024 && exec "${process.execPath}" "${MANY}" 10000`], {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), 60_000);
    c.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  t.same({ code: r.code, signal: r.signal }, { code: 0, signal: null }, 'the child created, used and closed 30,000 primitives', {
    stderr: r.stderr.slice(-2000),
  });
  let o: { limit: string; fdsBefore: number; fdsAlive: number; fdsAfter: number; alive: Record<string, number>; after: Record<string, number> };
  try {
    o = JSON.parse(r.stdout);
  } catch {
    t.fail('no report from the child', { stdout: r.stdout });
    return;
  }
  t.match(o.limit, /Max open files 1024 1024/, 'the child ran with a 1024-fd soft and hard limit', { limit: o.limit });
  t.ok(o.fdsAlive - o.fdsBefore <= 8, `30,000 live primitives use a handful of fds (${o.fdsAlive - o.fdsBefore})`);
  t.ok(o.alive.arenas >= 1 && o.alive.arenas <= 8, `in a few arenas (${o.alive.arenas})`);
  t.equal(o.after.mapped, 0, 'everything unmapped after close()');
  t.ok(o.fdsAfter <= o.fdsBefore, 'and the fds are back');
});



t.test('SIGKILL of every process of a multi-process scenario: nothing left behind', async (t) => {
  await collect();
  const base = snapshot();
  const shmBefore = fs.readdirSync('/dev/shm').sort();
  const locks = [new Lock(), new Lock(), new Lock()];
  const sem = new Semaphore(3, { undoOnExit: true });
  const ready = new Semaphore(0);
  const ev = new Event();
  const shm = new SharedMemory({ size: 4096 });
  const procs = locks.map((lock) =>
    new Process({ target: { module: TARGETS, export: 'holdForever' }, args: [lock, sem, ready, ev, shm], execArgv: [] }).start());
  t.teardown(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
  });
  for (let i = 0; i < procs.length; i++) t.ok(ready.acquire({ timeout: 20_000 }), `child ${i} holds its lock and a unit`);
  t.equal(Atomics.load(new Int32Array(shm.buffer), 0), 3, 'all three children mapped the SharedMemory');
  t.equal(sem.value, 0, 'the children hold every unit');
  for (const p of procs) p.kill('SIGKILL');
  const exits = await settled(Promise.all(procs.map((p) => p.exited)), 5000);
  t.not(exits, null, 'every child reported its exit');
  if (exits !== null) t.ok(exits.every((e) => e.signal === 'SIGKILL'), 'all died of SIGKILL');
  t.same(procs.map((p) => procState(p.pid as number)), procs.map(() => null), 'every child is gone from /proc (reaped)');
  // The survivors' view is consistent: dead owners detected, units given back.
  for (const [i, l] of locks.entries()) {
    try {
      l.acquire({ timeout: 5000 });
      t.fail(`lock ${i}: acquired without OwnerDiedError`);
    } catch (e) {
      t.equal((e as { code?: string }).code, 'ERR_FORKSAFE_OWNER_DIED', `lock ${i}: OwnerDiedError after its holder was killed`);
      l.markConsistent();
      l.release();
    }
  }
  sem.recover();
  t.equal(sem.value, 3, 'undoOnExit: the units of the killed children came back');
  for (const p of [...locks, sem, ready, ev, shm]) p.close();
  await collect();
  const after = snapshot();
  // Other test files may create and remove their own persistent segments
  // meanwhile: an entry counts only if it is still there a moment later.
  let added = fs.readdirSync('/dev/shm').filter((e) => !shmBefore.includes(e));
  for (let i = 0; i < 30 && added.length; i++) {
    await sleep(100);
    added = added.filter((e) => fs.existsSync(`/dev/shm/${e}`));
  }
  t.same(added, [], 'no new entries in /dev/shm');
  t.equal(after.forksafeMaps, base.forksafeMaps, "no forksafe mapping left in this process's maps");
  t.same(after.stats, base.stats, 'runtime.stats() back to baseline');
  t.ok(after.fds <= base.fds + FDS_SLACK, `fds back to baseline (${base.fds} -> ${after.fds})`);
});

t.test('no zombies: once `exited` resolved, /proc/<pid> is gone', async (t) => {
  const ready = new Semaphore(0);
  const ev = new Event();
  t.teardown(() => [ready, ev].forEach((p) => p.close()));
  const check = async (what: string, procs: Process[]) => {
    const r = await settled(Promise.all(procs.map((p) => p.exited)), 15_000);
    t.not(r, null, `${what}: every exited resolved`);
    // Read /proc in the same tick as the resolution: no time for a late reap.
    const states = procs.map((p) => procState(p.pid as number));
    t.same(states, procs.map(() => null), `${what}: no child left in /proc (a 'Z' is a zombie)`, { states });
  };
  const start = (exp: string, args: unknown[]) => {
    const p = new Process({ target: { module: TARGETS, export: exp }, args, stdio: 'pipe', execArgv: [] }).start();
    p.stdout?.resume();
    p.stderr?.resume();
    return p;
  };
  const all: Process[] = [];
  t.teardown(async () => {
    for (const p of all) p.kill('SIGKILL');
    await Promise.all(all.map((p) => p.exited));
  });

  const normal = [start('ret', [0]), start('ret', [3]), start('throwIt', ['zombie-test']), start('exitWith', [4])];
  all.push(...normal);
  await check('normal exits', normal);

  const killed = [0, 1, 2].map(() => start('signalReady', [ready, ev, 0]));
  all.push(...killed);
  for (let i = 0; i < killed.length; i++) ready.acquire({ timeout: 20_000 });
  for (const p of killed) p.kill('SIGKILL');
  await check('SIGKILLed', killed);

  const joined = [0, 1].map(() => start('ret', [1]));
  all.push(...joined);
  for (const p of joined) t.ok(p.join({ timeout: 15_000 }), 'join() saw the exit');
  const r = await settled(Promise.all(joined.map((p) => p.exited)), 15_000);
  const states = joined.map((p) => procState(p.pid as number));
  t.not(r, null, 'after join(): exited resolved');
  t.same(states, joined.map(() => null),
    `after join(): no child left in /proc once exited resolved${states.some((s) => s === 'Z') ? ' (LIBRARY BUG: join() settles `exited` before the child is reaped: it is still a zombie)' : ''}`,
    { states });
  await sleep(200);
  t.same(joined.map((p) => procState(p.pid as number)), joined.map(() => null), 'after join(): reaped shortly after');
});
