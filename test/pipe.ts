// Pipe() and Connection (lib/ipc/pipe.ts): duplex and one-way pipes between
// processes, PeerClosedError when no live process or thread holds the other
// end (closed, SIGKILLed, never attached), after the pipe is drained.
import t from 'tap';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { attach, ClosedError, ContextError, getContext, PeerClosedError, QueueEmptyError } from '../dist/index.js';
import { exitOf, sleep, starter, within } from './lib/children';

const ctx = getContext('spawn');
const { Pipe, Queue } = ctx;
const ROOT = path.join(__dirname, '..');
const FIXTURE = path.join(ROOT, 'build', 'fixtures', 'queue-child.js');
process.execArgv = process.execArgv.filter((a) => !a.includes('@tapjs/'));
const start = starter(FIXTURE);

t.test('duplex in one process: both ways, values, bytes, poll, readable/writable', async (t) => {
  const [a, b] = Pipe();
  t.teardown(() => { a.close(); b.close(); });
  t.equal(a.readable && a.writable && b.readable && b.writable, true, 'duplex: both ends read and write');
  t.equal(a.poll(), false, 'nothing waiting');
  a.send({ x: 1 });
  t.equal(b.poll(), true, 'poll() sees the message');
  t.same(b.recv(), { x: 1 });
  b.send('back');
  t.equal(a.recv(), 'back');
  a.sendBytes(new Uint8Array([1, 2, 3]));
  t.same(b.recvBytes(), Buffer.from([1, 2, 3]), 'sendBytes/recvBytes');
  t.throws(() => b.recv({ timeout: 20 }), QueueEmptyError, 'recv() timeout: QueueEmptyError');
  const t0 = performance.now();
  t.equal(b.poll(30), false, 'poll(30) waits, then false');
  t.ok(performance.now() - t0 >= 25);
  const p = b.recvAsync();
  a.send(7);
  t.equal(await within(p, 5000, 'recvAsync'), 7, 'recvAsync');
  a.send(Buffer.alloc(3_000_000, 1));
  const big = b.recv() as Buffer;
  t.equal(big.length, 3_000_000, 'a message larger than the pipe\'s ring');
});

t.test('one-way pipe: the first end only receives, the second only sends', async (t) => {
  const [r, w] = Pipe(false);
  t.teardown(() => { r.close(); w.close(); });
  t.same([r.readable, r.writable, w.readable, w.writable], [true, false, false, true]);
  w.send(1);
  t.equal(r.recv(), 1);
  t.throws(() => r.send(1), TypeError, 'send on the receiving end');
  t.throws(() => w.recv(), TypeError, 'recv on the sending end');
  t.throws(() => Pipe('yes' as never), { code: 'ERR_INVALID_ARG_TYPE' });
});

t.test('between processes: echo, and PeerClosedError once the peer process exits and the pipe is drained', async (t) => {
  const [a, b] = Pipe();
  t.teardown(() => a.close());
  const c = start(t, 'pipeEcho', [b, 100]);
  b.close(); // the child holds its own copy (in transit until it attaches)
  for (let i = 0; i < 100; i++) {
    a.send(i);
    if (a.recv({ timeout: 15_000 }) !== i) t.fail(`echo ${i}`);
  }
  t.pass('100 messages echoed by another process');
  t.same(await exitOf(c), { code: 0, signal: null });
  t.throws(() => a.recv({ timeout: 5000 }), PeerClosedError, 'the peer exited: PeerClosedError, not a wait');
  t.throws(() => a.send('x'), PeerClosedError, 'send() to a gone peer: PeerClosedError');
  // Messages the peer sent before it went are still delivered first.
  const [x, y] = Pipe();
  t.teardown(() => x.close());
  const s = start(t, 'pipeSendThenExit', [y, 5]);
  y.close();
  t.same(await exitOf(s), { code: 0, signal: null });
  const got = [];
  for (let i = 0; i < 5; i++) got.push(x.recv({ timeout: 5000 }));
  t.same(got, [0, 1, 2, 3, 4], 'what the dead peer sent is drained first');
  t.throws(() => x.recv({ timeout: 5000 }), { code: 'ERR_FORKSAFE_PEER_CLOSED' }, 'then PeerClosedError');
});

