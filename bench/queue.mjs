// Message-passing benchmarks: forksafe's Queue and Pipe side by side, in one run, with
// what else there is: a C Vyukov MPMC queue and memcpy (the floors), Node's process.send()
// and worker_threads postMessage(), and Python's multiprocessing Queue and Pipe.
//
//   node bench/queue.mjs                 (about 1-2 minutes on 2 CPUs; needs dist/ built)
//   BENCH_QUICK=1 node bench/queue.mjs   (fewer messages and repeats, 30-60 s)
//
// Measurements run in fresh processes, one JSON line each (the C and Python programs
// print one line per test): bench/queue-fs.mjs (forksafe: only when
// require('../dist/index.js').Queue exists; else its rows say "not built yet"),
// bench/msg-node.mjs (Node), bench/baselines/bin/{mpmc_queue,memcpy_bw} (C, built by
// bench/baselines/build.sh when `cc` exists) and bench/baselines/py_queue.py (when
// `python3` exists). Prints a table per section with ratios, the goals, and writes
// everything to bench/queue-results.json (the layout of bench/results.json:
// `node bench/markdown.mjs bench/queue-results.json`).
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import {
  busyLine, envLine, fmtInt, fmtNs, fmtOps, fmtRatio, has, loadWatch, log, machineEnv, median, newReport, nproc, QUICK, ratio,
  runJSON, speed,
} from './util.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);
const require = createRequire(import.meta.url);
const BASE = path.join(here, 'baselines');
const FS = path.join(here, 'queue-fs.mjs');
const NODE = path.join(here, 'msg-node.mjs');
const RESULTS = path.join(here, 'queue-results.json');
const MiB = 1 << 20;

const P = QUICK
  ? {
      runs: 1, fsRt: 5000, fsMsgs: 200_000, fsObjs: 100_000, fsBig1: 100, fsBig64: 4, fsMpmc: 400_000, fsMpmcReps: 2,
      cMsgs: 2_000_000, cReps: 3, cRt: 20_000, memcpyMs: 100, memcpyReps: 3,
      pyRt: 1000, pyMsgs: 50_000, pyBig: 100,
      ipcRt: 1000, ipcMsgs: 50_000, portRt: 2000, portMsgs: 100_000, portBig1: 50, portBig64: 4,
    }
  : {
      runs: 3, fsRt: 20_000, fsMsgs: 1_000_000, fsObjs: 300_000, fsBig1: 300, fsBig64: 10, fsMpmc: 2_000_000, fsMpmcReps: 3,
      cMsgs: 5_000_000, cReps: 5, cRt: 50_000, memcpyMs: 200, memcpyReps: 5,
      pyRt: 2000, pyMsgs: 200_000, pyBig: 300,
      ipcRt: 2000, ipcMsgs: 200_000, portRt: 5000, portMsgs: 300_000, portBig1: 200, portBig64: 10,
    };

const NOT_BUILT = 'not built yet';
const report = newReport();
const { notes, raw, sections, goal } = report;

// ---- environment ---------------------------------------------------------------------------
const pyVersion = has('python3', ['-c', 'import multiprocessing, sys; print(sys.version.split()[0])']);
const ccVersion = has('cc', ['--version'])?.split('\n')[0] ?? null;
let api = {};
try {
  api = require('../dist/index.js');
} catch (e) {
  notes.push(`forksafe rows skipped: require('../dist/index.js') failed (${e.message.split('\n')[0]}); run npm run build:ts.`);
}
const hasQueue = typeof api.Queue === 'function';
const hasPipe = typeof api.Pipe === 'function';
const env = machineEnv({ python: pyVersion, cc: ccVersion, quick: QUICK, forksafe_queue: hasQueue, forksafe_pipe: hasPipe }, notes,
  'these figures (round trips and throughput above all)');
const watch = loadWatch();

