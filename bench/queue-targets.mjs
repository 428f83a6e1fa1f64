// forksafe Process targets for bench/queue-fs.mjs (they run in children started by
// forksafe's bootstrap, which attaches the Queue / Connection / Event / SharedMemory
// passed in args before calling the export). Return value = exit code; a get()/recv()
// that times out throws, and the child exits 1 with the error on stderr.
//
// Messages: a 64-byte Buffer whose first 4 bytes (Int32 LE) are the message's number
// (and bytes 4-7 the producer's, in the 4 × 4 run); small objects {id, name, values}.

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const MSG = 64;
export const LIMIT = { timeout: 10_000 }; // no wait in a bench may hang forever

/** Echo: get from `ping`, put the same message on `pong`, `total` times. */
export function queueEcho(ping, pong, total) {
  for (let i = 0; i < total; i++) pong.put(ping.get(LIMIT));
  return 0;
}

/** Echo through one end of a Pipe: recv, send back. */
export function pipeEcho(conn, total) {
  for (let i = 0; i < total; i++) conn.send(conn.recv(LIMIT));
  return 0;
}

export function makeObject(i) {
  return { id: i, name: `item-${i}`, values: [1, 2, 3] };
}

/**
 * One-way producer: `warm` messages, then waits for `go` (an Event), then `n` more.
 * kind 'bytes': a 64-byte Buffer numbered i (the same Buffer each time: put() copies
 * it); 'object': makeObject(i); a number > 64: that many bytes (a Buffer filled with 7),
 * unnumbered.
 */
export function queueProduce(q, go, warm, n, kind) {
  if (kind === 'object') {
    for (let i = 0; i < warm; i++) q.put(makeObject(i));
    if (!go.wait(LIMIT)) return 2;
    for (let i = 0; i < n; i++) q.put(makeObject(i));
    return 0;
  }
  const size = kind === 'bytes' ? MSG : Number(kind);
  const buf = Buffer.alloc(size, 7);
  for (let i = 0; i < warm; i++) q.put(buf);
  if (!go.wait(LIMIT)) return 2;
  if (kind === 'bytes') {
    for (let i = 0; i < n; i++) {
      buf.writeInt32LE(i, 0);
      q.put(buf);
    }
  } else {
    for (let i = 0; i < n; i++) q.put(buf);
  }
  return 0;
}

// The 4 × 4 run's SharedMemory: Int32 READY / GO / DONE counters (one cache line each),
// then per consumer Float64 [count, sum of the numbers, bad messages] from byte RES_BYTE.
export const READY = 0;
export const GO = 16;
export const DONE = 32;
export const RES_BYTE = 256;
export const MAX_WORKERS = 16;
export const SHM_SIZE = RES_BYTE + MAX_WORKERS * 24;

function startTogether(shm, i32) {
  Atomics.add(i32, READY, 1);
  shm.notify(READY);
  const deadline = Date.now() + 30_000;
  while (Atomics.load(i32, GO) === 0) {
    if (Date.now() > deadline) return false;
    shm.wait(GO, 0, { timeout: 1000 });
  }
  return true;
}
function done(shm, i32) {
  Atomics.add(i32, DONE, 1);
  shm.notify(DONE);
}

// Warm-up on a private Queue of this process (put + get, the same code paths, no other
// process involved), as bench/targets.mjs's contendedWorker warms up on a private Lock.
function warmUp(buf, warm) {
  const { Queue } = require('../dist/index.js');
  const own = new Queue({ capacity: 1 << 16 });
  for (let i = 0; i < warm; i++) {
    own.put(buf);
    own.get(LIMIT);
  }
  own.close();
}

/** Producer `p` of the many-to-many run: n messages numbered 0..n-1, producer id in bytes 4-7. */
export function mpmcProducer(q, shm, p, n, warm) {
  const i32 = new Int32Array(shm.buffer);
  const buf = Buffer.alloc(MSG, 7);
  buf.writeInt32LE(p, 4);
  warmUp(buf, warm);
  if (!startTogether(shm, i32)) return 3;
  for (let i = 0; i < n; i++) {
    buf.writeInt32LE(i, 0);
    q.put(buf);
  }
  done(shm, i32);
  return 0;
}

const numberOf = (m) => (m.readInt32LE ? m.readInt32LE(0) : new DataView(m.buffer, m.byteOffset, m.byteLength).getInt32(0, true));

/**
 * Consumer `c`: gets `n` messages, checks that each producer's numbers arrive in order,
 * and writes [count, sum of the numbers, bad messages] for the parent.
 */
export function mpmcConsumer(q, shm, c, n, producers, warm) {
  const i32 = new Int32Array(shm.buffer);
  const res = new Float64Array(shm.buffer, RES_BYTE + c * 24, 3);
  const next = new Array(producers).fill(0);
  warmUp(Buffer.alloc(MSG, 0), warm);
  if (!startTogether(shm, i32)) return 3;
  let sum = 0;
  let bad = 0;
  for (let k = 0; k < n; k++) {
    const m = q.get(LIMIT);
    const i = numberOf(m);
    const p = m[4];
    if (m.byteLength !== MSG || p >= producers || i < next[p]) bad++;
    else next[p] = i + 1;
    sum += i;
  }
  res[0] = n;
  res[1] = sum;
  res[2] = bad;
  done(shm, i32);
  return 0;
}
