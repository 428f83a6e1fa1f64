#!/usr/bin/env python3
"""multiprocessing.Pool(2).map over a few tasks where one task SIGKILLs its own worker.

The Pool replaces the dead worker, but the task it was running is lost, so the result
never arrives and a plain .map()/.get() blocks forever. get(timeout=T) stands in for
"we gave up after T seconds".

usage: pool_killed_worker.py [T_seconds=3] [ntasks=6] [bad_task=3]
prints: {"hung": bool, "waited_ms": float, "timeout_s": T, "result": list|null, "python": ...}
"""
import json
import multiprocessing as mp
import os
import signal
import sys
import time

BAD = 3


def task(x):
    if x == BAD:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return x * x


def main():
    global BAD
    t = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    BAD = int(sys.argv[3]) if len(sys.argv) > 3 else 3  # set before fork: workers inherit it
    ctx = mp.get_context("fork")
    pool = ctx.Pool(2)
    t0 = time.perf_counter_ns()
    res, err = None, None
    try:
        res = pool.map_async(task, range(n)).get(timeout=t)
        hung = False
    except mp.TimeoutError:
        hung = True
    except Exception as e:
        hung, err = False, "%s: %s" % (type(e).__name__, e)
    waited_ms = (time.perf_counter_ns() - t0) / 1e6
    pool.terminate()
    pool.join()
    print(json.dumps({
        "hung": hung,
        "waited_ms": round(waited_ms, 1),
        "timeout_s": t,
        "result": res,
        "error": err,
        "python": sys.version.split()[0],
    }))


if __name__ == "__main__":
    main()
