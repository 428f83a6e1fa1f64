#!/usr/bin/env python3
"""A consumer process gets an item from a multiprocessing.JoinableQueue and is SIGKILLed
(as the OOM killer would do) before it calls task_done(). A second consumer does the
other items and calls task_done() for each. The parent calls join().

The item the dead consumer took is gone: nothing gives it back to the queue (the second
consumer's next get(timeout=T) raises Empty), and its task_done() never comes, so the
count of unfinished tasks never reaches 0 and join(), which has no timeout, blocks
forever. The parent runs join() in a thread and gives up on it after T seconds.

usage: joinable_consumer_killed.py [T_seconds=3] [items=4]
prints: {"hung": bool, "waited_ms": float, "timeout_s": T, "killed_got": str,
         "other_done": [str], "redelivered": bool, "unfinished": int|null, "child_exitcode": int,
         "error": str|null, "python": str}
"""
import json
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time


def take_one_and_hang(q, got):
    item = q.get()
    got.put(item)
    time.sleep(3600)  # "working" on it; task_done() would come after


def worker(q, done, t):
    # Does the items that are there, then waits T s for more (a redelivery).
    while True:
        try:
            item = q.get(timeout=t)
        except queue.Empty:
            done.put(None)
            return
        done.put(item)
        q.task_done()


def main():
    t = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    out = {"hung": False, "waited_ms": None, "timeout_s": t, "killed_got": None, "other_done": [],
           "redelivered": False, "unfinished": None, "child_exitcode": None, "error": None,
           "python": sys.version.split()[0]}
    ctx = mp.get_context("fork")
    q = ctx.JoinableQueue()
    got = ctx.Queue()
    done = ctx.Queue()
    for i in range(1, n + 1):
        q.put("task %d" % i)
    a = ctx.Process(target=take_one_and_hang, args=(q, got), daemon=True)
    b = None
    try:
        a.start()
        try:
            out["killed_got"] = got.get(timeout=10)
        except queue.Empty:
            out["error"] = "the first consumer never got an item"
            return out
        b = ctx.Process(target=worker, args=(q, done, t), daemon=True)
        b.start()
        # The second consumer does the other items.
        for _ in range(n - 1):
            try:
                out["other_done"].append(done.get(timeout=10))
            except queue.Empty:
                out["error"] = "the second consumer did not do the other items"
                return out
        os.kill(a.pid, signal.SIGKILL)  # the OOM killer, before task_done()
        a.join()
        out["child_exitcode"] = a.exitcode
        joined = threading.Event()

        def joiner():
            q.join()  # no timeout parameter: a real program waits here
            joined.set()

        t0 = time.perf_counter_ns()
        threading.Thread(target=joiner, daemon=True).start()
        joined.wait(t)
        out["waited_ms"] = round((time.perf_counter_ns() - t0) / 1e6, 1)
        out["hung"] = not joined.is_set()
        # Did the item come back to the second consumer? (None: its get(timeout) gave up.)
        try:
            again = done.get(timeout=2)
        except queue.Empty:
            again = None
        out["redelivered"] = again is not None
        try:
            out["unfinished"] = q._unfinished_tasks.get_value()  # the count join() waits on
        except Exception:  # NotImplementedError on macOS
            pass
        return out
    finally:
        for p in (a, b):
            if p is not None and p.pid is not None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


if __name__ == "__main__":
    res = main()
    sys.stdout.write(json.dumps(res) + "\n")
    sys.stdout.flush()
    os._exit(0)  # the join() thread is still blocked: do not wait for it
