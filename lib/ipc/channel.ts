// Sending and receiving on one Ring, sync and async, with the wait protocol
// (spin, then sleep on the ring's sequence words in slices; repair after a
// slice without progress), spills for messages too big for the ring, and the
// JoinableQueue's unacknowledged items. Used by Queue (lib/ipc/queue.ts) and
// Connection (lib/ipc/pipe.ts).
import { binding } from '../core/binding';
import { CorruptError, QueueShutDownError } from '../core/errors';
export { PeerClosedError, QueueEmptyError, QueueFullError, QueueShutDownError } from '../core/errors';
import type { StartMethod } from '../core/layout';
import { onToken, TOKEN } from '../core/runtime';
import { contextClass } from '../core/registry';
import { SharedMemory } from '../sync/shared-memory';
import { decode, encode, Encoded, knownTag, TAG, writeEncoded } from './codec';
import { H, Owner, REC, Ring, SLICE_MS, SMALL, ST, sliceBefore } from './ring';

/** This thread's identity in records and the index lock (a fork()ed child gets its own). */
export const ME: Owner = { token: TOKEN, start: binding.selfStart() };
onToken((t) => {
  ME.token = t;
  ME.start = binding.selfStart();
});

const REPAIR_MS = 20;
const SPIN_MS = 0.3; // how long a receiver polls before it sleeps (a peer that answers at once is seen without a syscall)
const Shm = (): typeof SharedMemory => contextClass(SharedMemory, 'spawn');

export interface Got {
  value: unknown;
  pos: number; // the record (still TAKEN for a joinable ring)
  spill: string | null;
}

/** What a Channel needs of its owner object, checked at each slice. */
export interface Hooks {
  /** Throws (PeerClosedError...) when a blocked receive must give up; called with the ring empty. */
  emptyCheck?(): void;
  /** Throws when a blocked send must give up. */
  sendCheck?(): void;
}

class SpillGone extends Error {}

function now(): number {
  return performance.now();
}

function spillName(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return `fsq-${(require('node:crypto') as typeof import('node:crypto')).randomBytes(12).toString('hex')}`;
}

export class Channel {
  readonly ring: Ring;
  readonly method: StartMethod;
  readonly joinable: boolean;
  readonly view: Buffer; // the whole segment, as a Buffer
  readonly spillAt: number; // payloads above this many bytes are spilled
  /** JoinableQueue: records this object took and has not acknowledged, oldest first. */
  unacked: Array<{ pos: number; spill: string | null }> = [];
  unackedBy = 0; // the token the list belongs to (a fork() child starts with an empty one)
  lastRepair = -Infinity;

  constructor(ring: Ring, method: StartMethod, joinable: boolean) {
    this.ring = ring;
    this.method = method;
    this.joinable = joinable;
    this.view = Buffer.from(ring.buf);
    this.spillAt = Math.max(SMALL, ring.cap / 4 - REC);
  }

  // ---- locking ------------------------------------------------------------------------
  /** Takes the index lock (repairing after a takeover). False: the deadline passed. */
  lock(deadline: number): boolean {
    const r = this.ring.lock(ME, deadline);
    if (r === null) return false;
    if (r) {
      try {
        this.repairLocked(true);
      } catch (e) {
        this.ring.unlock();
        throw e;
      }
    }
    return true;
  }

  repairLocked(recount: boolean): void {
    const { abandoned, returned } = this.ring.repair(recount, (pos) => this.dropSpill(pos));
    if (returned) this.ring.notifyPut();
    if (abandoned || returned || recount) this.ring.notifyGet();
  }

  /** After a wait slice without progress: give back what dead processes and threads held. */
  repair(): void {
    if (!this.lock(now() + SLICE_MS)) return;
    try {
      this.repairLocked(false);
    } finally {
      this.ring.unlock();
    }
  }

  /** The last holder is gone: the spill segments of messages nobody will take are removed. */
  sweep(): void {
    if (!this.lock(now() + 1000)) return;
    try {
      for (const pos of this.ring.spilled()) this.dropSpill(pos);
    } catch {
      // a corrupt ring: nothing more to do
    } finally {
      this.ring.unlock();
    }
  }

