// Process (spawn context): exit codes, async targets, signals, join(), pid,
// name, env, ESM targets, bad targets, and the parent's main script never
// re-run in the child.
import t from 'tap';
import * as child_process from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  ForksafeError,
} from '../dist/index.js';
import { Event, Process, Semaphore, SharedMemory } from './lib/spawn';
import type { ProcessOptions } from '../dist/index.js';

const ROOT = path.join(__dirname, '..');
const TARGETS = path.join(ROOT, 'build', 'fixtures', 'misc-targets.js');
const PARENT = path.join(ROOT, 'build', 'fixtures', 'misc-parent.js');

interface Started {
  proc: Process;
  stdout: () => string;
  stderr: () => string;
}

// Starts a Process (stdio piped and no Node flags unless said otherwise: the
// fixtures are plain JS, tap's loaders would only slow the child's start); the
// test's teardown SIGKILLs it if still running and waits for it to be reaped.
function start(t: tap.Test, opts: Partial<ProcessOptions> & { export?: string }): Started {
  const { export: exp, ...rest } = opts;
  const proc = new Process({
    target: { module: TARGETS, export: exp }, stdio: 'pipe', execArgv: [], ...rest,
  } as ProcessOptions).start();
  let out = '';
  let err = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await proc.exited;
  });
  return { proc, stdout: () => out, stderr: () => err };
}

// The child's exit, or {code: null, signal: 'TIMEOUT'} (and a SIGKILL) after `ms`.
async function exitOf(proc: Process, ms = 15_000): Promise<{ code: number | null; signal: string | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<null>((res) => (timer = setTimeout(() => res(null), ms)));
  const r = await Promise.race([proc.exited, timedOut]);
  clearTimeout(timer);
  if (r) return r;
  proc.kill('SIGKILL');
  await proc.exited;
  return { code: null, signal: 'TIMEOUT' };
}

// Output streams end a little after 'exit': wait (bounded) for the text to arrive.
async function waitFor(get: () => string, re: RegExp, ms = 5000): Promise<string> {
  const end = Date.now() + ms;
  while (!re.test(get()) && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  return get();
}

t.test('exit codes', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forksafe-exit-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // A CommonJS module whose module.exports is the function: its default export.
  const cjsDefault = path.join(dir, 'cjs-default.js');
  fs.writeFileSync(cjsDefault, 'module.exports = function () { return 13; };\n');
  const cases: Array<[string, ProcessOptions['target'], unknown[], number]> = [
    ['returned number', { module: TARGETS, export: 'ret' }, [5], 5],
    ['returned a string', { module: TARGETS, export: 'ret' }, ['abc'], 0],
    ['returned undefined', { module: TARGETS, export: 'ret' }, [], 0],
    ['process.exit(7) in the target', { module: TARGETS, export: 'exitWith' }, [7], 7],
    ['async target (a Promise resolving to 9)', { module: TARGETS, export: 'asyncRet' }, [9, 50], 9],
    ['default export of a CommonJS module (module.exports = fn)', { module: cjsDefault }, [], 13],
    // TypeScript/Babel output: exports.default = fn with __esModule.
    ['default export of a TS-compiled CommonJS module (exports.default)', { module: TARGETS }, [], 11],
  ];
  const started = cases.map(([what, target, args, code]) => ({ what, code, s: start(t, { target, args }) }));
  for (const { what, code, s } of started) {
    const r = await exitOf(s.proc);
    const bug = what.includes('TS-compiled') && r.code !== code ? 'LIBRARY BUG: ' : '';
    t.same(r, { code, signal: null }, `${bug}${what}: exit code ${code}`, { stderr: s.stderr() });
    t.equal(s.proc.exitCode, r.code, `${what}: exitCode matches exited`);
    t.equal(s.proc.signalCode, null, `${what}: no signalCode`);
  }
});