let cBuilt = false;
if (!ccVersion) {
  notes.push('C baselines skipped: no `cc` on PATH.');
} else {
  const b = spawnSync('sh', [path.join(BASE, 'build.sh')], { encoding: 'utf8', timeout: 120_000 });
  if (b.status === 0) cBuilt = true;
  else notes.push(`C baselines skipped: bench/baselines/build.sh failed: ${(b.stderr || b.error?.message || '').trim().split('\n').slice(-3).join(' ')}`);
}
if (!pyVersion) notes.push('Python rows skipped: `python3` (with multiprocessing) not found.');
if (!hasQueue) notes.push("forksafe rows not run: require('../dist/index.js').Queue does not exist yet (lib/ipc not built).");
else if (!hasPipe) notes.push("forksafe Pipe rows not run: require('../dist/index.js').Pipe does not exist yet.");

console.log(`forksafe message-passing benchmarks${QUICK ? ' (BENCH_QUICK)' : ''}`);
console.log(`  ${envLine(env)}`);
console.log(`  python ${pyVersion ?? '— (skipped)'} · cc ${ccVersion ?? '— (skipped)'} · forksafe Queue ${hasQueue ? 'yes' : NOT_BUILT}` +
  `${hasQueue ? ` · Pipe ${hasPipe ? 'yes' : NOT_BUILT}` : ''} · ${busyLine(env)}`);
console.log('  times are medians; "÷ X" = this row\'s time (per round trip or per message) ÷ X\'s (< 1 means faster than X)\n');

// ---- runners -----------------------------------------------------------------------------
/** Runs a command that prints JSON lines; {ok, data: [objects]} or {ok: false, error}. */
function runLines(cmd, args, timeoutMs = 180_000) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', cwd: root, maxBuffer: 64 * MiB });
  const tail = (s) => (s ?? '').trim().split('\n').slice(-6).join('\n');
  if (r.error) return { ok: false, error: `${cmd}: ${r.error.code ?? r.error.message}` };
  if (r.signal) return { ok: false, error: `${path.basename(cmd)} ${args.join(' ')}: killed by ${r.signal}\n${tail(r.stderr)}` };
  let data;
  try {
    data = (r.stdout ?? '').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  } catch (e) {
    return { ok: false, error: `${cmd}: bad JSON: ${e.message}` };
  }
  if (r.status !== 0 || data.length === 0) return { ok: false, error: `${path.basename(cmd)} ${args.join(' ')}: exit ${r.status}\n${tail(r.stderr)}`, data };
  return { ok: true, data };
}

function record(key, what, r) {
  (raw[key] ??= []).push(r.ok ? r.data : { error: r.error });
  if (!r.ok) notes.push(`${what} failed: ${r.error}`);
  return r.ok ? r.data : null;
}

/** bench/queue-fs.mjs <mode> (forksafe); null when not built. */
function fsq(mode, ...args) {
  if (!hasQueue || (mode === 'pipe-rt' && !hasPipe)) return null;
  log(`node queue-fs.mjs ${mode} ${args.join(' ')}`);
  const d = record(`fs_${mode}`, `forksafe ${mode} ${args.join(' ')}`, runJSON(process.execPath, [FS, mode, ...args.map(String)], { cwd: root, timeoutMs: 180_000 }));
  if (d && d.ok === false) notes.push(`forksafe ${mode} ${args.join(' ')}: ${d.bad} wrong messages`);
  return d;
}
/** bench/msg-node.mjs <mode> (Node's own). */
function nodeAlt(mode, ...args) {
  log(`node msg-node.mjs ${mode} ${args.join(' ')}`);
  const d = record(`node_${mode}`, `node ${mode} ${args.join(' ')}`, runJSON(process.execPath, [NODE, mode, ...args.map(String)], { cwd: root }));
  if (d && d.ok === false) notes.push(`node ${mode} ${args.join(' ')}: ${d.bad} wrong messages`);
  return d;
}
/** A C program's JSON lines, by their "test" field (the last of each). */
function cbin(name, ...args) {
  if (!cBuilt) return null;
  log(`${name} ${args.join(' ')}`);
  const d = record(`c_${name}`, `C ${name} ${args.join(' ')}`, runLines(path.join(BASE, 'bin', name), args.map(String)));
  if (!d) return null;
  for (const x of d) if (x.ok === false) notes.push(`C ${name} ${x.test}: the message checks failed`);
  return d.length === 1 ? d[0] : Object.fromEntries(d.map((x) => [x.test, x]));
}
/** py_queue.py's JSON lines, by test. */
function py(...args) {
  if (!pyVersion) return {};
  log(`python3 py_queue.py ${args.join(' ')}`);
  const d = record('py_queue', `Python py_queue.py ${args.join(' ')}`, runLines('python3', [path.join(BASE, 'py_queue.py'), ...args.map(String)]));
  if (!d) return {};
  for (const x of d) if (x.ok === false) notes.push(`Python ${x.test}: wrong messages or a failed child`);
  return Object.fromEntries(d.map((x) => [x.test, x]));
}

