// The async waiter: native threads that wait, on behalf of JS threads, for
// many shared words at once (Linux futex_waitv: up to 128 words per call),
// so that no JS thread and no libuv threadpool thread ever blocks. No N-API:
// completion is reported through AsyncOp::done, on a waiter thread.
#pragma once
#include <atomic>
#include <cstdint>

#include "core/layout.h"

namespace forksafe {

struct DeathWatch;

enum AsyncKind : uint32_t {
  kAsyncLock = 1,     // acquire a Lock/RLock for `token`
  kAsyncSem = 2,      // take one unit of a Semaphore
  kAsyncEvent = 3,    // wait for an Event to be set
  kAsyncWord = 4,     // SharedMemory.waitAsync: the Int32 at `word` != expected, or notified
  kAsyncCond = 5,     // Condition.waitAsync (after its synchronous start)
  kAsyncBarrier = 6,  // Barrier.waitAsync (after its synchronous arrival)
};

// Status for a cancelled op (abort or close): nothing is left acquired.
constexpr int kCancelled = 100;

struct AsyncOp {
  // Set by the submitter, read-only afterwards.
  uint32_t kind = 0;
  const uint8_t* base = nullptr;  // arena mapping (owner-liveness checks)
  uint8_t* slot = nullptr;        // the primitive's slot (kAsyncWord: unused)
  uint32_t* word = nullptr;       // kAsyncWord: the Int32
  uint32_t token = 0;             // JS thread the wait is for
  uint32_t expected = 0;          // kAsyncWord value; kAsyncCond seq; kAsyncBarrier gen
  uint32_t saved = 0;             // kAsyncCond: the lock's recursion depth to restore
  bool recursive = false;
  uint8_t* lock_slot = nullptr;   // kAsyncCond: its lock
  const uint8_t* lock_base = nullptr;
  double deadline = -1;           // CLOCK_MONOTONIC ms, < 0: none
  void (*done)(AsyncOp*) = nullptr;
  void* user = nullptr;
  void* user2 = nullptr;          // the waiter thread that owns it (set by async_submit)
  uint32_t index = 0;             // kAsyncBarrier: arrival index (result)

  // Owned by the waiter thread.
  int status = -1;
  int phase = 0;                  // kAsyncCond: 0 waiting for a ticket, 1 re-acquiring
  bool notified = false;          // kAsyncCond
  bool woken = false;             // kAsyncWord: its futex entry was woken
  std::atomic<int> local_wake{0}; // kAsyncWord: notified by this process (async_notify_local)
  double next_check = 0;          // next owner-liveness check
  DeathWatch* death = nullptr;    // processes whose death ends the wait (core/deathwatch.h)
  std::atomic<int> cancel{0};
};

// Hands an op to a waiter thread (started on first use). Thread-safe.
// Returns 0 or -errno (a thread could not be started).
int async_submit(AsyncOp* op);
// Requests cancellation; the op still completes through done(), with
// kCancelled unless it had already finished. Thread-safe.
void async_cancel(AsyncOp* op);

// SharedMemory.notify() in this process: marks up to `count` pending async
// waits on `word` (oldest first) as notified, even those whose waiter thread
// is not asleep yet (a futex wake would miss them). Returns how many.
int async_notify_local(uint32_t* word, int count);

// Test only: fork()s; the child checks that the waiter threads were parked
// and forgotten cleanly and _exit()s 0 (1 if not). Reaps it and returns its
// exit status (or 128 + signal).
int async_test_fork();

// Counts for tests: waiter threads running, ops pending.
void async_stats(uint32_t* threads, uint32_t* pending);

}  // namespace forksafe
