#!/usr/bin/env python3
"""os.fork() in a process that cannot be forked safely: another thread is running.

CPython 3.11 and older fork without a word; 3.12+ emit a DeprecationWarning ("This process
is multi-threaded, use of fork() may lead to deadlocks in the child") and fork anyway. The
child has only the thread that called fork(): the other thread's work silently stops there
(its counter is frozen), and any lock it held stays locked (see fork_lock_held.py).

usage: fork_with_threads.py
prints one JSON line:
  {"python", "forked", "warning", "parent_threads", "child_threads",
   "parent_counter_advanced", "child_counter_advanced", "error"}
"""
import json
import os
import select
import sys
import threading
import time
import warnings


def main():
    out = {"python": sys.version.split()[0], "forked": False, "warning": None, "error": None}
    count = [0]
    stop = [False]

    def worker():
        while not stop[0]:
            count[0] += 1
            time.sleep(0.001)

    threading.Thread(target=worker, daemon=True).start()
    time.sleep(0.05)
    out["parent_threads"] = threading.active_count()
    r, w = os.pipe()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pid = os.fork()
    if pid == 0:
        os.close(r)
        c0 = count[0]
        time.sleep(0.3)
        res = {"threads": threading.active_count(), "advanced": count[0] > c0}
        os.write(w, json.dumps(res).encode())
        os._exit(0)
    os.close(w)
    out["forked"] = True
    out["warning"] = "; ".join("%s: %s" % (x.category.__name__, x.message) for x in caught) or None
    c0 = count[0]
    time.sleep(0.3)
    out["parent_counter_advanced"] = count[0] > c0
    stop[0] = True
    data = b""
    deadline = time.monotonic() + 5
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
        out["error"] = "the child reported nothing within 5 s"
    out["child_threads"] = child.get("threads")
    out["child_counter_advanced"] = child.get("advanced")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