const pick = (o, k) => (o ? o[k] ?? null : null);
const val = (x) => (typeof x === 'number' && Number.isFinite(x) ? x : null); // NOT_BUILT → null
/** Median of field k over several runs (null if any failed). */
const medOf = (runs, k) => (runs.length && runs.every((r) => r && val(r[k]) != null) ? median(runs.map((r) => r[k])) : null);
/** A formatter that shows NOT_BUILT as is. */
const nb = (fmt) => (x) => (typeof x === 'string' ? x : fmt(x));
/** forksafe value: the number, or NOT_BUILT when the API is missing. */
const fsv = (built, x) => (built ? x : NOT_BUILT);
const gbps = (x) => (x == null ? '—' : `${x.toFixed(x < 10 ? 2 : 1)} GB/s`);
const pct = (x) => (x == null ? '—' : `${Math.round(x * 100)}%`);
const spreadText = (r) => (r && r.p10 != null ? `p10 ${fmtNs(r.p10)}, p90 ${fmtNs(r.p90)}` : '');
const runsText = (rs, k, f = fmtNs) => (rs.length > 1 ? `runs ${rs.map((r) => (r ? f(r[k]) : 'failed')).join(' / ')}` : '');

// ---- measurements -------------------------------------------------------------------------------
// Each kind runs P.runs times where run-to-run spread matters most (round trips); the
// Python and memcpy programs run once (they take medians inside).
log('C: memcpy, Vyukov queue');
const mem = cbin('memcpy_bw', '1024,65536', P.memcpyMs, P.memcpyReps);
const cT11 = cbin('mpmc_queue', 'throughput', P.cMsgs, 1, 1, 1024, 20, P.cReps);
const cT44 = cbin('mpmc_queue', 'throughput', P.cMsgs, 4, 4, 1024, 20, P.cReps);

log('Python multiprocessing');
const pyr = py(P.pyRt, P.pyMsgs, P.pyBig, 'all');

log('round trips (interleaved runs)');
const rt = { fsQ: [], fsP: [], c: [], ipcAdv: [], ipcJson: [], port: [] };
for (let i = 0; i < P.runs; i++) {
  rt.fsQ.push(fsq('queue-rt', P.fsRt));
  rt.fsP.push(fsq('pipe-rt', P.fsRt));
  rt.c.push(cbin('mpmc_queue', 'roundtrip', P.cRt, 20, 'none', 1024));
  rt.ipcAdv.push(nodeAlt('ipc-rt', P.ipcRt, 'advanced'));
  rt.ipcJson.push(nodeAlt('ipc-rt', P.ipcRt, 'json'));
  rt.port.push(nodeAlt('port-rt', P.portRt));
}

log('one-way throughput');
const fsT = fsq('queue-tput', P.fsMsgs, 'bytes');
const fsO = fsq('queue-tput', P.fsObjs, 'object');
const ipcT = { advanced: nodeAlt('ipc-tput', P.ipcMsgs, 'advanced', 'bytes'), json: nodeAlt('ipc-tput', P.ipcMsgs, 'json', 'bytes') };
const ipcO = { advanced: nodeAlt('ipc-tput', P.ipcMsgs, 'advanced', 'object'), json: nodeAlt('ipc-tput', P.ipcMsgs, 'json', 'object') };
const portT = nodeAlt('port-tput', P.portMsgs, 'bytes');
const portO = nodeAlt('port-tput', P.portMsgs, 'object');

