// Small helpers shared by the bench scripts: statistics, a JS timing loop,
// child-process runners that expect one JSON line, and a plain-text table.
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

// ---- the machine, and how busy it was (shared by run.mjs and fork.mjs) ----------

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
