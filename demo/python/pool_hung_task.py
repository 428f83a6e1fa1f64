#!/usr/bin/env python3
"""multiprocessing.Pool(2): one task hangs (it never returns), four others are quick.

AsyncResult.get(timeout=T) raises multiprocessing.TimeoutError after T seconds, but that
only stops the caller's wait: the worker stays inside the hung task. Pool has no per-task
timeout and no way to cancel or kill one task or one worker; the quick tasks run on the
other worker, the pool serves on with one worker less (two 0.3 s tasks submitted together
take 0.6 s), close() + join() waits for the hung task forever, and only terminate(),
which kills every worker, frees it.

usage: pool_hung_task.py [T_seconds=1] [join_wait_s=1]
prints: {"timed_out": bool, "get_ms": float, "timeout_s": T, "others": list, "others_pids": list,
         "hung_pid": int, "hung_alive": bool, "pair_ms": float, "pair_pids": list,
         "join_hung": bool, "join_wait_s": float, "terminated_all": bool, "terminate_ms": float,
         "error": str|null, "python": str}
"""
import json
import multiprocessing as mp
import os
import sys
import threading
import time


SLOT = None  # an mp.Value for the hung worker's pid, set before the pool forks its workers


def hang():
    SLOT.value = os.getpid()  # what the parent looks at afterwards
    time.sleep(3600)  # a stuck read, a deadlock, an endless loop: it never returns
    return "never"


def square(x, ms=50):
    time.sleep(ms / 1000)
    return (x * x, os.getpid())


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main():
    global SLOT
    t = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    join_wait = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    out = {"timed_out": False, "get_ms": None, "timeout_s": t, "others": None, "others_pids": None,
           "hung_pid": None, "hung_alive": None, "pair_ms": None, "pair_pids": None,
           "join_hung": None, "join_wait_s": join_wait, "terminated_all": None, "terminate_ms": None,
           "error": None, "python": sys.version.split()[0]}
    ctx = mp.get_context("fork")
    SLOT = slot = ctx.Value("i", 0)
    pool = ctx.Pool(2)
    workers = list(pool._pool)  # private: only to check afterwards which processes still run
    try:
        hung = pool.apply_async(hang)
        quick = [pool.apply_async(square, (x,)) for x in range(4)]
        t0 = time.perf_counter_ns()
        try:
            hung.get(timeout=t)
        except mp.TimeoutError:
            out["timed_out"] = True
        out["get_ms"] = round((time.perf_counter_ns() - t0) / 1e6, 1)
        done = [r.get(timeout=10) for r in quick]
        out["others"] = [v for v, _ in done]
        out["others_pids"] = sorted(set(p for _, p in done))
        out["hung_pid"] = slot.value
        # The pool serves on, with one worker: two 0.3 s tasks run one after the other.
        t1 = time.perf_counter_ns()
        pair = [pool.apply_async(square, (x, 300)) for x in (5, 6)]
        pair_done = [r.get(timeout=10) for r in pair]
        out["pair_ms"] = round((time.perf_counter_ns() - t1) / 1e6, 1)
        out["pair_pids"] = sorted(set(p for _, p in pair_done))
        out["hung_alive"] = alive(slot.value)  # still inside hang()
        # close() + join(): waits for the hung task, which never ends.
        pool.close()
        joiner = threading.Thread(target=pool.join, daemon=True)
        joiner.start()
        joiner.join(join_wait)
        out["join_hung"] = joiner.is_alive()
    except Exception as e:
        out["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        t2 = time.perf_counter_ns()
        pool.terminate()  # the only way out: kills every worker, the healthy one too
        out["terminate_ms"] = round((time.perf_counter_ns() - t2) / 1e6, 1)
        time.sleep(0.1)
        out["terminated_all"] = not any(alive(w.pid) for w in workers)
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
