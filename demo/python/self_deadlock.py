#!/usr/bin/env python3
"""The same thread calls multiprocessing.Lock.acquire() on a lock it already holds.

multiprocessing.Lock is a POSIX semaphore with no owner: the second acquire() simply
waits for a release that can only come from the thread that is now asleep. It blocks
forever, with no error. A watchdog thread stands in for "we gave up after T seconds":
it prints the result and ends the process with os._exit() (the blocked acquire cannot
be interrupted any other way).

usage: self_deadlock.py [T_seconds=2]
prints: {"hung": bool, "waited_ms": float, "timeout_s": T, "error": str|null, "python": str}
"""
import json
import multiprocessing as mp
import os
import sys
import threading
import time


def main():
    t = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    lock = mp.Lock()
    lock.acquire()
    t0 = time.perf_counter_ns()

    def watchdog():
        time.sleep(t)
        print(json.dumps({
            "hung": True,
            "waited_ms": round((time.perf_counter_ns() - t0) / 1e6, 1),
            "timeout_s": t,
            "error": None,
            "python": sys.version.split()[0],
        }), flush=True)
        os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    err = None
    try:
        lock.acquire()  # the calling thread already holds it: never returns on CPython
    except Exception as e:  # a future Python might raise instead
        err = "%s: %s" % (type(e).__name__, e)
    print(json.dumps({
        "hung": False,
        "waited_ms": round((time.perf_counter_ns() - t0) / 1e6, 1),
        "timeout_s": t,
        "error": err,
        "python": sys.version.split()[0],
    }), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
