// Small helpers shared by the bench scripts: statistics, a JS timing loop,
// child-process runners that expect one JSON line, a plain-text table, the
// machine description and the report (tables, goals, notes, results JSON) of
// the drivers (run.mjs, fork.mjs, forkserver.mjs), and the /proc readers and
// timers of the per-process scripts (fork-parent.mjs, forkserver-parent.mjs).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';

export function median(xs) {
  const v = [...xs].sort((a, b) => a - b);
  const n = v.length;
  if (n === 0) return NaN;
  return n & 1 ? v[n >> 1] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/** p in [0, 1]; nearest-rank on a sorted copy. */
export function percentile(xs, p) {
  const v = [...xs].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.floor(v.length * p))];
}

/**
 * Median, p10, p90, min, max, count and every sample (rounded to 3 decimals)
 * of the finite numbers in xs; null when there are none.
 */
export function stats(xs) {
  xs = xs.filter((x) => x != null && Number.isFinite(x));
  if (xs.length === 0) return null;
  return {
    median: round(median(xs), 3), p10: round(percentile(xs, 0.1), 3), p90: round(percentile(xs, 0.9), 3),
    min: round(Math.min(...xs), 3), max: round(Math.max(...xs), 3), n: xs.length, samples: xs.map((x) => round(x, 3)),
  };
}

export function mean(xs) {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/**
 * Times fn(n) `reps` times after two warm-up calls; returns the median ns per
 * iteration and every sample. fn owns its loop (so V8 optimizes the loop
 * itself, not a callback per iteration) and returns a value we check, so
 * that the loop body cannot be dropped as dead code.
 */
export function timeLoop(fn, n, reps, expect) {
  const warm = Math.max(1000, Math.floor(n / 10));
  fn(warm);
  fn(warm);
  const samples = [];
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    const out = fn(n);
    const dt = Number(process.hrtime.bigint() - t0);
    if (expect !== undefined && out !== expect(n)) throw new Error(`loop returned ${out}, expected ${expect(n)}`);
    samples.push(dt / n);
  }
  return { ns: round(median(samples), 2), samples: samples.map((s) => round(s, 2)), iters: n, repeats: reps };
}

export function round(x, d = 0) {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

/** Runs a command that prints one JSON line on stdout; {ok, data} or {ok: false, error}. */
export function runJSON(cmd, args, { timeoutMs = 120_000, env, cwd } = {}) {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
    env: env ?? process.env,
    cwd,
    maxBuffer: 64 * 1024 * 1024,
  });
  const tail = (s) => (s ?? '').trim().split('\n').slice(-6).join('\n');
  if (r.error) return { ok: false, error: `${cmd}: ${r.error.code ?? r.error.message}` };
  if (r.signal) return { ok: false, error: `${cmd} ${args.join(' ')}: killed by ${r.signal}${r.signal === 'SIGKILL' ? ' (time limit?)' : ''}\n${tail(r.stderr)}` };
  const lines = (r.stdout ?? '').trim().split('\n').filter((l) => l.startsWith('{'));
  if (r.status !== 0 || lines.length === 0) {
    return { ok: false, error: `${cmd} ${args.join(' ')}: exit ${r.status}\n${tail(r.stderr)}` };
  }
  try {
    return { ok: true, data: JSON.parse(lines[lines.length - 1]) };
  } catch (e) {
    return { ok: false, error: `${cmd}: bad JSON: ${e.message}` };
  }
}

export function has(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  return !r.error && r.status === 0 ? `${r.stdout}${r.stderr}`.trim() : null;
}

// ---- formatting ---------------------------------------------------------------

/** A duration in ns, printed with a unit that keeps 3 significant digits. */
export function fmtNs(ns) {
  if (ns == null || !Number.isFinite(ns)) return '—';
  if (ns < 10) return `${ns.toFixed(2)} ns`;
  if (ns < 100) return `${ns.toFixed(1)} ns`;
  if (ns < 1e4) return `${ns.toFixed(0)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(1)} µs`;
  return `${(ns / 1e6).toFixed(1)} ms`;
}

export function fmtRatio(r) {
  if (r == null || !Number.isFinite(r)) return '—';
  return r < 0.1 ? `${r.toFixed(3)}×` : `${r.toFixed(2)}×`;
}

export function fmtInt(x) {
  if (x == null || !Number.isFinite(x)) return '—';
  return Math.round(x).toLocaleString('en-US');
}

export function fmtOps(x) {
  if (x == null || !Number.isFinite(x)) return '—';
  return x >= 1e6 ? `${(x / 1e6).toFixed(2)} M/s` : `${(x / 1e3).toFixed(0)} k/s`;
}

/** A duration in ms (null: '—'), with fmtNs's units. */
export function fmtMs(x) {
  return x == null ? '—' : fmtNs(x * 1e6);
}

/** Bytes as whole MiB. */
export function fmtMiB(b) {
  return b == null ? '—' : `${fmtInt(b / 1048576)} MiB`;
}

/** The p10 – p90 range of stats() of durations in ms. */
export function fmtSpread(s) {
  return s ? `${fmtMs(s.p10)} – ${fmtMs(s.p90)}` : '—';
}

