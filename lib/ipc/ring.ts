// The message ring of a Queue or of one direction of a Pipe: a header and a
// byte ring in a shared segment, written by any number of processes and
// threads, and safe against the death (SIGKILL) of any of them at any instant.
// docs/messaging.md has the layout, the protocol and who wakes whom.
//
// - Records: a 32-byte header and the payload, 32-byte aligned, at absolute
//   positions (u32, wrapping; the ring size is a power of two, so a position
//   maps to pos & (cap - 1) across the wrap). The header carries its own
//   position (stamp), its state, length, tag and the tokens and start times
//   of the producer and the consumer holding it.
// - One index lock (word + start time of its holder) guards head, tail, the
//   take pointer, the counters and every state change. It is held for a few
//   word writes, and for the copy only of small messages (<= SMALL bytes),
//   never for a big copy: a big put() reserves its record (RESERVED) under
//   the lock, copies without it and commits under it; a big get() marks its
//   record TAKEN, copies, and frees it under the lock.
// - The lock's holder may die inside: the next taker finds its owner dead,
//   takes the word over and recounts every counter from the records' states
//   (the states are the truth; the counters are caches written only under
//   the lock). Every change to a record's state is one word store, and a
//   small put() publishes its record by moving tail after writing it whole.
// - A RESERVED record whose producer died is ABANDONED (it never arrives); a
//   TAKEN record whose consumer died is COMMITTED again and taken first (it
//   arrives whole, to another consumer). Waiters check for such records each
//   time a wait slice (SLICE_MS) passes without progress.
// - Nothing read from shared memory is trusted: every position, length,
//   state and tag is checked before use (CorruptError), and every loop is
//   bounded by the ring's size as this process mapped it.
import { binding } from '../core/binding';
import { CorruptError } from '../core/errors';

export const MAGIC = 0x46535131; // 'FSQ1'
export const HEADER_BYTES = 1024;
/** Word of a queue's holder table in its ring header (lib/ipc/holders.ts), and its sizes. */
export const HOLDERS_AT = 128;
export const HOLDERS_N = 48;
export const TRANSIT_N = 8;
export const REC = 32; // record header bytes, and the alignment of records
export const SMALL = 1024; // payloads up to this size are copied under the index lock
export const SLICE_MS = 50;

// Header words (Int32 index from the ring's base). Every word a put() or a
// get() changes is in one 64-byte cache line (words 16-31): whatever the two
// CPUs of a producer and a consumer do, a message moves that line and the
// record's, nothing more. Constants and the sleeper counts (read on every
// operation, changed only around a sleep) have lines of their own.
export const H = {
  // written once by the creator (SHUT at shutdown)
  MAGIC: 0, CAP: 1, FLAGS: 2, MAXSIZE: 3, SHUT: 4, // SHUT: 0 open, 1 shut down (drain), 2 shut down immediately
  GEN: 5,
  // the index lock and what it guards
  LOCK: 16, LOCK_START: 17,
  TAIL: 18, RESV: 19, HEAD: 20, RHEAD: 21, TAKEN: 22,
  COUNT: 23, // COMMITTED records: qsize()
  UNFINISHED: 24, // a JoinableQueue's items put and not yet taskDone()
  // sequence words, changed outside the lock: waiters sleep on them
  PUTSEQ: 25, // bumped after a commit, when a record comes back, at shutdown: consumers wait on it
  GETSEQ: 26, // bumped when space frees, at shutdown: producers wait on it
  JOINSEQ: 27, // bumped when UNFINISHED reaches 0
  // sleepers
  CWAIT: 32, PWAIT: 33, JWAIT: 34, LWAIT: 35,
} as const;

// Record header words.
const R_STAMP = 0, R_STATE = 1, R_LEN = 2, R_TAG = 3, R_PTOK = 4, R_PSTART = 5, R_CTOK = 6, R_CSTART = 7;
export const FLAG_JOINABLE = 1;
export const ST = { RESERVED: 1, COMMITTED: 2, TAKEN: 3, DONE: 4, ABANDONED: 5, PAD: 6 } as const;

