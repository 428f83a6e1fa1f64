'use strict';
// node examples/pool/example.js
// A pool of 2 workers counts primes; one task kills its own worker with SIGKILL
// (as the OOM killer would) and one throws. Python's multiprocessing.Pool.map
// would wait forever for the killed task; this pool reports it and goes on.
const path = require('node:path');
const { Pool, WorkerDiedError } = require('./pool.js');

async function main() {
  const pool = new Pool({ workers: 2, module: path.join(__dirname, 'tasks.js'), export: 'work' });
  pool.on('exit', ({ pid, code, signal }) => console.log(`  worker ${pid} exited (${signal ?? `code ${code}`})`));
  pool.on('spawn', (pid) => console.log(`  worker ${pid} started`));
  try {
    await pool.ready();
    console.log('6 tasks; task #2 kills its own worker with SIGKILL, task #4 throws:');
    const tasks = [1, 2, 3, 4, 5, 6].map((i) => ({ n: i * 10_000, crash: i === 3, fail: i === 5 ? 'odd mood' : undefined }));
    const t0 = Date.now();
    const settled = await Promise.allSettled(tasks.map((t) => pool.run(t)));
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') console.log(`  task #${i}: ${s.value.primes} primes below ${s.value.n} (worker ${s.value.pid})`);
      else if (s.reason instanceof WorkerDiedError) console.log(`  task #${i}: ${s.reason.name}: ${s.reason.message}`);
      else console.log(`  task #${i}: the task threw ${s.reason.name}: ${s.reason.message}`);
    });
    console.log(`all 6 settled in ${Date.now() - t0} ms; workers now: ${pool.pids.join(', ')}`);

    await pool.ready(); // the replacement has started
    console.log('pool.map() over 4 more tasks (the replacement worker serves too):');
    const results = await pool.map([100_000, 200_000, 300_000, 400_000].map((n) => ({ n })));
    for (const r of results) console.log(`  primes below ${r.n}: ${r.primes} (worker ${r.pid})`);
  } finally {
    await pool.close();
    console.log('closed: every worker has exited');
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