/** a ÷ b to 4 significant digits (forksafe ÷ baseline); null when either is missing. */
export function ratio(a, b) {
  return a != null && b != null && b > 0 ? Number((a / b).toPrecision(4)) : null;
}

/** A time ratio (forksafe ÷ baseline) in words. */
export function speed(r) {
  return r == null ? '—' : r <= 1 ? `${(1 / r).toFixed(1)}× faster` : `${r.toFixed(2)}× slower`;
}

/** Renders rows (arrays of strings) under headers, first column left-aligned. */
export function renderTable(headers, rows, indent = '  ') {
  const w = headers.map((h, i) => Math.max(len(h), ...rows.map((r) => len(r[i] ?? ''))));
  const line = (cells) =>
    indent + cells.map((c, i) => (i === 0 ? pad(c ?? '', w[i]) : padL(c ?? '', w[i]))).join('  ').trimEnd();
  return [line(headers), indent + w.map((n) => '─'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

function len(s) {
  return [...s].length;
}
function pad(s, n) {
  return s + ' '.repeat(Math.max(0, n - len(s)));
}
function padL(s, n) {
  return ' '.repeat(Math.max(0, n - len(s))) + s;
}

/** The same table as GitHub markdown. */
export function markdownTable(headers, rows) {
  const esc = (s) => String(s ?? '').replace(/\|/g, '\\|');
  return [
    `| ${headers.map(esc).join(' | ')} |`,
    `|${headers.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

// ---- the machine, and how busy it was (shared by the drivers) ----------------------

// CPU time counters from /proc/stat (all CPUs).
export function cpuStat() {
  // user nice system idle iowait irq softirq steal ...
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { idle: f[3] + (f[4] || 0), steal: f[7] || 0, total: f.slice(0, 8).reduce((a, b) => a + (b || 0), 0) };
}

// Fraction of all CPUs busy (non-idle) over `ms`; null if unreadable.
export function cpuBusy(ms) {
  try {
    const a = cpuStat();
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    const b = cpuStat();
    return b.total > a.total ? round(1 - (b.idle - a.idle) / (b.total - a.total), 2) : null;
  } catch {
    return null;
  }
}

// CPU time (clock ticks, like /proc/stat) of this process and of every child
// it has reaped: all the measurements, baselines included.
export function ownTicks() {
  const f = fs.readFileSync('/proc/self/stat', 'utf8').split(') ').pop().split(' ');
  return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
}

export function cpuModel() {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    return m ? m[1].trim() : os.cpus()[0]?.model ?? 'unknown';
  } catch {
    return os.cpus()[0]?.model ?? 'unknown';
  }
}

export const nproc = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;

/**
 * Watches the machine around a run: call at the start; `finish(env, notes,
 * what)` records steal and other processes' CPU use during the run in `env`
 * and adds a note when they make the figures unreliable.
 */
export function loadWatch() {
  let start = null;
  let own = null;
  try {
    start = cpuStat();
    own = ownTicks();
  } catch {}
  return {
    finish(env, notes, what) {
      try {
        // On a VM, time the hypervisor gave to other guests ("steal") slows everything down.
        const end = cpuStat();
        const total = end.total - start.total;
        env.steal_during = total > 0 ? round((end.steal - start.steal) / total, 3) : null;
        if (env.steal_during > 0.05) {
          notes.push(`the hypervisor took ${Math.round(env.steal_during * 100)}% of the CPU time during the run (steal): absolute figures are slow; compare ratios.`);
        }
        // Other processes during the run: busy time that is neither ours
        // (this process and every child it ran) nor steal.
        const busy = total - (end.idle - start.idle) - (end.steal - start.steal);
        env.others_busy_during = total > 0 ? round(Math.max(0, busy - (ownTicks() - own)) / total, 3) : null;
        if (env.others_busy_during > 0.1) {
          notes.push(`other processes used ${Math.round(env.others_busy_during * 100)}% of all CPUs during the run: ` +
            `they competed with the measurements, so ${what} are unreliable.`);
        }
      } catch {
        env.steal_during ??= null;
        env.others_busy_during = null;
      }
    },
  };
}

// ---- the drivers: run.mjs, fork.mjs, forkserver.mjs --------------------------------------

export const QUICK = !!process.env.BENCH_QUICK && process.env.BENCH_QUICK !== '0';

/** A progress line on stderr. */
export function log(s) {
  process.stderr.write(`  · ${s}\n`);
}

/**
 * The machine: node, V8, CPU, kernel, then `extra` (the driver's own
 * fields), then the load average and how busy the CPUs were over 700 ms
 * before the start. Adds a note to `notes` when they were busy, saying that
 * `what` are unreliable.
 */
export function machineEnv(extra, notes, what = 'these figures') {
  const env = {
    date: new Date().toISOString(),
    node: process.version,
    v8: process.versions.v8,
    cpu: cpuModel(),
    nproc,
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    ...extra,
    loadavg: os.loadavg().map((x) => round(x, 2)),
    busy_before: cpuBusy(700),
  };
  if (env.busy_before != null && env.busy_before > 0.2) {
    notes.push(
      `the machine was busy when the run started (${Math.round(env.busy_before * 100)}% of all CPUs in use by other processes): ` +
        `they compete for the CPUs, so ${what} are unreliable.`,
    );
  }
  return env;
}

/** The start of a driver's header: `node … (V8 …) · cpu · nproc N · kernel`. */
export function envLine(env) {
  return `node ${env.node} (V8 ${env.v8}) · ${env.cpu} · nproc ${env.nproc} · ${env.kernel}`;
}

/** `CPU busy before start N%` (or `?`). */
export function busyLine(env) {
  return `CPU busy before start ${env.busy_before == null ? '?' : `${Math.round(env.busy_before * 100)}%`}`;
}

/**
 * A driver's results, started now: `notes`, `raw` (the measuring processes'
 * JSON, by key), `sections` ({id, title, columns: [{key, header, fmt?}], rows})
 * and `goals`, filled by goal(); recordJSON() runs a measuring process and
 * finish() prints it all and writes the results JSON (the layout
 * bench/markdown.mjs renders).
 */
export function newReport() {
  const t0 = Date.now();
  const notes = [];
  const raw = {};
  const sections = [];
  const goals = [];
  return {
    notes,
    raw,
    sections,
    goals,

    /** met: true/false, or null for information (no verdict). */
    goal(text, value, met, detail) {
      goals.push({ goal: text, value, met: met === null ? null : !!met, detail });
    },

    /**
     * Runs `node ...args` (in cwd), which prints one JSON line; keeps its data
     * (or the error) in raw[key] and notes, as `what`, a failure or the errors
     * it reports (each once with uniqueErrors). Returns the data or null.
     */
    recordJSON(key, what, args, { cwd, timeoutMs, uniqueErrors = false } = {}) {
      const r = runJSON(process.execPath, args, { cwd, timeoutMs });
      raw[key] = r.ok ? r.data : { error: r.error };
      if (!r.ok) notes.push(`${what} failed: ${r.error}`);
      else if (r.data.errors?.length) notes.push(`${what}: ${(uniqueErrors ? [...new Set(r.data.errors)] : r.data.errors).join('; ')}`);
      return r.ok ? r.data : null;
    },

    /**
     * Prints the sections' tables, the goals and the notes (with what
     * watch.finish() adds about `what`), then writes {env, params, elapsed_s,
     * sections, goals, notes, raw} to `file`. noVerdictNote: say so after an
     * information goal that has no value.
     */
    finish({ file, env, params, watch, what = 'these figures', noVerdictNote = false }) {
      for (const s of sections) {
        s.headers = s.columns.map((c) => c.header);
        s.cells = s.rows.map((r) => s.columns.map((c) => (c.fmt ? c.fmt(r[c.key]) : String(r[c.key] ?? ''))));
        console.log(s.title);
        console.log(renderTable(s.headers, s.cells));
        console.log();
      }
      console.log('Goals');
      for (const g of goals) {
        const mark = g.met === null ? '·' : g.met ? '✓' : '✗';
        const noVerdict = noVerdictNote && g.met === null && g.value === null ? ' (baseline skipped or failed: no verdict)' : '';
        console.log(`  ${mark} ${g.goal}: ${g.detail}${noVerdict}`);
      }
      watch.finish(env, notes, what);
      if (notes.length) {
        console.log('\nNotes');
        for (const n of notes) console.log(`  - ${n}`);
      }
      const elapsed = round((Date.now() - t0) / 1000, 1);
      fs.writeFileSync(file, `${JSON.stringify({
        env,
        params,
        elapsed_s: elapsed,
        sections: sections.map(({ id, title, headers, cells, rows }) => ({ id, title, headers, cells, rows })),
        goals,
        notes,
        raw,
      }, null, 2)}\n`);
      console.log(`\nWrote ${file} (run took ${elapsed} s${env.steal_during != null ? `; hypervisor steal during the run ${round(env.steal_during * 100, 1)}%` : ''}` +
        `${env.others_busy_during != null ? `; other processes used ${round(env.others_busy_during * 100, 1)}% of the CPUs` : ''})`);
    },
  };
}

// ---- the per-process scripts: fork-parent.mjs, forkserver-parent.mjs ----------------------

/** kB fields of /proc/<pid>/status or smaps_rollup, in bytes. */
export function kbFields(file, names) {
  const text = fs.readFileSync(file, 'utf8');
  const o = {};
  for (const n of names) {
    const m = new RegExp(`^${n}:\\s+(\\d+) kB`, 'm').exec(text);
    o[n] = m ? Number(m[1]) * 1024 : null;
  }
  return o;
}

/** The promise, or a rejection `${what}: no answer in ${ms} ms`. */
export function timed(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`${what}: no answer in ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Waits (SharedMemory.wait) until word i of shm (i32: an Int32Array over its
 * buffer) is not 0; false after timeoutMs.
 */
export function waitWord(shm, i32, i, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Atomics.load(i32, i) === 0) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    shm.wait(i, 0, { timeout: left });
  }
  return true;
}