t.test('peer SIGKILLed while we are blocked in recv(): PeerClosedError within a bound', async (t) => {
  const [a, b] = Pipe();
  const ready = new Queue();
  t.teardown(() => { a.close(); ready.close(); });
  const c = start(t, 'pipeHold', [b, ready]);
  b.close();
  t.equal(ready.get({ timeout: 15_000 }), 'holding');
  const blocked = (async () => {
    const t0 = performance.now();
    try {
      await a.recvAsync();
      return 'no error';
    } catch (e) {
      return `${(e as { code?: string }).code} after ${Math.round(performance.now() - t0)} ms`;
    }
  })();
  await sleep(50);
  c.proc.kill('SIGKILL');
  await c.proc.exited;
  const r = await within(blocked, 10_000, 'recvAsync after the peer\'s death');
  t.match(r, /^ERR_FORKSAFE_PEER_CLOSED after/, `recvAsync: ${r}`);
  // Sync recv in a child blocked on a peer we close.
  const [p, q] = Pipe();
  const out = new Queue();
  t.teardown(() => out.close());
  const r2 = start(t, 'pipeRecvUntilClosed', [q, out]);
  q.close();
  p.send('one');
  await sleep(100);
  p.close();
  t.same(out.get({ timeout: 10_000 }), [1, 'ERR_FORKSAFE_PEER_CLOSED'], 'a child blocked in recv() gets PeerClosedError when we close');
  t.same(await exitOf(r2), { code: 0, signal: null });
});

t.test('closed ends, handles, contexts, worker_threads', async (t) => {
  const [a, b] = Pipe();
  a.close();
  t.throws(() => a.send(1), ClosedError);
  t.equal(a.closed, true);
  t.throws(() => b.recv({ timeout: 1000 }), PeerClosedError, 'our own other end closed: PeerClosedError');
  b.close();
  const [c, d] = getContext('forkserver').Pipe();
  t.throws(() => start(t, 'pipeEcho', [d, 1]), ContextError, 'a forkserver pipe to a spawn Process: ContextError');
  c.close();
  d.close();
  const [e, f] = Pipe();
  t.teardown(() => e.close());
  const w = new Worker(`
    const { workerData } = require('node:worker_threads');
    const { attach } = require(${JSON.stringify(path.join(ROOT, 'dist', 'index.js'))});
    const f = attach(workerData);
    for (let i = 0; i < 50; i++) f.send(f.recv() * 2);
    f.close();
  `, { eval: true, workerData: f.handle() });
  const workerExited = new Promise((r) => w.once('exit', r)); // attached now: the worker may end before we look
  f.close();
  let ok = 0;
  for (let i = 0; i < 50; i++) {
    e.send(i);
    if ((await e.recvAsync({ timeout: 15_000 })) === i * 2) ok++;
  }
  t.equal(ok, 50, 'a worker_thread holds the other end');
  await workerExited;
  t.throws(() => e.recv({ timeout: 3000 }), PeerClosedError, 'the worker closed its end: PeerClosedError');
  t.throws(() => attach({ ...e.handle(), end: 5 }), { code: 'ERR_FORKSAFE_BAD_HANDLE' }, 'a handle with a bad end');
});

t.test('regressions: a thread leaves an end with its last object; pending recvAsync rejects ClosedError at close()', async (t) => {
  const [a, b] = Pipe();
  const b2 = attach<typeof b>(b.handle());
  b.close();
  t.throws(() => a.recv({ timeout: 100 }), QueueEmptyError, 'b2 still holds the end: a timeout, not PeerClosedError');
  b2.send('via b2');
  t.equal(a.recv(), 'via b2');
  b2.close();
  t.throws(() => a.recv({ timeout: 2000 }), PeerClosedError, 'the last object closed: PeerClosedError');
  a.close();
  const [c, d] = Pipe();
  const p = c.recvAsync();
  c.close();
  await t.rejects(p, ClosedError, 'recvAsync pending at close(): ClosedError');
  d.close();
});