log('bandwidth');
const fsB1 = fsq('queue-tput', P.fsBig1, MiB);
const fsB64 = fsq('queue-tput', P.fsBig64, 64 * MiB);
const fsB1big = fsq('queue-tput', P.fsBig1, MiB, 8 * MiB); // the message fits in the ring
const portB = {
  t1: nodeAlt('port-bw', MiB, P.portBig1, 'transfer'), t64: nodeAlt('port-bw', 64 * MiB, P.portBig64, 'transfer'),
  c1: nodeAlt('port-bw', MiB, P.portBig1, 'clone'), c64: nodeAlt('port-bw', 64 * MiB, P.portBig64, 'clone'),
};

log('many to many');
const fsM = fsq('queue-mpmc', P.fsMpmc, 4, 4, P.fsMpmcReps);

log('fixed cost');
const fsF = fsq('queue-fixed', 10);

// ---- 1. round trip -----------------------------------------------------------------------------
const rtFsQ = fsv(hasQueue, medOf(rt.fsQ, 'ns'));
const rtFsP = fsv(hasQueue && hasPipe, medOf(rt.fsP, 'ns'));
const rtC = medOf(rt.c, 'median_ns');
const rtAdv = medOf(rt.ipcAdv, 'ns');
const rtJson = medOf(rt.ipcJson, 'ns');
const rtSend = rtAdv != null && rtJson != null ? Math.min(rtAdv, rtJson) : rtAdv ?? rtJson; // the faster process.send
const rtPyQ = pick(pyr.queue_roundtrip, 'median_ns');
{
  const row = (label, ns, detail = '') => ({
    label, ns, vs_c: ratio(val(ns), rtC), vs_send: ratio(val(ns), rtSend), vs_pyq: ratio(val(ns), rtPyQ), detail,
  });
  const one = (runs) => (runs.length === 1 ? runs[0] : null);
  const rows = [
    row('forksafe Queue: put() → get() echo (two Queues)', rtFsQ, hasQueue ? runsText(rt.fsQ, 'ns') || spreadText(one(rt.fsQ)) : ''),
    row('forksafe Pipe: send() → recv() echo (one duplex Pipe)', rtFsP, hasPipe ? runsText(rt.fsP, 'ns') || spreadText(one(rt.fsP)) : ''),
    row('C Vyukov MPMC queue, spin ≤ 20 µs then futex (two rings)', rtC,
      runsText(rt.c, 'median_ns') || (one(rt.c) ? `p10 ${fmtNs(one(rt.c).p10_ns)}, p90 ${fmtNs(one(rt.c).p90_ns)}; futex waits ${fmtInt(one(rt.c).futex_waits)}` : '')),
    row('Node process.send() echo, advanced serialization (64-byte Buffer)', rtAdv, runsText(rt.ipcAdv, 'ns') || spreadText(one(rt.ipcAdv))),
    row('Node process.send() echo, json serialization (64-char string)', rtJson, runsText(rt.ipcJson, 'ns') || spreadText(one(rt.ipcJson))),
    row('Node worker.postMessage() echo, main ↔ worker_thread (one process)', medOf(rt.port, 'ns'), runsText(rt.port, 'ns') || spreadText(one(rt.port))),
    row('Python mp.Queue put() → get() echo (two Queues)', rtPyQ, pyr.queue_roundtrip ? `p10 ${fmtNs(pyr.queue_roundtrip.p10_ns)}, p90 ${fmtNs(pyr.queue_roundtrip.p90_ns)}` : ''),
    row('Python mp.Pipe send() → recv() echo', pick(pyr.pipe_roundtrip, 'median_ns')),
    row('Python mp.Pipe send_bytes() → recv_bytes() echo', pick(pyr.pipe_bytes_roundtrip, 'median_ns')),
  ];
  sections.push({
    id: 'roundtrip',
    title: `1. Round trip of a 64-byte message between two processes, median (forksafe ${fmtInt(P.fsRt)}, C ${fmtInt(P.cRt)}, ` +
      `process.send ${fmtInt(P.ipcRt)}, postMessage ${fmtInt(P.portRt)} round trips × ${P.runs} run(s), interleaved; Python ${fmtInt(P.pyRt)}; ` +
      '÷ process.send = ÷ the faster of its two serializations)',
    columns: [
      { key: 'label', header: 'what' },
      { key: 'ns', header: 'round trip', fmt: nb(fmtNs) },
      { key: 'vs_c', header: '÷ C queue', fmt: fmtRatio },
      { key: 'vs_send', header: '÷ process.send', fmt: fmtRatio },
      { key: 'vs_pyq', header: '÷ Py Queue', fmt: fmtRatio },
      { key: 'detail', header: 'detail' },
    ],
    rows,
  });
  for (const [r, what, built] of [[rows[0], 'Queue', hasQueue], [rows[1], 'Pipe', hasQueue && hasPipe]]) {
    goal(`${what} round trip ≤ 1 µs`, val(r.ns), built ? val(r.ns) != null && r.ns <= 1000 : null,
      built ? `${fmtNs(val(r.ns))} (C queue ${fmtNs(rtC)})` : `${NOT_BUILT} (C queue ${fmtNs(rtC)})`);
  }
  const q = rows[0];
  goal('Queue round trip ≥ 50× faster than process.send()', q.vs_send, hasQueue ? q.vs_send != null && q.vs_send <= 1 / 50 : null,
    hasQueue ? `${fmtNs(val(q.ns))} vs ${fmtNs(rtSend)} (${speed(q.vs_send)})` : `${NOT_BUILT} (process.send ${fmtNs(rtSend)}: needs ≤ ${fmtNs(rtSend / 50)})`);
  goal('Queue round trip ≥ 50× faster than Python mp.Queue', q.vs_pyq, hasQueue ? q.vs_pyq != null && q.vs_pyq <= 1 / 50 : null,
    hasQueue ? `${fmtNs(val(q.ns))} vs ${fmtNs(rtPyQ)} (${speed(q.vs_pyq)})` : `${NOT_BUILT} (Python mp.Queue ${fmtNs(rtPyQ)}: needs ≤ ${fmtNs(rtPyQ / 50)})`);
}

