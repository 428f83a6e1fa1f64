#!/usr/bin/env python3
"""Worker start-up time: Process.start() until the first message from the worker.

For each start method (forkserver, spawn, fork) a few processes are started one
after the other; each sends one message through a Pipe as soon as it runs. The
forkserver is started (and warmed with one process) before it is timed, as
forksafe's row does.

usage: forkserver_start.py [starts=5]
prints: {"forkserver": {"ms": [...], "median_ms": float}, "spawn": {...}, "fork": {...},
         "forkserver_boot_ms": float, "python": ...}
"""
import json
import multiprocessing as mp
import statistics
import sys
import time


def ping(conn):
    conn.send("up")
    conn.close()


def start_once(ctx):
    r, w = ctx.Pipe(duplex=False)
    t0 = time.perf_counter_ns()
    p = ctx.Process(target=ping, args=(w,))
    p.start()
    if not r.poll(10):
        p.kill()
        p.join()
        raise RuntimeError("no message from the worker within 10 s")
    r.recv()
    ms = (time.perf_counter_ns() - t0) / 1e6
    p.join(10)
    r.close()
    w.close()
    return ms


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    out = {"python": sys.version.split()[0]}
    for method in ("forkserver", "spawn", "fork"):
        try:
            ctx = mp.get_context(method)
            if method == "forkserver":
                t0 = time.perf_counter_ns()
                start_once(ctx)  # starts the forkserver itself: not counted
                out["forkserver_boot_ms"] = round((time.perf_counter_ns() - t0) / 1e6, 1)
            ms = [start_once(ctx) for _ in range(n)]
            out[method] = {"ms": [round(x, 2) for x in ms], "median_ms": round(statistics.median(ms), 2)}
        except Exception as e:  # a start method missing on this platform
            out[method] = {"error": "%s: %s" % (type(e).__name__, e)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
