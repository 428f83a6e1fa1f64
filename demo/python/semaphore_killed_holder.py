#!/usr/bin/env python3
"""A child takes the only unit of a multiprocessing.Semaphore(1) and is SIGKILLed while
holding it (as the OOM killer would do). The parent then tries sem.acquire(timeout=T).

POSIX semaphores have no notion of who took a unit, so nothing gives it back: the
slot is lost for good (every later acquire() without a timeout blocks forever).
The timeout only stands in for "we gave up after T seconds".

usage: semaphore_killed_holder.py [T_seconds=3]
prints: {"lost": bool, "waited_ms": float, "timeout_s": T, "value_after": int|null,
         "child_exitcode": int, "python": str}
"""
import json
import multiprocessing as mp
import os
import signal
import sys
import time


def worker(sem, held):
    sem.acquire()
    held.set()
    time.sleep(3600)  # "working" while holding the slot


def main():
    t = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    ctx = mp.get_context("fork")
    sem = ctx.Semaphore(1)
    held = ctx.Event()
    p = ctx.Process(target=worker, args=(sem, held), daemon=True)
    p.start()
    if not held.wait(10):
        print(json.dumps({"error": "child never acquired the semaphore"}))
        sys.exit(1)
    os.kill(p.pid, signal.SIGKILL)  # simulate the OOM killer
    p.join()
    t0 = time.perf_counter_ns()
    got = sem.acquire(timeout=t)
    waited_ms = (time.perf_counter_ns() - t0) / 1e6
    try:
        value = sem.get_value()
    except NotImplementedError:  # macOS
        value = None
    if got:
        sem.release()
    print(json.dumps({
        "lost": not got,
        "waited_ms": round(waited_ms, 1),
        "timeout_s": t,
        "value_after": value,
        "child_exitcode": p.exitcode,
        "python": sys.version.split()[0],
    }))


if __name__ == "__main__":
    main()