  dropSpill(pos: number): void {
    const tag = this.ring.tagOf(pos);
    if ((tag & TAG.SPILL) === 0) return;
    const name = this.spillOf(pos);
    if (name === null) return;
    // By name, without opening it: a producer killed inside the segment's
    // creation leaves a file that does not open (no header yet).
    try {
      binding.shmUnlink(`/forksafe.${name}`);
    } catch {
      // never created, or gone
    }
  }

  spillOf(pos: number): string | null {
    const len = this.ring.lenOf(pos);
    if (len <= 0 || len > 64) return null;
    const off = this.ring.payload(pos);
    const name = this.view.toString('latin1', off, off + len);
    return /^fsq-[0-9a-f]{24}$/.test(name) ? name : null;
  }

  // ---- send -------------------------------------------------------------------------
  encode(v: unknown, where: string): Encoded {
    return encode(v, this.method, where);
  }

  /**
   * One attempt to put: true if sent, false if the ring is full.
   * Throws QueueShutDownError when shut down.
   */
  tryPut(e: Encoded, deadline: number): boolean {
    const ring = this.ring;
    if (e.len > this.spillAt) return this.tryPutSpill(e, deadline);
    if (!this.lock(deadline)) return false;
    let pos: number;
    try {
      if (ring.w(H.SHUT) !== 0) throw new QueueShutDownError();
      pos = ring.reserve(e.len, e.tag, ME, ST.RESERVED);
      if (pos < 0) return false;
      if (e.len <= SMALL) {
        writeEncoded(e, this.view, ring.payload(pos));
        ring.commit(pos);
        pos = -1;
      }
    } finally {
      ring.unlock();
    }
    if (pos >= 0) {
      // A big message: copied without the lock (nobody waits for us), committed under it.
      writeEncoded(e, this.view, ring.payload(pos));
      this.commitLocked(pos);
    }
    ring.notifyPut();
    return true;
  }

  /** The commit step of a record copied without the lock. */
  commitLocked(pos: number): void {
    this.lock(-1);
    try {
      this.ring.commit(pos);
    } finally {
      this.ring.unlock();
    }
  }

  /** A message too big for the ring: its bytes go to a segment of their own, named in a small record. */
  tryPutSpill(e: Encoded, deadline: number): boolean {
    const ring = this.ring;
    const name = spillName();
    if (!this.lock(deadline)) return false;
    let pos: number;
    try {
      if (ring.w(H.SHUT) !== 0) throw new QueueShutDownError();
      pos = ring.reserve(name.length, TAG.SPILL | e.tag, ME, ST.RESERVED);
      if (pos < 0) return false;
      // The name is in the record before the segment exists: if we die from
      // here on, whoever abandons the record unlinks it.
      this.view.write(name, ring.payload(pos), 'latin1');
    } finally {
      ring.unlock();
    }
    try {
      const s = new (Shm())({ size: Math.max(1, e.len), name, persistent: true });
      try {
        writeEncoded(e, Buffer.from(s.buffer), 0);
      } finally {
        s.close();
      }
    } catch (err) {
      this.lock(-1);
      try {
        this.dropSpill(pos);
        ring.abandon(pos);
        ring.repair(true, (p) => this.dropSpill(p));
      } finally {
        ring.unlock();
      }
      ring.notifyGet();
      throw err;
    }
    this.commitLocked(pos);
    ring.notifyPut();
    return true;
  }

  /** Blocking put: timeout in ms (-1: forever). Returns false on timeout. */
  put(e: Encoded, timeout: number, hooks?: Hooks): boolean {
    const ring = this.ring;
    const deadline = timeout < 0 ? -1 : now() + timeout;
    for (;;) {
      const seq = ring.w(H.GETSEQ);
      hooks?.sendCheck?.();
      if (this.tryPut(e, deadline)) return true;
      // Full because of a put in progress? If its producer died, its record
      // must not hold us up for a whole wait slice.
      if (ring.w(H.RESV) > 0) {
        const t = now();
        if (t - this.lastRepair >= REPAIR_MS) {
          this.lastRepair = t;
          this.repair();
          if (this.tryPut(e, deadline)) return true;
        }
      }
      if (timeout === 0) return false;
      const t = sliceBefore(deadline);
      if (t === 0) return false;
      ring.add(H.PWAIT, 1);
      const st = binding.wordWait(ring.buf, (ring.base + H.GETSEQ) * 4, seq, t);
      ring.add(H.PWAIT, -1);
      if (st === 1 /* timed out */ && ring.w(H.GETSEQ) === seq) this.repair();
    }
  }

