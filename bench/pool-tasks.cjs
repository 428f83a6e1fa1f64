// The task module of bench/pool.mjs: the same functions for a forksafe Pool
// (`new Pool({ module, export })`, run(arg, { name })) and for piscina
// (`run(arg, { name })`); bench/pool-wp-worker.cjs registers them with
// workerpool. A big task flips the first byte of its 1 MiB argument and
// returns it (1 MiB each way, no copy inside the task).
'use strict';

exports.inc = (x) => x + 1;
exports.incChunk = (xs) => xs.map((x) => x + 1);
exports.big = (b) => {
  b[0] ^= 1;
  return b;
};
// piscina with a transfer list: the result goes back moved, not cloned.
exports.bigMove = (b) => {
  b[0] ^= 1;
  return require('piscina').move(b);
};
exports.pid = () => process.pid;
