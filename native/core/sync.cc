// Blocking algorithms. Every wait is a futex wait on a 32-bit word in shared
// memory, sliced so that owner death is noticed within kLivenessSliceMs; a
// wait that depends on a process's death also registers that process with the
// death watcher (core/deathwatch.h), which wakes it as soon as the process
// exits. Registration happens only right before sleeping, never on a path
// that acquires at once or after spinning.
#include "core/sync.h"
#include "core/atomics.h"
#include "core/deathwatch.h"

#include <errno.h>

#include <atomic>
#include <climits>
#include <cmath>

namespace forksafe {

namespace {
std::atomic<double> g_slice_ms{kLivenessSliceMs};
}  // namespace

double liveness_slice_ms() { return g_slice_ms.load(std::memory_order_relaxed); }
void set_liveness_slice_ms(double ms) { g_slice_ms.store(ms > 0 ? ms : kLivenessSliceMs); }

namespace {

struct Deadline {
  double at;  // < 0: none
  explicit Deadline(double timeout_ms) {
    timeout_ms = normalize_timeout_ms(timeout_ms);
    at = timeout_ms < 0 ? -1.0 : monotonic_ms() + timeout_ms;
  }
  bool forever() const { return at < 0; }
  // ms left, or -1 for forever
  double left(double now) const { return at < 0 ? -1.0 : (at - now > 0 ? at - now : 0.0); }
  bool passed(double now) const { return at >= 0 && now >= at; }
};

double min_wait(double a, double b) {  // -1 = infinite
  if (a < 0) return b;
  if (b < 0) return a;
  return a < b ? a : b;
}

// Spins while pred() is false for at most the spin budget. True if pred held.
template <typename Pred>
bool spin_until(Pred pred) {
  double budget = spin_budget_ms();
  if (budget <= 0) return pred();
  double end = monotonic_ms() + budget;
  for (uint32_t i = 1;; i++) {
    if (pred()) return true;
    if ((i & 63) == 0) {
      // Let a process that shares our CPU (the one that will change the word)
      // run: pause alone would burn the whole budget in front of it.
      cpu_yield();
      if (monotonic_ms() >= end) return pred();
    } else {
      cpu_relax();
    }
  }
}

}  // namespace

// One non-blocking attempt on a robust lock word. See sync.h.
int word_try(const uint8_t* base, uint32_t* word, uint32_t token, bool check_holder,
             uint32_t* dead, uint32_t* wait_val, bool self_waits) {
  *dead = 0;
  for (;;) {
    uint32_t c = aload(word);
    if (c == 0) {
      // We have been contending: set the waiters bit conservatively so that
      // our release wakes anyone who queued meanwhile.
      if (acas(word, &c, token | kWaitersBit)) return kOk;
      continue;
    }
    uint32_t holder = c & kTokenMask;
    if (holder == token && !self_waits) return kDeadlock;
    if (holder == kWordNotRecoverable) return kNotRecoverable;
    // Thread index 0 is no JS thread's (only the markers have it): a value no
    // holder writes, taken over like a dead holder's.
    if (holder == kWordAbandoned || token_thread(holder) == 0 ||
        (check_holder && holder != token && !token_alive(base, holder))) {
      if (acas(word, &c, token | (c & kWaitersBit))) {
        *dead = holder;
        return kOk;
      }
      continue;
    }
    if (!(c & kWaitersBit)) {
      if (!acas(word, &c, c | kWaitersBit)) continue;
      c |= kWaitersBit;
    }
    *wait_val = c;
    return kTimedOut;
  }
}

namespace {

// A robust lock on a bare word (token | kWaitersBit). Used by Lock/RLock and
// by the Barrier's internal lock. *dead receives the token of a dead holder
// the word was taken from (kWordAbandoned if it was abandoned, 0 if none).
// kNotRecoverable if the word is the not-recoverable marker (not acquired).
int word_lock(const uint8_t* base, uint32_t* word, uint32_t token, double timeout_ms,
              uint32_t* dead) {
  *dead = 0;
  uint32_t c = 0;
  if (acas(word, &c, token)) return kOk;
  if ((c & kTokenMask) == token) return kDeadlock;
  // Spin first, without the waiters bit, while the holder is likely running.
  if (timeout_ms != 0 && c != kWordAbandoned && (c & kTokenMask) != kWordNotRecoverable) {
    uint32_t zero = 0;
    if (spin_until([&] {
          zero = 0;
          return aload(word) == 0 && acas(word, &zero, token);
        })) {
      return kOk;
    }
  }
  Deadline dl(timeout_ms);
  double next_check = monotonic_ms() + liveness_slice_ms();
  DeathWatch dw;  // the holder's process, while we sleep (unregistered on return)
  for (;;) {
    double now = monotonic_ms();
    // A try-acquire checks the holder at once: a dead holder must not make
    // try-acquire fail forever. Blocking waiters check every slice, and at
    // once when the death watcher says a watched holder died.
    bool fired = deathwatch_take(&dw);
    bool check = timeout_ms == 0 || now >= next_check || fired;
    if (check) next_check = now + liveness_slice_ms();
    uint32_t wv = 0;
    int r = word_try(base, word, token, check, dead, &wv, false);
    if (r != kTimedOut) return r;
    if (timeout_ms == 0 || dl.passed(now)) return kTimedOut;
    deathwatch_token(&dw, base, wv);
    r = deathwatch_sleep(&dw, word, wv, min_wait(dl.left(now), next_check - now));
    if (r < 0 && r != -ETIMEDOUT && r != -EAGAIN && r != -EINTR) return r;
  }
}

void word_unlock(uint32_t* word, int wake) {
  uint32_t prev = __atomic_exchange_n(word, 0u, __ATOMIC_SEQ_CST);
  if (prev & kWaitersBit) futex_wake(word, wake);
}

// Sets a lock's word to a marker (abandoned / not recoverable) and wakes.
void word_mark(uint32_t* word, uint32_t marker, int wake) {
  uint32_t prev = __atomic_exchange_n(word, marker, __ATOMIC_SEQ_CST);
  if (prev & kWaitersBit) futex_wake(word, wake);
}

// The lock was just acquired by `token` (dead: see word_lock). Applies the
// recovery state: kOk, kOwnerDied (held, inconsistent), kNotRecoverable.
int settle(LockSlot* s, uint32_t token, uint32_t dead) {
  if (dead) {
    if (dead != kWordAbandoned) {  // abandon() already recorded who
      astore(&s->died_pid, token_pid(dead));
      astore(&s->died_tid, token_thread(dead));
    }
    if (aload(&s->state) != kStateNotRecoverable) astore(&s->state, static_cast<uint32_t>(kStateInconsistent));
  }
  uint32_t st = aload(&s->state);
  if (st == kStateNotRecoverable) {
    astore(&s->count, 0u);
    word_mark(&s->word, kWordNotRecoverable, INT_MAX);
    return kNotRecoverable;
  }
  astore(&s->count, 1u);
  if (st == kStateInconsistent) {
    // Keep the release of an inconsistent lock off the JS fast path.
    __atomic_fetch_or(&s->word, kWaitersBit, __ATOMIC_SEQ_CST);
    (void)token;
    return kOwnerDied;
  }
  return kOk;
}

}  // namespace

int lock_took(LockSlot* s, uint32_t token, uint32_t dead) { return settle(s, token, dead); }

double spin_budget_ms() {
  static const double budget = online_cpus() > 1 ? 0.02 : 0.0;  // 20 µs
  return budget;
}

int lock_acquire(const uint8_t* base, LockSlot* s, uint32_t token, double timeout_ms,
                 bool recursive) {
  timeout_ms = normalize_timeout_ms(timeout_ms);
  uint32_t dead = 0;
  int r = word_lock(base, &s->word, token, timeout_ms, &dead);
  if (r == kDeadlock) {
    if (!recursive) return kDeadlock;
    uint32_t n = aload(&s->count);
    if (n == UINT32_MAX) return kRange;
    astore(&s->count, n + 1);
    return kOk;
  }
  if (r != kOk) return r;
  return settle(s, token, dead);
}

int lock_settle(LockSlot* s, uint32_t token) {
  if ((aload(&s->word) & kTokenMask) != token) return kNotOwner;
  return settle(s, token, 0);
}

int lock_release(LockSlot* s, uint32_t token, bool recursive) {
  if ((aload(&s->word) & kTokenMask) != token) return kNotOwner;
  uint32_t n = aload(&s->count);
  if (recursive && n > 1) {
    astore(&s->count, n - 1);
    return kOk;
  }
  astore(&s->count, 0u);
  uint32_t st = aload(&s->state);
  if (st == kStateInconsistent || st == kStateNotRecoverable) {
    // Released without markConsistent(): the protected state is unknown.
    astore(&s->state, static_cast<uint32_t>(kStateNotRecoverable));
    word_mark(&s->word, kWordNotRecoverable, INT_MAX);
    return kOk;
  }
  word_unlock(&s->word, 1);
  return kOk;
}

int lock_abandon(LockSlot* s, uint32_t token) {
  if ((aload(&s->word) & kTokenMask) != token) return kNotOwner;
  astore(&s->died_pid, token_pid(token));
  astore(&s->died_tid, token_thread(token));
  if (aload(&s->state) != kStateNotRecoverable) astore(&s->state, static_cast<uint32_t>(kStateInconsistent));
  astore(&s->count, 0u);
  word_mark(&s->word, kWordAbandoned, 1);
  return kOk;
}

int lock_mark_consistent(LockSlot* s, uint32_t token) {
  if ((aload(&s->word) & kTokenMask) != token) return kNotOwner;
  uint32_t st = aload(&s->state);
  if (st == kStateNotRecoverable) return kNotRecoverable;
  astore(&s->state, static_cast<uint32_t>(kStateConsistent));
  return kOk;
}

// ---- Semaphore ----------------------------------------------------------------

uint32_t sem_slot_units(bool undo) {
  return units_for(sizeof(SemSlot) + (undo ? kUndoEntries * sizeof(UndoEntry) : 0));
}

namespace {

// Whether a semaphore keeps an undo table, read once per call. Its flags and
// units live in shared memory, which any process mapping the arena can
// rewrite: the table (kUndoEntries entries after the slot's first 64 bytes) is
// used only when the slot says it is big enough for it and that size lies
// inside the arena. Otherwise the slot is corrupt (kBadHandle): an undo table
// read past a 64-byte semaphore would be the next slot, another primitive.
enum class Undo { kNone, kTable, kCorrupt };
Undo undo_of(const uint8_t* base, const SemSlot* s) {
  if (!(aload(&s->flags) & kSemUndo)) return Undo::kNone;
  uint64_t units = aload(&s->h.units);
  const uint8_t* p = reinterpret_cast<const uint8_t*>(s);
  if (units < sem_slot_units(true) || p < base + kArenaDataOffset ||
      static_cast<uint64_t>(base + kArenaSize - p) < units * kUnit) {
    return Undo::kCorrupt;
  }
  return Undo::kTable;
}

// Only after undo_of() said kTable.
UndoEntry* undo_entry(SemSlot* s, bool claim) {
  uint32_t me = self_pid();
  uint64_t start = self_start_time();
  for (uint32_t i = 0; i < kUndoEntries; i++) {
    UndoEntry* e = &s->undo[i];
    if (aload(&e->pid) == me && aload(&e->start) == start) return e;
  }
  if (!claim) return nullptr;
  for (uint32_t i = 0; i < kUndoEntries; i++) {
    UndoEntry* e = &s->undo[i];
    uint32_t expected = 0;
    if (aload(&e->pid) == 0 && acas(&e->pid, &expected, me)) {
      astore(&e->count, 0u);
      astore(&e->start, start);
      return e;
    }
  }
  return nullptr;
}

bool sem_try(SemSlot* s) {
  uint32_t v = aload(&s->value);
  while (v > 0) {
    if (acas(&s->value, &v, v - 1)) return true;
  }
  return false;
}

}  // namespace

uint32_t sem_recover(const uint8_t* base, SemSlot* s) {
  if (undo_of(base, s) != Undo::kTable) return 0;
  uint32_t me = self_pid();
  uint32_t total = 0;
  for (uint32_t i = 0; i < kUndoEntries; i++) {
    UndoEntry* e = &s->undo[i];
    uint32_t pid = aload(&e->pid);
    if (pid == 0 || pid == kUndoReclaiming) continue;
    uint64_t start = aload(&e->start);
    if (pid == me && start == self_start_time()) continue;
    if (start == 0) continue;  // being claimed right now
    if (process_alive(pid, start)) continue;
    if (!acas(&e->pid, &pid, kUndoReclaiming)) continue;
    uint32_t n = __atomic_exchange_n(&e->count, 0u, __ATOMIC_SEQ_CST);
    astore(&e->start, static_cast<uint64_t>(0));
    astore(&e->pid, 0u);
    if (n) {
      __atomic_fetch_add(&s->value, n, __ATOMIC_SEQ_CST);
      futex_wake(&s->value, static_cast<int>(n > INT_MAX ? INT_MAX : n));
      total += n;
    }
  }
  return total;
}

int sem_take(const uint8_t* base, SemSlot* s, bool recover) {
  UndoEntry* e = nullptr;
  Undo u = undo_of(base, s);
  if (u == Undo::kCorrupt) return kBadHandle;
  if (u == Undo::kTable) {
    e = undo_entry(s, true);
    if (!e) {
      sem_recover(base, s);
      e = undo_entry(s, true);
      if (!e) return kTooMany;
    }
    if (recover) sem_recover(base, s);
  }
  if (!sem_try(s)) return kTimedOut;
  if (e) __atomic_fetch_add(&e->count, 1u, __ATOMIC_SEQ_CST);
  return kOk;
}

int sem_acquire(const uint8_t* base, SemSlot* s, double timeout_ms) {
  timeout_ms = normalize_timeout_ms(timeout_ms);
  Undo u = undo_of(base, s);
  if (u == Undo::kCorrupt) return kBadHandle;
  bool undo = u == Undo::kTable;
  UndoEntry* e = nullptr;
  if (undo) {
    e = undo_entry(s, true);
    if (!e) {
      sem_recover(base, s);  // frees entries of dead processes
      e = undo_entry(s, true);
      if (!e) return kTooMany;
    }
  }
  // Order: take the unit, then record it. Dying in between loses one unit
  // (never lets one process too many in).
  auto took = [&] {
    if (!sem_try(s)) return false;
    if (e) __atomic_fetch_add(&e->count, 1u, __ATOMIC_SEQ_CST);
    return true;
  };
  if (took()) return kOk;
  if (timeout_ms == 0) {
    if (undo && sem_recover(base, s) && took()) return kOk;
    return kTimedOut;
  }
  if (spin_until([&] { return aload(&s->value) > 0 && took(); })) return kOk;
  Deadline dl(timeout_ms);
  double next_check = undo ? monotonic_ms() : -1.0;
  DeathWatch dw;  // undoOnExit: the processes with undo entries
  for (;;) {
    if (took()) return kOk;
    double now = monotonic_ms();
    bool fired = deathwatch_take(&dw);
    if (undo && (now >= next_check || fired)) {
      next_check = now + liveness_slice_ms();
      if (sem_recover(base, s)) continue;
    }
    if (dl.passed(now)) return kTimedOut;
    if (undo) sem_watch_holders(&dw, s);
    __atomic_fetch_add(&s->waiters, 1u, __ATOMIC_SEQ_CST);
    int r = deathwatch_sleep(&dw, &s->value, 0, min_wait(dl.left(now), undo ? next_check - now : -1.0));
    __atomic_fetch_sub(&s->waiters, 1u, __ATOMIC_SEQ_CST);
    if (r < 0 && r != -ETIMEDOUT && r != -EAGAIN && r != -EINTR) return r;
  }
}

int sem_release(const uint8_t* base, SemSlot* s, uint32_t n) {
  if (n == 0) return kOk;
  Undo u = undo_of(base, s);
  if (u == Undo::kCorrupt) return kBadHandle;
  UndoEntry* e = u == Undo::kTable ? undo_entry(s, false) : nullptr;
  uint32_t undone = 0;
  if (e) {
    uint32_t c = aload(&e->count);
    while (c > 0) {
      uint32_t d = c < n ? c : n;
      if (acas(&e->count, &c, c - d)) {
        undone = d;
        break;
      }
    }
  }
  bool bounded = aload(&s->flags) & kSemBounded;
  uint32_t max = aload(&s->max);
  uint32_t v = aload(&s->value);
  for (;;) {
    uint64_t nv = static_cast<uint64_t>(v) + n;
    if ((bounded && nv > max) || nv > INT32_MAX) {
      if (undone) __atomic_fetch_add(&e->count, undone, __ATOMIC_SEQ_CST);
      return kRange;
    }
    if (acas(&s->value, &v, static_cast<uint32_t>(nv))) break;
  }
  if (aload(&s->waiters) > 0) futex_wake(&s->value, n > INT_MAX ? INT_MAX : static_cast<int>(n));
  return kOk;
}

// ---- Event ------------------------------------------------------------------

int event_wait(EventSlot* s, double timeout_ms) {
  timeout_ms = normalize_timeout_ms(timeout_ms);
  if (aload(&s->flag)) return kOk;
  if (timeout_ms == 0) return kTimedOut;
  if (spin_until([&] { return aload(&s->flag) != 0; })) return kOk;
  Deadline dl(timeout_ms);
  // Register before the final check: a setter stores the flag then reads
  // waiters, we bump waiters then read the flag; one of us sees the other.
  __atomic_fetch_add(&s->waiters, 1u, __ATOMIC_SEQ_CST);
  int result = kTimedOut;
  for (;;) {
    if (aload(&s->flag)) {
      result = kOk;
      break;
    }
    double now = monotonic_ms();
    if (dl.passed(now)) break;
    int r = futex_wait(&s->flag, 0, dl.left(now));
    if (r < 0 && r != -ETIMEDOUT && r != -EAGAIN && r != -EINTR) {
      result = r;
      break;
    }
  }
  __atomic_fetch_sub(&s->waiters, 1u, __ATOMIC_SEQ_CST);
  return result;
}

int event_wake_all(EventSlot* s) { return futex_wake(&s->flag, INT_MAX); }

// ---- Condition --------------------------------------------------------------
// wt packs (waiters << 32 | tickets) so that "how many are waiting and not yet
// granted" is read and changed in one atomic step.

int cond_wait(const uint8_t* lock_base, LockSlot* lock, bool recursive, CondSlot* c,
              uint32_t token, double timeout_ms) {
  timeout_ms = normalize_timeout_ms(timeout_ms);
  if ((aload(&lock->word) & kTokenMask) != token) return kNotOwner;
  uint64_t* wt = &c->wt;
  uint32_t saved = aload(&lock->count);
  __atomic_fetch_add(wt, static_cast<uint64_t>(1) << 32, __ATOMIC_SEQ_CST);
  uint32_t seq = aload(&c->seq);  // read with the lock held: notify needs it too
  astore(&lock->count, 1u);
  lock_release(lock, token, false);
  Deadline dl(timeout_ms);
  bool notified = false;
  for (;;) {
    uint64_t cur = aload(wt);
    if (static_cast<uint32_t>(cur) > 0 && acas(wt, &cur, cur - (static_cast<uint64_t>(1) << 32) - 1)) {
      notified = true;
      break;
    }
    double now = monotonic_ms();
    if (dl.passed(now)) {
      // Leave: drop our waiter count, and any ticket that now has nobody to take it.
      cur = aload(wt);
      for (;;) {
        uint32_t w = static_cast<uint32_t>(cur >> 32), t = static_cast<uint32_t>(cur);
        if (t > 0) {  // a notification arrived before we could leave: take it
          if (acas(wt, &cur, cur - (static_cast<uint64_t>(1) << 32) - 1)) {
            notified = true;
            break;
          }
          continue;
        }
        if (acas(wt, &cur, (static_cast<uint64_t>(w - 1) << 32) | t)) break;
      }
      break;
    }
    int r = futex_wait(&c->seq, seq, dl.left(now));
    if (r < 0 && r != -ETIMEDOUT && r != -EAGAIN && r != -EINTR) return r;
    seq = aload(&c->seq);
  }
  uint32_t dead = 0;
  int r;
  for (;;) {
    r = word_lock(lock_base, &lock->word, token, -1, &dead);
    if (r == kOk) break;
    if (r == kNotRecoverable) return r;
    if (r < 0 && r != -EINTR) return r;
  }
  r = settle(lock, token, dead);
  if (r == kNotRecoverable) return r;
  astore(&lock->count, recursive ? saved : 1u);
  if (r == kOwnerDied) return kOwnerDied;
  return notified ? kOk : kTimedOut;
}

int cond_notify(CondSlot* c, uint32_t n) {
  uint64_t* wt = &c->wt;
  uint64_t cur = aload(wt);
  uint32_t k;
  for (;;) {
    uint32_t w = static_cast<uint32_t>(cur >> 32), t = static_cast<uint32_t>(cur);
    uint32_t free = w > t ? w - t : 0;
    k = n < free ? n : free;
    if (k == 0) return 0;
    if (acas(wt, &cur, cur + k)) break;
  }
  __atomic_fetch_add(&c->seq, 1u, __ATOMIC_SEQ_CST);
  futex_wake(&c->seq, static_cast<int>(k > INT_MAX ? INT_MAX : k));
  return static_cast<int>(k);
}

// ---- Barrier ----------------------------------------------------------------

uint32_t barrier_slot_units(uint32_t parties) {
  return units_for(sizeof(BarrierSlot) + static_cast<uint64_t>(parties) * sizeof(uint32_t));
}

namespace {

// The internal lock guards a few stores: a holder that keeps it this long is
// stopped, or the word was overwritten with a live process's token. Barrier
// operations wait at most this long for it (whatever their own timeout,
// which is about the other parties), so none of them can hang on it.
constexpr double kBarrierLockMaxMs = 1000.0;

// Takes the barrier's internal lock: kOk, or kTimedOut after
// kBarrierLockMaxMs. If its holder died mid-update, or the word held a value
// no holder writes (the not-recoverable marker), the barrier's counters are
// suspect: it is broken. The word holding this thread's own token means
// "wait": an async waiter thread acts with the JS thread's token.
int barrier_lock(const uint8_t* base, BarrierSlot* b, uint32_t token) {
  Deadline dl(kBarrierLockMaxMs);
  double next_check = monotonic_ms();  // a dead holder is taken over at once
  for (;;) {
    double now = monotonic_ms();
    bool check = now >= next_check;
    if (check) next_check = now + kLivenessSliceMs;
    uint32_t dead = 0, wv = 0;
    int r = word_try(base, &b->ilock, token, check, &dead, &wv, true);
    if (r == kNotRecoverable) {
      uint32_t c = aload(&b->ilock);
      if ((c & kTokenMask) == kWordNotRecoverable && acas(&b->ilock, &c, token | (c & kWaitersBit))) {
        astore(&b->broken, 1u);
        return kOk;
      }
      continue;
    }
    if (r == kOk) {
      if (dead) astore(&b->broken, 1u);
      return kOk;
    }
    if (r != kTimedOut) return r;
    if (dl.passed(now)) return kTimedOut;
    r = futex_wait(&b->ilock, wv, min_wait(dl.left(now), next_check - now));
    if (r < 0 && r != -ETIMEDOUT && r != -EAGAIN && r != -EINTR) return r;
  }
}

void barrier_unlock(BarrierSlot* b) { word_unlock(&b->ilock, 1); }

// Without the internal lock (its holder is stuck): a flag store others poll.
void barrier_break_unlocked(BarrierSlot* b) {
  astore(&b->broken, 1u);
  futex_wake(&b->gen, INT_MAX);
}

// How many arrival records the slot has room for: its declared size (units,
// in shared memory, so re-read and bounded by the arena's end) after the
// 64-byte head. `parties` (shared too) is never trusted beyond this.
uint32_t barrier_capacity(const uint8_t* base, const BarrierSlot* b) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(b);
  if (p < base + kArenaDataOffset || p >= base + kArenaSize) return 0;
  uint64_t room = static_cast<uint64_t>(base + kArenaSize - p);
  uint64_t bytes = static_cast<uint64_t>(aload(&b->h.units)) * kUnit;
  if (bytes > room) bytes = room;
  if (bytes <= sizeof(BarrierSlot)) return 0;
  uint64_t n = (bytes - sizeof(BarrierSlot)) / sizeof(uint32_t);
  return static_cast<uint32_t>(n < kMaxParties ? n : kMaxParties);
}

void barrier_break(const uint8_t* base, BarrierSlot* b, uint32_t token, uint32_t gen) {
  int r = barrier_lock(base, b, token);
  if (r != kOk) {
    if (r == kTimedOut && aload(&b->gen) == gen) barrier_break_unlocked(b);
    return;
  }
  if (aload(&b->gen) == gen) astore(&b->broken, 1u);
  barrier_unlock(b);
  futex_wake(&b->gen, INT_MAX);
}

}  // namespace

