// Async waiter threads (Linux: futex_waitv). Each thread keeps a list of ops
// and sleeps on all their words at once plus its own control word (which
// submitters bump to hand it new ops or cancellations). Ops on the same
// (word, value) share one futex entry; a thread takes ops while it has fewer
// than kMaxEntries distinct entries, else a new thread starts.
//
// Wake-ups: whoever changes a word wakes its futex (release, set, notify...),
// which wakes this thread; the thread then re-tries every op (cheap atomics)
// and completes the ones that can. Owner liveness is checked every
// kLivenessSliceMs for lock, undo-semaphore and barrier ops, as sync waits do,
// and at once when the death watcher (core/deathwatch.h) reports that a
// process such an op waits on died: the op's DeathWatch bumps this thread's
// control word, which is in every futex_waitv already.
#include "core/waiter.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <map>
#include <mutex>
#include <pthread.h>
#include <signal.h>
#include <vector>

#include "core/atomics.h"
#include "core/deathwatch.h"
#include "core/platform.h"
#include "core/segment.h"
#include "core/sync.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

namespace forksafe {

namespace {

constexpr size_t kMaxEntries = 120;  // < FUTEX_WAITV_MAX (128), one for control

struct Entry {
  uint32_t* word;
  uint32_t val;
};

struct WaiterThread {
  std::mutex mu;
  std::vector<AsyncOp*> incoming;  // guarded by mu
  std::vector<uint32_t*> incoming_words;  // distinct primary words of incoming (mu)
  uint32_t control = 0;            // futex word: bumped on new work
  std::atomic<uint32_t> entries{0};
  std::atomic<uint32_t> pending{0};
  std::vector<AsyncOp*> ops;       // waiter thread only
};

std::mutex g_mu;  // guards g_threads
std::vector<WaiterThread*>* g_threads = nullptr;

// Pending kAsyncWord ops by word, oldest first (for async_notify_local).
std::mutex g_words_mu;
std::multimap<uint32_t*, AsyncOp*>* g_word_ops = nullptr;

void word_ops_add(AsyncOp* op) {
  std::lock_guard<std::mutex> g(g_words_mu);
  if (!g_word_ops) g_word_ops = new std::multimap<uint32_t*, AsyncOp*>();
  g_word_ops->emplace(op->word, op);
}

void word_ops_remove(AsyncOp* op) {
  std::lock_guard<std::mutex> g(g_words_mu);
  if (!g_word_ops) return;
  auto range = g_word_ops->equal_range(op->word);
  for (auto it = range.first; it != range.second; ++it) {
    if (it->second == op) {
      g_word_ops->erase(it);
      return;
    }
  }
}


void kick(WaiterThread* w) {
  __atomic_fetch_add(&w->control, 1u, __ATOMIC_SEQ_CST);
  futex_wake(&w->control, 1);
}

// fork() support: a pthread_atfork prepare handler parks every waiter thread
// (so none holds a lock or is half-way through an op while the process is
// copied), the parent handler resumes them, and the child handler forgets
// them (they do not exist in the child).
uint32_t g_park = 0;    // futex word: 1 while parked
uint32_t g_parked = 0;  // futex word: threads parked now

void park_point() {
  if (!aload(&g_park)) return;
  __atomic_fetch_add(&g_parked, 1u, __ATOMIC_SEQ_CST);
  futex_wake(&g_parked, INT_MAX);
  while (aload(&g_park)) futex_wait(&g_park, 1, -1);
  __atomic_fetch_sub(&g_parked, 1u, __ATOMIC_SEQ_CST);
}

void atfork_prepare() {
  g_mu.lock();
  if (!g_threads) return;
  astore(&g_park, 1u);
  uint32_t n = static_cast<uint32_t>(g_threads->size());
  for (WaiterThread* w : *g_threads) kick(w);
  for (;;) {
    uint32_t p = aload(&g_parked);
    if (p >= n) break;
    futex_wait(&g_parked, p, 100);
  }
  for (WaiterThread* w : *g_threads) w->mu.lock();
}

void atfork_parent() {
  if (g_threads) {
    for (WaiterThread* w : *g_threads) w->mu.unlock();
    astore(&g_park, 0u);
    futex_wake(&g_park, INT_MAX);
  }
  g_mu.unlock();
}

void atfork_child() {
  // The threads are gone here; their ops belong to the parent. Forget them
  // (leaking their bookkeeping on purpose: it is shared with nothing).
  g_threads = nullptr;
  astore(&g_park, 0u);
  astore(&g_parked, 0u);
  g_mu.unlock();
}

pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

void finish(WaiterThread* w, AsyncOp* op, int status) {
  if (op->kind == kAsyncWord) word_ops_remove(op);
  delete op->death;  // unregisters it
  op->death = nullptr;
  op->status = status;
  w->pending.fetch_sub(1);
  op->done(op);  // may free op
}

// Condition: leave the waiter set without a notification (timeout/cancel),
// or take a ticket that arrived meanwhile.
void cond_leave(AsyncOp* op) {
  CondSlot* c = reinterpret_cast<CondSlot*>(op->slot);
  uint64_t cur = aload(&c->wt);
  for (;;) {
    uint32_t wn = static_cast<uint32_t>(cur >> 32), t = static_cast<uint32_t>(cur);
    if (t > 0) {
      if (acas(&c->wt, &cur, cur - (static_cast<uint64_t>(1) << 32) - 1)) {
        op->notified = true;
        return;
      }
      continue;
    }
    if (acas(&c->wt, &cur, (static_cast<uint64_t>(wn - 1) << 32) | t)) return;
  }
}

// The op's DeathWatch, made on first need; a death wakes this thread through
// its control word. Null when the watcher is off (slices only).
DeathWatch* watch_of(WaiterThread* w, AsyncOp* op) {
  if (!op->death) {
    if (!deathwatch_enabled()) return nullptr;
    op->death = new DeathWatch();
    op->death->wake = &w->control;
  }
  return op->death;
}

// Before sleeping on a lock word held by `wv`: watch the holder's process
// (not our own: a JS thread of ours that ends abandons its locks and wakes).
void watch_holder(WaiterThread* w, AsyncOp* op, const uint8_t* base, uint32_t wv) {
  uint32_t pid = token_pid(wv & kTokenMask);
  if (pid == self_pid() || word_is_marker(wv)) {
    if (op->death) deathwatch_clear(op->death);
    return;
  }
  if (DeathWatch* dw = watch_of(w, op)) deathwatch_token(dw, base, wv);
}

// One attempt for an op. Returns true when the op is finished (status set
// through finish by the caller), else fills the entry to sleep on.
bool step(WaiterThread* w, AsyncOp* op, double now, Entry* e, int* status) {
  bool cancel = op->cancel.load() != 0;
  bool expired = op->deadline >= 0 && now >= op->deadline;
  bool fired = op->death && deathwatch_take(op->death);
  bool check = now >= op->next_check || fired;
  if (check) op->next_check = now + liveness_slice_ms();
  switch (op->kind) {
    case kAsyncEvent: {
      EventSlot* s = reinterpret_cast<EventSlot*>(op->slot);
      if (aload(&s->flag)) *status = kOk;
      else if (cancel) *status = kCancelled;
      else if (expired) *status = kTimedOut;
      else {
        *e = {&s->flag, 0};
        return false;
      }
      __atomic_fetch_sub(&s->waiters, 1u, __ATOMIC_SEQ_CST);
      return true;
    }
    case kAsyncSem: {
      SemSlot* s = reinterpret_cast<SemSlot*>(op->slot);
      if (cancel) *status = kCancelled;
      else {
        bool undo = aload(&s->flags) & kSemUndo;
        int r = sem_take(op->base, s, undo && check);
        if (r != kTimedOut) *status = r;
        else if (expired) *status = kTimedOut;
        else {
          if (undo)
            if (DeathWatch* dw = watch_of(w, op)) sem_watch_holders(dw, s);
          *e = {&s->value, 0};
          return false;
        }
      }
      __atomic_fetch_sub(&s->waiters, 1u, __ATOMIC_SEQ_CST);
      return true;
    }
    case kAsyncWord: {
      uint32_t v = aload(op->word);
      if (v != op->expected || op->woken || op->local_wake.load()) *status = kOk;
      else if (cancel) *status = kCancelled;
      else if (expired) *status = kTimedOut;
      else {
        *e = {op->word, op->expected};
        return false;
      }
      return true;
    }
    case kAsyncLock: {
      LockSlot* s = reinterpret_cast<LockSlot*>(op->slot);
      if (cancel) {
        *status = kCancelled;
        return true;
      }
      uint32_t dead = 0, wv = 0;
      int r = word_try(op->base, &s->word, op->token, check, &dead, &wv, true);
      if (r == kOk) {
        *status = lock_took(s, op->token, dead);
        return true;
      }
      if (r != kTimedOut) {
        *status = r;
        return true;
      }
      if (expired) {
        *status = kTimedOut;
        return true;
      }
      watch_holder(w, op, op->base, wv);
      *e = {&s->word, wv};
      return false;
    }
    case kAsyncCond: {
      CondSlot* c = reinterpret_cast<CondSlot*>(op->slot);
      if (op->phase == 0) {
        uint32_t seq = aload(&c->seq);  // before the ticket check: see cond_wait
        uint64_t cur = aload(&c->wt);
        if (static_cast<uint32_t>(cur) > 0 &&
            acas(&c->wt, &cur, cur - (static_cast<uint64_t>(1) << 32) - 1)) {
          op->notified = true;
          op->phase = 1;
        } else if (cancel || expired) {
          cond_leave(op);
          op->phase = 1;
        } else {
          *e = {&c->seq, seq};
          return false;
        }
        op->next_check = now;  // check the lock's holder at once
        check = true;
      }
      // phase 1: re-acquire the lock (always, even when cancelled: the
      // caller's lock must be held again when the wait settles).
      LockSlot* l = reinterpret_cast<LockSlot*>(op->lock_slot);
      uint32_t dead = 0, wv = 0;
      int r = word_try(op->lock_base, &l->word, op->token, check, &dead, &wv, true);
      if (r == kTimedOut) {
        watch_holder(w, op, op->lock_base, wv);
        *e = {&l->word, wv};
        return false;
      }
      if (r == kOk) {
        r = lock_took(l, op->token, dead);
        if (r != kNotRecoverable) astore(&l->count, op->recursive ? op->saved : 1u);
      }
      if (r == kOk) r = cancel ? kCancelled : (op->notified ? kOk : kTimedOut);
      *status = r;
      return true;
    }
    case kAsyncBarrier: {
      BarrierSlot* b = reinterpret_cast<BarrierSlot*>(op->slot);
      int r = barrier_poll(op->base, b, op->token, op->expected, check, expired || cancel);
      if (r == kTimedOut) {
        if (DeathWatch* dw = watch_of(w, op)) barrier_watch_parties(dw, op->base, b);
        *e = {&b->gen, op->expected};
        return false;
      }
      *status = (cancel && r == kBroken) ? kCancelled : r;
      return true;
    }
    default:
      *status = -EINVAL;
      return true;
  }
}

void run(WaiterThread* w) {
  std::vector<Entry> entries;
  std::vector<std::vector<AsyncOp*>> groups;  // ops per entry
  struct futex_waitv fw[kMaxEntries + 1];
  for (;;) {
    park_point();
    uint32_t ctl = aload(&w->control);
    {
      std::lock_guard<std::mutex> g(w->mu);
      for (AsyncOp* op : w->incoming) w->ops.push_back(op);
      w->incoming.clear();
      w->incoming_words.clear();
    }
    double now = monotonic_ms();
    double wake_at = -1;
    entries.clear();
    for (auto& gr : groups) gr.clear();
    std::vector<AsyncOp*> keep;
    keep.reserve(w->ops.size());
    for (AsyncOp* op : w->ops) {
      Entry e{nullptr, 0};
      int status = 0;
      if (step(w, op, now, &e, &status)) {
        finish(w, op, status);
        continue;
      }
      op->woken = false;
      keep.push_back(op);
      size_t i = 0;
      while (i < entries.size() && !(entries[i].word == e.word && entries[i].val == e.val)) i++;
      if (i == entries.size()) {
        entries.push_back(e);
        if (groups.size() < entries.size()) groups.emplace_back();
      }
      groups[i].push_back(op);
      if (op->deadline >= 0) wake_at = wake_at < 0 ? op->deadline : std::min(wake_at, op->deadline);
      bool liveness = op->kind == kAsyncLock || op->kind == kAsyncBarrier ||
                      (op->kind == kAsyncCond && op->phase == 1) || op->kind == kAsyncSem;
      if (liveness) wake_at = wake_at < 0 ? op->next_check : std::min(wake_at, op->next_check);
    }
    w->ops.swap(keep);
    w->entries.store(static_cast<uint32_t>(entries.size()));
    size_t n = 0;
    if (entries.size() > kMaxEntries) {
      // More distinct words than one futex_waitv takes (submit() avoids this
      // but cannot see every op's word in advance): poll the rest every ms.
      wake_at = wake_at < 0 ? now + 1 : std::min(wake_at, now + 1);
    }
    for (const Entry& e : entries) {
      if (n == kMaxEntries) break;
      fw[n].val = e.val;
      fw[n].uaddr = reinterpret_cast<uintptr_t>(e.word);
      fw[n].flags = FUTEX_32;
      fw[n].__reserved = 0;
      n++;
    }
    fw[n].val = ctl;
    fw[n].uaddr = reinterpret_cast<uintptr_t>(&w->control);
    fw[n].flags = FUTEX_32;
    fw[n].__reserved = 0;
    struct timespec ts;
    struct timespec* tsp = nullptr;
    if (wake_at >= 0) {
      timespec_from_ms(wake_at < now ? now : wake_at, &ts);  // absolute; saturates
      tsp = &ts;
    }
    // Spin briefly before sleeping (as sync waiters do), while every word still
    // holds its value and nothing new arrived: a peer running on another CPU
    // usually answers within microseconds, and a futex sleep + wake costs tens.
    // The loop yields, so a peer on this CPU is not starved.
    {
      double budget = spin_budget_ms();
      bool changed = false;
      if (budget > 0 && n > 0) {
        double end = monotonic_ms() + budget;
        for (uint32_t i = 1; !changed; i++) {
          if (aload(&w->control) != ctl) changed = true;
          for (size_t k = 0; k < n && !changed; k++) {
            if (aload(reinterpret_cast<uint32_t*>(static_cast<uintptr_t>(fw[k].uaddr))) !=
                static_cast<uint32_t>(fw[k].val)) {
              changed = true;
            }
          }
          if (changed) break;
          if ((i & 63) == 0) {
            cpu_yield();
            if (monotonic_ms() >= end) break;
          } else {
            cpu_relax();
          }
        }
      }
      if (changed) continue;
    }
    long r = syscall(SYS_futex_waitv, fw, n + 1, 0, tsp, CLOCK_MONOTONIC);
    if (r >= 0 && static_cast<size_t>(r) < n) {
      // A FUTEX_WAKE hit entry r. Word waits there were notified (Atomics
      // semantics: the value may be unchanged); give the wake to one of them.
      for (AsyncOp* op : groups[static_cast<size_t>(r)]) {
        if (op->kind == kAsyncWord) {
          op->woken = true;
          break;
        }
      }
    }
  }
}

}  // namespace

int async_submit(AsyncOp* op) {
  pthread_once(&g_atfork_once, [] {
    // The death watcher's handlers first, so that its prepare runs after ours
    // (ours parks the threads that may be inside its registry).
    deathwatch_install_atfork();
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  });
  if (op->kind == kAsyncWord) word_ops_add(op);
  op->next_check = monotonic_ms() + liveness_slice_ms();
  // The word the op mostly sleeps on: every slot kind keeps its futex word at +16.
  uint32_t* primary = op->kind == kAsyncWord ? op->word : reinterpret_cast<uint32_t*>(op->slot + 16);
  WaiterThread* target = nullptr;
  {
    std::lock_guard<std::mutex> g(g_mu);
    if (!g_threads) g_threads = new std::vector<WaiterThread*>();
    for (WaiterThread* w : *g_threads) {
      std::lock_guard<std::mutex> g2(w->mu);
      bool known = std::find(w->incoming_words.begin(), w->incoming_words.end(), primary) !=
                   w->incoming_words.end();
      if (known || w->entries.load() + w->incoming_words.size() + 1 < kMaxEntries - 8) {
        target = w;
        break;
      }
    }
    if (!target) {
      target = new WaiterThread();
      // The thread runs with every signal blocked: signals are for the JS
      // threads (and fork() must be able to park it, see ARCHITECTURE.md).
      sigset_t all, old;
      sigfillset(&all);
      pthread_sigmask(SIG_SETMASK, &all, &old);
      pthread_t th;
      // Named "forksafe-wait", so that forkSafety() knows it for one of
      // forksafe's own (parked around fork()) and top -H shows it. The name
      // is inherited from this thread, set around pthread_create: named from
      // inside, a fork() right after this call could see it unnamed.
      char saved[17] = {0};
      prctl(PR_GET_NAME, saved, 0, 0, 0);
      prctl(PR_SET_NAME, "forksafe-wait", 0, 0, 0);
      int e = pthread_create(&th, nullptr, [](void* p) -> void* {
        run(static_cast<WaiterThread*>(p));
        return nullptr;
      }, target);
      prctl(PR_SET_NAME, saved, 0, 0, 0);
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      if (e != 0) {
        delete target;
        if (op->kind == kAsyncWord) word_ops_remove(op);
        return -e;
      }
      pthread_detach(th);
      g_threads->push_back(target);
    }
    target->pending.fetch_add(1);
    std::lock_guard<std::mutex> g2(target->mu);
    target->incoming.push_back(op);
    if (std::find(target->incoming_words.begin(), target->incoming_words.end(), primary) ==
        target->incoming_words.end())
      target->incoming_words.push_back(primary);
    op->user2 = target;
  }
  kick(target);
  return 0;
}

int async_notify_local(uint32_t* word, int count) {
  std::vector<WaiterThread*> kicks;
  int n = 0;
  {
    std::lock_guard<std::mutex> g(g_words_mu);
    if (!g_word_ops) return 0;
    auto range = g_word_ops->equal_range(word);
    for (auto it = range.first; it != range.second && n < count; ++it) {
      int expected = 0;
      if (it->second->local_wake.compare_exchange_strong(expected, 1)) {
        n++;
        kicks.push_back(static_cast<WaiterThread*>(it->second->user2));
      }
    }
  }
  for (WaiterThread* w : kicks)
    if (w) kick(w);
  return n;
}

void async_cancel(AsyncOp* op) {
  op->cancel.store(1);
  if (op->user2) kick(static_cast<WaiterThread*>(op->user2));
}

int async_test_fork() {
  pid_t pid = fork();
  if (pid < 0) return -errno;
  if (pid == 0) {
    // Child: the waiter bookkeeping must be usable (no mutex left locked by
    // a thread that does not exist here) and empty.
    bool ok = g_mu.try_lock();
    if (ok) {
      ok = g_threads == nullptr && aload(&g_park) == 0;
      g_mu.unlock();
    }
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -errno;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void async_stats(uint32_t* threads, uint32_t* pending) {
  std::lock_guard<std::mutex> g(g_mu);
  *threads = g_threads ? static_cast<uint32_t>(g_threads->size()) : 0;
  uint32_t p = 0;
  if (g_threads)
    for (WaiterThread* w : *g_threads) p += w->pending.load();
  *pending = p;
}

}  // namespace forksafe