  // ---- receive ----------------------------------------------------------------------
  /** One attempt to get: the message, or undefined when there is none. */
  tryGet(): Got | undefined {
    const ring = this.ring;
    // Records other consumers hold (TAKEN): if one of them died, its record
    // must come back before anything else is taken. Checked at most every
    // REPAIR_MS per object (a liveness check reads /proc).
    if (ring.w(H.TAKEN) > this.unacked.length) {
      const t = now();
      if (t - this.lastRepair >= REPAIR_MS) {
        this.lastRepair = t;
        this.repair();
      }
    }
    const shut0 = ring.w(H.SHUT);
    if (shut0 < 0 || shut0 > 2) throw new CorruptError(`shutdown word ${shut0}`);
    if (ring.w(H.COUNT) === 0) {
      const shut = shut0;
      if (shut === 2 || (shut === 1 && ring.w(H.RESV) === 0)) throw new QueueShutDownError();
      return undefined;
    }
    this.lock(-1);
    let pos = -1, tag = 0, len = 0, bytes: Buffer | null = null;
    let big = false;
    try {
      const shut = ring.w(H.SHUT);
      if (shut === 2) throw new QueueShutDownError();
      pos = ring.findCommitted();
      if (pos < 0) {
        if (shut === 1 && ring.w(H.RESV) === 0) throw new QueueShutDownError();
        return undefined;
      }
      tag = ring.tagOf(pos);
      len = ring.lenOf(pos);
      const inner = tag & ~TAG.SPILL;
      if (!knownTag(inner) || ((tag & TAG.SPILL) !== 0 && (tag & ~0x1ff) !== 0)) throw new CorruptError(`message tag ${tag}`);
      if (len <= SMALL && (tag & TAG.SPILL) === 0) {
        bytes = this.copyOut(ring.payload(pos), len, tag);
        if (this.joinable) ring.take(pos, ME);
        else ring.consumeCommitted(pos);
      } else {
        ring.take(pos, ME);
        big = true;
      }
    } finally {
      ring.unlock();
    }
    let spill: string | null = null;
    if (big) {
      try {
        if (tag & TAG.SPILL) {
          spill = this.spillOf(pos);
          if (spill === null) throw new CorruptError('spill name');
          bytes = this.readSpill(spill, !this.joinable);
        } else {
          bytes = this.copyOut(ring.payload(pos), len, tag);
        }
      } catch (e) {
        this.lock(-1);
        try {
          // The message cannot be read: dropped, not retried forever. A spill
          // that is gone was copied whole by a consumer that died before it
          // freed the record (it unlinks first): delivered to the dead, so the
          // next message is taken instead.
          if (ring.free(pos, ME) && this.joinable) ring.inc(H.UNFINISHED, -1);
        } finally {
          ring.unlock();
        }
        ring.notifyGet();
        if (e instanceof SpillGone) return this.tryGet();
        throw e;
      }
      if (!this.joinable) {
        this.lock(-1);
        try {
          ring.free(pos, ME);
        } finally {
          ring.unlock();
        }
      }
    }
    if (!this.joinable) ring.notifyGet();
    else {
      if (this.unackedBy !== ME.token) {
        this.unacked = [];
        this.unackedBy = ME.token;
      }
      this.unacked.push({ pos, spill });
    }
    const inner = tag & ~TAG.SPILL;
    return { value: decode(inner, bytes as Buffer), pos, spill };
  }

  /** Polls a sequence word for up to SPIN_MS: true if it moved (or the ring was shut down). */
  spin(word: number, seq: number): boolean {
    const ring = this.ring;
    const end = now() + SPIN_MS;
    for (;;) {
      for (let i = 0; i < 64; i++) {
        if (ring.w(word) !== seq) return true;
      }
      if (ring.w(H.SHUT) !== 0) return true;
      if (now() >= end) return false;
    }
  }

  copyOut(off: number, len: number, tag: number): Buffer {
    const b = (tag & ~TAG.SPILL) === TAG.BUFFER ? Buffer.allocUnsafe(len) : Buffer.allocUnsafeSlow(len);
    this.view.copy(b, 0, off, off + len);
    return b;
  }

