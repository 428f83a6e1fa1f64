// Per-JS-thread runtime: this thread's owner token, the cache of arena
// mappings (one ArrayBuffer per arena per thread), slot allocation/attach/
// release, segment handles, and the GC backstop for unclosed objects.
import { binding, SegInfo } from './binding';
import { ContextError, ForksafeError, badHandle } from './errors';
import { CTX, CTX_NAME, S, SEG_ARENA, StartMethod, KIND, LOCK_WORD_I, TOKEN_MASK } from './layout';

const init = binding.init();

/** This JS thread's owner token: pid | thread index << 22. */
export let TOKEN = init.token;
export const THREAD_INDEX = init.threadIndex;

// Hot paths keep the token in a module-local variable (a property load on
// this module's exports object costs as much as the CAS itself). They
// register here so that a token change (a fork()ed child has a new pid)
// reaches them.
const tokenListeners: Array<(t: number) => void> = [];
export function onToken(fn: (t: number) => void): void {
  tokenListeners.push(fn);
  fn(TOKEN);
}
export function setToken(t: number): void {
  TOKEN = t;
  for (const fn of tokenListeners) fn(t);
}

export interface ArenaView {
  seg: number;
  buf: ArrayBuffer;
  i32: Int32Array;
  id: number;
  refs: number;
}

const arenas = new Map<number, ArenaView>();

function viewArena(seg: number): ArenaView {
  let v = arenas.get(seg);
  if (!v) {
    const [buf, id] = binding.buffer(seg, false);
    v = { seg, buf, i32: new Int32Array(buf), id, refs: 0 };
    arenas.set(seg, v);
  }
  v.refs++;
  return v;
}

function unviewArena(v: ArenaView): void {
  if (--v.refs === 0) {
    arenas.delete(v.seg);
    // Detaches the buffer: nothing in JS can reach the mapping afterwards.
    binding.dropBuffer(v.buf, v.id);
  }
}

/** One reference to a slot, held by one JS object. */
export interface SlotRef {
  seg: number;
  off: number;
  gen: number;
  kind: number;
  view: ArenaView;
  /** Int32Array index of the slot's first word. */
  base: number;
}

export function allocSlot(ctx: StartMethod, kind: number, units: number): SlotRef {
  const [seg, off, gen] = binding.alloc(CTX[ctx], kind, units);
  let view: ArenaView;
  try {
    view = viewArena(seg);
  } finally {
    binding.segRelease(seg); // the view is now held by the buffer
  }
  return { seg, off, gen, kind, view, base: off >> 2 };
}

export function releaseSlot(ref: SlotRef): void {
  binding.slotUnref(ref.seg, ref.off, ref.gen);
  unviewArena(ref.view);
}

// ---- handles ------------------------------------------------------------------

/** The serializable description of a segment inside a handle. */
export interface SegmentHandle {
  id: string;
  pid: number;
  fd: number;
  dev: string;
  ino: string;
  size: string;
  name?: string;
}

export function segmentHandle(seg: number): SegmentHandle {
  const info = binding.segInfo(seg) as SegInfo;
  const h: SegmentHandle = { id: info.id, pid: info.pid, fd: info.fd, dev: info.dev, ino: info.ino, size: info.size };
  if (info.persistent) h.name = info.name;
  return h;
}

const HEX32 = /^[0-9a-f]{32}$/;
const DEC = /^[0-9]{1,20}$/;

function checkSegmentHandle(h: unknown): SegmentHandle {
  if (h === null || typeof h !== 'object') throw badHandle('missing segment');
  const s = h as Record<string, unknown>;
  if (typeof s.id !== 'string' || !HEX32.test(s.id)) throw badHandle('bad segment id');
  if (!Number.isInteger(s.pid) || (s.pid as number) < 0 || (s.pid as number) > 0x3fffff) throw badHandle('bad pid');
  if (!Number.isInteger(s.fd) || (s.fd as number) < -1 || (s.fd as number) > 0x7fffffff) throw badHandle('bad fd');
  for (const k of ['dev', 'ino', 'size'] as const) {
    if (typeof s[k] !== 'string' || !DEC.test(s[k] as string)) throw badHandle(`bad ${k}`);
  }
  if (s.name !== undefined && (typeof s.name !== 'string' || !/^\/forksafe\.[A-Za-z0-9._-]{1,37}$/.test(s.name))) {
    throw badHandle('bad name');
  }
  return s as unknown as SegmentHandle;
}

/** Maps the segment a handle names (or finds it mapped); the caller gets one view. */
export function openSegment(h: unknown, kind: number, ctx: StartMethod, what: string): number {
  const s = checkSegmentHandle(h);
  const [status, seg] = binding.open(s.id, kind, CTX[ctx], s.pid, s.fd, s.dev, s.ino, s.size, s.name ?? null);
  if (status === S.OK) return seg;
  if (status === S.CONTEXT) {
    throw new ContextError(
      `cannot attach ${what} of the '${ctx}' context in process ${process.pid}: it lives in ` +
        `anonymous shared memory that only its creator (pid ${s.pid}), its worker threads and its ` +
        `fork() descendants have. Create it from getContext('spawn') to share it with other processes.`,
    );
  }
  if (status === S.UNLINKED) throw badHandle(`the ${what} this handle names was unlinked (unlink()): it can no longer be attached`);
  throw badHandle(`the segment of this ${what} cannot be opened here (its holder exited, or the handle is forged or stale)`);
}