t.test('a throwing target exits 1 with the error on stderr', async (t) => {
  const tag = `boom-${process.pid}-${Date.now()}`;
  const sync = start(t, { export: 'throwIt', args: [tag] });
  const asyncT = start(t, { export: 'asyncThrow', args: [`${tag}-async`, 20] });
  t.same(await exitOf(sync.proc), { code: 1, signal: null }, 'sync throw: exit 1');
  t.match(await waitFor(sync.stderr, new RegExp(tag)), tag, 'sync throw: the error is on stderr');
  t.same(await exitOf(asyncT.proc), { code: 1, signal: null }, 'rejected promise: exit 1');
  t.match(await waitFor(asyncT.stderr, new RegExp(`${tag}-async`)), `${tag}-async`, 'rejected promise: the error is on stderr');
});

t.test('kill(SIGKILL): signalCode, and exited resolves within 2 s; start() twice is an error', async (t) => {
  const ready = new Semaphore(0);
  const ev = new Event();
  t.teardown(() => [ready, ev].forEach((p) => p.close()));
  const s = start(t, { export: 'signalReady', args: [ready, ev, 0] });
  const pid = s.proc.pid;
  try {
    s.proc.start();
    t.fail('second start() accepted');
  } catch (e) {
    t.ok(e instanceof ForksafeError, 'start() twice: a ForksafeError');
    t.equal((e as ForksafeError).code, 'ERR_FORKSAFE_STARTED', 'start() twice: code ERR_FORKSAFE_STARTED');
  }
  t.equal(s.proc.pid, pid, 'pid unchanged by the second start()');
  t.ok(ready.acquire({ timeout: 15_000 }), 'the child is running its target');
  t.notOk(ready.acquire({ timeout: 300 }), 'no second child ran the target');
  const t0 = performance.now();
  s.proc.kill('SIGKILL');
  const r = await exitOf(s.proc, 2000);
  const took = performance.now() - t0;
  t.same(r, { code: null, signal: 'SIGKILL' }, 'exited: {code: null, signal: SIGKILL}');
  t.ok(took < 2000, `exited resolved ${Math.round(took)} ms after the SIGKILL`);
  t.equal(s.proc.signalCode, 'SIGKILL', "signalCode === 'SIGKILL'");
  t.equal(s.proc.exitCode, null, 'exitCode === null');
  t.doesNotThrow(() => s.proc.kill('SIGKILL'), 'kill() after exit is harmless');
});

t.test('pid, and join(): false while running, true after exit, exitCode set synchronously', async (t) => {
  const ready = new Semaphore(0);
  const ev = new Event();
  const shm = new SharedMemory({ size: 8 });
  t.teardown(() => [ready, ev, shm].forEach((p) => p.close()));
  const p = new Process({ target: { module: TARGETS, export: 'signalReady' }, args: [ready, ev, 6, shm], execArgv: [] });
  t.equal(p.pid, null, 'pid: null before start()');
  t.throws(() => p.join({ timeout: 0 }), { code: 'ERR_FORKSAFE_NOT_STARTED' }, 'join() before start(): ERR_FORKSAFE_NOT_STARTED');
  t.throws(() => p.kill(), { code: 'ERR_FORKSAFE_NOT_STARTED' }, 'kill() before start(): ERR_FORKSAFE_NOT_STARTED');
  p.start();
  t.teardown(async () => {
    p.kill('SIGKILL');
    await p.exited;
  });
  t.ok(Number.isInteger(p.pid) && (p.pid as number) > 0, 'pid: a positive integer after start()');
  t.ok(ready.acquire({ timeout: 15_000 }), 'the child is running its target');
  t.equal(Atomics.load(new Int32Array(shm.buffer), 0), p.pid, "pid is the child's process.pid");
  t.ok(fs.existsSync(`/proc/${p.pid}`), '/proc/<pid> exists while it runs');
  const t0 = performance.now();
  t.equal(p.join({ timeout: 100 }), false, 'join({timeout: 100}) while it runs: false');
  t.ok(performance.now() - t0 >= 90, 'join waited about its timeout');
  t.equal(p.join({ timeout: 0 }), false, 'join({timeout: 0}) while it runs: false');
  t.equal(p.exitCode, null, 'exitCode null while running');
  ev.set();
  t.equal(p.join({ timeout: 10_000 }), true, 'join({timeout: 10000}) after the target returns: true');
  t.equal(p.exitCode, 6, 'exitCode set as soon as join() returned (same tick)');
  t.equal(p.signalCode, null, 'no signalCode');
  t.equal(p.join({ timeout: 0 }), true, 'join() again: true');
  t.same(await exitOf(p), { code: 6, signal: null }, 'exited agrees');
  t.equal(p.pid, Atomics.load(new Int32Array(shm.buffer), 0), 'pid stays readable after exit');
});

