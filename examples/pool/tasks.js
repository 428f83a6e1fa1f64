'use strict';
// The task module of example.js: every worker loads it once, then calls
// `work(task)` for each task the pool hands it. Tasks and results are plain
// data (anything v8.serialize accepts).

/** CPU work: the number of primes below task.n. */
exports.work = function work(task) {
  if (task.crash) {
    // What the OOM killer does to a worker that grows too big.
    process.kill(process.pid, 'SIGKILL');
  }
  if (task.fail) throw new RangeError(`task ${task.n} refused: ${task.fail}`);
  let count = 0;
  for (let i = 2; i < task.n; i++) {
    let prime = true;
    for (let d = 2; d * d <= i; d++) {
      if (i % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) count++;
  }
  return { n: task.n, primes: count, pid: process.pid };
};
