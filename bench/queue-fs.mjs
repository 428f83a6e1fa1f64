// forksafe's Queue and Pipe, one measurement per process: `node bench/queue-fs.mjs <mode>
// [args]` prints one JSON line (bench/queue.mjs runs it beside bench/msg-node.mjs and the C
// and Python baselines). The other side runs in a forksafe Process (default context) whose
// target is in bench/queue-targets.mjs; queues, connections, events and shared memory go
// in its `args` and arrive attached.
//
// Modes (CAP = the ring's capacity in bytes, 1 MiB: the API's default, passed explicitly):
//   queue-rt   <round_trips>            64-byte Buffer: parent ping.put(); pong.get(), the child
//                                       echoes (two Queues)
//   pipe-rt    <round_trips>            the same through one duplex Pipe(): a.send(); a.recv()
//   queue-tput <messages> <bytes|object|SIZE> [capacity]   a child put()s N messages, the parent
//                                       get()s them: 64-byte Buffers, small objects {id, name,
//                                       values}, or Buffers of SIZE bytes (bandwidth, GB/s = 1e9
//                                       bytes/s); capacity: the ring's bytes (default CAP)
//   queue-mpmc <messages> <producers> <consumers> [repeats]   P producer and C consumer
//                                       processes on one Queue; wall = go → the last one done
//   queue-fixed [queues]                fds, threads and mapped bytes a Queue (and a Pipe)
//                                       adds to this process: the first one, then each of
//                                       `queues` more, then what is left after close()
// Round trips: median / p10 / p90 after a warm-up (n / 10 + 100). Throughput: the child
// puts `warm` messages, the parent drains them, then go (an Event): time from go.set() to
// the parent's N-th get(); msg/s = N / time.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { median, percentile, mean, round } from './util.mjs';
import { MSG, LIMIT, makeObject, READY, GO, DONE, RES_BYTE, SHM_SIZE, MAX_WORKERS } from './queue-targets.mjs';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const TARGETS = path.join(here, 'queue-targets.mjs');
const CAP = 1 << 20;

const [mode, ...argv] = process.argv.slice(2);
const num = (i, d) => (argv[i] !== undefined && argv[i] !== '' ? Number(argv[i]) : d);
const warmOf = (n) => Math.min(5000, Math.floor(n / 10) + 100);
const now = () => process.hrtime.bigint();
const numberOf = (m) => (m.readInt32LE ? m.readInt32LE(0) : new DataView(m.buffer, m.byteOffset, m.byteLength).getInt32(0, true));

function out(obj) {
  process.stdout.write(`${JSON.stringify({ mode, capacity: CAP, ...obj })}\n`);
}

const fsq = () => require('../dist/index.js');

function start(exportName, args, name) {
  const { Process } = fsq();
  return new Process({ target: { module: TARGETS, export: exportName }, args, name: `forksafe-bench-${name}` }).start();
}

/**
 * Runs body(); on a throw kills the children first. Then waits (10 s at most, then
 * SIGKILL) for every child to exit, and throws if one did not exit with 0.
 */