  readSpill(name: string, unlink: boolean): Buffer {
    let s: SharedMemory;
    try {
      s = Shm().open(name);
    } catch {
      throw new SpillGone();
    }
    try {
      const src = Buffer.from(s.buffer);
      const b = Buffer.allocUnsafeSlow(src.byteLength);
      src.copy(b);
      if (unlink) s.unlink();
      return b;
    } finally {
      s.close();
    }
  }

  /** Blocking get: timeout in ms (-1: forever). undefined on timeout. */
  get(timeout: number, hooks?: Hooks): Got | undefined {
    const ring = this.ring;
    const deadline = timeout < 0 ? -1 : now() + timeout;
    for (;;) {
      const seq = ring.w(H.PUTSEQ);
      const got = this.tryGet();
      if (got) return got;
      hooks?.emptyCheck?.();
      if (timeout === 0) return undefined;
      // Spin a little: a producer that is running answers within microseconds.
      if (this.spin(H.PUTSEQ, seq)) {
        if (deadline >= 0 && now() >= deadline) return undefined;
        continue;
      }
      const t = sliceBefore(deadline);
      if (t === 0) return undefined;
      ring.add(H.CWAIT, 1);
      const st = binding.wordWait(ring.buf, (ring.base + H.PUTSEQ) * 4, seq, t);
      ring.add(H.CWAIT, -1);
      if (st === 1 && ring.w(H.PUTSEQ) === seq) this.repair();
    }
  }

  // ---- joinable ---------------------------------------------------------------------
  /** Acknowledges this thread's oldest unacknowledged item. */
  taskDone(): boolean {
    const ring = this.ring;
    if (this.unackedBy !== ME.token) {
      this.unacked = []; // the list a fork() child inherited is its parent's
      this.unackedBy = ME.token;
    }
    let item = this.unacked.shift();
    if (!item) {
      const mine = (() => {
        this.lock(-1);
        try {
          return ring.takenBy(ME);
        } finally {
          ring.unlock();
        }
      })();
      if (mine.length === 0) return false;
      item = { pos: mine[0], spill: null };
      if (ring.tagOf(item.pos) & TAG.SPILL) item.spill = this.spillOf(item.pos);
    }
    let zero = false;
    this.lock(-1);
    try {
      if (ring.free(item.pos, ME)) {
        ring.inc(H.UNFINISHED, -1);
        zero = ring.p(H.UNFINISHED) === 0;
      }
    } finally {
      ring.unlock();
    }
    if (item.spill) {
      try {
        const s = Shm().open(item.spill);
        try {
          s.unlink();
        } finally {
          s.close();
        }
      } catch {
        // gone already
      }
    }
    ring.notifyGet();
    if (zero) {
      ring.add(H.JOINSEQ, 1);
      if (ring.w(H.JWAIT) > 0) binding.wordWake(ring.buf, (ring.base + H.JOINSEQ) * 4, 0x7fffffff);
    }
    return true;
  }

  /** Waits until every item put was acknowledged. */
  join(timeout: number): boolean {
    const ring = this.ring;
    const deadline = timeout < 0 ? -1 : now() + timeout;
    for (;;) {
      const seq = ring.w(H.JOINSEQ);
      if (ring.w(H.UNFINISHED) <= 0) return true;
      if (timeout === 0) return false;
      const t = sliceBefore(deadline);
      if (t === 0) return false;
      ring.add(H.JWAIT, 1);
      const st = binding.wordWait(ring.buf, (ring.base + H.JOINSEQ) * 4, seq, t);
      ring.add(H.JWAIT, -1);
      if (st === 1 && ring.w(H.JOINSEQ) === seq) this.repair();
    }
  }

  shutdown(immediate: boolean): void {
    const ring = this.ring;
    this.lock(-1);
    try {
      const cur = ring.w(H.SHUT);
      ring.set(H.SHUT, immediate ? 2 : Math.max(cur, 1));
      if (immediate && this.joinable) ring.set(H.UNFINISHED, 0); // what is dropped is finished: join() returns
    } finally {
      ring.unlock();
    }
    ring.add(H.PUTSEQ, 1);
    ring.add(H.GETSEQ, 1);
    ring.add(H.JOINSEQ, 1);
    for (const w of [H.PUTSEQ, H.GETSEQ, H.JOINSEQ, H.LOCK]) binding.wordWake(ring.buf, (ring.base + w) * 4, 0x7fffffff);
  }
}