int barrier_arrive(const uint8_t* base, BarrierSlot* b, uint32_t token, uint32_t* index,
                   uint32_t* gen) {
  int r = barrier_lock(base, b, token);
  if (r == kTimedOut) {
    barrier_break_unlocked(b);
    return kBroken;
  }
  if (r != kOk) return r;
  uint32_t parties = aload(&b->parties);
  if (aload(&b->broken) || parties == 0 || parties > barrier_capacity(base, b)) {
    barrier_unlock(b);
    return kBroken;
  }
  uint32_t i = aload(&b->count);
  if (i >= parties) {  // corrupt
    astore(&b->broken, 1u);
    barrier_unlock(b);
    futex_wake(&b->gen, INT_MAX);
    return kBroken;
  }
  astore(&b->records[i], token);
  *index = i;
  if (i + 1 == parties) {
    for (uint32_t k = 0; k < parties; k++) astore(&b->records[k], 0u);
    astore(&b->count, 0u);
    __atomic_fetch_add(&b->gen, 1u, __ATOMIC_SEQ_CST);
    barrier_unlock(b);
    futex_wake(&b->gen, INT_MAX);
    return kOk;
  }
  astore(&b->count, i + 1);
  *gen = aload(&b->gen);
  barrier_unlock(b);
  return kTimedOut;  // arrived; wait for generation *gen to end
}

