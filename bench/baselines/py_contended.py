#!/usr/bin/env python3
"""N processes x K locked increments of multiprocessing.Value('i', lock=False)
under one multiprocessing.Lock ('fork' context).

Workers start together (multiprocessing.Barrier); wall time is from barrier release in the
parent until every worker has been joined. The final value must equal N*K.
usage: py_contended.py [procs=4] [K=100000]
prints: {"procs","k_per_proc","wall_ms","ops_per_s","ns_per_op","total","expected","ok","python"}
"""
import json
import multiprocessing as mp
import sys
import time


def worker(lock, val, k, barrier):
    barrier.wait()
    for _ in range(k):
        with lock:
            val.value += 1


def main():
    nproc = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    ctx = mp.get_context("fork")
    lock = ctx.Lock()
    val = ctx.Value("i", 0, lock=False)
    barrier = ctx.Barrier(nproc + 1)
    ps = [ctx.Process(target=worker, args=(lock, val, k, barrier)) for _ in range(nproc)]
    for p in ps:
        p.start()
    barrier.wait()
    t0 = time.perf_counter_ns()
    for p in ps:
        p.join()
    wall = time.perf_counter_ns() - t0
    expected = nproc * k
    print(json.dumps({
        "procs": nproc,
        "k_per_proc": k,
        "wall_ms": round(wall / 1e6, 2),
        "ops_per_s": round(expected / (wall / 1e9)),
        "ns_per_op": round(wall / expected, 1),
        "total": val.value,
        "expected": expected,
        "ok": val.value == expected and all(p.exitcode == 0 for p in ps),
        "python": sys.version.split()[0],
    }))


if __name__ == "__main__":
    main()
