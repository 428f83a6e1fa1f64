'use strict';
// Child-process roles of the demo (demo/run.mjs). Each export is a Process
// target: `new Process({ target: { module: ROLES, export: 'holdLock' }, args })`.
// forksafe's bootstrap attaches the primitives found in args, calls the export,
// and exits with its numeric result.
//
// Every wait here is bounded, so a child left behind by a crashed demo still ends.

const nodeCrypto = require('node:crypto');
const zlib = require('node:zlib');

const STRAY_MS = 20_000; // how long a holder "works" before giving up on being killed

function sleepMs(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function errorInfo(e) {
  return { name: e && e.name, code: e && e.code, message: e && e.message };
}

/** Row 1: takes the lock, says so, then "works" until the parent SIGKILLs it. */
exports.holdLock = function holdLock(lock, held) {
  if (!lock.acquire({ timeout: 5000 })) return 2;
  held.set();
  sleepMs(STRAY_MS);
  return 3; // not killed: the demo reports it
};

/** Row 2: the Python script's wait_for_event(). It never runs: start() refuses first. */
exports.waitForEvent = function waitForEvent(event) {
  return event.wait({ timeout: 5000 }) ? 0 : 2;
};

/**
 * Row 4: releases a lock this process never acquired (the parent holds it),
 * then tries to get in itself. Prints one JSON line on stdout.
 */
exports.releaseForeign = function releaseForeign(lock) {
  const out = { releaseOk: false, error: null, acquiredWhileHeld: false };
  const t0 = process.hrtime.bigint();
  try {
    lock.release();
    out.releaseOk = true;
  } catch (e) {
    out.error = errorInfo(e);
  }
  out.releaseMs = Number(process.hrtime.bigint() - t0) / 1e6;
  // The parent still holds it: a try-acquire must fail.
  out.acquiredWhileHeld = lock.acquire({ timeout: 0 });
  if (out.acquiredWhileHeld) lock.release();
  process.stdout.write(JSON.stringify(out) + '\n');
  return 0;
};

/** Row 5: takes the only unit of the semaphore, says so, then "works" until killed. */
exports.holdSemaphore = function holdSemaphore(sem, held) {
  if (!sem.acquire({ timeout: 5000 })) return 2;
  held.set();
  sleepMs(STRAY_MS);
  return 3;
};

/** Row 6: takes the lock, says so, holds it for `ms`, releases it. */
exports.holdFor = function holdFor(lock, held, ms) {
  if (!lock.acquire({ timeout: 5000 })) return 2;
  held.set();
  sleepMs(ms);
  lock.release();
  return 0;
};

/**
 * Row 8, run in a worker_thread (demo/run.mjs starts it with `eval`): takes a
 * 'fork'-context Lock, says so, holds it until the main thread says `go`
 * (after it has forked), then releases it. Handles come in workerData.
 */
exports.lockHolderThread = function lockHolderThread() {
  const { workerData } = require('node:worker_threads');
  const { attach } = require('forksafe');
  const lock = attach(workerData.lock);
  const held = attach(workerData.held);
  const go = attach(workerData.go);
  try {
    if (!lock.acquire({ timeout: 5000 })) return;
    held.set();
    go.wait({ timeout: 15_000 });
    lock.release();
  } finally {
    lock.close();
    held.close();
    go.close();
  }
};

/**
 * Row 10, a task of forksafe's Pool (this file is the pool's task module): what the
 * Python script's task does. Task `bad` SIGKILLs its own worker, as the OOM killer would.
 */
exports.poolSquare = async function poolSquare({ x, bad }) {
  if (x === bad) process.kill(process.pid, 'SIGKILL');
  await new Promise((resolve) => setTimeout(resolve, 50));
  return x * x;
};

/** Row 14, a Pool task: [x * x, the worker's pid] after `ms` milliseconds. */
exports.poolSquarePid = async function poolSquarePid({ x, ms }) {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return [x * x, process.pid];
};

/** Row 14, a Pool task that hangs: it never returns (bounded, so that a stray worker still ends). */
exports.poolHang = function poolHang() {
  sleepMs(STRAY_MS);
  return 'never';
};

/** Row 11: the worker's first message back (start-up time), then it exits. */
exports.startupPing = function startupPing(up) {
  up.set();
  return 0;
};

/**
 * Row 12: a checksummed Buffer message, as in test/fixtures/queue-child.ts:
 * a 16-byte header (producer id, sequence, payload length, CRC-32 of the payload),
 * then random bytes. checkMessage() tells a whole message from a torn or mixed-up one.
 */
function checksum(b) {
  if (typeof zlib.crc32 === 'function') return zlib.crc32(b) >>> 0; // Node 22.2+
  return nodeCrypto.createHash('sha1').update(b).digest().readUInt32LE(0);
}

function makeMessage(id, seq, size) {
  const b = Buffer.allocUnsafe(size);
  nodeCrypto.randomFillSync(b, 16);
  b.writeUInt32LE(id, 0);
  b.writeUInt32LE(seq, 4);
  b.writeUInt32LE(size - 16, 8);
  b.writeUInt32LE(checksum(b.subarray(16)), 12);
  return b;
}

/** [id, seq] of a whole message, or null for a torn (or not a message) one. */
exports.checkMessage = function checkMessage(b) {
  if (!Buffer.isBuffer(b) || b.length < 16) return null;
  if (b.length !== 16 + b.readUInt32LE(8)) return null;
  if (checksum(b.subarray(16)) !== b.readUInt32LE(12)) return null;
  return [b.readUInt32LE(0), b.readUInt32LE(4)];
};

// Words of the producers' SharedMemory `state`, 8 per producer id: what the parent
// reads to kill a producer while it is inside put().
exports.PRODUCER_WORDS = { IN_PUT: 0, SEQ: 1, PUT_US: 2, STRIDE: 8 };

/**
 * Row 12: puts `size`-byte messages into `q`, one every `paceMs` (0: back to back),
 * until `stop` is set (or STRAY_MS). Around each put() it says, in `state`, that it
 * is inside put() and which message it is putting, and afterwards how long put() took.
 */
exports.queueProducer = function queueProducer(q, id, state, stop, size, paceMs) {
  const W = exports.PRODUCER_WORDS;
  const i32 = new Int32Array(state.buffer);
  const at = id * W.STRIDE;
  const end = Date.now() + STRAY_MS;
  for (let seq = 0; !stop.isSet() && Date.now() < end; seq++) {
    const m = makeMessage(id, seq, size);
    Atomics.store(i32, at + W.SEQ, seq);
    Atomics.store(i32, at + W.IN_PUT, 1);
    const t0 = process.hrtime.bigint();
    try {
      q.put(m, { timeout: 5000 }); // bounded: a full queue nobody reads ends the producer
    } catch (e) {
      if (e && (e.code === 'ERR_FORKSAFE_QUEUE_FULL' || e.code === 'ERR_FORKSAFE_QUEUE_SHUTDOWN')) return 2;
      throw e;
    }
    Atomics.store(i32, at + W.PUT_US, Number((process.hrtime.bigint() - t0) / 1000n));
    Atomics.store(i32, at + W.IN_PUT, 0);
    if (paceMs > 0) sleepMs(paceMs);
  }
  return 0;
};

/** Row 13: gets one item, reports it on `got`, then "works" on it until killed: no taskDone(). */
exports.takeOneAndHang = function takeOneAndHang(q, got) {
  const item = q.get({ timeout: 5000 });
  got.put(['killed consumer', item]);
  sleepMs(STRAY_MS);
  return 3;
};

/** Row 13: the other consumer: gets, reports on `got`, taskDone(), until shut down (or STRAY_MS idle). */
exports.joinWorker = function joinWorker(q, got) {
  for (;;) {
    let item;
    try {
      item = q.get({ timeout: STRAY_MS });
    } catch (e) {
      if (e && (e.code === 'ERR_FORKSAFE_QUEUE_SHUTDOWN' || e.code === 'ERR_FORKSAFE_QUEUE_EMPTY')) return 0;
      throw e;
    }
    got.put(['other consumer', item]);
    q.taskDone();
  }
};

// Row 11 with child_process.fork(): `fork(ROLES, ['--startup-ping'])` sends one
// IPC message as soon as it runs, then exits.
if (require.main === module && process.argv.includes('--startup-ping')) {
  process.send('up', () => process.disconnect());
}