// ---- 2. one-way throughput, 64-byte messages ---------------------------------------------------------
const nsPer = (rate) => (val(rate) ? 1e9 / rate : null);
const tpFs = fsv(hasQueue, pick(fsT, 'msg_per_s'));
const tpC = pick(cT11, 'msg_per_s');
const tpPyQ = pick(pyr.queue_throughput, 'msg_per_s');
{
  const row = (label, rate, detail = '') => ({
    label, rate, ns: nsPer(rate), vs_c: ratio(nsPer(rate), nsPer(tpC)), vs_pyq: ratio(nsPer(rate), nsPer(tpPyQ)), detail,
  });
  const rows = [
    row('forksafe Queue put() → get(), 64-byte Buffers', tpFs),
    row('C Vyukov MPMC queue, 1 producer → 1 consumer', tpC, cT11 ? `runs ${cT11.samples_msg_per_s.map(fmtOps).join(' / ')}; futex waits ${fmtInt(cT11.futex_waits)}` : ''),
    row('Node worker postMessage() → main thread, 64-byte Buffers (one process)', pick(portT, 'msg_per_s')),
    row('Node process.send(), advanced serialization, 64-byte Buffers', pick(ipcT.advanced, 'msg_per_s')),
    row('Node process.send(), json serialization, 64-char strings', pick(ipcT.json, 'msg_per_s')),
    row('Python mp.Queue put() → get(), 64-byte bytes', tpPyQ),
    row('Python mp.Pipe send() → recv(), 64-byte bytes', pick(pyr.pipe_throughput, 'msg_per_s')),
    row('Python mp.Pipe send_bytes() → recv_bytes(), 64-byte bytes', pick(pyr.pipe_bytes_throughput, 'msg_per_s')),
  ];
  sections.push({
    id: 'throughput',
    title: `2. One-way throughput 1 → 1 of 64-byte messages between two processes (forksafe ${fmtInt(P.fsMsgs)}, C ${fmtInt(P.cMsgs)} × ${P.cReps} (median), ` +
      `Node ${fmtInt(P.ipcMsgs)} / ${fmtInt(P.portMsgs)}, Python ${fmtInt(P.pyMsgs)} messages; ns/msg = 1 / rate)`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'rate', header: 'messages/s', fmt: nb(fmtOps) },
      { key: 'ns', header: 'ns/msg', fmt: fmtNs },
      { key: 'vs_c', header: '÷ C queue', fmt: fmtRatio },
      { key: 'vs_pyq', header: '÷ Py Queue', fmt: fmtRatio },
      { key: 'detail', header: 'detail' },
    ],
    rows,
  });
  const f = rows[0];
  goal('Queue 1 → 1 throughput ≥ 5 M msg/s (64-byte Buffers)', val(f.rate), hasQueue ? val(f.rate) != null && f.rate >= 5e6 : null,
    hasQueue ? `${fmtOps(val(f.rate))} (C queue ${fmtOps(tpC)})` : `${NOT_BUILT} (C queue ${fmtOps(tpC)})`);
  goal('Queue 1 → 1 throughput ≥ 20× Python mp.Queue', f.vs_pyq, hasQueue ? f.vs_pyq != null && f.vs_pyq <= 1 / 20 : null,
    hasQueue ? `${fmtOps(val(f.rate))} vs ${fmtOps(tpPyQ)} (${speed(f.vs_pyq)})` : `${NOT_BUILT} (Python mp.Queue ${fmtOps(tpPyQ)}: needs ≥ ${fmtOps(tpPyQ * 20)})`);
}

