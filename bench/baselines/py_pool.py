#!/usr/bin/env python3
"""Python multiprocessing.Pool(2) (the default context: 'fork' on Linux before 3.14), the
baseline of bench/pool.mjs. The trivial task is inc(x) = x + 1; the big one flips the first
byte of its 1 MiB bytearray argument and returns it.

Tests (each prints one JSON line, with a "test" key):
  latency    pool.apply(inc, (i,)) one at a time: median / p99 / mean (us) of n after a warm-up
  apply_async  n pool.apply_async(inc, (i,)) submitted at once, then every .get(): tasks/s
  map        pool.map(inc, range(n), chunksize): tasks/s (chunksize 0 = map's default,
             ceil(n / (4 * workers)))
  bytes      n tasks of a 1 MiB bytearray argument and a 1 MiB result, `window` apply_async in
             flight (each slot sends the bytearray it got back): GB/s = 2 MiB per task / time
  startup    Pool(2) -> the first apply() result, then close() + join() timed apart; k times,
             the first not counted
  rss        VmRSS and Pss of the workers after 2,000 tasks and settle_ms idle
Throughput tests: the median of `reps` runs after one warm-up of n // 10.

usage: py_pool.py <test> [args]
  latency <n> | apply_async <n> [reps] | map <n> <chunksize> [reps] | bytes <n> <window> |
  startup <k> | rss [settle_ms]
"""
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time

WORKERS = 2
MiB = 1 << 20
clock = time.perf_counter_ns


def inc(x):
    return x + 1


def big(b):
    b[0] ^= 1
    return b


def pid(_):
    return os.getpid()


def out(obj):
    obj["python"] = sys.version.split()[0]
    obj["start_method"] = mp.get_start_method()
    obj["workers"] = WORKERS
    print(json.dumps(obj), flush=True)


def pct(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(len(s) * p) - 1))]


def latency(n):
    with mp.Pool(WORKERS) as pool:
        for i in range(n // 10 + 200):
            pool.apply(inc, (i,))
        ts = []
        bad = 0
        for i in range(n):
            t0 = clock()
            v = pool.apply(inc, (i,))
            ts.append((clock() - t0) / 1e3)
            if v != i + 1:
                bad += 1
    out({"test": "latency", "n": n, "median_us": round(statistics.median(ts), 2), "p99_us": round(pct(ts, 0.99), 2),
         "p90_us": round(pct(ts, 0.9), 2), "p10_us": round(pct(ts, 0.1), 2), "mean_us": round(statistics.mean(ts), 2),
         "max_us": round(max(ts), 2), "ok": bad == 0, "bad": bad})


def rates(pool, n, reps, once):
    bad = once(pool, max(1000, n // 10))
    rs, walls = [], []
    for _ in range(reps):
        t0 = clock()
        bad += once(pool, n)
        dt = (clock() - t0) / 1e9
        walls.append(round(dt * 1e3, 2))
        rs.append(round(n / dt))
    return rs, walls, bad


def check(res, count):
    return (0 if len(res) == count else 1) + sum(1 for i, v in enumerate(res) if v != i + 1)


def apply_async(n, reps):
    def once(pool, count):
        rs = [pool.apply_async(inc, (i,)) for i in range(count)]
        return check([r.get() for r in rs], count)

    with mp.Pool(WORKERS) as pool:
        rs, walls, bad = rates(pool, n, reps, once)
    out({"test": "apply_async", "n": n, "tasks_per_s": statistics.median(rs), "samples_tasks_per_s": rs, "wall_ms": walls,
         "ok": bad == 0, "bad": bad})


def map_(n, chunksize, reps):
    cs = chunksize or math.ceil(n / (4 * WORKERS))

    def once(pool, count):
        return check(pool.map(inc, range(count), cs), count)

    with mp.Pool(WORKERS) as pool:
        rs, walls, bad = rates(pool, n, reps, once)
    out({"test": "map", "n": n, "chunksize": cs, "tasks_per_s": statistics.median(rs), "samples_tasks_per_s": rs,
         "wall_ms": walls, "ok": bad == 0, "bad": bad})


def bytes_(n, window):
    bad = 0

    def go(pool, count):
        nonlocal bad
        slots = [bytearray(b"\x07" * MiB) for _ in range(window)]
        first = [7] * window
        pending = [None] * window
        sent = 0
        for k in range(window):
            if sent < count:
                pending[k] = pool.apply_async(big, (slots[k],))
                sent += 1
        done = 0
        while done < count:
            for k in range(window):
                r = pending[k]
                if r is None:
                    continue
                b = r.get()
                done += 1
                first[k] ^= 1
                if len(b) != MiB or b[0] != first[k] or b[-1] != 7:
                    bad += 1
                if sent < count:
                    pending[k] = pool.apply_async(big, (b,))
                    sent += 1
                else:
                    pending[k] = None

    with mp.Pool(WORKERS) as pool:
        go(pool, max(window * 2, n // 10))
        t0 = clock()
        go(pool, n)
        dt = (clock() - t0) / 1e9
    out({"test": "bytes", "n": n, "window": window, "wall_ms": round(dt * 1e3, 2), "tasks_per_s": round(n / dt, 1),
         "gbps": round(2 * n * MiB / dt / 1e9, 3), "ok": bad == 0, "bad": bad})


def startup(k):
    first, close = [], []
    for i in range(k + 1):
        t0 = clock()
        pool = mp.Pool(WORKERS)
        v = pool.apply(inc, (41,))
        t1 = clock()
        pool.close()
        pool.join()
        t2 = clock()
        assert v == 42
        if i > 0:
            first.append(round((t1 - t0) / 1e6, 3))
            close.append(round((t2 - t1) / 1e6, 3))
        time.sleep(0.02)
    out({"test": "startup", "k": k, "ms": statistics.median(first), "samples_ms": first, "close_ms": statistics.median(close)})


def kb(path, name):
    with open(path) as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    return None


def rss(settle_ms):
    with mp.Pool(WORKERS) as pool:
        rs = [pool.apply_async(inc, (i,)) for i in range(2000)]
        for r in rs:
            r.get()
        time.sleep(settle_ms / 1000)
        workers = []
        for p in pool._pool:
            pss = None
            try:
                pss = kb(f"/proc/{p.pid}/smaps_rollup", "Pss")
            except OSError:
                pass
            workers.append({"pid": p.pid, "rss": kb(f"/proc/{p.pid}/status", "VmRSS"), "pss": pss})
    parent = kb("/proc/self/status", "VmRSS")
    out({"test": "rss", "settle_ms": settle_ms, "rss_per_worker": round(statistics.mean(w["rss"] for w in workers)),
         "pss_per_worker": round(statistics.mean(w["pss"] for w in workers)) if all(w["pss"] for w in workers) else None,
         "parent_rss": parent, "worker_procs": workers})


def main():
    a = sys.argv[1:]
    if not a:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    t = a[0]
    arg = lambda i, d: int(a[i]) if len(a) > i and a[i] != "" else d
    if t == "latency":
        latency(arg(1, 10000))
    elif t == "apply_async":
        apply_async(arg(1, 100000), arg(2, 3))
    elif t == "map":
        map_(arg(1, 100000), arg(2, 0), arg(3, 3))
    elif t == "bytes":
        bytes_(arg(1, 500), arg(2, 4))
    elif t == "startup":
        startup(arg(1, 5))
    elif t == "rss":
        rss(arg(1, 500))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
