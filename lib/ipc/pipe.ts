// Pipe() and Connection: two rings in one shared segment (one when simplex),
// and for each end a table of the processes and threads that hold it, so
// that a receiver whose peer is gone (closed, or dead) gets PeerClosedError
// once the pipe is drained instead of waiting forever. docs/messaging.md.
import { binding } from '../core/binding';
import { ClosedError, ContextError, invalidArgType, invalidThis, badHandle } from '../core/errors';
import type { StartMethod } from '../core/layout';
import { constructAttached, takeAttach } from '../core/primitive';
import { contextClass, defaultMethod, registerType } from '../core/registry';
import { BaseHandle } from '../core/runtime';
import { parseTimeout, timeoutOf, validateObject, validateSignal, signalAborted, signalReason } from '../core/validate';
import { onForkChild } from '../fork';
import { SharedMemory } from '../sync/shared-memory';
import { Channel, Hooks, PeerClosedError, QueueEmptyError, QueueShutDownError } from './channel';
import { Holders } from './holders';
import { TAG } from './codec';
import { CorruptError } from '../core/errors';
import { H, HEADER_BYTES, initRing, Ring, ringCap, sliceBefore } from './ring';

// Segment layout: [pipe header 1 KiB][ring 0 (end 0 receives)][ring 1 (end 1 receives)].
// Pipe header words: 0 magic, 1 flags (bit 0 duplex), 2 ring cap, 16..: the
// holders of end 0 (lib/ipc/holders.ts: HOLDERS threads, TRANSIT handles in
// transit), then end 1's.
const PIPE_MAGIC = 0x46535031; // 'FSP1'
const PIPE_HEADER = 1024;
const HOLDERS = 40;
const TRANSIT = 8;
const HOLDER_BASE = 16;
const PIPE_CAPACITY = 1 << 18;
const PEER_MS = 20;

function holderBase(end: number): number {
  return HOLDER_BASE + end * Holders.words(HOLDERS, TRANSIT);
}

let creating = false; // Pipe() is making its two ends: they are no handles in transit

// Live Connection objects of this thread, for fork(): a child holds the ends too.
const live = new Set<WeakRef<Connection>>();
onForkChild(() => {
  for (const r of [...live]) {
    const c = r.deref();
    if (!c) live.delete(r);
    else if (c._mine) c._mine.forked();
  }
});

export class Connection<T = unknown> {
  #connection = true;
  /** @internal */ _shm: SharedMemory | null = null;
  /** @internal */ _i32: Int32Array | null = null;
  /** @internal */ _end = 0;
  /** @internal */ _duplex = true;
  /** @internal */ _recv: Channel | null = null;
  /** @internal */ _send: Channel | null = null;
  /** @internal */ _method: StartMethod = 'spawn';
  /** @internal */ _mine: Holders | null = null; // our end's holders
  /** @internal */ _peer: Holders | null = null; // the other end's
  /** @internal */ _ref: WeakRef<Connection> | null = null;
  /** @internal */ _hooksR: Hooks;
  /** @internal */ _hooksS: Hooks;

  /** @internal */
  static _isConnection(o: unknown): o is Connection {
    return typeof o === 'object' && o !== null && #connection in o;
  }

  /** @internal Use Pipe(). */
  constructor() {
    const h = takeAttach() as (BaseHandle & { end?: unknown }) | null;
    if (!h) throw new TypeError('Connection objects are made by Pipe() (or attach() of a handle)');
    const end = h.end;
    if (end !== 0 && end !== 1) throw badHandle('Connection end must be 0 or 1');
    this._method = h.context;
    this._end = end;
    const shm = constructAttached(contextClass(SharedMemory, h.context), { ...h, type: 'SharedMemory' }) as SharedMemory;
    try {
      this._open(shm);
    } catch (e) {
      shm.close();
      throw e;
    }
    this._hooksR = { emptyCheck: () => this._peerCheck() };
    this._hooksS = { sendCheck: () => this._peerCheck() };
  }

  /** @internal */
  _open(shm: SharedMemory): void {
    const buf = shm.buffer;
    const i32 = new Int32Array(buf);
    if (Atomics.load(i32, 0) !== PIPE_MAGIC) throw new CorruptError('pipe magic');
    const duplex = (i32[1] & 1) === 1;
    const cap = i32[2] >>> 0;
    const ringLen = HEADER_BYTES + cap;
    if (cap < 4096 || (cap & (cap - 1)) !== 0 || PIPE_HEADER + 2 * ringLen > buf.byteLength) throw new CorruptError('pipe size');
    const rings = [new Ring(buf, PIPE_HEADER, ringLen), new Ring(buf, PIPE_HEADER + ringLen, ringLen)];
    this._shm = shm;
    this._i32 = i32;
    this._duplex = duplex;
    // End e receives on ring e and sends on ring 1-e. Simplex: end 0 only receives, end 1 only sends.
    const e = this._end;
    this._recv = duplex || e === 0 ? new Channel(rings[e], this._method, false) : null;
    this._send = duplex || e === 1 ? new Channel(rings[1 - e], this._method, false) : null;
    this._mine = new Holders(i32, holderBase(e), HOLDERS, TRANSIT, shm._id);
    this._peer = new Holders(i32, holderBase(1 - e), HOLDERS, TRANSIT, shm._id);
    this._mine.open();
    if (!creating) this._mine.arrived();
    this._ref = new WeakRef(this);
    live.add(this._ref);
  }