int barrier_poll(const uint8_t* base, BarrierSlot* b, uint32_t token, uint32_t g,
                 bool check_liveness, bool expired) {
  for (;;) {
    if (aload(&b->gen) != g) {
      return (aload(&b->bgen_valid) && aload(&b->bgen) == g) ? kBroken : kOk;
    }
    if (aload(&b->broken)) return kBroken;
    if (expired) {
      barrier_break(base, b, token, g);
      expired = false;
      continue;  // re-read: the last party may have arrived first
    }
    if (check_liveness) {
      check_liveness = false;
      uint32_t parties = aload(&b->parties);
      uint32_t cap = barrier_capacity(base, b);
      uint32_t n = aload(&b->count);
      for (uint32_t k = 0; k < n && k < parties && k < cap; k++) {
        uint32_t t = aload(&b->records[k]);
        if (t != 0 && !token_alive(base, t)) {
          barrier_break(base, b, token, g);
          break;
        }
      }
      continue;
    }
    return kTimedOut;  // still waiting
  }
}

int barrier_wait(const uint8_t* base, BarrierSlot* b, uint32_t token, double timeout_ms,
                 uint32_t* index) {
  timeout_ms = normalize_timeout_ms(timeout_ms);
  uint32_t g = 0;
  int r = barrier_arrive(base, b, token, index, &g);
  if (r != kTimedOut) return r;
  Deadline dl(timeout_ms);
  double next_check = monotonic_ms() + liveness_slice_ms();
  DeathWatch dw;  // the parties that have arrived (re-read after every wake-up)
  for (;;) {
    double now = monotonic_ms();
    bool fired = deathwatch_take(&dw);
    bool check = now >= next_check || fired;
    if (check) next_check = now + liveness_slice_ms();
    r = barrier_poll(base, b, token, g, check, dl.passed(now));
    if (r != kTimedOut) return r;
    barrier_watch_parties(&dw, base, b);
    int w = deathwatch_sleep(&dw, &b->gen, g, min_wait(dl.left(now), next_check - now));
    if (w < 0 && w != -ETIMEDOUT && w != -EAGAIN && w != -EINTR) return w;
  }
}