t.test('name sets process.title in the child', async (t) => {
  const name = 'fsk-proc-name';
  const ready = new Semaphore(0);
  const ev = new Event();
  t.teardown(() => [ready, ev].forEach((p) => p.close()));
  const s = start(t, { export: 'signalReady', args: [ready, ev, 0], name });
  t.equal(s.proc.name, name, 'Process.name');
  t.ok(ready.acquire({ timeout: 15_000 }), 'the child is running its target');
  const comm = fs.readFileSync(`/proc/${s.proc.pid}/comm`, 'utf8').trim();
  const cmdline = fs.readFileSync(`/proc/${s.proc.pid}/cmdline`, 'utf8').split('\0')[0];
  t.equal(comm, name, '/proc/<pid>/comm is the name');
  t.equal(cmdline, name, '/proc/<pid>/cmdline starts with the name');
  ev.set();
  t.same(await exitOf(s.proc), { code: 0, signal: null }, 'exits');

});

t.test('env option', async (t) => {
  process.env.FSK_PARENT_ONLY = '1';
  process.env.FSK_CODE = '43';
  t.teardown(() => {
    delete process.env.FSK_PARENT_ONLY;
    delete process.env.FSK_CODE;
  });
  const own = start(t, { export: 'envCode', args: ['FSK_CODE', 'FSK_PARENT_ONLY'], env: { FSK_CODE: '42' } });
  t.same(await exitOf(own.proc), { code: 42, signal: null }, "with env: the child sees exactly that environment (no parent's variables)", {
    stderr: own.stderr(),
  });
  const inherited = start(t, { export: 'envCode', args: ['FSK_CODE', 'FSK_NOT_SET'] });
  t.same(await exitOf(inherited.proc), { code: 43, signal: null }, "without env: the child inherits the parent's environment");
});

t.test("the parent's main script is not re-run in the child", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forksafe-parent-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const marker = path.join(dir, 'marker');
  fs.writeFileSync(marker, '');
  const r = await new Promise<{ code: number | null; stderr: string; pid: number }>((resolve) => {
    const c = child_process.spawn(process.execPath, [PARENT], {
      cwd: ROOT, env: { ...process.env, FORKSAFE_MARKER: marker }, stdio: ['ignore', 'inherit', 'pipe'],
    });
    let stderr = '';
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), 20_000);
    c.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, pid: c.pid as number });
    });
  });
  t.equal(r.code, 0, 'the parent script ran its Process to completion', { stderr: r.stderr });
  const lines = fs.readFileSync(marker, 'utf8').trim().split('\n');
  const parents = lines.filter((l) => l.startsWith('parent '));
  const kids = lines.filter((l) => l.startsWith('child '));
  t.same(parents, [`parent ${r.pid}`], "the parent's top-level side effect happened once, in the parent", { lines });
  t.equal(kids.length, 1, 'the target ran once in the child', { lines });
  t.not(kids[0], `child ${r.pid}`, 'in another process');
});

t.test('ESM targets (.mjs)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forksafe-esm-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const mod = path.join(dir, 'target.mjs');
  const esmIndex = pathToFileURL(path.join(ROOT, 'dist', 'index.mjs')).href;
  fs.writeFileSync(mod, [
    `import { Event } from ${JSON.stringify(esmIndex)};`,
    'export function setIt(ev) { if (!(ev instanceof Event)) return 3; ev.set(); return 6; }',
    'export default async function () { await new Promise((r) => setTimeout(r, 20)); return 4; }',
    '',
  ].join('\n'));
  const ev = new Event();
  t.teardown(() => ev.close());
  const cases: Array<[string, string | undefined, unknown[], number]> = [
    ['named export given a primitive in args', 'setIt', [ev], 6],
    ['async default export', undefined, [], 4],
  ];
  const started = cases.map(([what, exp, args, code]) => ({ what, code, s: start(t, { target: { module: mod, export: exp }, args }) }));
  for (const { what, code, s } of started) {
    t.same(await exitOf(s.proc), { code, signal: null }, `ESM ${what}: exit ${code}`, { stderr: s.stderr() });
  }
  t.ok(ev.isSet(), 'the ESM target used the Event it was handed');
});

