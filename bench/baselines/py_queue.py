#!/usr/bin/env python3
"""Python multiprocessing message passing between two processes ('fork' context).

Tests (each prints one JSON line):
  queue_roundtrip   parent q1.put(msg); q2.get()        child q2.put(q1.get())      (two mp.Queue)
  pipe_roundtrip    parent a.send(msg); a.recv()        child b.send(b.recv())      (mp.Pipe(), pickled)
  pipe_bytes_roundtrip   the same with send_bytes() / recv_bytes() (no pickling)
  queue_throughput  child puts N messages, the parent gets them        (1 -> 1, msg/s)
  pipe_throughput   child sends N messages, the parent receives them   (send/recv)
  pipe_bytes_throughput  the same with send_bytes / recv_bytes
  queue_objects     queue_throughput with small dicts {"id": i, "name": "item-<i>", "values": [1, 2, 3]}
  queue_bandwidth   child puts M messages of 1 MiB bytes, the parent gets them (GB/s = 1e9 bytes/s)
  queue_fixed_cost  fds opened and bytes of shared mappings added by one mp.Queue (before any put,
                    then after its first put, which starts the feeder thread), averaged over 10
A message is a 64-byte `bytes` (a fresh object per message on the producing side, as with the
other baselines: bytes((i & 255,)) + payload[1:]); the receiving side checks its length and first byte.
Round trips: median / p10 / p90 of per-round-trip times after a warm-up (n // 10 + 50).
Throughput: the child puts `warm` messages first (the parent drains them), then waits for the
parent's go (an mp.Event); time = from go.set() to the parent's last get(); msg/s = N / time.

usage: py_queue.py [round_trips=2000] [messages=200000] [big_messages=200] [tests=all|comma list]
"""
import json
import multiprocessing as mp
import os
import statistics
import sys
import time

MSG = 64
BIG = 1 << 20
clock = time.perf_counter_ns
ctx = mp.get_context("fork")


def out(obj):
    obj["python"] = sys.version.split()[0]
    print(json.dumps(obj), flush=True)


def payload(i, base):
    return bytes((i & 255,)) + base[1:]


# ---- round trips ----------------------------------------------------------------------
def echo_queue(qin, qout, total):
    for _ in range(total):
        qout.put(qin.get())


def echo_pipe(conn, total, raw):
    if raw:
        for _ in range(total):
            conn.send_bytes(conn.recv_bytes())
    else:
        for _ in range(total):
            conn.send(conn.recv())


