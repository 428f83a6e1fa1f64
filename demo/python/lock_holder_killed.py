#!/usr/bin/env python3
"""A child acquires a multiprocessing.Lock and is SIGKILLed while holding it (as the
OOM killer would do). The parent then tries lock.acquire(timeout=T).

A real program would call lock.acquire() with no timeout and hang forever: the POSIX
semaphore behind multiprocessing.Lock has no notion of an owner, so nothing ever
releases it. The timeout only stands in for "we gave up after T seconds".

usage: lock_holder_killed.py [T_seconds=3]
prints: {"hung": bool, "waited_ms": float, "timeout_s": T, "child_exitcode": int, "python": ...}
"""
import json
import multiprocessing as mp
import os
import signal
import sys
import time


def holder(lock, held):
    lock.acquire()
    held.set()
    time.sleep(3600)  # "working" while holding the lock


def main():
    t = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    ctx = mp.get_context("fork")
    lock = ctx.Lock()
    held = ctx.Event()
    p = ctx.Process(target=holder, args=(lock, held), daemon=True)
    p.start()
    if not held.wait(10):
        print(json.dumps({"error": "child never acquired the lock"}))
        sys.exit(1)
    os.kill(p.pid, signal.SIGKILL)  # simulate the OOM killer
    p.join()
    t0 = time.perf_counter_ns()
    got = lock.acquire(timeout=t)
    waited_ms = (time.perf_counter_ns() - t0) / 1e6
    if got:
        lock.release()
    print(json.dumps({
        "hung": not got,
        "waited_ms": round(waited_ms, 1),
        "timeout_s": t,
        "child_exitcode": p.exitcode,
        "python": sys.version.split()[0],
    }))


if __name__ == "__main__":
    main()
