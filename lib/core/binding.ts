// The one place that loads the native addon. Everything else imports
// `binding` from here; the raw surface is typed below.
import * as path from 'node:path';

/* eslint-disable @typescript-eslint/no-var-requires */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const load = require('node-gyp-build') as (dir: string) => unknown;

export interface SegInfo {
  id: string;
  kind: number;
  ctx: number;
  pid: number;
  fd: number;
  dev: string;
  ino: string;
  size: string;
  name: string;
  dataSize: number;
  persistent: boolean;
}

export interface Binding {
  init(): { token: number; threadIndex: number; pid: number; cpus: number };
  alloc(ctx: number, kind: number, units: number): [seg: number, off: number, gen: number];
  slotRef(seg: number, off: number, gen: number, kind: number): number;
  slotUnref(seg: number, off: number, gen: number): number;
  open(
    id: string, kind: number, ctx: number, pid: number, fd: number,
    dev: string, ino: string, size: string, name: string | null,
  ): [status: number, seg: number];
  adoptFd(fd: number): [status: number, seg: number];
  segRetain(seg: number): number;
  segRelease(seg: number): number;
  buffer(seg: number, dataOnly: boolean): [ArrayBuffer, number];
  dropBuffer(ab: ArrayBuffer, id: number): number;
  segInfo(seg: number): SegInfo | null;
  stats(): { mapped: number; arenas: number; shm: number; views: number };
  pidAlive(pid: number): boolean;
  ownerAlive(token: number, startLo: number): boolean;
  selfStart(): number;
  releaseThreadRefs(): void;

  lockAcquire(buf: ArrayBuffer, off: number, token: number, timeout: number, recursive: boolean): number;
  lockSettle(buf: ArrayBuffer, off: number, token: number): number;
  lockRelease(buf: ArrayBuffer, off: number, token: number, recursive: boolean): number;
  lockAbandon(buf: ArrayBuffer, off: number, token: number): number;
  lockMarkConsistent(buf: ArrayBuffer, off: number, token: number): number;
  tokenAlive(buf: ArrayBuffer, token: number): boolean;
  semAcquire(buf: ArrayBuffer, off: number, timeout: number): number;
  semRelease(buf: ArrayBuffer, off: number, n: number): number;
  semRecover(buf: ArrayBuffer, off: number): number;
  eventWait(buf: ArrayBuffer, off: number, timeout: number): number;
  eventWake(buf: ArrayBuffer, off: number): number;
  condWait(
    lockBuf: ArrayBuffer, lockOff: number, recursive: boolean,
    condBuf: ArrayBuffer, condOff: number, token: number, timeout: number,
  ): number;
  condNotify(buf: ArrayBuffer, off: number, n: number): number;
  barrierWait(buf: ArrayBuffer, off: number, token: number, timeout: number): [number, number] | number;
  barrierReset(buf: ArrayBuffer, off: number, token: number): number;
  barrierAbort(buf: ArrayBuffer, off: number, token: number): number;
  wordWait(buf: ArrayBuffer, byteOffset: number, value: number, timeout: number): number;
  wordWake(buf: ArrayBuffer, byteOffset: number, count: number): number;

  shmCreate(ctx: number, size: number, name: string | null, persistent: boolean): [number, number];
  shmOpenName(name: string): [number, number];
  /**
   * SharedMemory.unlink(): with `id`, marks that segment unlinked (attach refuses it); then
   * removes a non-empty persistent `name`. Throws ENOENT for a second unlink (see native/shm.cc).
   */
  shmUnlink(name: string | null, id?: string, unlinkedHere?: boolean): number;

  asyncInit(cb: (id: number, status: number, index: number) => void): void;
  asyncLock(seg: number, buf: ArrayBuffer, off: number, token: number, recursive: boolean, timeout: number): number;
  asyncSem(seg: number, buf: ArrayBuffer, off: number, timeout: number): number;
  asyncEvent(seg: number, buf: ArrayBuffer, off: number, timeout: number): number;
  asyncWord(seg: number, buf: ArrayBuffer, byteOffset: number, value: number, timeout: number): number;
  asyncCond(
    lockSeg: number, lockBuf: ArrayBuffer, lockOff: number, recursive: boolean,
    condSeg: number, condBuf: ArrayBuffer, condOff: number, token: number, timeout: number,
  ): number;
  asyncBarrier(seg: number, buf: ArrayBuffer, off: number, token: number, timeout: number): [number, number, number];
  asyncCancel(id: number): void;
  asyncNotifyLocal(buf: ArrayBuffer, byteOffset: number, count: number): number;
  asyncStats(): { threads: number; pending: number; threadPending: number };
  /** Test only: native fork() with the waiter threads parked; returns the child's exit status (0 = clean). */
  _testForkWaiters(): number;

  fork(): number;
  exitNow(code: number): never;
  token(): number;
  pid(): number;
  /** 16 bytes from getrandom(2) as four words. */
  seed(): Uint32Array;
  activeRequests(): number;
  terminate(): boolean;
  threads(): Array<[tid: number, name: string]>;
  reapPidfd(fd: number): { code: number | null; signal: number } | null;
  pidfdKill(fd: number, signal: number): number;
  pidfdOpen(pid: number): number;
  pidfdWait(fd: number, timeout: number): { code: number | null; signal: number } | null;
  payloadFd(bytes: Uint8Array): number;
  closeFd(fd: number): number;
  /** prctl(PR_SET_PDEATHSIG, sig); returns getppid() after it. */
  setPdeathsig(sig: number): number;
  /** A child (pidfd) killed and reaped when this JS thread ends. */
  ownChild(pidfd: number): void;
  disownChild(pidfd: number): void;
  /** execve(2): never returns unless it fails (then throws). */
  execReplace(file: string, argv: string[], env: string[], keepFds?: number[]): never;
}

// FORKSAFE_ADDON_PATH: a forksafe.node to load instead of the one
// node-gyp-build finds. For `npm run test:sanitize` only (the ASan/UBSan build
// in build/sanitize/Release, which needs libasan in LD_PRELOAD); child
// processes inherit it with the rest of the environment.
const override = process.env.FORKSAFE_ADDON_PATH;
export const binding = (override
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  ? require(path.resolve(override))
  : load(path.join(__dirname, '..', '..'))) as Binding;