def roundtrip(kind, n):
    warm = n // 10 + 50
    base = b"x" * MSG
    if kind == "queue":
        q1, q2 = ctx.Queue(), ctx.Queue()
        p = ctx.Process(target=echo_queue, args=(q1, q2, warm + n), daemon=True)
        send, recv = q1.put, q2.get
    else:
        a, b = ctx.Pipe()
        raw = kind == "pipe_bytes"
        p = ctx.Process(target=echo_pipe, args=(b, warm + n, raw), daemon=True)
        send, recv = (a.send_bytes, a.recv_bytes) if raw else (a.send, a.recv)
    p.start()
    rt = []
    bad = 0
    for i in range(warm + n):
        m = payload(i, base)
        t0 = clock()
        send(m)
        r = recv()
        dt = clock() - t0
        if i >= warm:
            rt.append(dt)
        if len(r) != MSG or r[0] != (i & 255):
            bad += 1
    p.join(10)
    rt.sort()
    med = statistics.median(rt)
    out({
        "test": f"{kind}_roundtrip", "round_trips": n, "msg_bytes": MSG,
        "median_ns": int(med), "median_us": round(med / 1e3, 3),
        "p10_ns": rt[len(rt) // 10], "p90_ns": rt[len(rt) * 9 // 10], "mean_ns": int(statistics.fmean(rt)),
        "ok": bad == 0 and p.exitcode == 0, "child_exitcode": p.exitcode,
    })


# ---- one-way throughput ------------------------------------------------------------------
def obj(i):
    return {"id": i, "name": f"item-{i}", "values": [1, 2, 3]}


def producer(sink, kind, size, warm, n, go):
    """sink: a Queue (put) or a Connection (send / send_bytes)."""
    base = b"x" * size
    if kind == "queue":
        send = sink.put
    elif kind == "pipe":
        send = sink.send
    else:
        send = sink.send_bytes
    make = obj if size == 0 else (lambda i: payload(i, base))
    for i in range(warm):
        send(make(i))
    go.wait()
    for i in range(n):
        send(make(i))
    if kind == "queue":
        sink.close()
        sink.join_thread()  # the feeder thread has written everything


def throughput(kind, n, size=MSG, name=None):
    """size 0: small objects (dicts) instead of bytes."""
    warm = min(n // 10 + 50, 5000)
    go = ctx.Event()
    if kind == "queue":
        q = ctx.Queue()
        sink, recv = q, q.get
    else:
        a, b = ctx.Pipe(duplex=False)  # a receives, b sends
        sink, recv = b, (a.recv if kind == "pipe" else a.recv_bytes)
    p = ctx.Process(target=producer, args=(sink, kind, size, warm, n, go), daemon=True)
    p.start()
    for _ in range(warm):
        recv()
    bad = 0
    t0 = clock()
    go.set()
    if size == 0:
        for i in range(n):
            m = recv()
            if m["id"] != i:
                bad += 1
    elif size == MSG:
        for i in range(n):
            m = recv()
            if len(m) != MSG or m[0] != (i & 255):
                bad += 1
    else:
        for _ in range(n):
            if len(recv()) != size:
                bad += 1
    dt = clock() - t0
    p.join(30)
    rec = {
        "test": name or f"{kind}_throughput", "messages": n, "msg_bytes": size if size else None,
        "msg_per_s": round(n / (dt / 1e9)), "ns_per_msg": round(dt / n, 1), "wall_ms": round(dt / 1e6, 3),
        "ok": bad == 0 and p.exitcode == 0, "child_exitcode": p.exitcode,
    }
    if size == 0:
        rec["msg"] = "{id, name, values: [1, 2, 3]} dict"
    if size >= BIG:
        rec["gbps"] = round(n * size / dt, 3)  # bytes per ns = GB/s
    out(rec)


# ---- fixed cost ----------------------------------------------------------------------------
def fds():
    return len(os.listdir("/proc/self/fd"))


def shared_mapped():
    """Bytes of shared mappings (perms like rw-s) in this process."""
    total = 0
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if parts[1][3] == "s":
                a, b = parts[0].split("-")
                total += int(b, 16) - int(a, 16)
    return total


def fixed_cost(k=10):
    import threading
    ctx.Queue().close()  # first-use imports and module state
    f0, m0, t0 = fds(), shared_mapped(), threading.active_count()
    qs = [ctx.Queue() for _ in range(k)]
    f1, m1, t1 = fds(), shared_mapped(), threading.active_count()
    for q in qs:
        q.put(b"x")
    for q in qs:
        q.get()
    f2, m2, t2 = fds(), shared_mapped(), threading.active_count()
    out({
        "test": "queue_fixed_cost", "queues": k,
        "fds_per_queue": (f1 - f0) / k, "shared_mapped_bytes_per_queue": (m1 - m0) / k,
        "fds_per_queue_after_put": (f2 - f0) / k, "shared_mapped_bytes_per_queue_after_put": (m2 - m0) / k,
        "threads_per_queue": (t1 - t0) / k, "threads_per_queue_after_put": (t2 - t0) / k,
    })
    for q in qs:
        q.close()
        q.join_thread()


def main():
    a = sys.argv[1:]
    arg = lambda i, d: int(a[i]) if len(a) > i and a[i] else d
    n_rt, n_msg, n_big = arg(0, 2000), arg(1, 200000), arg(2, 200)
    tests = a[3].split(",") if len(a) > 3 and a[3] and a[3] != "all" else None
    plan = [
        ("queue_roundtrip", lambda: roundtrip("queue", n_rt)),
        ("pipe_roundtrip", lambda: roundtrip("pipe", n_rt)),
        ("pipe_bytes_roundtrip", lambda: roundtrip("pipe_bytes", n_rt)),
        ("queue_throughput", lambda: throughput("queue", n_msg)),
        ("pipe_throughput", lambda: throughput("pipe", n_msg)),
        ("pipe_bytes_throughput", lambda: throughput("pipe_bytes", n_msg)),
        ("queue_objects", lambda: throughput("queue", n_msg, 0, "queue_objects")),
        ("queue_bandwidth", lambda: throughput("queue", n_big, BIG, "queue_bandwidth")),
        ("queue_fixed_cost", fixed_cost),
    ]
    for name, fn in plan:
        if tests is None or name in tests:
            fn()


if __name__ == "__main__":
    main()