  /** @internal */ _peerSeen = -Infinity;

  /**
   * @internal PeerClosedError when nobody holds the other end. A holder in
   * another process costs a /proc read: a live answer is kept PEER_MS (a
   * close() wakes us, and a death is seen within that).
   */
  _peerCheck(force = false): void {
    const t = performance.now();
    if (!force && t - this._peerSeen < PEER_MS) return;
    if (!(this._peer as Holders).held()) throw new PeerClosedError();
    this._peerSeen = t;
  }

  /** @internal */
  _c(): void {
    if (!Connection._isConnection(this)) throw invalidThis('Connection');
    if (!this._shm) throw new ClosedError('Connection');
  }

  get readable(): boolean {
    if (!Connection._isConnection(this)) throw invalidThis('Connection');
    return this._recv !== null || (this._shm === null && (this._duplex || this._end === 0));
  }

  get writable(): boolean {
    if (!Connection._isConnection(this)) throw invalidThis('Connection');
    return this._send !== null || (this._shm === null && (this._duplex || this._end === 1));
  }

  get closed(): boolean {
    if (!Connection._isConnection(this)) throw invalidThis('Connection');
    return this._shm === null;
  }

  /** @internal */
  _sender(): Channel {
    this._c();
    if (!this._send) throw new TypeError('this end of a one-way pipe only receives');
    return this._send;
  }

  /** @internal */
  _receiver(): Channel {
    this._c();
    if (!this._recv) throw new TypeError('this end of a one-way pipe only sends');
    return this._recv;
  }

  /** Sends obj (blocks while the pipe is full); PeerClosedError when nobody holds the other end. */
  send(obj: T): void {
    this._c();
    const ch = this._sender();
    const e = ch.encode(obj, 'Connection.send()');
    ch.put(e, -1, this._hooksS);
  }

  sendBytes(buf: ArrayBuffer | ArrayBufferView): void {
    this._c();
    let bytes: Buffer;
    if (buf instanceof ArrayBuffer) bytes = Buffer.from(buf);
    else if (ArrayBuffer.isView(buf)) bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    else throw invalidArgType('buf', 'an ArrayBuffer or an ArrayBufferView', buf);
    const ch = this._sender();
    ch.put({ tag: TAG.BUFFER, len: bytes.byteLength, bytes, str: null }, -1, this._hooksS);
  }

  /** The next message; PeerClosedError when the pipe is drained and nobody holds the other end. */
  recv(opts?: { timeout?: number }): T {
    if (!Connection._isConnection(this)) throw invalidThis('Connection');
    const timeout = opts === undefined ? -1 : timeoutOf(opts);
    const ch = this._receiver();
    let got;
    try {
      got = ch.get(timeout, this._hooksR);
    } catch (e) {
      if (e instanceof QueueShutDownError) throw new PeerClosedError();
      throw e;
    }
    if (!got) throw new QueueEmptyError('no message within the timeout');
    return got.value as T;
  }

  /** @internal send() that never waits: false when the pipe is full. PeerClosedError as send(). */
  _trySend(obj: T): boolean {
    this._c();
    const ch = this._sender();
    const e = ch.encode(obj, 'Connection.send()');
    return ch.put(e, 0, this._hooksS);
  }

  /**
   * @internal The next message if one comes within `ms` (polling, then
   * sleeping: blocks this thread that long), else undefined. For a reader
   * that expects an answer within microseconds (the Pool's parent side).
   */
  _recvWithin(ms: number): T | undefined {
    const ch = this._receiver();
    const got = ch.get(ms, this._hooksR);
    return got ? (got.value as T) : undefined;
  }

  recvBytes(opts?: { timeout?: number }): Buffer {
    const v = this.recv(opts) as unknown;
    if (Buffer.isBuffer(v)) return v;
    if (typeof v === 'string') return Buffer.from(v, 'utf8');
    if (v instanceof ArrayBuffer) return Buffer.from(v);
    if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    throw new TypeError('recvBytes(): the message is not bytes (it was sent with send(); use recv())');
  }