// ---- 3. small objects ------------------------------------------------------------------------
{
  const pyObj = pick(pyr.queue_objects, 'msg_per_s');
  const port = pick(portO, 'msg_per_s');
  const row = (label, rate) => ({ label, rate, ns: nsPer(rate), vs_port: ratio(nsPer(rate), nsPer(port)), vs_pyq: ratio(nsPer(rate), nsPer(pyObj)) });
  const rows = [
    row('forksafe Queue put() → get() (the serializer)', fsv(hasQueue, pick(fsO, 'msg_per_s'))),
    row('Node worker postMessage() → main thread (one process)', port),
    row('Node process.send(), advanced serialization', pick(ipcO.advanced, 'msg_per_s')),
    row('Node process.send(), json serialization', pick(ipcO.json, 'msg_per_s')),
    row('Python mp.Queue put() → get() of the same dict', pyObj),
  ];
  sections.push({
    id: 'objects',
    title: `3. One-way throughput 1 → 1 of small objects {id, name: 'item-<id>', values: [1, 2, 3]} (forksafe ${fmtInt(P.fsObjs)}, ` +
      `Node ${fmtInt(P.ipcMsgs)} / ${fmtInt(P.portMsgs)}, Python ${fmtInt(P.pyMsgs)} messages)`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'rate', header: 'messages/s', fmt: nb(fmtOps) },
      { key: 'ns', header: 'ns/msg', fmt: fmtNs },
      { key: 'vs_port', header: '÷ postMessage', fmt: fmtRatio },
      { key: 'vs_pyq', header: '÷ Py Queue', fmt: fmtRatio },
    ],
    rows,
  });
  const f = rows[0];
  goal('Queue small-object throughput vs Python mp.Queue (info)', f.vs_pyq, null,
    hasQueue ? `${fmtOps(val(f.rate))} vs ${fmtOps(pyObj)} (${speed(f.vs_pyq)})` : `${NOT_BUILT} (Python mp.Queue ${fmtOps(pyObj)}, postMessage ${fmtOps(port)})`);
}

