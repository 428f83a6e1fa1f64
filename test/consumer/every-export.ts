// A TypeScript consumer of the published package: every export, used the way the
// README shows. scripts/check-package.sh type-checks it (strict) under
// `module: nodenext` and under `moduleResolution: bundler`, with `"types": []`,
// against the packed tarball; it is never run. Each export name must appear below
// (the script checks that against the package's real exports).
import {
  getContext, getStartMethods, Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier, SharedMemory,
  Process, attach, setForkserverPreload, startForkserver, stopForkserver, forkserverPid, fork, exit, atfork,
  forkSafety, forkFlags, ForkedChild, ForkChildUnwind, ForksafeError, ContextError, OwnerDiedError, NotOwnerError, DeadlockError,
  NotRecoverableError, ClosedError, ForkUnsafeError, BrokenBarrierError, TimeoutError,
  Queue, SimpleQueue, JoinableQueue, Connection, Pipe, Pool, QueueEmptyError, QueueFullError, QueueShutDownError,
  PeerClosedError, CorruptError, WorkerDiedError, PoolClosedError, PoolBrokenError,
} from 'forksafe';
import type {
  Context, StartMethod, AcquireOptions, LockGuard, LockHandle, SemaphoreOptions, WaitOptions, BarrierOptions,
  SharedMemoryOptions, ProcessOptions, ExitInfo, Target, AtforkHooks, Handle, QueueOptions, PoolOptions, RunOptions,
} from 'forksafe';

export async function everything(): Promise<void> {
  const methods: StartMethod[] = getStartMethods();
  const ctx: Context = getContext(methods[0]);
  const lock = new ctx.Lock();
  const opts: AcquireOptions = { timeout: 100 };
  const got: boolean = lock.acquire(opts);
  if (got) lock.release();
  const guard: LockGuard = lock.lock();
  guard.release();
  const h: LockHandle = lock.handle();
  const again = attach<Lock>(h);
  const anyHandle: Handle = again.handle();
  void anyHandle;
  await lock.acquireAsync({ timeout: 10, signal: AbortSignal.timeout(1000) });
  lock.release();

  const r = new RLock();
  r.acquire();
  r.release();
  const l2 = new Lock();
  l2.close();

  const semOpts: SemaphoreOptions = { undoOnExit: true };
  const sem = new Semaphore(2, semOpts);
  sem.acquire();
  sem.release();
  const bounded = new BoundedSemaphore(1);
  await bounded.acquireAsync();
  bounded.release();

  const ev = new Event();
  const w: WaitOptions = { timeout: 5 };
  ev.set();
  const isSet: boolean = ev.wait(w) && ev.isSet();
  ev.clear();
  void isSet;

  const cond = new Condition();
  cond.acquire();
  cond.notifyAll();
  cond.release();

  const bOpts: BarrierOptions = { timeout: 1000 };
  const barrier = new Barrier(1, bOpts);
  const index: number = barrier.wait();
  void index;

  const shmOpts: SharedMemoryOptions = { size: 4096 };
  const shm = new SharedMemory(shmOpts);
  const words = new Int32Array(shm.buffer);
  Atomics.store(words, 0, 1);
  shm.notify(0);
  const state: 'ok' | 'not-equal' | 'timed-out' = shm.wait(0, 0, { timeout: 1 });
  void state;

  const target: Target = { module: new URL('./worker.js', import.meta.url), export: 'run' };
  const pOpts: ProcessOptions = { target, args: [lock, shm, { n: 1 }] };
  const p = new Process(pOpts).start();
  const info: ExitInfo = await p.exited;
  const code: number | null = info.code;
  const signal: NodeJS.Signals | null = info.signal;
  void code;
  void signal;

  setForkserverPreload([]);
  const { pid } = await startForkserver();
  const fsPid: number | null = forkserverPid();
  void pid;
  void fsPid;
  stopForkserver();

  const hooks: AtforkHooks = { prepare() {}, parent() {}, child() {} };
  const unregister: () => void = atfork(hooks);
  unregister();
  const flags: string[] = forkFlags();
  void flags;
  const safety: { safe: boolean; reasons: string[] } = forkSafety();
  if (safety.safe) {
    const child = fork(() => 0);
    if (child instanceof ForkedChild) await child.exited;
    const c2 = fork();
    if (c2 === null) exit(0);
  }

  const buf: Buffer = Buffer.alloc(1);
  void buf;

  const qOpts: QueueOptions = { maxsize: 10, capacity: 1 << 16 };
  const q = new Queue<{ n: number }>(qOpts);
  q.put({ n: 1 });
  const item: { n: number } = q.get({ timeout: 10 });
  await q.putAsync(item);
  for await (const x of q) {
    void x.n;
    break;
  }
  const n: number = q.qsize();
  void n;
  q.close();
  const sq = new SimpleQueue<string>();
  sq.put('x');
  sq.close();
  const jq = new JoinableQueue<number>();
  jq.put(1);
  jq.get();
  jq.taskDone();
  const joined: boolean = await jq.joinAsync({ timeout: 10 });
  void joined;
  jq.close();
  const [ca, cb]: [Connection, Connection] = Pipe();
  ca.send('hi');
  const got2: unknown = await cb.recvAsync({ timeout: 10 });
  void got2;
  ca.close();
  cb.close();
  const poolOpts: PoolOptions = { module: './task.js', workers: 1 };
  const pool = new Pool<number, number>(poolOpts);
  const ro: RunOptions = { timeout: 1000 };
  const res: number = await pool.run(1, ro);
  const all: number[] = await pool.map([1, 2], { chunksize: 1 });
  void res;
  void all;
  await pool.close();
  for (const E of [ForksafeError, ContextError, OwnerDiedError, NotOwnerError, DeadlockError, NotRecoverableError,
    ClosedError, ForkUnsafeError, BrokenBarrierError, TimeoutError, ForkChildUnwind, QueueEmptyError, QueueFullError,
    QueueShutDownError, PeerClosedError, CorruptError, WorkerDiedError, PoolClosedError, PoolBrokenError]) {
    const e: unknown = new Error('x');
    if (e instanceof E) throw e;
  }
  try {
    lock.acquire();
  } catch (e) {
    if (e instanceof OwnerDiedError) {
      const dead: number = e.pid;
      void dead;
      lock.markConsistent();
    } else if (e instanceof ForksafeError) {
      const c: string = e.code;
      void c;
    }
  }
}