  async recvAsync(opts?: { timeout?: number; signal?: AbortSignal }): Promise<T> {
    if (!Connection._isConnection(this)) throw invalidThis('Connection');
    let timeout = -1;
    let signal: AbortSignal | undefined;
    if (opts !== undefined) {
      validateObject('options', opts);
      const o = opts as { timeout?: unknown; signal?: unknown };
      timeout = parseTimeout(o.timeout, 'options.timeout');
      signal = validateSignal('options.signal', o.signal);
    }
    const deadline = timeout < 0 ? -1 : performance.now() + timeout;
    for (;;) {
      const ch = this._receiver();
      const shm = this._shm as SharedMemory;
      if (signalAborted(signal)) throw signalReason(signal as AbortSignal);
      const ring = ch.ring;
      const seq = ring.w(H.PUTSEQ);
      const got = ch.tryGet();
      if (got) return got.value as T;
      this._peerCheck();
      const t = sliceBefore(deadline);
      if (t === 0) throw new QueueEmptyError('no message within the timeout');
      ring.add(H.CWAIT, 1);
      try {
        await shm.waitAsync(ring.base + H.PUTSEQ, seq, { timeout: Math.max(1, t), signal });
      } catch (e) {
        if (!this._shm) throw new ClosedError('Connection');
        throw e;
      } finally {
        if (this._shm) ring.add(H.CWAIT, -1);
      }
    }
  }

  /** Whether a message is waiting (waits up to timeout ms; default 0). */
  poll(timeout = 0): boolean {
    if (!Connection._isConnection(this)) throw invalidThis('Connection');
    const ms = parseTimeout(timeout, 'timeout');
    const ch = this._receiver();
    const ring = ch.ring;
    const deadline = ms < 0 ? -1 : performance.now() + ms;
    for (;;) {
      const seq = ring.w(H.PUTSEQ);
      if (ring.w(H.COUNT) > 0) return true;
      try {
        this._peerCheck();
      } catch {
        return true; // recv() would not block: it throws PeerClosedError
      }
      const t = sliceBefore(deadline);
      if (t === 0) return false;
      ring.add(H.CWAIT, 1);
      binding.wordWait(ring.buf, (ring.base + H.PUTSEQ) * 4, seq, t);
      ring.add(H.CWAIT, -1);
    }
  }

  handle(): BaseHandle & { end: number } {
    this._c();
    const h = (this._shm as SharedMemory).handle() as BaseHandle;
    (this._mine as Holders).inTransit();
    return { ...h, type: 'Connection', end: this._end };
  }

  /** Closes this end here; the peer's recv() gets PeerClosedError once no one else holds it. */
  close(): void {
    if (!Connection._isConnection(this)) throw invalidThis('Connection');
    const shm = this._shm;
    if (!shm) return;
    // The thread leaves the end with its last object for it; then the
    // peer's receivers and senders are woken to re-check whether we are gone.
    const left = (this._mine as Holders).close();
    for (const ch of left ? [this._recv, this._send] : []) {
      if (!ch) continue;
      ch.ring.add(H.PUTSEQ, 1);
      ch.ring.add(H.GETSEQ, 1);
      binding.wordWake(ch.ring.buf, (ch.ring.base + H.PUTSEQ) * 4, 0x7fffffff);
      binding.wordWake(ch.ring.buf, (ch.ring.base + H.GETSEQ) * 4, 0x7fffffff);
    }
    if (this._ref) live.delete(this._ref);
    this._shm = null;
    this._i32 = null;
    this._recv = null;
    this._send = null;
    this._mine = null;
    this._peer = null;
    shm.close();
  }

  [Symbol.dispose](): void {
    Connection.prototype.close.call(this);
  }

  /** @internal */
  _checkContext(target: StartMethod, where: string): void {
    if (this._method !== target) {
      throw new ContextError(
        `Connection of the '${this._method}' context cannot be handed to ${where} of the '${target}' context: ` +
          `create the pipe with getContext('${target}').Pipe() instead.`,
      );
    }
  }
}

/** A pipe in shared memory: [a, b]. duplex false: a only receives, b only sends. */
export function makePipe(method: StartMethod, duplex = true, capacity = PIPE_CAPACITY): [Connection, Connection] {
  if (typeof duplex !== 'boolean') throw invalidArgType('duplex', 'of type boolean', duplex);
  const cap = ringCap(capacity);
  const ringLen = HEADER_BYTES + cap;
  const shm = new (contextClass(SharedMemory, method))({ size: PIPE_HEADER + 2 * ringLen });
  try {
    const i32 = new Int32Array(shm.buffer);
    initRing(i32, PIPE_HEADER >> 2, cap, 0, 0);
    initRing(i32, (PIPE_HEADER + ringLen) >> 2, cap, 0, 0);
    i32[1] = duplex ? 1 : 0;
    i32[2] = cap;
    Atomics.store(i32, 0, PIPE_MAGIC);
    const h = shm.handle() as BaseHandle;
    const C = contextClass(Connection, method);
    creating = true;
    let a: Connection | null = null;
    try {
      a = constructAttached(C, { ...h, type: 'Connection', end: 0 } as BaseHandle) as Connection;
      const b = constructAttached(C, { ...h, type: 'Connection', end: 1 } as BaseHandle) as Connection;
      return [a, b];
    } catch (e) {
      a?.close();
      throw e;
    } finally {
      creating = false;
    }
  } finally {
    shm.close();
  }
}

/** Pipe() of the default context. */
export function Pipe(duplex = true): [Connection, Connection] {
  return makePipe(defaultMethod(), duplex);
}

registerType('Connection', Connection);
