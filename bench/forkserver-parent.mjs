// One forkserver measurement per process, for bench/forkserver.mjs. Runs as a
// plain `node bench/forkserver-parent.mjs <mode> ...` (cwd: the repository) and
// prints one JSON line. Every child runs bench/forkserver-child.cjs, which
// requires the `typescript` package at top level.
//
//   latency fs <n> warm [nopreload]
//       setForkserverPreload(['typescript']) (not with nopreload), await
//       startForkserver() (timed), one untimed warm-up start, then n starts of a
//       'forkserver' Process, each from the call to the parent seeing the
//       worker's write to a SharedMemory word; the worker exits and is awaited
//       before the next start.
//   latency fs <n> warm withtarget
//       the same, with the target module (bench/forkserver-child.cjs) preloaded too.
//   latency fs 1 cold
//       the same preload, but no startForkserver(): the first start() boots the
//       forkserver, loads the preload and forks (what a program pays once).
//   latency spawn <n>     getContext('spawn').Process, same target and signal
//   latency cp <n>        child_process.fork(child, ['up']) until its first message
//   latency worker <n>    new Worker(child) until its first message
//   mem fs|cp <count> <use 0|1>
//       <count> idle workers that required typescript (forkserver: preloaded),
//       each blocked (Event.wait / waiting for a message); with use=1 each first
//       ran one ts.transpileModule(). PSS and RSS from /proc/PID/smaps_rollup of
//       every worker, the forkserver and this process while they all idle.
import { createRequire } from 'node:module';
import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { kbFields, stats, timed, waitWord } from './util.mjs';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const CHILD = path.join(here, 'forkserver-child.cjs');
const forksafe = require('../dist/index.js');
const { getContext, setForkserverPreload, startForkserver, forkserverPid } = forksafe;

const [mode, ...argv] = process.argv.slice(2);
const nowNs = () => process.hrtime.bigint();
const nowMs = () => Number(nowNs()) / 1e6; // the clock the children stamp with
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const errors = [];

function out(obj) {
  process.stdout.write(`${JSON.stringify({ mode, ...obj, errors })}\n`);
}

const ROLLUP = ['Rss', 'Pss', 'Pss_Anon', 'Pss_File', 'Private_Dirty', 'Private_Clean', 'Shared_Dirty', 'Shared_Clean'];
const rollup = (pid) => kbFields(`/proc/${pid}/smaps_rollup`, ROLLUP);
const mapsLines = (pid) => fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').length - 1;

// ---- latency ------------------------------------------------------------------------------
// A forksafe Process worker writes its stamps into slot 0 of a SharedMemory of
// its context and sets word 0; the parent waits for it (waitWord: SharedMemory.wait).

/** One forksafe Process start: {call, top, ts, fn, observed} in ms from the call. */
async function oneProcess(ctx, shm) {
  const i32 = new Int32Array(shm.buffer);
  const f64 = new Float64Array(shm.buffer);
  Atomics.store(i32, 0, 0);
  f64.fill(0, 1, 4);
  const t0 = nowMs();
  const p = new ctx.Process({ target: { module: CHILD, export: 'up' }, args: [shm, 0] }).start();
  const t1 = nowMs();
  const seen = waitWord(shm, i32, 0, 15_000);
  const t2 = nowMs();
  try {
    const e = await timed(p.exited, 20_000, `${ctx.method} worker exit`);
    if (e.code !== 0) errors.push(`${ctx.method} worker exited with ${e.code ?? e.signal}`);
  } catch (e) {
    errors.push(e.message);
    p.kill('SIGKILL');
    await timed(p.exited, 10_000, `${ctx.method} worker exit after SIGKILL`).catch((e2) => errors.push(e2.message));
  }
  if (!seen) {
    errors.push(`${ctx.method} worker ${p.pid} never signalled`);
    return null;
  }
  return { call: t1 - t0, top: f64[1] - t0, ts: f64[2] - t0, fn: f64[3] - t0, observed: t2 - t0 };
}

