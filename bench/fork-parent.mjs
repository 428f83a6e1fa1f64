// One fork() measurement per process, for bench/fork.mjs. Must run as
//   node --single-threaded --expose-gc --max-old-space-size=2000 bench/fork-parent.mjs <mode> ...
// and prints one JSON line.
//
//   latency <heapMiB> <forks> <rawForks> <warmForks> <cpForks> <workers>
//       grows the JS heap to heapMiB (0: as started), then times, from the call in
//       this process to the child's first JS statement: child_process.fork(),
//       new Worker(), forksafe fork(), the native fork without the library's JS
//       child set-up, fork() after crypto.randomInt/randomUUID ran hot here, and
//       child_process.fork() again once fork() has run in this process.
//   cow <variant> <MiB> <children>
//       4 children read the same MiB of data held one way or another; total PSS
//       of this process and the children, from /proc/PID/smaps_rollup, while the
//       children are alive and done reading.
import { createRequire } from 'node:module';
import * as cp from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { kbFields, stats, timed, waitWord } from './util.mjs';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const CP_CHILD = path.join(here, 'fork-cp-child.cjs');
const { fork, exit, forkSafety, getContext } = require('../dist/index.js');
const { binding } = require('../dist/core/binding.js'); // internal: the native fork alone
const { fillWords, sumWords, minflt } = require('./fork-cp-child.cjs');
const { SharedMemory } = getContext('fork');

const [mode, ...argv] = process.argv.slice(2);
const num = (i, d) => (argv[i] !== undefined && argv[i] !== '' ? Number(argv[i]) : d);
const nowNs = () => process.hrtime.bigint();
const msSince = (t0) => Number(nowNs() - t0) / 1e6;
const nap = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const errors = [];

function out(obj) {
  process.stdout.write(`${JSON.stringify({ mode, ...obj, errors })}\n`);
}

const rss = () => kbFields('/proc/self/status', ['VmRSS']).VmRSS;

// ---- growing the heap ------------------------------------------------------------
// Retained arrays of doubles (256 KiB each, large-object space), small objects
// and flat 256-character strings, until heapUsed reaches the target.
const keep = [];
function growHeap(mib) {
  const target = mib * 1048576;
  const block = Buffer.alloc(256, 'abcdefghijklmnopqrstuvwxyz0123456789');
  let n = 0;
  while (process.memoryUsage().heapUsed < target) {
    for (let k = 0; k < 8; k++) {
      const d = new Array(32768).fill(n + 0.5);
      const o = new Array(512);
      for (let j = 0; j < 512; j++) o[j] = { i: n + j, s: null, a: [j, j + 1] };
      for (let j = 0; j < 128; j++) {
        block.writeUInt32LE(n++, 0);
        o[j].s = block.toString('latin1');
      }
      keep.push(d, o);
    }
  }
}

// ---- latency ---------------------------------------------------------------------------
// The child stamps the monotonic clock (shared by all processes) into shared
// memory at its first statement, sets a word and wakes the parent, which
// waits for that word right after fork() returns.
const ctl = new SharedMemory({ size: 4096 });
const ctlI32 = new Int32Array(ctl.buffer);
const ctlB64 = new BigInt64Array(ctl.buffer);
const ctlF64 = new Float64Array(ctl.buffer);

/** One forksafe fork(): {call, child, observed} in ms from the fork() call. */
function oneFork() {
  Atomics.store(ctlI32, 0, 0);
  const t0 = nowNs();
  const c = fork();
  if (c === null) {
    ctlB64[1] = nowNs(); // the child's first statement
    Atomics.store(ctlI32, 0, 1);
    ctl.notify(0);
    exit(0);
  }
  const t1 = nowNs();
  const seen = waitWord(ctl, ctlI32, 0, 10_000);
  const t2 = nowNs();
  if (!c.join({ timeout: 10_000 })) {
    c.kill('SIGKILL');
    c.join({ timeout: 10_000 });
    errors.push(`fork(): child ${c.pid} did not exit`);
  } else if (c.exitCode !== 0) errors.push(`fork(): child exited with ${c.exitCode ?? c.signalCode}`);
  if (!seen) return null;
  return { call: Number(t1 - t0) / 1e6, child: Number(ctlB64[1] - t0) / 1e6, observed: Number(t2 - t0) / 1e6 };
}