async function withChildren(kids, body) {
  const killAll = () => {
    for (const c of kids) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  let result;
  try {
    result = await body();
  } catch (e) {
    killAll();
    await Promise.all(kids.map((c) => c.exited));
    throw e;
  }
  const timer = setTimeout(killAll, 10_000);
  const exits = await Promise.all(kids.map((c) => c.exited));
  clearTimeout(timer);
  if (exits.some((x) => x.code !== 0)) throw new Error(`${mode}: children exited ${JSON.stringify(exits)} (their stderr is above)`);
  return result;
}

function rtStats(rt, n, bad) {
  return { ns: median(rt), p10: percentile(rt, 0.1), p90: percentile(rt, 0.9), mean: round(mean(rt)), round_trips: n, msg_bytes: MSG, ok: bad === 0, bad };
}

const modes = {
  async 'queue-rt'() {
    const { Queue } = fsq();
    const n = num(0, 10_000);
    const warm = warmOf(n);
    const ping = new Queue({ capacity: CAP });
    const pong = new Queue({ capacity: CAP });
    const child = start('queueEcho', [ping, pong, warm + n], 'queue-echo');
    const buf = Buffer.alloc(MSG, 7);
    const rt = new Array(n);
    let bad = 0;
    await withChildren([child], () => {
      for (let i = 0; i < warm + n; i++) {
        buf.writeInt32LE(i, 0);
        const t0 = now();
        ping.put(buf);
        const m = pong.get(LIMIT);
        const dt = Number(now() - t0);
        if (m.byteLength !== MSG || numberOf(m) !== i) bad++;
        if (i >= warm) rt[i - warm] = dt;
      }
    });
    ping.close();
    pong.close();
    out(rtStats(rt, n, bad));
  },

  async 'pipe-rt'() {
    const { Pipe } = fsq();
    const n = num(0, 10_000);
    const warm = warmOf(n);
    const [a, b] = Pipe();
    const child = start('pipeEcho', [b, warm + n], 'pipe-echo');
    const buf = Buffer.alloc(MSG, 7);
    const rt = new Array(n);
    let bad = 0;
    await withChildren([child], () => {
      for (let i = 0; i < warm + n; i++) {
        buf.writeInt32LE(i, 0);
        const t0 = now();
        a.send(buf);
        const m = a.recv(LIMIT);
        const dt = Number(now() - t0);
        if (m.byteLength !== MSG || numberOf(m) !== i) bad++;
        if (i >= warm) rt[i - warm] = dt;
      }
    });
    a.close?.();
    b.close?.();
    out(rtStats(rt, n, bad));
  },

  async 'queue-tput'() {
    const { Queue, Event } = fsq();
    const n = num(0, 200_000);
    const kind = argv[1] ?? 'bytes';
    const size = kind === 'bytes' ? MSG : kind === 'object' ? null : Number(kind);
    if (size !== null && !(size > 0)) throw new RangeError(`queue-tput: kind must be bytes|object|SIZE, got ${kind}`);
    const big = size !== null && size > MSG;
    const warm = big ? Math.max(1, Math.min(5, Math.floor(n / 10))) : warmOf(n);
    const capacity = num(2, CAP);
    const q = new Queue({ capacity });
    const go = new Event();
    const child = start('queueProduce', [q, go, warm, n, kind], 'queue-produce');
    let bad = 0;
    let dt = 0;
    await withChildren([child], () => {
      for (let i = 0; i < warm; i++) q.get(LIMIT);
      const t0 = now();
      go.set();
      if (kind === 'object') {
        for (let i = 0; i < n; i++) {
          const m = q.get(LIMIT);
          if (m.id !== i || m.values.length !== 3) bad++;
        }
      } else if (!big) {
        for (let i = 0; i < n; i++) {
          const m = q.get(LIMIT);
          if (m.byteLength !== MSG || numberOf(m) !== i) bad++;
        }
      } else {
        for (let i = 0; i < n; i++) {
          const m = q.get(LIMIT);
          if (m.byteLength !== size || m[size - 1] !== 7) bad++;
        }
      }
      dt = Number(now() - t0);
    });
    q.close();
    go.close();
    out({
      capacity, kind, msg_bytes: size, messages: n, msg_per_s: Math.round(n / (dt / 1e9)), ns_per_msg: round(dt / n, 1), wall_ms: round(dt / 1e6, 3),
      ...(big ? { gbps: round((n * size) / dt, 3) } : {}), ok: bad === 0, bad,
    });
  },

  async 'queue-mpmc'() {
    const { Queue, SharedMemory } = fsq();
    const total = num(0, 400_000);
    const np = num(1, 4);
    const nc = num(2, 4);
    const reps = num(3, 3);
    if (np + nc > MAX_WORKERS) throw new RangeError(`queue-mpmc: at most ${MAX_WORKERS} processes`);
    let perP = Math.floor(total / np);
    perP -= perP % nc; // every consumer gets the same count
    const n = perP * np;
    const perC = n / nc;
    const warm = 2000;
    const walls = [];
    let ok = true;
    for (let r = 0; r < reps; r++) {
      const q = new Queue({ capacity: CAP });
      const shm = new SharedMemory({ size: SHM_SIZE });
      const i32 = new Int32Array(shm.buffer);
      const kids = [];
      for (let p = 0; p < np; p++) kids.push(start('mpmcProducer', [q, shm, p, perP, warm], 'mpmc-producer'));
      for (let c = 0; c < nc; c++) kids.push(start('mpmcConsumer', [q, shm, c, perC, np, warm], 'mpmc-consumer'));
      const deadKid = () =>
        kids.find((c) => {
          try {
            return fs.readFileSync(`/proc/${c.pid}/stat`, 'utf8').split(') ').pop()[0] === 'Z';
          } catch {
            return true;
          }
        });
      const waitCount = (idx, want, what) => {
        const deadline = Date.now() + 60_000;
        for (;;) {
          const v = Atomics.load(i32, idx);
          if (v >= want) return;
          if (Date.now() > deadline) throw new Error(`queue-mpmc: ${what}: ${v}/${want} after 60 s`);
          if (shm.wait(idx, v, { timeout: 1000 }) === 'timed-out') {
            const d = deadKid();
            if (d) throw new Error(`queue-mpmc: ${what}: ${v}/${want}; child ${d.pid} died (its stderr is above)`);
          }
        }
      };
      await withChildren(kids, () => {
        waitCount(READY, np + nc, 'children ready');
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100); // let fresh processes' background threads settle
        const t0 = now();
        Atomics.store(i32, GO, 1);
        shm.notify(GO);
        waitCount(DONE, np + nc, 'children done');
        walls.push(Number(now() - t0));
      });
      const res = new Float64Array(shm.buffer, RES_BYTE, nc * 3);
      let got = 0;
      let sum = 0;
      let badMsgs = 0;
      for (let c = 0; c < nc; c++) {
        got += res[3 * c];
        sum += res[3 * c + 1];
        badMsgs += res[3 * c + 2];
      }
      const wantSum = np * ((perP * (perP - 1)) / 2);
      if (got !== n || sum !== wantSum || badMsgs) {
        ok = false;
        process.stderr.write(`queue-mpmc: got ${got}/${n}, sum ${sum} (want ${wantSum}), ${badMsgs} bad\n`);
      }
      q.close();
      shm.close();
    }
    const wall = median(walls);
    out({
      producers: np, consumers: nc, messages: n, msg_bytes: MSG, repeats: reps, msg_per_s: Math.round(n / (wall / 1e9)), ns_per_msg: round(wall / n, 1),
      wall_ms: round(wall / 1e6, 3), samples_msg_per_s: walls.map((w) => Math.round(n / (w / 1e9))), ok,
    });
  },

  'queue-fixed'() {
    const { Queue, Pipe } = fsq();
    const k = num(0, 10);
    const fds = () => fs.readdirSync('/proc/self/fd').length;
    const threads = () => Number(/^Threads:\s+(\d+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]);
    const mapped = () => {
      let total = 0;
      let shared = 0;
      for (const line of fs.readFileSync('/proc/self/maps', 'utf8').split('\n')) {
        if (!line) continue;
        const [range, perms] = line.split(' ');
        const [a, b] = range.split('-').map((x) => parseInt(x, 16));
        total += b - a;
        if (perms[3] === 's') shared += b - a;
      }
      return { total, shared };
    };
    const snap = () => ({ fds: fds(), threads: threads(), ...mapped() });
    const diff = (a, b, per = 1) => ({
      fds: (b.fds - a.fds) / per, threads: (b.threads - a.threads) / per,
      shared_mapped_bytes: (b.shared - a.shared) / per, mapped_bytes: (b.total - a.total) / per,
    });
    const measure = (make, close) => {
      const s0 = snap();
      const first = make();
      const s1 = snap();
      const more = Array.from({ length: k }, make);
      const s2 = snap();
      close(first);
      more.forEach(close);
      const s3 = snap();
      return { first: diff(s0, s1), each_more: diff(s1, s2, k), left_after_close: diff(s0, s3) };
    };
    const queue = measure(
      () => new Queue({ capacity: CAP }),
      (q) => q.close(),
    );
    // A queue that has carried a message: anything made lazily on first use (a thread, an fd).
    const used = measure(
      () => {
        const q = new Queue({ capacity: CAP });
        q.put(Buffer.alloc(MSG));
        q.get(LIMIT);
        return q;
      },
      (q) => q.close(),
    );
    const pipe = typeof Pipe === 'function'
      ? measure(
          () => Pipe(),
          ([a, b]) => {
            a.close?.();
            b.close?.();
          },
        )
      : null;
    out({ queues: k, queue, queue_after_put_get: used, pipe });
  },
};

const fn = modes[mode];
if (!fn) {
  process.stderr.write(`usage: node bench/queue-fs.mjs <${Object.keys(modes).join('|')}> [args]\n`);
  process.exit(2);
}
try {
  await fn();
} catch (e) {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
}