async function oneCpFork() {
  const t0 = nowMs();
  // execArgv: [] = a plain node child.
  const c = cp.fork(CHILD, ['up'], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const exited = once(c, 'exit');
  try {
    const [m] = await timed(once(c, 'message'), 30_000, 'child_process.fork');
    const t2 = nowMs();
    c.send('exit');
    await timed(exited, 20_000, 'child_process.fork exit');
    return { call: null, top: m.top - t0, ts: m.ts - t0, fn: m.fn - t0, observed: t2 - t0 };
  } catch (e) {
    errors.push(e.message);
    c.kill('SIGKILL');
    await exited;
    return null;
  }
}

async function oneWorker() {
  const t0 = nowMs();
  const w = new Worker(CHILD, { workerData: 'up' });
  const exited = once(w, 'exit');
  try {
    const [m] = await timed(once(w, 'message'), 30_000, 'new Worker');
    const t2 = nowMs();
    await timed(exited, 20_000, 'Worker exit');
    return { call: null, top: m.top - t0, ts: m.ts - t0, fn: m.fn - t0, observed: t2 - t0 };
  } catch (e) {
    errors.push(e.message);
    await w.terminate();
    return null;
  }
}

function pick(runs) {
  const o = {};
  for (const k of ['call', 'top', 'ts', 'fn', 'observed']) o[k] = stats(runs.map((r) => r[k]));
  return o;
}

/** The forkserver's memory and mappings right now (it has forked `n` workers). */
function serverInfo() {
  const pid = forkserverPid();
  if (pid == null) return null;
  try {
    return { pid, ...kbFields(`/proc/${pid}/status`, ['VmRSS']), ...rollup(pid), maps_lines: mapsLines(pid) };
  } catch (e) {
    errors.push(`forkserver /proc: ${e.message}`);
    return null;
  }
}

async function latency() {
  const kind = argv[0];
  const n = Number(argv[1] ?? 5);
  const variant = argv[2] ?? 'warm';
  const noPreload = argv[3] === 'nopreload';
  // withtarget: the forkserver also preloads the target module itself.
  const preload = noPreload ? [] : argv[3] === 'withtarget' ? ['typescript', CHILD] : ['typescript'];
  const runs = [];
  const extra = {};
  if (kind === 'fs') {
    const ctx = getContext('forkserver');
    setForkserverPreload(preload);
    const shm = new ctx.SharedMemory({ size: 4096 });
    if (variant === 'cold') {
      const r = await oneProcess(ctx, shm); // boots the forkserver (synchronously), preload, fork
      if (r) runs.push(r);
    } else {
      const tb = nowMs();
      const { pid } = await startForkserver();
      extra.boot_ms = nowMs() - tb;
      extra.server_pid = pid;
      extra.server_ready = serverInfo();
      for (let i = 0; i <= n; i++) {
        const r = await oneProcess(ctx, shm);
        if (i > 0 && r) runs.push(r); // the first start from a fresh forkserver is a warm-up
        await sleep(3);
      }
      extra.server_after = serverInfo();
    }
    shm.close();
  } else if (kind === 'spawn') {
    const ctx = getContext('spawn');
    const shm = new ctx.SharedMemory({ size: 4096 });
    for (let i = 0; i <= n; i++) {
      const r = await oneProcess(ctx, shm);
      if (i > 0 && r) runs.push(r);
    }
    shm.close();
  } else if (kind === 'cp' || kind === 'worker') {
    for (let i = 0; i <= n; i++) {
      const r = kind === 'cp' ? await oneCpFork() : await oneWorker();
      if (i > 0 && r) runs.push(r);
    }
  } else {
    throw new Error(`unknown latency kind ${kind}`);
  }
  out({ kind, variant, preload: kind === 'fs' ? preload.map((m) => path.basename(m)) : [], ...extra, ...pick(runs) });
}

// ---- memory -------------------------------------------------------------------------------
async function mem() {
  const kind = argv[0];
  const count = Number(argv[1] ?? 8);
  const use = argv[2] === '1';
  const pids = [];
  let release;
  const joins = [];
  let server = null;
  const tStart = nowMs();
  if (kind === 'fs') {
    const ctx = getContext('forkserver');
    setForkserverPreload(['typescript']);
    await startForkserver();
    server = forkserverPid();
    const shm = new ctx.SharedMemory({ size: 4096 });
    const ev = new ctx.Event();
    const i32 = new Int32Array(shm.buffer);
    const procs = [];
    for (let i = 0; i < count; i++) {
      procs.push(new ctx.Process({ target: { module: CHILD, export: 'idle' }, args: [shm, ev, use] }).start());
      pids.push(procs[i].pid);
    }
    // All of them counted in: each has run its target (and its use of typescript).
    const deadline = Date.now() + 60_000;
    let k;
    while ((k = Atomics.load(i32, 0)) < count && Date.now() < deadline) {
      await shm.waitAsync(0, k, { timeout: 1000 });
    }
    if (k < count) errors.push(`only ${k} of ${count} forkserver workers reported idle`);
    release = async () => {
      ev.set();
      for (const p of procs) {
        try {
          const e = await timed(p.exited, 20_000, 'forkserver worker exit');
          if (e.code !== 0) errors.push(`forkserver worker ${p.pid} exited with ${e.code ?? e.signal}`);
        } catch (e) {
          errors.push(e.message);
          p.kill('SIGKILL');
          await timed(p.exited, 10_000, 'forkserver worker exit after SIGKILL').catch(() => {});
        }
      }
      ev.close();
      shm.close();
    };
  } else if (kind === 'cp') {
    const kids = [];
    for (let i = 0; i < count; i++) {
      const c = cp.fork(CHILD, ['idle', use ? '1' : '0'], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
      kids.push({ c, exited: once(c, 'exit'), msg: timed(once(c, 'message'), 60_000, 'child_process.fork idle child') });
      pids.push(c.pid);
    }
    for (const k of kids) await k.msg.catch((e) => errors.push(e.message));
    release = async () => {
      for (const k of kids) if (k.c.connected) k.c.send('exit');
      for (const k of kids) {
        try {
          await timed(k.exited, 20_000, 'child_process.fork child exit');
        } catch (e) {
          errors.push(e.message);
          k.c.kill('SIGKILL');
          await k.exited;
        }
      }
    };
  } else {
    throw new Error(`unknown mem kind ${kind}`);
  }
  const ready_ms = nowMs() - tStart;
  await sleep(300); // let the last ones settle into their wait
  const workers = pids.map((pid) => {
    try {
      return rollup(pid);
    } catch (e) {
      errors.push(`worker ${pid}: ${e.message}`);
      return null;
    }
  });
  const srv = server != null ? { ...rollup(server), maps_lines: mapsLines(server) } : null;
  const parent = rollup(process.pid);
  await release();
  const sum = (f) => workers.reduce((a, w) => a + (w?.[f] ?? 0), 0);
  out({
    kind, count, use, ready_ms, workers, server: srv, parent,
    workers_total: Object.fromEntries(ROLLUP.map((f) => [f, sum(f)])),
  });
}

// death: SIGKILL (from outside, process.kill) -> the parent's exit notice. For
// 'forkserver' workers (Process.exited: the forkserver reaps, then a frame) and
// child_process.fork() children (the 'exit' event), N each, plain workers (no preload).
async function death() {
  const n = Number(argv[0] ?? 30);
  const { Event, Process, SharedMemory } = getContext('forkserver');
  setForkserverPreload([CHILD], { execArgv: [] }); // typescript and the child module, once
  await startForkserver();
  const fs = [];
  for (let i = 0; i < n; i++) {
    const shm = new SharedMemory({ size: 64 });
    const i32 = new Int32Array(shm.buffer);
    const go = new Event();
    const p = new Process({ target: { module: CHILD, export: 'idle' }, args: [shm, go, false] }).start();
    if (!waitWord(shm, i32, 0, 10_000)) errors.push('forkserver worker did not start');
    const t0 = nowNs();
    process.kill(p.pid, 'SIGKILL');
    const e = await timed(p.exited, 10_000, 'forkserver exited');
    fs.push(Number(nowNs() - t0) / 1e6);
    if (e?.signal !== 'SIGKILL') errors.push(`forkserver worker: ${JSON.stringify(e)}`);
    shm.close();
    go.close();
  }
  const cps = [];
  for (let i = 0; i < Math.min(n, 10); i++) {
    const c = cp.fork(CHILD, ['up'], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const exited = once(c, 'exit');
    await timed(once(c, 'message'), 30_000, 'child_process.fork');
    const t0 = nowNs();
    process.kill(c.pid, 'SIGKILL');
    const [, sig] = await timed(exited, 10_000, 'child_process.fork exit');
    cps.push(Number(nowNs() - t0) / 1e6);
    if (sig !== 'SIGKILL') errors.push(`child_process.fork: ${sig}`);
  }
  out({ forkserver: stats(fs), cp_fork: stats(cps) });
}

const modes = { latency, mem, death };
if (!modes[mode]) {
  process.stderr.write('usage: node bench/forkserver-parent.mjs latency fs|spawn|cp|worker <n> [warm|cold] [nopreload] | mem fs|cp <count> <use>\n');
  process.exit(2);
}
await modes[mode]();
