#!/usr/bin/env python3
"""A threading.Lock held by another thread at the moment of os.fork() ("the child
process hangs forever on a lock that was copied in a locked state").

A holder thread takes the lock and keeps it for HOLD seconds; the main thread forks while it
is held. fork() copies the lock's state (locked) but not the holder thread: in the child
nobody will ever release it. The child tries acquire(timeout=T); the parent, where the holder
does exist, gets the lock as soon as the holder releases it. A watchdog thread in the child
reports and _exits if anything blocks longer than expected.

usage: fork_lock_held.py [T_seconds=2]
prints one JSON line:
  {"python", "hold_s", "timeout_s", "child_acquired", "child_waited_ms", "child_threads",
   "parent_acquired", "parent_waited_ms", "warning", "error"}
"""
import json
import os
import select
import sys
import threading
import time
import warnings

HOLD = 0.3


def main():
    t = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    out = {"python": sys.version.split()[0], "hold_s": HOLD, "timeout_s": t, "error": None}
    lock = threading.Lock()
    held = threading.Event()

    def holder():
        with lock:
            held.set()
            time.sleep(HOLD)

    threading.Thread(target=holder, daemon=True).start()
    if not held.wait(5):
        out["error"] = "the holder thread never took the lock"
        print(json.dumps(out), flush=True)
        return
    r, w = os.pipe()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pid = os.fork()  # 3.12+ warns here (multi-threaded process); 3.11 says nothing
    if pid == 0:
        os.close(r)
        threads = threading.active_count()  # before the watchdog starts

        def watchdog():
            time.sleep(t + 3)
            os.write(w, json.dumps({"watchdog": True}).encode())
            os._exit(3)

        threading.Thread(target=watchdog, daemon=True).start()
        t0 = time.perf_counter_ns()
        got = lock.acquire(timeout=t)  # without a timeout: forever
        res = {"acquired": got, "waited_ms": round((time.perf_counter_ns() - t0) / 1e6, 1),
               "threads": threads}
        os.write(w, json.dumps(res).encode())
        os._exit(0)
    os.close(w)
    out["warning"] = "; ".join("%s: %s" % (x.category.__name__, x.message) for x in caught) or None
    t0 = time.perf_counter_ns()
    out["parent_acquired"] = lock.acquire(timeout=t)
    out["parent_waited_ms"] = round((time.perf_counter_ns() - t0) / 1e6, 1)
    data = b""
    deadline = time.monotonic() + t + 5
    while time.monotonic() < deadline:
        ready, _, _ = select.select([r], [], [], 0.1)
        if ready:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
    os.close(r)
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
    try:
        child = json.loads(data.decode())
    except ValueError:
        child = {}
    if child.get("watchdog"):
        out["error"] = "the child's acquire(timeout) did not return: stopped by its watchdog"
    out["child_acquired"] = child.get("acquired")
    out["child_waited_ms"] = child.get("waited_ms")
    out["child_threads"] = child.get("threads")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
