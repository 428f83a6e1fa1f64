#!/usr/bin/env python3
"""A producer process putting large messages (1 MiB of bytes, checksummed) into a
multiprocessing.Queue is SIGKILLed (as the OOM killer would do) while it is putting;
a second producer, alive, keeps putting small messages; the parent consumes.

mp.Queue.put() only hands the object to a feeder thread, which writes the pickled
message to a pipe (64 KiB of kernel buffer) while holding the queue's write lock, a
multiprocessing.Lock. A 1 MiB message takes many writes, each waiting for the
consumer to read: the producer spends most of its time inside that write. Killed
there, it leaves the first part of a message in the pipe, and the write lock held
by nobody alive. The consumer's get() reads the length prefix and the part that is
there, then waits for the rest, forever: get(timeout=T) does not help (the timeout
only covers the wait for the first byte). The live producer's feeder waits forever
for the write lock, so its messages never arrive either.

The kill lands while the consumer is busy (it "works" 200 ms on a message, so the
pipe fills up and the producer blocks in the middle of its next message), 100 ms
into that work. The consumer then tries get(timeout=T) in a thread; the main thread
gives up on it after T + 1 s ("hung"), looks at the pipe and the write lock, and
_exits (the blocked thread cannot be stopped).

usage: queue_producer_killed.py [T_seconds=3] [size_bytes=1048576]
prints: {"hung": bool, "torn": bool, "outcome": str, "waited_ms": float, "timeout_s": T,
         "got_before_kill": int, "after_kill": {"whole": int, "torn": int, "from_live": int},
         "pipe_bytes_after_kill": int|null, "message_bytes": int, "write_lock_held": bool|null,
         "blocked_in": str|null (the blocked get()'s innermost frames),
         "child_exitcode": int, "error": str|null, "python": str}
"""
import fcntl
import json
import multiprocessing as mp
import os
import pickle
import signal
import struct
import sys
import termios
import threading
import time
import zlib

ARGS = {"size": 1 << 20}


def message(pid_tag, seq, size):
    payload = os.urandom(size)
    return (pid_tag, seq, zlib.crc32(payload), payload)


def whole(m):
    try:
        tag, seq, crc, payload = m
        return zlib.crc32(payload) == crc
    except Exception:
        return False


def big_producer(q):
    for seq in range(20):  # bounded: put() buffers in this process until the feeder sends
        q.put(message("big", seq, ARGS["size"]))
        time.sleep(0.001)
    time.sleep(60)


def live_producer(q, stop):
    seq = 0
    while not stop.is_set() and seq < 1000:
        q.put(message("live", seq, 1000))
        seq += 1
        time.sleep(0.02)


def main():
    t = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    if len(sys.argv) > 2:
        ARGS["size"] = int(sys.argv[2])  # set before fork: the children inherit it
    out = {"hung": False, "torn": False, "outcome": None, "waited_ms": None, "timeout_s": t,
           "got_before_kill": 0, "after_kill": None, "pipe_bytes_after_kill": None,
           "message_bytes": None, "write_lock_held": None, "blocked_in": None, "child_exitcode": None,
           "error": None, "python": sys.version.split()[0]}
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    stop = ctx.Event()
    big = ctx.Process(target=big_producer, args=(q,), daemon=True)
    live = ctx.Process(target=live_producer, args=(q, stop), daemon=True)
    big.start()
    live.start()
    try:
        # Consume until 3 big messages came whole.
        deadline = time.monotonic() + 10
        while out["got_before_kill"] < 3 and time.monotonic() < deadline:
            m = q.get(timeout=5)
            if m[0] == "big" and whole(m):
                out["got_before_kill"] += 1
        if out["got_before_kill"] < 3:
            out["error"] = "the big producer's first messages did not arrive"
            return out
        # "Work" on the last message: the pipe fills up, the producer blocks in the
        # middle of writing its next message. 100 ms in, the OOM killer strikes.
        time.sleep(0.1)
        os.kill(big.pid, signal.SIGKILL)
        big.join()
        out["child_exitcode"] = big.exitcode
        try:
            n = struct.unpack("i", fcntl.ioctl(q._reader.fileno(), termios.FIONREAD, b"\0" * 4))[0]
            out["pipe_bytes_after_kill"] = n
        except Exception:
            pass
        time.sleep(0.1)  # the rest of the "work"

        after = {"whole": 0, "torn": 0, "from_live": 0}
        out["after_kill"] = after
        state = {"error": None, "last": None}

        def consume():
            # The consumer goes on: get(timeout=T), over and over, until T passes
            # without a message (it gave up) or 20 messages came after the kill.
            while after["whole"] + after["torn"] < 20:
                try:
                    m = q.get(timeout=t)
                except Exception as e:  # queue.Empty, or an unpickling error
                    state["last"] = e
                    return
                if whole(m):
                    after["whole"] += 1
                    if m[0] == "live":
                        after["from_live"] += 1
                else:
                    after["torn"] += 1

        t0 = time.perf_counter_ns()
        th = threading.Thread(target=consume, daemon=True)
        th.start()
        th.join(t + 1)
        out["waited_ms"] = round((time.perf_counter_ns() - t0) / 1e6, 1)
        e = state["last"]
        if th.is_alive():
            out["hung"] = True
            out["outcome"] = "get() blocked"
            frame = sys._current_frames().get(th.ident)
            where = []
            while frame is not None:
                where.append(frame.f_code.co_name)
                frame = frame.f_back
            out["blocked_in"] = " < ".join(where[:4])
        elif e is not None and type(e).__name__ == "Empty":
            out["outcome"] = "get() raised Empty"
        elif e is not None:
            out["torn"] = True
            out["outcome"] = "get() raised %s: %s" % (type(e).__name__, str(e)[:120])
        else:
            out["outcome"] = "20 messages after the kill"
        if after["torn"]:
            out["torn"] = True
        # What a 1 MiB message is on the pipe (length prefix included).
        out["message_bytes"] = 4 + len(pickle.dumps(message("big", 0, ARGS["size"])))
        try:
            got = q._wlock.acquire(timeout=0)
            if got:
                q._wlock.release()
            out["write_lock_held"] = not got
        except Exception:
            pass
        return out
    finally:
        stop.set()
        for p in (big, live):
            try:
                os.kill(p.pid, signal.SIGKILL)
            except (ProcessLookupError, TypeError):
                pass


if __name__ == "__main__":
    res = main()
    sys.stdout.write(json.dumps(res) + "\n")
    sys.stdout.flush()
    os._exit(0)  # a consumer thread may still be blocked in get(): do not wait for it
