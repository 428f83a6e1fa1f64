'use strict';
// The child_process.fork() side of bench/fork.mjs, and the data pattern both
// sides use. CommonJS and no imports, so that a child_process.fork() child
// starts as fast as Node allows (an ES module would add the ESM loader).
//
//   child_process.fork(this file, ['up'])            first statement: process.send('up')
//   child_process.fork(this file, ['cow', MiB])      builds its own copy of the data, sums it,
//                                                    sends {sum, build_ms, read_ms, minflt}
//   child_process.fork(this file, ['idle'])          sends {} (a child with no data)
// Each then waits for any message from the parent and exits.
if (require.main === module && process.argv[2] === 'up') {
  process.send('up');
  process.once('message', () => process.exit(0));
}

/** The data: 32-bit word i of the region is fill(i). */
function fillWords(u32) {
  for (let i = 0; i < u32.length; i++) u32[i] = Math.imul(i, 0x9e3779b1) >>> 0;
}

/**
 * Reads every word: a wrapping 32-bit sum, with Int32 adds, 256 KiB per call
 * of the inner loop (so that V8 optimizes it as a whole function, not by OSR).
 */
function sumWords(u32) {
  const w = new Int32Array(u32.buffer, u32.byteOffset, u32.length);
  let s = 0;
  for (let i = 0; i < w.length; i += 65536) s = sumRange(w, i, Math.min(w.length, i + 65536), s);
  return s >>> 0;
}

function sumRange(w, from, to, s) {
  for (let i = from; i < to; i++) s = (s + w[i]) | 0;
  return s;
}

/** Minor page faults of this process so far (/proc/self/stat field 10). */
function minflt() {
  try {
    const f = require('node:fs').readFileSync('/proc/self/stat', 'utf8');
    return Number(f.slice(f.lastIndexOf(')') + 2).split(' ')[7]);
  } catch {
    return null;
  }
}

module.exports = { fillWords, sumWords, minflt };

if (require.main === module && process.argv[2] !== 'up') {
  const mode = process.argv[2];
  const mib = Number(process.argv[3] ?? 0);
  const now = () => Number(process.hrtime.bigint()) / 1e6;
  const out = {};
  if (mode === 'cow') {
    const f0 = minflt();
    const t0 = now();
    const buf = Buffer.allocUnsafe(mib * 1048576);
    const u32 = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2);
    fillWords(u32);
    const t1 = now();
    out.sum = sumWords(u32);
    out.build_ms = t1 - t0;
    out.read_ms = now() - t1;
    out.minflt = minflt() - f0;
    globalThis.keep = buf; // held until the parent has measured memory
  }
  process.send(out);
  process.once('message', () => process.exit(0));
}
