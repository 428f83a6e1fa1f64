// Blocking algorithms of the shared primitives on their slots. No N-API.
// `base` is always the mapping of the arena the slot lives in (for the
// participant table used by owner-death checks). Timeouts are milliseconds,
// < 0 = forever, 0 = try once. Returns a Status (>= 0) or -errno.
#pragma once
#include "core/platform.h"
#include <cstdint>

#include "core/layout.h"
#include "core/segment.h"

namespace forksafe {

// How often a blocked waiter re-checks whether the holder is still alive
// (the fallback: the death watcher, core/deathwatch.h, usually wakes it first).
constexpr double kLivenessSliceMs = 50.0;
// The slice in use: kLivenessSliceMs unless a test or the bench changed it
// (set_liveness_slice_ms, to show that the watcher alone wakes the waiter).
double liveness_slice_ms();
void set_liveness_slice_ms(double ms);

// Timeouts as the core takes them: < 0 forever, 0 try once, else ms. One can
// come from shared memory (a Barrier's default timeout, which any process may
// overwrite), so every entry point maps the rest: NaN -> 0 (try once), beyond
// kForeverMs (core/platform.h: what the kernel can express) -> forever, so
// deadlines and futex timespecs stay finite.
inline double normalize_timeout_ms(double t) {
  if (t != t) return 0;
  if (t < 0 || t > kForeverMs) return -1;
  return t;
}

int lock_acquire(const uint8_t* base, LockSlot* s, uint32_t token, double timeout_ms,
                 bool recursive);
// After a successful fast-path CAS 0 -> token done in JS: reports the lock's
// recovery state (kOk, kOwnerDied with the lock held, kNotRecoverable released).
int lock_settle(LockSlot* s, uint32_t token);
int lock_release(LockSlot* s, uint32_t token, bool recursive);
// Releases a lock held by `token` whose thread is gone (or that its owner
// closed while holding): the next acquirer gets kOwnerDied.
int lock_abandon(LockSlot* s, uint32_t token);
int lock_mark_consistent(LockSlot* s, uint32_t token);

// Semaphores: kBadHandle when the slot claims an undo table it has no room
// for (its flags or size were overwritten).
int sem_acquire(const uint8_t* base, SemSlot* s, double timeout_ms);
int sem_release(const uint8_t* base, SemSlot* s, uint32_t n);
// Gives back units held by dead processes (undoOnExit); returns units recovered.
uint32_t sem_recover(const uint8_t* base, SemSlot* s);
uint32_t sem_slot_units(bool undo);

int event_wait(EventSlot* s, double timeout_ms);
int event_wake_all(EventSlot* s);

// The caller holds `lock` (token). Returns kOk when notified, kTimedOut,
// kNotOwner, kOwnerDied (re-acquired from a dead owner), kNotRecoverable.
int cond_wait(const uint8_t* lock_base, LockSlot* lock, bool recursive, CondSlot* c,
              uint32_t token, double timeout_ms);
int cond_notify(CondSlot* c, uint32_t n);

uint32_t barrier_slot_units(uint32_t parties);
int barrier_wait(const uint8_t* base, BarrierSlot* b, uint32_t token, double timeout_ms,
                 uint32_t* index);
int barrier_reset(const uint8_t* base, BarrierSlot* b, uint32_t token);
int barrier_abort(const uint8_t* base, BarrierSlot* b, uint32_t token);

// ---- Steps for the async waiter (native/core/waiter_linux.cc) ----------------
// One non-blocking attempt on a robust lock word: kOk (acquired; *dead is the
// dead/abandoned holder it was taken from, or 0), kDeadlock, kNotRecoverable,
// or kTimedOut = must sleep on the word while it equals *wait_val (waiters bit
// set). check_holder: test whether the current holder is alive. self_waits:
// the word held by `token` itself means "wait" (an async op waits while its
// own JS thread holds the lock), not kDeadlock.
int word_try(const uint8_t* base, uint32_t* word, uint32_t token, bool check_holder,
             uint32_t* dead, uint32_t* wait_val, bool self_waits);
// After word_try acquired a Lock/RLock: applies recovery state (as lock_acquire).
int lock_took(LockSlot* s, uint32_t token, uint32_t dead);
// Takes one unit if available (kOk) else kTimedOut; kTooMany (undo table full).
// recover: first give back the units of dead processes (undoOnExit).
int sem_take(const uint8_t* base, SemSlot* s, bool recover);
// Arrival: kOk (last party: generation passed), kBroken, or kTimedOut = wait
// for generation *gen to end. *index is the arrival index.
int barrier_arrive(const uint8_t* base, BarrierSlot* b, uint32_t token, uint32_t* index,
                   uint32_t* gen);
// A waiter's check: kOk (passed), kBroken, or kTimedOut (keep waiting on gen
// == g). expired: the wait timed out (breaks the barrier); check_liveness:
// look for dead arrivals (break the barrier if any).
int barrier_poll(const uint8_t* base, BarrierSlot* b, uint32_t token, uint32_t g,
                 bool check_liveness, bool expired);

// Death watch registrations of a blocked wait (core/deathwatch.h): the
// processes holding units of an undo semaphore, and the parties that have
// arrived at a barrier (this process excluded in both).
struct DeathWatch;
void sem_watch_holders(DeathWatch* w, SemSlot* s);
void barrier_watch_parties(DeathWatch* w, const uint8_t* base, BarrierSlot* b);

// Atomics.wait across processes: kOk, kNotEqual or kTimedOut.
int word_wait(uint32_t* addr, uint32_t expected, double timeout_ms);

// Bounded spinning before sleeping pays off only when another CPU can be
// running the thread that will wake us.
double spin_budget_ms();

}  // namespace forksafe
