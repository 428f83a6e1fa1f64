// What Node offers for messages between processes and threads: one measurement per
// process, `node bench/msg-node.mjs <mode> [args]` prints one JSON line (bench/queue.mjs
// runs them beside the C and Python baselines and forksafe's Queue). No forksafe code here.
//
// Modes:
//   ipc-rt    <round_trips> <advanced|json>     process.send() echo with a child_process.fork()
//             child: a 64-byte Buffer (advanced serialization) or a 64-character string (json,
//             which has no bytes type: a Buffer would go as {type, data: [64 numbers]})
//   ipc-tput  <messages> <advanced|json> <bytes|object>   the child process.send()s N messages,
//             the parent receives them (bytes: 64-byte Buffer / 64-char string as above; object:
//             {id, name, values: [1, 2, 3]})
//   port-rt   <round_trips>                      worker.postMessage() → parentPort.postMessage()
//             echo of a 64-byte Buffer between the main thread and a worker_thread
//   port-tput <messages> <bytes|object>          a worker posts N messages, the main thread gets them
//   port-bw   <bytes> <messages> <transfer|clone>  the main thread posts N Buffers of `bytes` to a
//             worker (at most 4 unacknowledged): transfer = a fresh Buffer per message, the source
//             copied into it, sent with its ArrayBuffer in the transfer list (what sending a copy
//             costs when the sender keeps its data, as a queue's put() does); clone = postMessage(src)
//             (structured clone: copied on both sides). GB/s = 1e9 bytes per second.
// Round trips: median / p10 / p90 of each round trip after a warm-up (n / 10 + 100).
// Throughput: the sender sends `warm` messages first, which the receiver drains; then the
// receiver says go and times until the N-th message: msg/s = N / time.
import { fork } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { median, percentile, mean, round } from './util.mjs';

const SELF = fileURLToPath(import.meta.url);
const [mode, ...argv] = process.argv.slice(2);
const num = (i, d) => (argv[i] !== undefined && argv[i] !== '' ? Number(argv[i]) : d);
const MSG = 64;
const LIMIT_MS = 20_000;

function out(obj) {
  process.stdout.write(`${JSON.stringify({ mode, ...obj })}\n`);
}
const now = () => process.hrtime.bigint();
const warmOf = (n) => Math.min(5000, Math.floor(n / 10) + 100);

// The payloads. A message is made fresh for each send (its first byte or character says
// which one it is); the receiver checks it.
const STR_BASE = 'x'.repeat(MSG - 1);
const makeMsg = {
  buffer: (i, buf) => {
    buf[0] = i & 255; // postMessage / process.send serialize synchronously: the buffer can be reused
    return buf;
  },
  string: (i) => String.fromCharCode(97 + (i % 26)) + STR_BASE,
  object: (i) => ({ id: i, name: `item-${i}`, values: [1, 2, 3] }),
};
const checkMsg = {
  buffer: (m, i) => m.byteLength === MSG && m[0] === (i & 255),
  string: (m, i) => m.length === MSG && m.charCodeAt(0) === 97 + (i % 26),
  object: (m, i) => m.id === i && m.values.length === 3,
};
// The payload kind for a serialization and `bytes|object`.
const kindOf = (ser, what) => (what === 'object' ? 'object' : ser === 'json' ? 'string' : 'buffer');