/** The native fork alone (no forkSafety(), no JS child set-up, no ForkedChild). */
function oneRawFork() {
  Atomics.store(ctlI32, 0, 0);
  const t0 = nowNs();
  const pid = binding.fork();
  if (pid === 0) {
    ctlB64[1] = nowNs();
    Atomics.store(ctlI32, 0, 1);
    ctl.notify(0);
    binding.exitNow(0);
  }
  const t1 = nowNs();
  const seen = waitWord(ctl, ctlI32, 0, 10_000);
  const t2 = nowNs();
  const fd = binding.pidfdOpen(pid);
  if (binding.pidfdWait(fd, 10_000) === null) {
    binding.pidfdKill(fd, 9);
    binding.pidfdWait(fd, 10_000);
    errors.push(`raw fork: child ${pid} did not exit`);
  }
  binding.reapPidfd(fd);
  binding.closeFd(fd);
  if (!seen) return null;
  return { call: Number(t1 - t0) / 1e6, child: Number(ctlB64[1] - t0) / 1e6, observed: Number(t2 - t0) / 1e6 };
}

async function oneCpFork() {
  const t0 = nowNs();
  // execArgv: [] = a plain node child (it would inherit --single-threaded and slow down).
  const c = cp.fork(CP_CHILD, ['up'], { execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const exited = once(c, 'exit');
  try {
    await timed(once(c, 'message'), 20_000, 'child_process.fork');
    const ms = msSince(t0);
    c.send('exit');
    await timed(exited, 20_000, 'child_process.fork exit');
    return ms;
  } catch (e) {
    errors.push(e.message);
    c.kill('SIGKILL');
    await exited;
    return null;
  }
}

async function oneWorker() {
  const t0 = nowNs();
  const w = new Worker("require('node:worker_threads').parentPort.postMessage('up')", { eval: true });
  const exited = once(w, 'exit');
  try {
    await timed(once(w, 'message'), 20_000, 'new Worker');
    const ms = msSince(t0);
    await timed(exited, 20_000, 'Worker exit');
    return ms;
  } catch (e) {
    errors.push(e.message);
    await w.terminate();
    return null;
  }
}

async function latency() {
  const [heapMiB, nFork, nRaw, nWarm, nCp, nWorker] = [num(0, 0), num(1, 10), num(2, 5), num(3, 5), num(4, 5), num(5, 0)];
  const tg = Date.now();
  growHeap(heapMiB);
  globalThis.gc();
  const grow_ms = Date.now() - tg;
  const heapUsed = process.memoryUsage().heapUsed;
  const rssBefore = rss();
  // fork() walks /proc/self/maps and copies the page tables: both grow with the heap.
  const mapsLines = fs.readFileSync('/proc/self/maps', 'utf8').split('\n').length - 1;
  await sleep(20);

  // Node's ways first: child_process.fork and Worker, one warm-up each.
  const cpMs = [];
  for (let i = 0; i <= nCp; i++) {
    const ms = await oneCpFork();
    if (i > 0 && ms != null) cpMs.push(ms);
  }
  const wMs = [];
  for (let i = 0; i < (nWorker ? nWorker + 1 : 0); i++) {
    const ms = await oneWorker();
    if (i > 0 && ms != null) wMs.push(ms);
  }
  await sleep(50); // workers and child_process handles all gone
  const safety = forkSafety();
  if (!safety.safe) errors.push(`forkSafety: ${safety.reasons.join('; ')}`);

  // forksafe fork() and the native fork alone, interleaved; one warm-up each
  // (the parent's own code paths; the child's JIT state is what the parent had).
  const runs = { fork: [], raw: [], warm: [] };
  const kinds = [['fork', oneFork, nFork], ['raw', oneRawFork, nRaw]];
  for (let i = 0; i <= Math.max(nFork, nRaw); i++) {
    for (const [k, fn, n] of kinds) {
      if (i > n) continue;
      const r = fn();
      if (i > 0 && r) runs[k].push(r);
      nap(3);
    }
  }
  // fork() again once crypto.randomUUID()/randomInt() have run hot here: the
  // child's set-up calls them (128 and 1024 times) and inherits their JIT code.
  const tw = Date.now();
  for (let i = 0; i < 20_000; i++) {
    crypto.randomUUID();
    crypto.randomInt(1);
  }
  const warm_ms = Date.now() - tw;
  const mapsLinesWarm = fs.readFileSync('/proc/self/maps', 'utf8').split('\n').length - 1;
  for (let i = 0; i <= nWarm; i++) {
    const r = oneFork();
    if (i > 0 && r) runs.warm.push(r);
    nap(3);
  }
  // child_process.fork() again, now that fork() has run here: libuv spawns with
  // a plain fork(), and the heap's mappings have been marked MADV_DOFORK.
  await sleep(20);
  const cpAfter = [];
  for (let i = 0; i <= nCp; i++) {
    const ms = await oneCpFork();
    if (i > 0 && ms != null) cpAfter.push(ms);
  }
  const pick = (k) => ({
    call: stats(runs[k].map((r) => r.call)),
    child: stats(runs[k].map((r) => r.child)),
    observed: stats(runs[k].map((r) => r.observed)),
  });
  out({
    heap_target_mib: heapMiB, heap_used: heapUsed, rss: rssBefore, maps_lines: mapsLines, maps_lines_warm: mapsLinesWarm, rss_after: rss(), grow_ms, warm_ms,
    cp_fork: stats(cpMs), cp_fork_after: stats(cpAfter), worker: stats(wMs), fork: pick('fork'), raw: pick('raw'), warm: pick('warm'),
  });
}

// ---- copy-on-write ----------------------------------------------------------------------
const ROLLUP = ['Rss', 'Pss', 'Pss_Anon', 'Pss_Shmem', 'Private_Dirty', 'Shared_Dirty', 'Shared_Clean'];
const rollup = (pid) => kbFields(`/proc/${pid}/smaps_rollup`, ROLLUP);

async function cow() {
  const variant = argv[0];
  const mib = num(1, 256);
  const nChildren = num(2, 4);
  const bytes = mib * 1048576;
  const words = bytes / 4;
  let data = null; // what the children read
  let read = null; // how a child reads it
  const tf = Date.now();
  if (variant === 'shm') {
    // forksafe SharedMemory of the 'fork' context: one MAP_SHARED region.
    data = new SharedMemory({ size: bytes });
    const u32 = new Uint32Array(data.buffer);
    fillWords(u32);
    read = () => sumWords(u32);
  } else if (variant === 'buffer' || variant === 'buffer-write') {
    // A Buffer of this process (private memory, copy-on-write after fork).
    data = Buffer.allocUnsafe(bytes);
    const u32 = new Uint32Array(data.buffer, data.byteOffset, words);
    fillWords(u32);
    read = variant === 'buffer'
      ? () => sumWords(u32)
      : () => {
          // Write one word per 4 KiB page (the same value back): every page gets copied.
          for (let i = 0; i < words; i += 1024) u32[i] = u32[i];
          return sumWords(u32);
        };
  } else if (variant === 'jsheap' || variant === 'jsheap-gc') {
    // The same words as JS numbers in the V8 heap: arrays of 2^20 doubles (8 MiB each).
    const per = 1 << 20;
    const arrays = [];
    for (let k = 0; k < words / (per * 2); k++) {
      const a = new Array(per);
      for (let j = 0; j < per; j++) a[j] = (Math.imul(k * per + j, 0x9e3779b1) >>> 0) + 0.5;
      arrays.push(a);
    }
    data = arrays;
    read = () => {
      let s = 0;
      for (const a of arrays) for (let j = 0; j < a.length; j++) s = (s + (a[j] | 0)) | 0;
      return s >>> 0;
    };
  } else if (variant !== 'none' && variant !== 'cp' && variant !== 'cp-none') {
    throw new Error(`unknown variant ${variant}`);
  }
  const fill_ms = Date.now() - tf;
  globalThis.gc();
  const expected = read ? read() : null; // and warms the loop up
  const parentRss = rss();

  const pids = [];
  const kids = [];
  const per = []; // {sum, read_ms, minflt, gc_ms}
  let isolatedOk = true;
  if (variant === 'cp' || variant === 'cp-none') {
    // The usual Node way: each child_process.fork() child builds its own copy.
    for (let i = 0; i < nChildren; i++) {
      const c = cp.fork(CP_CHILD, variant === 'cp' ? ['cow', String(mib)] : ['idle'], {
        execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      });
      kids.push({ c, exited: once(c, 'exit'), msg: timed(once(c, 'message'), 60_000, 'child_process.fork child') });
      pids.push(c.pid);
    }
    for (const k of kids) {
      try {
        const [m] = await k.msg;
        per.push(m);
      } catch (e) {
        errors.push(e.message);
        isolatedOk = false;
      }
    }
  } else {
    // forksafe fork(): the children read what the parent holds.
    const done = new SharedMemory({ size: 4096 });
    const dI32 = new Int32Array(done.buffer);
    const dF64 = new Float64Array(done.buffer);
    await sleep(10);
    for (let i = 0; i < nChildren; i++) {
      const c = fork();
      if (c === null) {
        const f0 = minflt();
        const t0 = nowNs();
        const s = read ? read() : 0;
        dF64[8 + i * 4] = s;
        dF64[9 + i * 4] = msSince(t0);
        if (variant === 'jsheap-gc') {
          const tg = nowNs();
          globalThis.gc(); // a full mark-compact in the child
          dF64[11 + i * 4] = msSince(tg);
        }
        dF64[10 + i * 4] = minflt() - f0;
        Atomics.add(dI32, 0, 1);
        done.notify(0);
        const deadline = Date.now() + 120_000;
        while (Atomics.load(dI32, 1) === 0 && Date.now() < deadline) done.wait(1, 0, { timeout: 1000 });
        exit(0);
      }
      kids.push(c);
      pids.push(c.pid);
    }
    const deadline = Date.now() + 120_000;
    let n;
    while ((n = Atomics.load(dI32, 0)) < nChildren && Date.now() < deadline) done.wait(0, n, { timeout: 1000 });
    if (n < nChildren) {
      errors.push(`only ${n} of ${nChildren} forked children finished reading`);
      isolatedOk = false;
    }
    for (let i = 0; i < nChildren; i++) {
      per.push({
        sum: dF64[8 + i * 4], read_ms: read ? dF64[9 + i * 4] : null, minflt: read ? dF64[10 + i * 4] : null,
        gc_ms: variant === 'jsheap-gc' ? dF64[11 + i * 4] : undefined,
      });
    }
    kids.done = done;
  }

  // Everyone alive and done reading: the memory of the group.
  const mem = { parent: rollup(process.pid), children: pids.map(rollup) };
  const sum = (f) => mem.parent[f] + mem.children.reduce((a, c) => a + c[f], 0);
  const total = Object.fromEntries(ROLLUP.map((f) => [f, sum(f)]));

  // Let them go and reap them.
  if (variant === 'cp' || variant === 'cp-none') {
    for (const k of kids) {
      if (k.c.connected) k.c.send('exit');
    }
    for (const k of kids) {
      try {
        await timed(k.exited, 20_000, 'child_process.fork child exit');
      } catch (e) {
        errors.push(e.message);
        k.c.kill('SIGKILL');
        await k.exited;
      }
    }
  } else {
    const dI32 = new Int32Array(kids.done.buffer);
    Atomics.store(dI32, 1, 1);
    kids.done.notify(1);
    for (const c of kids) {
      if (!c.join({ timeout: 20_000 })) {
        errors.push(`forked child ${c.pid} did not exit`);
        c.kill('SIGKILL');
        c.join({ timeout: 10_000 });
      } else if (c.exitCode !== 0) errors.push(`forked child ${c.pid} exited with ${c.exitCode ?? c.signalCode}`);
    }
    kids.done.close();
  }
  const sumsOk = expected === null || per.every((p) => p.sum === expected);
  if (!sumsOk) errors.push(`a child read other data: sums ${per.map((p) => p.sum).join(', ')}, expected ${expected}`);
  out({
    variant, mib, children: nChildren, fill_ms, parent_rss_before_fork: parentRss, expected,
    ok: isolatedOk && sumsOk, per_child: per, mem, total,
  });
  if (data instanceof SharedMemory) data.close();
}

const modes = { latency, cow };
if (!modes[mode]) {
  process.stderr.write(`usage: node --single-threaded --expose-gc bench/fork-parent.mjs latency|cow ...\n`);
  process.exit(2);
}
await modes[mode]();
ctl.close();