/** The ring size for a requested capacity: a power of two, at least 4 KiB. */
export function ringCap(capacity: number): number {
  let c = 4096;
  while (c < capacity) c *= 2;
  return c;
}

/** Writes a fresh header (creator only, before anyone else can see the segment). */
export function initRing(i32: Int32Array, base: number, cap: number, maxsize: number, flags: number): void {
  i32[base + H.CAP] = cap;
  i32[base + H.FLAGS] = flags;
  i32[base + H.MAXSIZE] = maxsize;
  Atomics.store(i32, base + H.MAGIC, MAGIC);
}

export interface Owner {
  token: number;
  start: number;
}

export interface Taken {
  pos: number; // absolute position of the record
  tag: number;
  len: number;
  data: Buffer; // a copy of the payload (small), or a view to copy from before free() (big)
  big: boolean;
}

const wake = (buf: ArrayBuffer, word: number, n: number): void => {
  binding.wordWake(buf, word * 4, n);
};

export class Ring {
  readonly i32: Int32Array;
  readonly u8: Uint8Array;
  readonly buf: ArrayBuffer;
  readonly base: number; // word index of the header
  readonly data: number; // byte offset of the ring's first byte in buf
  readonly cap: number; // as this process mapped it: never re-read
  readonly mask: number;
  readonly maxsize: number;

  constructor(buf: ArrayBuffer, byteOffset: number, byteLength: number) {
    this.buf = buf;
    this.i32 = new Int32Array(buf);
    this.u8 = new Uint8Array(buf);
    this.base = byteOffset >> 2;
    if (Atomics.load(this.i32, this.base + H.MAGIC) !== MAGIC) throw new CorruptError('bad magic');
    const cap = this.i32[this.base + H.CAP] >>> 0;
    if (cap < 4096 || (cap & (cap - 1)) !== 0 || HEADER_BYTES + cap > byteLength) throw new CorruptError(`ring size ${cap}`);
    this.cap = cap;
    this.mask = cap - 1;
    this.data = byteOffset + HEADER_BYTES;
    const maxsize = this.i32[this.base + H.MAXSIZE];
    this.maxsize = maxsize > 0 ? maxsize : 0;
  }

  /** A header word, read atomically (outside the lock). */
  w(i: number): number {
    return Atomics.load(this.i32, this.base + i);
  }

  /** A header word under the lock: plain accesses (the lock's atomics order them). */
  p(i: number): number {
    return this.i32[this.base + i];
  }

  set(i: number, v: number): void {
    this.i32[this.base + i] = v;
  }

  inc(i: number, v: number): void {
    this.i32[this.base + i] += v;
  }

  /** Atomic add: for words changed outside the lock (sequence words, sleeper counts). */
  add(i: number, v: number): number {
    return Atomics.add(this.i32, this.base + i, v);
  }

  /** Word index of a record's header word `k`. */
  rw(pos: number, k: number): number {
    return ((this.data + (pos & this.mask)) >> 2) + k;
  }

  // ---- the index lock ---------------------------------------------------------------
  /**
   * Takes the index lock. Returns true if it was taken over from a dead
   * holder (the caller must then repair()). `deadline`: ms (monotonic) or -1.
   */
  lock(me: Owner, deadline: number): boolean | null {
    const i32 = this.i32, L = this.base + H.LOCK, LS = this.base + H.LOCK_START;
    for (let spin = 0; ; spin++) {
      const cur = Atomics.compareExchange(i32, L, 0, me.token);
      if (cur === 0) {
        i32[LS] = me.start;
        return false;
      }
      if (cur === me.token) throw new CorruptError('index lock held by this thread'); // never re-entered
      if (spin < 200) continue;
      if (spin % 8 === 7) {
        const st = Atomics.load(i32, LS);
        if (Atomics.load(i32, L) === cur && !binding.ownerAlive(cur, st >>> 0)) {
          if (Atomics.compareExchange(i32, L, cur, me.token) === cur) {
            Atomics.store(i32, LS, me.start);
            return true;
          }
          continue;
        }
      }
      let t = 1;
      if (deadline >= 0) {
        const left = deadline - performance.now();
        if (left <= 0) return null;
        if (left < t) t = left;
      }
      Atomics.add(i32, this.base + H.LWAIT, 1);
      binding.wordWait(this.buf, L * 4, cur, t);
      Atomics.sub(i32, this.base + H.LWAIT, 1);
    }
  }