function deadline(what) {
  let timer;
  const p = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no progress in ${LIMIT_MS} ms`)), LIMIT_MS);
  });
  return { p, refresh: () => timer.refresh(), clear: () => clearTimeout(timer) };
}

/** Round trips through send(msg) → a 'message' (the echo); returns the stats. */
async function roundTrips(n, send, onMessage, kind) {
  const warm = warmOf(n);
  const buf = Buffer.alloc(MSG, 120);
  const rt = new Array(n);
  let bad = 0;
  let resolveOne;
  onMessage((m) => resolveOne(m));
  const dl = deadline('round trip');
  try {
    for (let i = 0; i < warm + n; i++) {
      const msg = makeMsg[kind](i, buf);
      const got = new Promise((r) => (resolveOne = r));
      const t0 = now();
      send(msg);
      const m = await Promise.race([got, dl.p]);
      const dt = Number(now() - t0);
      dl.refresh();
      if (!checkMsg[kind](m, i)) bad++;
      if (i >= warm) rt[i - warm] = dt;
    }
  } finally {
    dl.clear();
  }
  return { ns: median(rt), p10: percentile(rt, 0.1), p90: percentile(rt, 0.9), mean: round(mean(rt)), round_trips: n, msg_kind: kind, ok: bad === 0, bad };
}

/**
 * The receiving side of a throughput run: drains `warm` messages, calls go(), then times
 * until the N-th message. onMessage(fn) registers the handler.
 */
function receiveTimed(n, warm, kind, onMessage, go) {
  return new Promise((resolve, reject) => {
    let got = 0;
    let bad = 0;
    let t0 = 0n;
    const dl = deadline('throughput');
    dl.p.catch(reject);
    onMessage((m) => {
      if (got < warm) {
        got++;
        if (got === warm) {
          dl.refresh();
          t0 = now();
          go();
        }
        return;
      }
      const i = got - warm;
      if (!checkMsg[kind](m, i)) bad++;
      got++;
      if ((i & 4095) === 0) dl.refresh();
      if (i === n - 1) {
        const dt = Number(now() - t0);
        dl.clear();
        resolve({ messages: n, msg_kind: kind, msg_per_s: Math.round(n / (dt / 1e9)), ns_per_msg: round(dt / n, 1), wall_ms: round(dt / 1e6, 3), ok: bad === 0, bad });
      }
    });
  });
}

function forkChild(ser, ...args) {
  return fork(SELF, args, { serialization: ser, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
}

// A worker from source (CommonJS, eval).
function worker(src, workerData) {
  const w = new Worker(src, { eval: true, workerData });
  w.on('error', (e) => {
    process.stderr.write(`worker: ${e?.stack ?? e}\n`);
    process.exit(1);
  });
  return w;
}
// The payload helpers, as source, for the workers.
const helpersSrc = `
  const MSG = ${MSG};
  const STR_BASE = ${JSON.stringify(STR_BASE)};
  const makeMsg = { buffer: ${makeMsg.buffer.toString()}, string: ${makeMsg.string.toString()}, object: ${makeMsg.object.toString()} };
`;

const modes = {
  // ---- process.send ------------------------------------------------------------------
  async 'ipc-rt'() {
    const n = num(0, 2000);
    const ser = argv[1] ?? 'advanced';
    const child = forkChild(ser, 'ipc-echo');
    try {
      const r = await roundTrips(n, (m) => child.send(m), (fn) => child.on('message', fn), kindOf(ser, 'bytes'));
      out({ serialization: ser, ...r });
    } finally {
      child.kill('SIGKILL');
    }
  },

  'ipc-echo'() {
    process.on('message', (m) => process.send(m));
    process.on('disconnect', () => process.exit(0));
  },

  async 'ipc-tput'() {
    const n = num(0, 100_000);
    const ser = argv[1] ?? 'advanced';
    const kind = kindOf(ser, argv[2] ?? 'bytes');
    const warm = warmOf(n);
    const child = forkChild(ser, 'ipc-produce', n, warm, kind);
    try {
      const r = await receiveTimed(n, warm, kind, (fn) => child.on('message', fn), () => child.send('go'));
      out({ serialization: ser, ...r });
    } finally {
      child.kill('SIGKILL');
    }
  },

  'ipc-produce'() {
    const [n, warm] = [Number(argv[0]), Number(argv[1])];
    const kind = argv[2];
    const buf = Buffer.alloc(MSG, 120);
    for (let i = 0; i < warm; i++) process.send(makeMsg[kind](i, buf));
    process.on('message', () => {
      for (let i = 0; i < n; i++) process.send(makeMsg[kind](i, buf));
    });
    process.on('disconnect', () => process.exit(0));
  },

  // ---- worker_threads postMessage ------------------------------------------------------
  async 'port-rt'() {
    const n = num(0, 5000);
    const w = worker(`
      const { parentPort } = require('node:worker_threads');
      parentPort.on('message', (m) => parentPort.postMessage(m));`);
    try {
      const r = await roundTrips(n, (m) => w.postMessage(m), (fn) => w.on('message', fn), 'buffer');
      out(r);
    } finally {
      await w.terminate();
    }
  },

  async 'port-tput'() {
    const n = num(0, 200_000);
    const kind = argv[1] === 'object' ? 'object' : 'buffer';
    const warm = warmOf(n);
    const w = worker(`
      const { parentPort, workerData: { n, warm, kind } } = require('node:worker_threads');
      ${helpersSrc}
      const buf = Buffer.alloc(MSG, 120);
      for (let i = 0; i < warm; i++) parentPort.postMessage(makeMsg[kind](i, buf));
      parentPort.once('message', () => {
        for (let i = 0; i < n; i++) parentPort.postMessage(makeMsg[kind](i, buf));
      });`, { n, warm, kind });
    try {
      const r = await receiveTimed(n, warm, kind, (fn) => w.on('message', fn), () => w.postMessage('go'));
      out(r);
    } finally {
      await w.terminate();
    }
  },

  async 'port-bw'() {
    const size = num(0, 1 << 20);
    const count = num(1, 50);
    const how = argv[2] === 'clone' ? 'clone' : 'transfer';
    const WINDOW = 4;
    const warm = 2;
    const w = worker(`
      const { parentPort } = require('node:worker_threads');
      parentPort.on('message', (m) => parentPort.postMessage(m.byteLength === ${size} && m[${size - 1}] === 7 ? 1 : 0));`);
    const src = Buffer.alloc(size, 7);
    const send = () => {
      if (how === 'clone') return w.postMessage(src);
      const b = Buffer.allocUnsafeSlow(size); // its own ArrayBuffer, exactly `size` bytes
      src.copy(b);
      w.postMessage(b, [b.buffer]);
    };
    try {
      const run = (k) =>
        new Promise((resolve, reject) => {
          let sent = 0;
          let acked = 0;
          let bad = 0;
          const dl = deadline('port-bw');
          dl.p.catch(reject);
          const onAck = (ok) => {
            if (!ok) bad++;
            acked++;
            dl.refresh();
            if (acked === k) {
              w.off('message', onAck);
              dl.clear();
              resolve(bad);
            } else if (sent < k) {
              sent++;
              send();
            }
          };
          w.on('message', onAck);
          for (; sent < Math.min(WINDOW, k); sent++) send();
        });
      await run(warm);
      const t0 = now();
      const bad = await run(count);
      const dt = Number(now() - t0);
      out({ how, msg_bytes: size, messages: count, window: WINDOW, gbps: round((size * count) / dt, 3), ms_per_msg: round(dt / count / 1e6, 3), wall_ms: round(dt / 1e6, 3), ok: bad === 0, bad });
    } finally {
      await w.terminate();
    }
  },
};

const fn = modes[mode];
if (!fn) {
  process.stderr.write(`usage: node bench/msg-node.mjs <${Object.keys(modes).join('|')}> [args]\n`);
  process.exit(2);
}
try {
  await fn();
} catch (e) {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
}
