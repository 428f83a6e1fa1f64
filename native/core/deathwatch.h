// The death watcher: owner death noticed when it happens, not at the next
// liveness slice. No N-API.
//
// A blocked wait whose outcome a specific process's death changes (a lock's
// holder, an undo semaphore's holders, a barrier's arrived parties) registers
// those processes in a DeathWatch before it sleeps. One native thread per
// process (started on first use) keeps a pidfd per watched (pid, start time)
// in an epoll set; when a pidfd becomes readable (the process exited) it sets
// `fired` on every DeathWatch registered for it, then bumps and FUTEX_WAKEs
// each one's `wake` word. The sleeper also waits on that word (sync waits:
// futex_waitv on the primitive's word and `seq`; waiter threads: their control
// word, already in their futex_waitv), wakes, sees `fired`, and runs the usual
// liveness check at once (which finds the holder dead and recovers). The
// 50 ms slice stays as the fallback: without pidfd_open/futex_waitv, when a
// pidfd cannot be opened (EMFILE), or for processes nobody registered.
//
// Invariants:
// - `fired` is stored before `*wake` is bumped (both seq-cst), so a sleeper
//   that reads `*wake` then finds `fired` clear will see `*wake` change.
// - The watcher touches a DeathWatch only under the registry mutex, and a
//   DeathWatch is unregistered (deathwatch_clear) under that mutex before its
//   memory goes away, so the watcher never writes freed memory.
// - A process counts as watched only after its pidfd was validated against
//   its start time (pid reuse: a different process behind the same pid means
//   the one we wanted is dead: fired at once).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace forksafe {

struct DeathKey {
  uint32_t pid;
  uint64_t start;  // /proc start time from the arena's participant table; 0 = unknown
};

// At most this many processes per wait are watched (an undo semaphore has 64
// entries; a barrier's extra parties fall back to the slice).
constexpr size_t kDeathWatchMax = 64;

struct DeathWatch {
  DeathWatch() = default;
  DeathWatch(const DeathWatch&) = delete;
  DeathWatch& operator=(const DeathWatch&) = delete;
  ~DeathWatch();

  uint32_t seq = 0;                 // futex word for a sync waiter (wake == &seq)
  uint32_t* wake = &seq;            // bumped + FUTEX_WAKEd on a death (shared futex)
  std::atomic<uint32_t> fired{0};   // a watched process died (or was dead at registration)
  std::vector<DeathKey> keys;       // registered processes; changed by the owner under the registry mutex
};

// The watcher can run here (pidfd_open and futex_waitv work) and the test
// knob has not switched it off.
bool deathwatch_enabled();

// Watches exactly `keys` (replaces what w watched). Processes found dead (or
// their pid reused) fire w at once. Processes that cannot be watched (no
// pidfd: EMFILE...) are left to the slice. Our own pid is never watched.
void deathwatch_set(DeathWatch* w, const DeathKey* keys, size_t n);
// Watches the process of a lock word's holder (value as read, waiters bit
// allowed); markers and our own pid (another JS thread: its exit hook wakes
// waiters) clear the watch. Cheap when the holder's process is watched already.
void deathwatch_token(DeathWatch* w, const uint8_t* arena_base, uint32_t word_value);
void deathwatch_clear(DeathWatch* w);

// Consumes a death notice: true once after a watched process died.
inline bool deathwatch_take(DeathWatch* w) {
  return w->fired.load(std::memory_order_relaxed) != 0 && w->fired.exchange(0) != 0;
}

// A sync waiter's sleep: until *word != val or a FUTEX_WAKE on it, a death
// notice on w, or timeout_ms (< 0: none). Without anything watched this is
// exactly futex_wait(word, val). Returns 0, -EAGAIN, -ETIMEDOUT, -EINTR, -errno.
int deathwatch_sleep(DeathWatch* w, uint32_t* word, uint32_t val, double timeout_ms);

// Start time of pid as an arena's participant table records it (0 if absent).
uint64_t participant_start(const uint8_t* arena_base, uint32_t pid);

// pthread_atfork handlers; installed before the waiter threads' (their prepare
// must run first: a waiter thread may hold the registry mutex until parked).
void deathwatch_install_atfork();

// Test and bench knobs, and counters.
struct DeathWatchStats {
  uint64_t wakes;        // DeathWatches fired by a pidfd becoming readable
  uint64_t deaths;       // watched processes seen dying through their pidfd
  uint64_t dead_at_add;  // fired at registration (already dead, or pid reused)
  uint64_t adds;         // pidfds opened
  uint32_t pidfds;       // pidfds open now (watched or kept idle for reuse)
  uint32_t watched;      // processes watched now
  uint32_t running;      // the watcher thread exists in this process
  int supported;         // 1 yes, 0 no (kernel), -1 not probed yet
  uint32_t enabled;
};
void deathwatch_stats(DeathWatchStats* out);
// enabled: 0 off (slices only, for the bench's side-by-side and tests), 1 on.
void deathwatch_set_enabled(bool on);
// How long an unwatched pidfd is kept for the next wait on the same process.
void deathwatch_set_linger_ms(double ms);

}  // namespace forksafe
