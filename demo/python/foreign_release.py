#!/usr/bin/env python3
"""A process releases a multiprocessing.Lock that another process holds.

The parent acquires the lock and keeps holding it. A child (fork context) calls
lock.release(): multiprocessing.Lock has no owner, so the release succeeds silently.
The child then acquires the lock itself: two processes now "hold" the same lock, i.e.
mutual exclusion is broken and nothing reported it.

usage: foreign_release.py
prints: {"release_ok": bool, "release_error": str|null, "release_ms": float,
         "child_acquired_while_parent_holds": bool, "child_exitcode": int, "python": str}
"""
import json
import multiprocessing as mp
import sys
import time


def intruder(lock, conn):
    out = {"release_ok": False, "release_error": None}
    t0 = time.perf_counter_ns()
    try:
        lock.release()  # this process never acquired it
        out["release_ok"] = True
    except Exception as e:
        out["release_error"] = "%s: %s" % (type(e).__name__, e)
    out["release_ms"] = round((time.perf_counter_ns() - t0) / 1e6, 3)
    # The parent still believes it holds the lock. Can we get in too?
    out["child_acquired_while_parent_holds"] = lock.acquire(timeout=1)
    conn.send(out)
    conn.close()


def main():
    ctx = mp.get_context("fork")
    lock = ctx.Lock()
    lock.acquire()  # the parent holds the lock from here on
    rx, tx = ctx.Pipe(duplex=False)
    p = ctx.Process(target=intruder, args=(lock, tx), daemon=True)
    p.start()
    out = rx.recv() if rx.poll(10) else {"error": "child sent nothing within 10 s"}
    p.join(5)
    if p.exitcode is None:
        p.kill()
        p.join()
    out["child_exitcode"] = p.exitcode
    out["python"] = sys.version.split()[0]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