int barrier_reset(const uint8_t* base, BarrierSlot* b, uint32_t token) {
  int r = barrier_lock(base, b, token);
  if (r != kOk) return r;  // kTimedOut: its internal lock stayed held (see kBarrierLockMaxMs)
  uint32_t parties = aload(&b->parties);
  uint32_t cap = barrier_capacity(base, b);
  if (aload(&b->count) > 0) {
    astore(&b->bgen, aload(&b->gen));
    astore(&b->bgen_valid, 1u);
  }
  for (uint32_t k = 0; k < parties && k < cap; k++) astore(&b->records[k], 0u);
  astore(&b->count, 0u);
  astore(&b->broken, 0u);
  __atomic_fetch_add(&b->gen, 1u, __ATOMIC_SEQ_CST);
  barrier_unlock(b);
  futex_wake(&b->gen, INT_MAX);
  return kOk;
}

int barrier_abort(const uint8_t* base, BarrierSlot* b, uint32_t token) {
  // One flag store that waiters poll and arrivals read under the internal
  // lock: it needs no lock, so a stuck holder cannot stop an abort.
  (void)base;
  (void)token;
  barrier_break_unlocked(b);
  return kOk;
}

// ---- Death watch registrations ------------------------------------------------

void sem_watch_holders(DeathWatch* w, SemSlot* s) {
  if (!deathwatch_enabled()) return;
  // Every process with an undo entry, not only those with count > 0: a unit
  // is taken before it is recorded, and a process that has an entry may take
  // another unit while we sleep.
  DeathKey keys[kUndoEntries];
  size_t n = 0;
  uint32_t me = self_pid();
  for (uint32_t i = 0; i < kUndoEntries; i++) {
    UndoEntry* e = &s->undo[i];
    uint32_t pid = aload(&e->pid);
    if (pid == 0 || pid == kUndoReclaiming || pid == me) continue;
    uint64_t start = aload(&e->start);
    if (start == 0) continue;  // being claimed or reclaimed right now
    keys[n++] = DeathKey{pid, start};
  }
  deathwatch_set(w, keys, n);
}

