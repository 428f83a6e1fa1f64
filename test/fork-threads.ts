// forkSafety() counts the threads really running (/proc/self/task), whatever
// started them: a Worker created in this tick (and holding a Lock), one started
// by a --require'd module before forksafe was loaded, the inspector's thread.
// Node's own idle threads (and forksafe's waiter threads) never cause a refusal,
// and a Worker that has exited is no longer counted. Each case is a program of
// its own, run with forkFlags() through env -i, on the Node running the suite.
import t from 'tap';
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { forkFlags } from '../dist/index.js';

const DIST = path.join(__dirname, '..', 'dist', 'index.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forksafe-threads-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

function run(name: string, body: string, flags: string[] = [], files: Record<string, string> = {}): Promise<{ code: number | null; out: Record<string, unknown>; stderr: string }> {
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text);
  const file = path.join(dir, `${name}.cjs`);
  fs.writeFileSync(file, `const DIST = ${JSON.stringify(DIST)};\nconst out = {};\nconst done = () => process.stdout.write(JSON.stringify(out));\n${body}\n`);
  return new Promise((resolve) => {
    const c = child_process.spawn('env', ['-i', `PATH=${process.env.PATH ?? ''}`, process.execPath, ...forkFlags(), ...flags, file], {
      cwd: dir, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), 30_000);
    c.on('close', (code) => {
      clearTimeout(timer);
      let out: Record<string, unknown> = {};
      try {
        out = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
      } catch {
        out = { unparsed: stdout };
      }
      resolve({ code, out, stderr });
    });
  });
}

t.jobs = 2;

t.test('a Worker created in the same tick, holding a Lock: refused, with and without the worker event', async (t) => {
  const r = await run('same-tick', `
    const { Lock, forkSafety, fork } = require(DIST);
    const { Worker } = require('node:worker_threads');
    const lock = new Lock();
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const w = new Worker(\`
      const { attach } = require(\${JSON.stringify(DIST)});
      const { workerData } = require('node:worker_threads');
      const l = attach(workerData.h);
      l.acquire();
      Atomics.store(workerData.flag, 0, 1); Atomics.notify(workerData.flag, 0);
      setTimeout(() => l.release(), 300);
    \`, { eval: true, workerData: { h: lock.handle(), flag } });
    // Still the same tick: Node has not emitted 'worker' nor 'online' yet.
    Atomics.wait(flag, 0, 0, 60000); // (under qemu a worker takes seconds to start)
    out.workerHolds = lock.locked();
    out.safety = forkSafety();
    try { fork(); out.forked = true; } catch (e) { out.forkError = { name: e.name, code: e.code }; }
    w.on('exit', () => {
      out.afterExit = forkSafety();
      done();
    });
  `);
  t.equal(r.code, 0, 'the program exited 0', { stderr: r.stderr });
  t.equal(r.out.workerHolds, true, 'the worker holds the lock');
  const s = r.out.safety as { safe: boolean; reasons: string[] };
  t.equal(s.safe, false, 'forkSafety(): not safe');
  t.match(s.reasons.join('\n'), /1 thread\(s\) running besides this one/, 'one thread running is the reason', { reasons: s.reasons });
  t.notOk(r.out.forked, 'fork() did not fork');
  t.same(r.out.forkError, { name: 'ForkUnsafeError', code: 'ERR_FORKSAFE_FORK_UNSAFE' }, 'fork() throws ForkUnsafeError');
  t.same(r.out.afterExit, { safe: true, reasons: [] }, "in the worker's 'exit' listener it is no longer counted");
});

t.test("a Worker started by a --require'd module before forksafe was loaded: refused", async (t) => {
  const r = await run('required', `
    const { forkSafety } = require(DIST);
    out.safety = forkSafety();
    globalThis.__preloadWorker.terminate().then(() => {
      out.afterTerminate = forkSafety();
      done();
    });
  `, ['--require', path.join(dir, 'start-worker.cjs')], {
    'start-worker.cjs': `
      const { Worker } = require('node:worker_threads');
      globalThis.__preloadWorker = new Worker('setInterval(() => {}, 1000)', { eval: true });
    `,
  });
  t.equal(r.code, 0, 'the program exited 0', { stderr: r.stderr });
  const s = r.out.safety as { safe: boolean; reasons: string[] };
  t.equal(s.safe, false, 'forkSafety(): not safe');
  // (Node 26 shows more threads than the worker's own while it starts up.)
  t.match(s.reasons.join('\n'), /\d+ thread\(s\) running besides this one \(worker_threads or native threads: \w+/, 'the thread is the reason', { reasons: s.reasons });
  t.same(r.out.afterTerminate, { safe: true, reasons: [] }, 'after terminate(): safe');
});

t.test('a terminated Worker is no longer counted: fork() goes ahead and the child exits 0', async (t) => {
  const r = await run('terminated', `
    const { forkSafety, fork } = require(DIST);
    const { Worker } = require('node:worker_threads');
    const w = new Worker('setInterval(() => {}, 1000)', { eval: true });
    w.once('online', async () => {
      out.running = forkSafety().safe;
      await w.terminate();
      out.after = forkSafety();
      const c = fork(() => 0);
      out.exit = await c.exited;
      done();
    });
  `);
  t.equal(r.code, 0, 'the program exited 0', { stderr: r.stderr });
  t.equal(r.out.running, false, 'refused while it runs');
  t.same(r.out.after, { safe: true, reasons: [] }, 'safe once it is terminated');
  t.same(r.out.exit, { code: 0, signal: null }, 'the child exited 0');
});

t.test("Node's own idle threads never cause a refusal", async (t) => {
  const body = `
    const { forkSafety, fork, Event } = require(DIST);
    out.start = forkSafety();
    // libuv's threadpool started (fs), forksafe's waiter thread started (an async wait).
    require('node:fs').readFile(__filename, async () => {
      const ev = new Event();
      setTimeout(() => ev.set(), 20);
      await ev.waitAsync({ timeout: 5000 });
      out.threads = require('node:fs').readdirSync('/proc/self/task').length;
      out.later = forkSafety();
      const c = fork(() => 0);
      out.exit = await c.exited;
      ev.close();
      done();
    });
  `;
  for (const flags of [[], ['--v8-pool-size=2'], ['--v8-pool-size=0'], ['--disable-sigusr1']]) {
    const r = await run(`idle${flags.join('').replace(/[^a-z0-9]/gi, '')}`, body, flags);
    const what = flags.length ? flags.join(' ') : 'default flags';
    t.equal(r.code, 0, `${what}: the program exited 0`, { stderr: r.stderr });
    t.same(r.out.start, { safe: true, reasons: [] }, `${what}: safe at start`);
    t.same(r.out.later, { safe: true, reasons: [] }, `${what}: safe with the threadpool and a waiter thread started (${r.out.threads} threads)`);
    t.same(r.out.exit, { code: 0, signal: null }, `${what}: the child exited 0`);
  }
});

t.test("a native thread that is not a Worker (the inspector's, with --inspect): refused", async (t) => {
  const r = await run('inspect', `
    const { forkSafety } = require(DIST);
    out.safety = forkSafety();
    require('node:inspector').close();
    done();
  `, ['--inspect=127.0.0.1:0']);
  t.equal(r.code, 0, 'the program exited 0', { stderr: r.stderr });
  const s = r.out.safety as { safe: boolean; reasons: string[] };
  t.equal(s.safe, false, 'forkSafety(): not safe');
  t.match(s.reasons.join('\n'), /thread\(s\) running besides this one \(worker_threads or native threads: /, 'the thread is named', { reasons: s.reasons });
});
