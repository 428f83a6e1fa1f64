// Who holds a pipe end or a queue: a table in shared memory of the threads
// (token, start time) that have an object for it open, and of its handles in
// transit (a handle() made for another process or thread counts as a holder
// until it is attached, its maker dies, or TRANSIT_S pass: the maker may
// close its copy right after starting the child). A thread is in the table
// once, however many objects it has open; it leaves with the last one.
import { binding } from '../core/binding';
import { ME } from './channel';

export const TRANSIT_S = 30;
const nowS = (): number => Math.floor(Date.now() / 1000);

// (token, table) -> objects open in this thread. Keyed by token: a fork()
// child (new token) registers afresh.
const opened = new Map<string, number>();

export class Holders {
  readonly i32: Int32Array;
  readonly base: number; // word of entry 0: HOLDERS x {token, start}, then TRANSIT x {token, start, expiry s}
  readonly holders: number;
  readonly transit: number;
  readonly key: string; // names the table across objects (segment id + offset)

  constructor(i32: Int32Array, base: number, holders: number, transit: number, id: string) {
    this.i32 = i32;
    this.base = base;
    this.holders = holders;
    this.transit = transit;
    this.key = `${id}:${base}`;
  }

  static words(holders: number, transit: number): number {
    return holders * 2 + transit * 3;
  }

  private tw(i: number): number {
    return this.base + this.holders * 2 + i * 3;
  }

  /** An object of this thread opens: the thread is added (once). */
  open(): void {
    const k = `${ME.token}:${this.key}`;
    const n = opened.get(k) ?? 0;
    opened.set(k, n + 1);
    if (n === 0 || !this.mine()) this.claim();
  }

  /** Whether this thread has an entry. */
  private mine(): boolean {
    for (let i = 0; i < this.holders; i++) if (Atomics.load(this.i32, this.base + 2 * i) === ME.token) return true;
    return false;
  }

  private claim(): void {
    const i32 = this.i32;
    for (let i = 0; i < this.holders; i++) {
      const w = this.base + 2 * i;
      const cur = Atomics.load(i32, w);
      if (cur === ME.token) {
        Atomics.store(i32, w + 1, ME.start);
        return;
      }
      if (cur !== 0 && binding.ownerAlive(cur, Atomics.load(i32, w + 1) >>> 0)) continue;
      if (Atomics.compareExchange(i32, w, cur, ME.token) === cur) {
        Atomics.store(i32, w + 1, ME.start);
        return;
      }
    }
    // Full of live holders: this thread is not counted (documented limit).
  }

  /** An object of this thread closes: the thread leaves with its last one. True if it left. */
  close(): boolean {
    const k = `${ME.token}:${this.key}`;
    const n = (opened.get(k) ?? 1) - 1;
    if (n > 0) {
      opened.set(k, n);
      return false;
    }
    opened.delete(k);
    const i32 = this.i32;
    for (let i = 0; i < this.holders; i++) {
      const w = this.base + 2 * i;
      if (Atomics.compareExchange(i32, w, ME.token, 0) === ME.token) Atomics.store(i32, w + 1, 0);
    }
    return true;
  }

  /** handle(): a copy in transit. */
  inTransit(): void {
    const i32 = this.i32;
    const now = nowS();
    for (let i = 0; i < this.transit; i++) {
      const w = this.tw(i);
      const t = Atomics.load(i32, w);
      const free = t === 0 || Atomics.load(i32, w + 2) < now || !binding.ownerAlive(t, Atomics.load(i32, w + 1) >>> 0);
      if (free && Atomics.compareExchange(i32, w, t, ME.token) === t) {
        Atomics.store(i32, w + 1, ME.start);
        Atomics.store(i32, w + 2, now + TRANSIT_S);
        return;
      }
    }
  }

  /** An attached handle arrived: the oldest transit entry goes. */
  arrived(): void {
    const i32 = this.i32;
    let best = -1, bestExp = Infinity;
    for (let i = 0; i < this.transit; i++) {
      const w = this.tw(i);
      if (Atomics.load(i32, w) === 0) continue;
      const exp = Atomics.load(i32, w + 2);
      if (exp < bestExp) {
        bestExp = exp;
        best = i;
      }
    }
    if (best >= 0) {
      const w = this.tw(best);
      const t = Atomics.load(i32, w);
      if (t !== 0 && Atomics.compareExchange(i32, w, t, 0) === t) Atomics.store(i32, w + 2, 0);
    }
  }

  /** Whether a live thread other than `except` holds it, or a handle of it is in transit. */
  held(except = 0): boolean {
    const i32 = this.i32;
    for (let i = 0; i < this.holders; i++) {
      const t = Atomics.load(i32, this.base + 2 * i);
      if (t !== 0 && t !== except && binding.ownerAlive(t, Atomics.load(i32, this.base + 2 * i + 1) >>> 0)) return true;
    }
    const now = nowS();
    for (let i = 0; i < this.transit; i++) {
      const w = this.tw(i);
      const t = Atomics.load(i32, w);
      if (t !== 0 && Atomics.load(i32, w + 2) >= now && binding.ownerAlive(t, Atomics.load(i32, w + 1) >>> 0)) return true;
    }
    return false;
  }

  /** A fork() child: it holds what its parent held. */
  forked(): void {
    this.open();
  }
}