void barrier_watch_parties(DeathWatch* w, const uint8_t* base, BarrierSlot* b) {
  if (!deathwatch_enabled()) return;
  // The parties recorded so far. One that arrives after this read is watched
  // from our next wake-up on (a death of theirs before that: the slice).
  DeathKey keys[kDeathWatchMax];
  size_t n = 0;
  uint32_t me = self_pid();
  uint32_t parties = aload(&b->parties);
  uint32_t count = aload(&b->count);
  for (uint32_t k = 0; k < count && k < parties && k < kMaxParties && n < kDeathWatchMax; k++) {
    uint32_t t = aload(&b->records[k]);
    uint32_t pid = token_pid(t);
    if (t == 0 || word_is_marker(t) || pid == me) continue;
    bool dup = false;
    for (size_t i = 0; i < n && !dup; i++) dup = keys[i].pid == pid;
    if (!dup) keys[n++] = DeathKey{pid, participant_start(base, pid)};
  }
  deathwatch_set(w, keys, n);
}

// ---- SharedMemory wait --------------------------------------------------------

int word_wait(uint32_t* addr, uint32_t expected, double timeout_ms) {
  timeout_ms = normalize_timeout_ms(timeout_ms);
  Deadline dl(timeout_ms);
  bool retried = false;
  for (;;) {
    double now = monotonic_ms();
    if (timeout_ms == 0) return aload(addr) == expected ? kTimedOut : kNotEqual;
    int r = futex_wait(addr, expected, dl.left(now));
    if (r == 0) return kOk;
    if (r == -ETIMEDOUT) return kTimedOut;
    if (r == -EAGAIN) return retried ? kOk : kNotEqual;
    if (r == -EINTR) {
      retried = true;
      if (dl.passed(monotonic_ms())) return kTimedOut;
      continue;
    }
    return r;
  }
}

}  // namespace forksafe
