#!/usr/bin/env python3
"""An asyncio program waits for a multiprocessing.Lock held by another process.

multiprocessing offers only blocking acquire(): called from a coroutine it blocks
the event loop, so every other task (here a 10 ms ticker) stops until the lock
comes. (run_in_executor would move the wait to a thread pool thread; that is the
workaround Node's libuv threadpool would need too, and it is not what forksafe does.)

usage: async_blocks_loop.py [hold_seconds=1]
prints: {"ticks": int, "expected_ticks": int, "waited_ms": float, "python": str}
"""
import asyncio
import json
import multiprocessing as mp
import sys
import time


def holder(lock, held, secs):
    lock.acquire()
    held.set()
    time.sleep(secs)
    lock.release()


async def main(secs):
    lock = mp.Lock()
    held = mp.Event()
    p = mp.Process(target=holder, args=(lock, held, secs))
    p.start()
    held.wait(5)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    lock.acquire(timeout=secs + 5)  # the loop is blocked here
    waited = (time.perf_counter() - t0) * 1000
    ticks_during_wait = ticks
    lock.release()
    task.cancel()
    p.join(5)
    print(json.dumps({"ticks": ticks_during_wait, "expected_ticks": int(waited / 10),
                      "waited_ms": waited, "python": sys.version.split()[0]}))


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0))
