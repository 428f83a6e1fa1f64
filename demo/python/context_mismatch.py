#!/usr/bin/env python3
"""A well-known multiprocessing crash: an Event created from the default context ('fork' on
Linux up to Python 3.13) is handed to a Process from the 'spawn' context.

The usual report is the child dying with exitcode -11 (SIGSEGV). CPython 3.11.7 (this
machine) catches it first: pickling the fork-context SemLock for a spawn child raises
RuntimeError from p.start() in the parent, and the child never runs. The top-level fields
report that, the unmodified behaviour.

As a second, clearly labelled experiment ("guard_bypassed"), the script clears the private
SemLock._is_fork_ctx flag so the guard doesn't fire, then runs that code as written. The
fork-context semaphores are unnamed (unlinked at creation), so the spawn child rebuilds them
from a raw sem_t* address that belongs to the parent, and on Linux it dies with SIGSEGV.
That is the failure older Pythons hit without the guard. Pass argv[2]=0 to skip it.

That code sleeps 1 s before looking at the child; this script polls the child every 10 ms
during that second instead, so it can say when the child died ("ms": from p.start() to the
parent's exception, or to the child's death) and returns as soon as it knows.

usage: context_mismatch.py [sleep_s=1] [bypass=1]
prints: {"exitcode": int|null, "outcome": str, "error": str|null, "ms": float,
         "guard_bypassed": {"exitcode": int|null, "outcome": str, "error": str|null,
                            "ms": float} | null, "python": str, ...}
"""
import json
import multiprocessing as mp
import signal
import sys
import time
from time import sleep


def wait_for_event(event):
    while not event.is_set():
        sleep(0.1)


def describe(code):
    if code is None:
        return "child still running"
    if code < 0:
        try:
            return "child killed by %s" % signal.Signals(-code).name
        except ValueError:
            return "child killed by signal %d" % -code
    if code == 0:
        return "child saw the event and exited normally"
    return "child exited with error status %d" % code


def ms_since(t0):
    return round((time.perf_counter_ns() - t0) / 1e6, 1)


def run_seed(delay, bypass):
    """The crashing example (trigger_segment_fault()), instrumented.
    Returns (exitcode, outcome, error, ms)."""
    event = mp.Event()  # default context: 'fork' on Linux
    if bypass:
        c = event._cond
        for sl in (c._lock, c._sleeping_count, c._woken_count, c._wait_semaphore, event._flag):
            sl._is_fork_ctx = False
    p = mp.get_context("spawn").Process(target=wait_for_event, args=(event,))
    t0 = time.perf_counter_ns()
    try:
        p.start()
    except Exception as e:
        return None, "parent raised %s at p.start(); child never ran" % type(e).__name__, \
            "%s: %s" % (type(e).__name__, e), ms_since(t0)
    # The example sleeps `delay` here, then prints p and sees exitcode=-SIGSEGV.
    end = time.monotonic() + delay
    code = p.exitcode
    while code is None and time.monotonic() < end:
        sleep(0.01)
        code = p.exitcode
    ms = ms_since(t0)
    event.set()
    if code is None:
        p.join(3)
        code = p.exitcode
        ms = ms_since(t0)
    if code is None:
        p.terminate()
        p.join()
        return None, "child still running after event.set() (terminated)", None, ms
    return code, describe(code), None, ms


def main():
    delay = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    bypass = (sys.argv[2] not in ("0", "no", "false")) if len(sys.argv) > 2 else True
    code, outcome, err, ms = run_seed(delay, False)
    res = {"exitcode": code, "outcome": outcome, "error": err, "ms": ms,
           "default_start_method": mp.get_start_method(), "python": sys.version.split()[0],
           "guard_bypassed": None}
    if bypass:
        bcode, boutcome, berr, bms = run_seed(delay, True)
        res["guard_bypassed"] = {"exitcode": bcode, "outcome": boutcome, "error": berr, "ms": bms}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