// ---- 4. bandwidth -------------------------------------------------------------------------------
const memOf = (size) => pick(mem?.sizes?.[String(size)], 'gbps');
const memColdOf = (size) => pick(mem?.sizes?.[String(size)], 'cold_gbps');
{
  const row = (label, size, g, detail = '') => ({
    label, size: `${size / MiB} MiB`, gbps: g, of_memcpy: val(g) != null && memOf(size) ? val(g) / memOf(size) : null,
    ms: val(g) ? (size / g) / 1e6 : null, detail,
  });
  const rows = [
    row('forksafe Queue({ capacity: 1 MiB }) put() → get()', MiB, fsv(hasQueue, pick(fsB1, 'gbps'))),
    row('forksafe Queue({ capacity: 1 MiB }) put() → get()', 64 * MiB, fsv(hasQueue, pick(fsB64, 'gbps'))),
    row('forksafe Queue({ capacity: 8 MiB }) put() → get() (fits in the ring)', MiB, fsv(hasQueue, pick(fsB1big, 'gbps'))),
    row('C memcpy, one thread, warm buffers', MiB, memOf(MiB)),
    row('C memcpy, one thread, warm buffers', 64 * MiB, memOf(64 * MiB)),
    row('C memcpy into a fresh mapping (page faults)', MiB, memColdOf(MiB)),
    row('C memcpy into a fresh mapping (page faults)', 64 * MiB, memColdOf(64 * MiB)),
    row('Node postMessage() to a worker, transfer list (copy into a fresh Buffer)', MiB, pick(portB.t1, 'gbps')),
    row('Node postMessage() to a worker, transfer list (copy into a fresh Buffer)', 64 * MiB, pick(portB.t64, 'gbps')),
    row('Node postMessage() to a worker, structured clone', MiB, pick(portB.c1, 'gbps')),
    row('Node postMessage() to a worker, structured clone', 64 * MiB, pick(portB.c64, 'gbps')),
    row('Python mp.Queue put() → get(), bytes', MiB, pick(pyr.queue_bandwidth, 'gbps')),
  ];
  sections.push({
    id: 'bandwidth',
    title: `4. Big Buffers one way, GB/s = 1e9 bytes/s (forksafe ${fmtInt(P.fsBig1)} × 1 MiB and ${fmtInt(P.fsBig64)} × 64 MiB; ` +
      `postMessage ${fmtInt(P.portBig1)} / ${fmtInt(P.portBig64)}, ≤ 4 in flight; Python ${fmtInt(P.pyBig)} × 1 MiB; ` +
      `memcpy median of ${P.memcpyReps} × ${P.memcpyMs} ms, this run; % = of warm memcpy of the same size)`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'size', header: 'message' },
      { key: 'gbps', header: 'bandwidth', fmt: nb(gbps) },
      { key: 'of_memcpy', header: '% of memcpy', fmt: pct },
      { key: 'ms', header: 'per message', fmt: (x) => (x == null ? '—' : fmtNs(x * 1e6)) },
      { key: 'detail', header: 'detail' },
    ],
    rows,
  });
  for (const [r, size, also] of [[rows[0], MiB, rows[2]], [rows[1], 64 * MiB, null]]) {
    const more = also && val(also.gbps) != null ? `; with capacity 8 MiB ${gbps(also.gbps)} = ${pct(also.of_memcpy)}` : '';
    goal(`Queue bandwidth ≥ 50% of memcpy, ${size / MiB} MiB Buffers (capacity 1 MiB)`, r.of_memcpy, hasQueue ? r.of_memcpy != null && r.of_memcpy >= 0.5 : null,
      hasQueue ? `${gbps(val(r.gbps))} = ${pct(r.of_memcpy)} of ${gbps(memOf(size))}${more}` : `${NOT_BUILT} (memcpy ${gbps(memOf(size))}: needs ≥ ${gbps(memOf(size) / 2)})`);
  }
}

// ---- 5. many to many ---------------------------------------------------------------------------------
{
  const c44 = pick(cT44, 'msg_per_s');
  const row = (label, shape, rate, cRate, detail = '') => ({ label, shape, rate, ns: nsPer(rate), vs_c: ratio(nsPer(rate), nsPer(cRate)), detail });
  const rows = [
    row('forksafe Queue, 64-byte Buffers', '4 → 4', fsv(hasQueue, pick(fsM, 'msg_per_s')), c44,
      fsM ? `runs ${fsM.samples_msg_per_s.map(fmtOps).join(' / ')}` : ''),
    row('C Vyukov MPMC queue', '4 → 4', c44, c44, cT44 ? `runs ${cT44.samples_msg_per_s.map(fmtOps).join(' / ')}; futex waits ${fmtInt(cT44.futex_waits)}` : ''),
    row('forksafe Queue (section 2)', '1 → 1', tpFs, tpC),
    row('C Vyukov MPMC queue (section 2)', '1 → 1', tpC, tpC),
  ];
  sections.push({
    id: 'mpmc',
    title: `5. 4 producer × 4 consumer processes on one queue, 64-byte messages, aggregate (forksafe ${fmtInt(P.fsMpmc)} messages, median of ${P.fsMpmcReps}; ` +
      `C ${fmtInt(P.cMsgs)}, median of ${P.cReps}; ${nproc} CPUs for 8 processes)`,
    columns: [
      { key: 'label', header: 'what' },
      { key: 'shape', header: 'P → C' },
      { key: 'rate', header: 'messages/s', fmt: nb(fmtOps) },
      { key: 'ns', header: 'ns/msg', fmt: fmtNs },
      { key: 'vs_c', header: '÷ C same shape', fmt: fmtRatio },
      { key: 'detail', header: 'detail' },
    ],
    rows,
  });
  goal('Queue 4 × 4 aggregate vs the C Vyukov queue (info)', rows[0].vs_c, null,
    hasQueue ? `${fmtOps(val(rows[0].rate))} vs ${fmtOps(c44)} (${fmtRatio(rows[0].vs_c)} the time per message)` : `${NOT_BUILT} (C ${fmtOps(c44)})`);
  if (nproc < 8) notes.push(`section 5 runs 8 processes on ${nproc} CPUs: the aggregate says how the queue behaves oversubscribed (sleeps and wake-ups), not how it scales.`);
}