  unlock(): void {
    const i32 = this.i32;
    i32[this.base + H.LOCK_START] = 0;
    Atomics.store(i32, this.base + H.LOCK, 0);
    if (Atomics.load(i32, this.base + H.LWAIT) > 0) wake(this.buf, this.base + H.LOCK, 1);
  }

  // ---- checks -------------------------------------------------------------------------
  used(): number {
    return (this.p(H.TAIL) - this.p(H.HEAD)) >>> 0;
  }

  /** head, tail and the take pointer, checked. */
  span(): { head: number; tail: number; rhead: number } {
    const head = this.p(H.HEAD) >>> 0, tail = this.p(H.TAIL) >>> 0, rhead = this.p(H.RHEAD) >>> 0;
    const used = (tail - head) >>> 0;
    if (used > this.cap || head % REC !== 0 || tail % REC !== 0) throw new CorruptError('head/tail');
    if (((rhead - head) >>> 0) > used || rhead % REC !== 0) throw new CorruptError('take pointer');
    return { head, tail, rhead };
  }

  /** The record at pos (inside [head, tail)), checked: its size in bytes. */
  recSize(pos: number, tail: number): number {
    const i32 = this.i32;
    if (i32[this.rw(pos, R_STAMP)] !== (pos | 0)) throw new CorruptError(`record at ${pos >>> 0}: stamp`);
    const st = i32[this.rw(pos, R_STATE)];
    if (st < ST.RESERVED || st > ST.PAD) throw new CorruptError(`record at ${pos >>> 0}: state ${st}`);
    const len = i32[this.rw(pos, R_LEN)];
    const size = st === ST.PAD ? len : align(REC + len);
    const off = pos & this.mask;
    if (len < 0 || size <= 0 || size % REC !== 0 || off + size > this.cap || size > ((tail - pos) >>> 0)) {
      throw new CorruptError(`record at ${pos >>> 0}: length ${len}`);
    }
    return size;
  }

  state(pos: number): number {
    return this.i32[this.rw(pos, R_STATE)];
  }

  // ---- producing ------------------------------------------------------------------
  /**
   * Under the lock: room for a record of `len` payload bytes? Writes a PAD
   * record when it must wrap. Returns the record's position, or -1 when full.
   */
  reserve(len: number, tag: number, me: Owner, state: number): number {
    const size = align(REC + len);
    const { head, tail } = this.span();
    const used = (tail - head) >>> 0;
    const off = tail & this.mask;
    const pad = off + size > this.cap ? this.cap - off : 0;
    if (used + pad + size > this.cap) return -1;
    if (this.maxsize > 0 && this.p(H.COUNT) + this.p(H.RESV) >= this.maxsize) return -1;
    const i32 = this.i32;
    let pos = tail;
    if (pad > 0) {
      i32[this.rw(pos, R_STAMP)] = pos | 0;
      i32[this.rw(pos, R_LEN)] = pad;
      i32[this.rw(pos, R_STATE)] = ST.PAD;
      pos = (pos + pad) >>> 0;
    }
    i32[this.rw(pos, R_STAMP)] = pos | 0;
    i32[this.rw(pos, R_LEN)] = len;
    i32[this.rw(pos, R_TAG)] = tag;
    i32[this.rw(pos, R_PTOK)] = me.token;
    i32[this.rw(pos, R_PSTART)] = me.start;
    i32[this.rw(pos, R_CTOK)] = 0;
    i32[this.rw(pos, R_STATE)] = state;
    // Published: everything above is in place before tail moves over it.
    this.set(H.TAIL, (pos + size) | 0);
    if (state === ST.RESERVED) this.inc(H.RESV, 1);
    else if (state === ST.COMMITTED) this.inc(H.COUNT, 1);
    if (pad > 0 && ((this.p(H.RHEAD) >>> 0) === (tail >>> 0))) this.set(H.RHEAD, pos | 0);
    return pos;
  }

  /** Byte offset in buf of a record's payload. */
  payload(pos: number): number {
    return this.data + (pos & this.mask) + REC;
  }