export function attachSlot(h: unknown, off: unknown, gen: unknown, kind: number, ctx: StartMethod, what: string): SlotRef {
  if (!Number.isInteger(off) || !Number.isInteger(gen) || (off as number) < 0 || (gen as number) <= 0 ||
      (off as number) > 0xffffffff || (gen as number) > 0xffffffff) {
    throw badHandle('bad offset or generation');
  }
  const seg = openSegment(h, SEG_ARENA, ctx, what);
  let view: ArenaView;
  try {
    view = viewArena(seg);
  } finally {
    binding.segRelease(seg);
  }
  const st = binding.slotRef(seg, off as number, gen as number, kind);
  if (st !== S.OK) {
    unviewArena(view);
    throw badHandle(`the ${what} this handle names no longer exists (closed by every holder) or never did`);
  }
  return { seg, off: off as number, gen: gen as number, kind, view, base: (off as number) >> 2 };
}

export interface BaseHandle {
  forksafe: 1;
  type: string;
  context: StartMethod;
  segment: SegmentHandle;
  offset: number;
  generation: number;
}

export function checkBaseHandle(h: unknown): BaseHandle {
  if (h === null || typeof h !== 'object') throw badHandle('not an object');
  const o = h as Record<string, unknown>;
  if (o.forksafe !== 1) throw badHandle('not a forksafe handle (or from an incompatible version)');
  if (typeof o.type !== 'string') throw badHandle('missing type');
  if (typeof o.context !== 'string' || !Object.prototype.hasOwnProperty.call(CTX, o.context)) {
    throw badHandle('bad context');
  }
  return o as unknown as BaseHandle;
}

export function ctxName(n: number): StartMethod {
  return CTX_NAME[n];
}

// ---- GC backstop and live objects per slot --------------------------------------
// close() is the real release. An object collected without close() gives its
// slot reference back here.
//
// Lock ownership belongs to the JS thread, not to one object: a thread may
// hold several objects for the same slot (attach(lock.handle()) here, a
// Condition's own lock object...). A lock this thread holds is abandoned (the
// next acquirer gets OwnerDiedError rather than waiting forever) only when the
// thread's last live object for that slot goes — closed or collected — or
// when the thread ends (native cleanup hook); never when one copy of several
// goes. `live` counts this thread's unclosed, uncollected objects per slot.

interface Held {
  slot: SlotRef;
}

const live = new Map<number, number>();

// seg (a small process-wide id) and the byte offset in a 1 MiB arena.
const slotKey = (slot: SlotRef): number => slot.seg * 0x100000 + slot.off;

/** Counts one object going; true if it was this thread's last live object for the slot. */
function dropLive(slot: SlotRef): boolean {
  const k = slotKey(slot);
  const n = (live.get(k) ?? 1) - 1;
  if (n > 0) {
    live.set(k, n);
    return false;
  }
  live.delete(k);
  return true;
}

/** Abandons a lock this thread holds (marker 1, next acquirer: OwnerDiedError). */
export function abandonIfHeld(slot: SlotRef): void {
  if ((slot.kind === KIND.Lock || slot.kind === KIND.RLock) &&
      ((Atomics.load(slot.view.i32, slot.base + LOCK_WORD_I) & TOKEN_MASK) === TOKEN)) {
    binding.lockAbandon(slot.view.buf, slot.off, TOKEN);
  }
}

const finalizer = new FinalizationRegistry<Held>((held) => {
  const { slot } = held;
  try {
    if (dropLive(slot)) abandonIfHeld(slot);
    releaseSlot(slot);
  } catch {
    // Finalizers must not throw; the thread-exit hook is the final backstop.
  }
});

export function track(obj: object, slot: SlotRef): void {
  const k = slotKey(slot);
  live.set(k, (live.get(k) ?? 0) + 1);
  finalizer.register(obj, { slot }, obj);
}

/** Stops tracking a closed object; true if it was this thread's last live object for the slot. */
export function untrack(obj: object, slot: SlotRef): boolean {
  finalizer.unregister(obj);
  return dropLive(slot);
}

export function stats(): { mapped: number; arenas: number; shm: number; views: number; threadArenas: number } {
  return { ...binding.stats(), threadArenas: arenas.size };
}

export function unexpected(status: number, what: string): ForksafeError {
  // The native side refuses a slot whose shared bytes another process made
  // inconsistent (docs/robustness.md): that is a bad handle, not a bug here.
  if (status === S.BAD_HANDLE) return badHandle(`${what}: the object's shared memory is corrupt (overwritten by another process?)`);
  return new ForksafeError(`${what}: unexpected status ${status}`, 'ERR_FORKSAFE_INTERNAL');
}