// ---- 6. fixed cost ---------------------------------------------------------------------------------
{
  const kib = (b) => (b == null ? '—' : `${fmtInt(b / 1024)} KiB`);
  const num = (x) => (x == null ? '—' : Number.isInteger(x) ? String(x) : x.toFixed(1));
  const pyF = pyr.queue_fixed_cost;
  const fsRow = (label, d) => (hasQueue
    ? { label, fds: pick(d, 'fds'), shared: pick(d, 'shared_mapped_bytes'), threads: pick(d, 'threads'), detail: '' }
    : { label, fds: NOT_BUILT, shared: null, threads: null, detail: '' });
  const rows = [
    fsRow(`forksafe Queue({ capacity: 1 MiB }), the first`, fsF?.queue?.first),
    fsRow('forksafe Queue, each of 10 more', fsF?.queue?.each_more),
    fsRow('forksafe Queue, each of 10 more after a put() + get()', fsF?.queue_after_put_get?.each_more),
    fsRow('forksafe Queue: left after close() of all 11', fsF?.queue?.left_after_close),
    ...(hasPipe || !hasQueue ? [fsRow('forksafe Pipe(), each of 10 more', fsF?.pipe?.each_more)] : []),
    { label: 'Python mp.Queue, each of 10', fds: pick(pyF, 'fds_per_queue'), shared: pick(pyF, 'shared_mapped_bytes_per_queue'), threads: pick(pyF, 'threads_per_queue'), detail: 'a pipe and 3 semaphores' },
    { label: 'Python mp.Queue, each of 10 after a put() + get()', fds: pick(pyF, 'fds_per_queue_after_put'), shared: pick(pyF, 'shared_mapped_bytes_per_queue_after_put'),
      threads: pick(pyF, 'threads_per_queue_after_put'), detail: 'put() starts a feeder thread' },
  ];
  sections.push({
    id: 'fixed_cost',
    title: '6. Fixed cost of a queue in the process that makes it: fds opened, bytes of shared mappings (MAP_SHARED) and threads added',
    columns: [
      { key: 'label', header: 'what' },
      { key: 'fds', header: 'fds', fmt: nb(num) },
      { key: 'shared', header: 'shared mappings', fmt: kib },
      { key: 'threads', header: 'threads', fmt: num },
      { key: 'detail', header: 'detail' },
    ],
    rows,
  });
  goal('Queue fixed cost: fds and shared mappings per queue (info)', hasQueue ? pick(fsF?.queue?.each_more, 'fds') : null, null,
    hasQueue ? `${num(rows[1].fds)} fd(s), ${kib(rows[1].shared)} mapped, ${num(rows[1].threads)} thread(s) per queue; left after close: ${num(rows[3].fds)} fd(s), ${kib(rows[3].shared)}`
      : `${NOT_BUILT} (Python mp.Queue: ${num(pick(pyF, 'fds_per_queue'))} fds, ${kib(pick(pyF, 'shared_mapped_bytes_per_queue'))} mapped, a feeder thread after put())`);
}

report.finish({ file: RESULTS, env, params: P, watch, what: 'these figures (round trips and throughput above all)' });