  /** Under the lock: a RESERVED record of ours becomes COMMITTED. */
  commit(pos: number): void {
    if (this.state(pos) !== ST.RESERVED) return; // abandoned meanwhile (we were taken for dead): it never arrives
    this.i32[this.rw(pos, R_STATE)] = ST.COMMITTED;
    this.inc(H.RESV, -1);
    this.inc(H.COUNT, 1);
    if ((this.p(H.FLAGS) & FLAG_JOINABLE) !== 0) this.inc(H.UNFINISHED, 1);
  }

  /** Under the lock: a RESERVED record of ours will never be committed (its spill failed). */
  abandon(pos: number): void {
    this.i32[this.rw(pos, R_STATE)] = ST.ABANDONED;
  }

  /** After a commit (lock released): wake a consumer. */
  notifyPut(): void {
    this.add(H.PUTSEQ, 1);
    if (this.w(H.CWAIT) > 0) wake(this.buf, this.base + H.PUTSEQ, 1);
  }

  notifyGet(): void {
    this.add(H.GETSEQ, 1);
    if (this.w(H.PWAIT) > 0) wake(this.buf, this.base + H.GETSEQ, 0x7fffffff);
  }

  // ---- consuming --------------------------------------------------------------------
  /** Under the lock: the first COMMITTED record from the take pointer, or -1. */
  findCommitted(): number {
    const { tail, rhead } = this.span();
    let pos = rhead;
    let lead = true; // still in the run of records the take pointer may skip
    let n = 0;
    const limit = this.cap / REC;
    while (pos !== tail) {
      if (++n > limit) throw new CorruptError('record chain');
      const size = this.recSize(pos, tail);
      const st = this.state(pos);
      if (st === ST.COMMITTED) {
        if (lead) this.set(H.RHEAD, pos | 0);
        return pos;
      }
      if (st === ST.RESERVED) lead = false;
      pos = (pos + size) >>> 0;
      if (lead) this.set(H.RHEAD, pos | 0);
    }
    return -1;
  }

  tagOf(pos: number): number {
    return this.i32[this.rw(pos, R_TAG)];
  }

  lenOf(pos: number): number {
    return this.i32[this.rw(pos, R_LEN)];
  }

  /** Under the lock: COMMITTED -> TAKEN by `me`. */
  take(pos: number, me: Owner): void {
    const i32 = this.i32;
    i32[this.rw(pos, R_CTOK)] = me.token;
    i32[this.rw(pos, R_CSTART)] = me.start;
    i32[this.rw(pos, R_STATE)] = ST.TAKEN;
    this.inc(H.COUNT, -1);
    this.inc(H.TAKEN, 1);
  }

  /** Under the lock: a COMMITTED (small, copied under the lock) record is done. */
  consumeCommitted(pos: number): void {
    this.i32[this.rw(pos, R_STATE)] = ST.DONE;
    this.inc(H.COUNT, -1);
    this.advance();
  }

  /** Under the lock: a TAKEN record is done. False if it was not ours (taken back: we were thought dead). */
  free(pos: number, me: Owner): boolean {
    const i32 = this.i32;
    if (this.state(pos) !== ST.TAKEN || i32[this.rw(pos, R_CTOK)] !== me.token) return false;
    i32[this.rw(pos, R_STATE)] = ST.DONE;
    this.inc(H.TAKEN, -1);
    this.advance();
    return true;
  }

  /** Under the lock: moves head over the records nobody needs any more. */
  advance(): void {
    const { head, tail, rhead } = this.span();
    let pos = head, n = 0;
    const limit = this.cap / REC;
    while (pos !== tail) {
      if (++n > limit) throw new CorruptError('record chain');
      const st = this.state(pos);
      if (st !== ST.DONE && st !== ST.ABANDONED && st !== ST.PAD) break;
      const size = this.recSize(pos, tail);
      pos = (pos + size) >>> 0;
    }
    if (pos !== head) {
      this.set(H.HEAD, pos | 0);
      if (((rhead - head) >>> 0) < ((pos - head) >>> 0)) this.set(H.RHEAD, pos | 0);
    }
  }

