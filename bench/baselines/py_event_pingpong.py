#!/usr/bin/env python3
"""Two processes ping-pong with two multiprocessing.Event objects ('fork' context).

Parent: ping.set(); pong.wait(); pong.clear()     Child: ping.wait(); ping.clear(); pong.set()
usage: py_event_pingpong.py [round_trips=2000]
prints: {"py_event_pingpong_ns": median round trip, "p10_ns", "p90_ns", "mean_ns", "round_trips", "python"}
"""
import json
import multiprocessing as mp
import statistics
import sys
import time


def child(ping, pong, total):
    for _ in range(total):
        ping.wait()
        ping.clear()
        pong.set()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    warm = n // 10 + 50
    ctx = mp.get_context("fork")
    ping, pong = ctx.Event(), ctx.Event()
    p = ctx.Process(target=child, args=(ping, pong, warm + n), daemon=True)
    p.start()
    rt = []
    clock = time.perf_counter_ns
    for i in range(warm + n):
        t0 = clock()
        ping.set()
        pong.wait()
        pong.clear()
        if i >= warm:
            rt.append(clock() - t0)
    p.join(5)
    rt.sort()
    print(json.dumps({
        "py_event_pingpong_ns": int(statistics.median(rt)),
        "p10_ns": rt[len(rt) // 10],
        "p90_ns": rt[len(rt) * 9 // 10],
        "mean_ns": int(statistics.fmean(rt)),
        "round_trips": n,
        "child_exitcode": p.exitcode,
        "python": sys.version.split()[0],
    }))


if __name__ == "__main__":
    main()