t.test('bad targets: the child exits 1 with a clear message', async (t) => {
  const noExport = start(t, { export: 'nope' });
  t.same(await exitOf(noExport.proc), { code: 1, signal: null }, 'missing named export: exit 1');
  t.match(await waitFor(noExport.stderr, /nope/), /no exported function 'nope'/, 'the message names the missing export', {
    stderr: noExport.stderr(),
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'forksafe-bad-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const noDefault = path.join(dir, 'nodefault.js');
  fs.writeFileSync(noDefault, 'exports.x = 1;\n');
  const nd = start(t, { target: { module: noDefault } });
  t.same(await exitOf(nd.proc), { code: 1, signal: null }, 'no default export: exit 1');
  t.match(await waitFor(nd.stderr, /default/), /default export/, 'the message says a default export is missing');
  const missing = path.join(dir, 'does-not-exist.js');
  const ms = start(t, { target: { module: missing, export: 'x' } });
  t.same(await exitOf(ms.proc), { code: 1, signal: null }, 'missing module: exit 1');
  t.match(await waitFor(ms.stderr, /does-not-exist/), /does-not-exist/, 'the message names the module');
});

t.test("a module path relative to the cwd, stdio 'inherit'", async (t) => {
  const rel = './' + path.relative(process.cwd(), TARGETS);
  const p = new Process({ target: { module: rel, export: 'ret' }, args: [12], stdio: 'inherit', execArgv: [] }).start();
  t.teardown(async () => {
    p.kill('SIGKILL');
    await p.exited;
  });
  t.equal(p.stdout, null, "stdio 'inherit': no stdout stream");
  t.same(await exitOf(p), { code: 12, signal: null }, `target.module '${rel}' resolves against the cwd`);
});

t.test('target.module as a file: URL (a URL object or a string)', async (t) => {
  const url = pathToFileURL(TARGETS);
  const a = start(t, { target: { module: url, export: 'ret' }, args: [13] });
  t.same(await exitOf(a.proc), { code: 13, signal: null }, 'a URL object (new URL(..., import.meta.url) in an ES module)');
  const b = start(t, { target: { module: url.href, export: 'ret' }, args: [14] });
  t.same(await exitOf(b.proc), { code: 14, signal: null }, "a 'file:' string");
  t.throws(() => new Process({ target: { module: new URL('https://example.com/w.js') } }),
    { code: 'ERR_INVALID_ARG_TYPE', message: /options\.target\.module/ }, 'another scheme: TypeError at construction');
});

t.test('execArgv option: the parent\'s flags by default, or exactly those given', async (t) => {
  t.ok(process.execArgv.includes('--expose-gc'), 'this test runs with --expose-gc');
  const dflt = new Process({ target: { module: TARGETS, export: 'hasExecArg' }, args: ['--expose-gc'] }).start();
  const none = start(t, { export: 'hasExecArg', args: ['--expose-gc'], execArgv: [] });
  const given = start(t, { export: 'hasExecArg', args: ['--expose-gc'], execArgv: ['--expose-gc'] });
  t.teardown(async () => {
    dflt.kill('SIGKILL');
    await dflt.exited;
  });
  t.same(await exitOf(dflt), { code: 0, signal: null }, "default: the child gets the parent's flags");
  t.same(await exitOf(none.proc), { code: 1, signal: null }, 'execArgv: []: no flags');
  t.same(await exitOf(given.proc), { code: 0, signal: null }, "execArgv: ['--expose-gc']: that flag");
});