  // ---- deaths -------------------------------------------------------------------------
  /**
   * Under the lock: gives back the records of dead processes and threads,
   * and (after a lock takeover) recounts. Returns what it found.
   * `onAbandon(pos)`: called for each RESERVED record abandoned (a spill to clean up).
   */
  repair(recount: boolean, onAbandon?: (pos: number) => void): { abandoned: number; returned: number } {
    const i32 = this.i32;
    const { head, tail } = this.span();
    let pos = head, n = 0, count = 0, resv = 0, taken = 0, abandoned = 0, returned = 0;
    let first = -1;
    const limit = this.cap / REC;
    while (pos !== tail) {
      if (++n > limit) throw new CorruptError('record chain');
      const size = this.recSize(pos, tail);
      let st = this.state(pos);
      if (st === ST.RESERVED) {
        const tok = i32[this.rw(pos, R_PTOK)];
        if (!binding.ownerAlive(tok, i32[this.rw(pos, R_PSTART)] >>> 0)) {
          if (onAbandon) {
            try {
              onAbandon(pos);
            } catch {
              // a spill already gone: nothing to clean
            }
          }
          i32[this.rw(pos, R_STATE)] = ST.ABANDONED;
          st = ST.ABANDONED;
          abandoned++;
        }
      } else if (st === ST.TAKEN) {
        const tok = i32[this.rw(pos, R_CTOK)];
        if (!binding.ownerAlive(tok, i32[this.rw(pos, R_CSTART)] >>> 0)) {
          i32[this.rw(pos, R_CTOK)] = 0;
          i32[this.rw(pos, R_STATE)] = ST.COMMITTED;
          st = ST.COMMITTED;
          returned++;
        }
      }
      if (st === ST.COMMITTED) {
        count++;
        if (first < 0) first = pos;
      } else if (st === ST.RESERVED) {
        resv++;
        if (first < 0) first = pos;
      } else if (st === ST.TAKEN) taken++;
      pos = (pos + size) >>> 0;
    }
    if (recount || abandoned || returned) {
      this.set(H.COUNT, count);
      this.set(H.RESV, resv);
      this.set(H.TAKEN, taken);
      if ((this.p(H.FLAGS) & FLAG_JOINABLE) !== 0 && this.p(H.SHUT) !== 2) this.set(H.UNFINISHED, count + taken);
      if (returned || recount) this.set(H.RHEAD, (first < 0 ? tail : first) | 0);
    }
    this.advance();
    return { abandoned, returned };
  }

  /** Positions of the live records that name a spill segment. */
  spilled(): number[] {
    const { head, tail } = this.span();
    const out: number[] = [];
    let pos = head, n = 0;
    const limit = this.cap / REC;
    while (pos !== tail) {
      if (++n > limit) throw new CorruptError('record chain');
      const size = this.recSize(pos, tail);
      const st = this.state(pos);
      if (st !== ST.DONE && st !== ST.ABANDONED && st !== ST.PAD && (this.tagOf(pos) & 0x100) !== 0) out.push(pos);
      pos = (pos + size) >>> 0;
    }
    return out;
  }

  /** The tokens and positions of records TAKEN by `me` (a JoinableQueue's unacknowledged items). */
  takenBy(me: Owner): number[] {
    const { head, tail } = this.span();
    const out: number[] = [];
    let pos = head, n = 0;
    const limit = this.cap / REC;
    while (pos !== tail) {
      if (++n > limit) throw new CorruptError('record chain');
      const size = this.recSize(pos, tail);
      if (this.state(pos) === ST.TAKEN && this.i32[this.rw(pos, R_CTOK)] === me.token) out.push(pos);
      pos = (pos + size) >>> 0;
    }
    return out;
  }
}

export function align(n: number): number {
  return (n + REC - 1) & ~(REC - 1);
}

/** How long the next wait slice may be before `deadline` (ms, -1: none): SLICE_MS at most, 0 once it has passed. */
export function sliceBefore(deadline: number): number {
  if (deadline < 0) return SLICE_MS;
  const left = deadline - performance.now();
  return left <= 0 ? 0 : Math.min(SLICE_MS, left);
}
