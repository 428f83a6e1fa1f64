#!/usr/bin/env python3
"""Uncontended multiprocessing.Lock / Event costs (single process, 'fork' context objects).

usage: py_lock.py [iters=200000] [repeats=5]
prints one JSON line:
  {"lock_pair_ns", "with_lock_ns", "event_is_set_ns", "event_set_clear_ns", "loop_overhead_ns", ...}
Each figure is the median over `repeats` timed loops of total_ns / iters (loop overhead NOT
subtracted; it is reported separately as loop_overhead_ns). Event loops use iters/4.
"""
import json
import multiprocessing as mp
import statistics
import sys
import time


def timeit(fn, iters, repeats):
    fn(max(1, iters // 10))  # warm-up
    res = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn(iters)
        res.append((time.perf_counter_ns() - t0) / iters)
    return round(statistics.median(res), 1)


def main():
    iters = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    ctx = mp.get_context("fork")
    lock = ctx.Lock()
    ev_set = ctx.Event()
    ev_set.set()
    ev = ctx.Event()

    def empty(n):
        for _ in range(n):
            pass

    def pair(n):
        acq, rel = lock.acquire, lock.release
        for _ in range(n):
            acq()
            rel()

    def with_block(n):
        for _ in range(n):
            with lock:
                pass

    def is_set(n):
        f = ev_set.is_set
        for _ in range(n):
            f()

    def set_clear(n):
        s, c = ev.set, ev.clear
        for _ in range(n):
            s()
            c()

    ev_iters = max(1, iters // 4)
    out = {
        "lock_pair_ns": timeit(pair, iters, repeats),
        "with_lock_ns": timeit(with_block, iters, repeats),
        "event_is_set_ns": timeit(is_set, ev_iters, repeats),
        "event_set_clear_ns": timeit(set_clear, ev_iters, repeats),
        "loop_overhead_ns": timeit(empty, iters, repeats),
        "iters": iters,
        "repeats": repeats,
        "python": sys.version.split()[0],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
