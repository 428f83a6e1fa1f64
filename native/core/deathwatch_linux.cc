// The death watcher (Linux: pidfd + epoll + futex_waitv). See deathwatch.h.
//
// Registry (guarded by g_mu): one Entry per watched (pid, start time) with its
// pidfd in the epoll set and the DeathWatches registered for it. An Entry
// nobody watches any more keeps its pidfd for g_linger_ms (the next contended
// wait on the same process then costs no syscall), up to kMaxIdle of them;
// the watcher thread closes it after that. A dead Entry has no pidfd and stays
// until its last DeathWatch leaves (a late registration is fired at once).
//
// Who wakes whom: the kernel makes the pidfd readable when the process has
// exited (zombie or reaped); epoll_wait returns in the watcher thread, which
// fires every DeathWatch of that Entry (fired = 1, then ++*wake and
// FUTEX_WAKE(*wake, INT_MAX), one wake per distinct word). Nothing here
// touches the shared primitives: recovery stays with the waiters.
//
// fork(): the prepare handler takes g_mu (so the child's copy of the registry
// is consistent; the watcher thread holds it only briefly and never blocks
// under it), the parent handler releases it. The child has no watcher thread:
// its handler closes the inherited epoll fd, eventfd and pidfds (their epoll
// registrations stay the parent's) and forgets the registry; the next
// registration in the child starts a new thread.
#include "core/deathwatch.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/atomics.h"
#include "core/layout.h"
#include "core/platform.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

namespace forksafe {

namespace {

constexpr uint32_t kMaxIdle = 32;

struct Entry {
  uint64_t id = 0;  // epoll_event.data.u64 (0 is the kick eventfd)
  uint32_t pid = 0;
  uint64_t start = 0;
  int pidfd = -1;
  bool dead = false;
  bool idle = false;
  double idle_since = 0;
  std::unordered_set<DeathWatch*> watchers;
};

using Key = std::pair<uint32_t, uint64_t>;

std::mutex g_mu;
std::map<Key, Entry*>* g_entries = nullptr;          // g_mu
std::unordered_map<uint64_t, Entry*>* g_by_id = nullptr;  // g_mu
int g_ep = -1;      // epoll fd (g_mu)
int g_kick = -1;    // eventfd in g_ep: wakes the watcher to recompute its timeout
bool g_started = false;   // the watcher thread runs (g_mu)
bool g_infinite = false;  // it sleeps without a timeout (g_mu)
uint32_t g_idle = 0;      // idle entries (g_mu)
uint64_t g_next_id = 1;   // g_mu

std::atomic<int> g_support{-1};
std::atomic<bool> g_enabled{true};
std::atomic<bool> g_knob_set{false};  // deathwatch_set_enabled was called
std::atomic<double> g_linger_ms{1000.0};

std::atomic<uint64_t> g_wakes{0}, g_deaths{0}, g_dead_at_add{0}, g_adds{0};
std::atomic<uint32_t> g_pidfds{0};

pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

struct timespec abs_timespec(double at_ms) {
  struct timespec ts;
  if (at_ms < 0) at_ms = 0;
  ts.tv_sec = static_cast<time_t>(at_ms / 1000.0);
  ts.tv_nsec = static_cast<long>((at_ms - static_cast<double>(ts.tv_sec) * 1000.0) * 1e6);
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  if (ts.tv_nsec < 0) ts.tv_nsec = 0;
  return ts;
}

int probe() {
  // pidfd_open (Linux 5.3) and futex_waitv (5.16): without either the
  // watcher stays off and the slices do all the work.
  int s = 1;
  int fd = pidfd_open_pid(static_cast<uint32_t>(getpid()));
  if (fd < 0) s = 0;
  else close(fd);
  if (s) {
    uint32_t x = 0;
    struct futex_waitv fw;
    fw.val = 1;  // != x: returns EAGAIN at once where supported
    fw.uaddr = reinterpret_cast<uintptr_t>(&x);
    fw.flags = FUTEX_32;
    fw.__reserved = 0;
    struct timespec ts = abs_timespec(0);
    long r = syscall(SYS_futex_waitv, &fw, 1, 0, &ts, CLOCK_MONOTONIC);
    if (r < 0 && errno == ENOSYS) s = 0;
  }
  // FORKSAFE_DEATHWATCH=0: off from the start (bench/death.mjs runs the
  // contended workers both ways with it; not an API). The knob wins.
  const char* env = getenv("FORKSAFE_DEATHWATCH");
  if (env && env[0] == '0' && !g_knob_set.load()) g_enabled.store(false);
  int expected = -1;
  g_support.compare_exchange_strong(expected, s);
  return g_support.load();
}

// Caller holds g_mu. Sets fired before bumping the word (see deathwatch.h).
void fire_locked(DeathWatch* w) {
  w->fired.store(1);
  __atomic_fetch_add(w->wake, 1u, __ATOMIC_SEQ_CST);
  futex_wake(w->wake, INT_MAX);
}

void kick_locked() {
  if (g_kick < 0) return;
  uint64_t one = 1;
  ssize_t r = write(g_kick, &one, sizeof(one));
  (void)r;  // EAGAIN: a kick is pending already
}

// Closes an entry's pidfd and forgets it. Caller holds g_mu; nobody watches it.
void drop_entry_locked(Entry* e) {
  if (e->pidfd >= 0) {
    epoll_ctl(g_ep, EPOLL_CTL_DEL, e->pidfd, nullptr);
    close(e->pidfd);
    e->pidfd = -1;
    g_pidfds.fetch_sub(1);
  }
  if (e->idle) g_idle--;
  g_entries->erase(Key(e->pid, e->start));
  g_by_id->erase(e->id);
  delete e;
}

// The process behind e exited: fire everyone watching it.
void died_locked(Entry* e) {
  e->dead = true;
  g_deaths.fetch_add(1);
  if (e->pidfd >= 0) {
    epoll_ctl(g_ep, EPOLL_CTL_DEL, e->pidfd, nullptr);
    close(e->pidfd);
    e->pidfd = -1;
    g_pidfds.fetch_sub(1);
  }
  if (e->watchers.empty()) {
    drop_entry_locked(e);
    return;
  }
  // Many async ops of one waiter thread share its control word: bump and
  // wake each distinct word once.
  std::vector<uint32_t*> words;
  for (DeathWatch* w : e->watchers) {
    w->fired.store(1);
    if (std::find(words.begin(), words.end(), w->wake) == words.end()) words.push_back(w->wake);
    g_wakes.fetch_add(1);
  }
  for (uint32_t* word : words) {
    __atomic_fetch_add(word, 1u, __ATOMIC_SEQ_CST);
    futex_wake(word, INT_MAX);
  }
}

void* watcher_main(void*) {
  struct epoll_event evs[32];
  for (;;) {
    int timeout = -1;
    int ep;
    {
      std::lock_guard<std::mutex> g(g_mu);
      ep = g_ep;
      if (g_idle > 0) {
        double now = monotonic_ms();
        double linger = g_linger_ms.load();
        double first = -1;
        for (auto& kv : *g_entries) {
          Entry* e = kv.second;
          if (e->idle && (first < 0 || e->idle_since < first)) first = e->idle_since;
        }
        double left = first + linger - now;
        timeout = left <= 0 ? 0 : static_cast<int>(left + 1);
      }
      g_infinite = timeout < 0;
    }
    int n = epoll_wait(ep, evs, 32, timeout);
    std::lock_guard<std::mutex> g(g_mu);
    g_infinite = false;
    for (int i = 0; i < n; i++) {
      uint64_t id = evs[i].data.u64;
      if (id == 0) {
        uint64_t v;
        ssize_t r = read(g_kick, &v, sizeof(v));
        (void)r;
        continue;
      }
      auto it = g_by_id->find(id);
      if (it != g_by_id->end() && !it->second->dead) died_locked(it->second);
    }
    if (g_idle > 0) {
      double now = monotonic_ms();
      double linger = g_linger_ms.load();
      std::vector<Entry*> expired;
      for (auto& kv : *g_entries) {
        Entry* e = kv.second;
        if (e->idle && e->idle_since + linger <= now) expired.push_back(e);
      }
      for (Entry* e : expired) drop_entry_locked(e);
    }
  }
  return nullptr;
}

void atfork_prepare() { g_mu.lock(); }
void atfork_parent() { g_mu.unlock(); }
void atfork_child() {
  // No watcher thread here. The fds are copies of the parent's: close them
  // (the parent's epoll registrations stay, they belong to its files). The
  // bookkeeping is leaked on purpose: no allocation in this handler, and no
  // DeathWatch of this process points into it (the forking thread was not
  // waiting, and the parent's async ops are forgotten in the child).
  if (g_entries) {
    for (auto& kv : *g_entries)
      if (kv.second->pidfd >= 0) close(kv.second->pidfd);
  }
  if (g_ep >= 0) close(g_ep);
  if (g_kick >= 0) close(g_kick);
  g_ep = g_kick = -1;
  g_entries = nullptr;
  g_by_id = nullptr;
  g_started = false;
  g_infinite = false;
  g_idle = 0;
  g_pidfds.store(0);
  g_mu.unlock();
}

// Caller holds g_mu. Starts the watcher thread if needed.
bool start_locked() {
  if (g_started) return true;
  if (!g_entries) g_entries = new std::map<Key, Entry*>();
  if (!g_by_id) g_by_id = new std::unordered_map<uint64_t, Entry*>();
  if (g_ep < 0) {
    g_ep = epoll_create1(EPOLL_CLOEXEC);
    if (g_ep < 0) return false;
  }
  if (g_kick < 0) {
    g_kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (g_kick < 0) return false;
    struct epoll_event ev;
    ev.events = EPOLLIN;
    ev.data.u64 = 0;
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, g_kick, &ev) != 0) {
      close(g_kick);
      g_kick = -1;
      return false;
    }
  }
  // Every signal blocked: signals are for the JS threads.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t th;
  // Named "forksafe-death" (inherited from this thread, set around
  // pthread_create, as the waiter threads are): forkSafety() knows it for one
  // of forksafe's own, which fork() parks.
  char saved[17] = {0};
  prctl(PR_GET_NAME, saved, 0, 0, 0);
  prctl(PR_SET_NAME, "forksafe-death", 0, 0, 0);
  int e = pthread_create(&th, nullptr, watcher_main, nullptr);
  prctl(PR_SET_NAME, saved, 0, 0, 0);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (e != 0) return false;
  pthread_detach(th);
  g_started = true;
  return true;
}

// Caller holds g_mu. 1: w now watches k; 0: k is dead (w fired); -1: cannot
// watch (no pidfd), the slice covers it.
int link_locked(DeathWatch* w, const DeathKey& k) {
  Entry* e = nullptr;
  auto it = g_entries->find(Key(k.pid, k.start));
  if (it != g_entries->end()) {
    e = it->second;
    if (e->dead) {
      g_dead_at_add.fetch_add(1);
      fire_locked(w);
      return 0;
    }
  } else {
    int fd = pidfd_open_pid(k.pid);
    if (fd == -ESRCH) {
      g_dead_at_add.fetch_add(1);
      fire_locked(w);
      return 0;
    }
    if (fd < 0) return -1;
    // The pidfd names whatever process has the pid now: it must be the one
    // we mean (same start time), else ours is dead and the pid reused.
    if (!process_alive(k.pid, k.start)) {
      close(fd);
      g_dead_at_add.fetch_add(1);
      fire_locked(w);
      return 0;
    }
    e = new Entry();
    e->id = g_next_id++;
    e->pid = k.pid;
    e->start = k.start;
    e->pidfd = fd;
    struct epoll_event ev;
    ev.events = EPOLLIN;
    ev.data.u64 = e->id;
    if (epoll_ctl(g_ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(fd);
      delete e;
      return -1;
    }
    (*g_entries)[Key(k.pid, k.start)] = e;
    (*g_by_id)[e->id] = e;
    g_adds.fetch_add(1);
    g_pidfds.fetch_add(1);
  }
  if (e->idle) {
    e->idle = false;
    g_idle--;
  }
  e->watchers.insert(w);
  return 1;
}

void unlink_locked(DeathWatch* w, const DeathKey& k) {
  if (!g_entries) return;
  auto it = g_entries->find(Key(k.pid, k.start));
  if (it == g_entries->end()) return;
  Entry* e = it->second;
  e->watchers.erase(w);
  if (!e->watchers.empty()) return;
  if (e->dead || g_idle >= kMaxIdle || g_linger_ms.load() <= 0) {
    drop_entry_locked(e);
    return;
  }
  e->idle = true;
  e->idle_since = monotonic_ms();
  g_idle++;
  if (g_infinite) kick_locked();  // it must wake up to close this one later
}

bool same_key(const DeathKey& a, const DeathKey& b) { return a.pid == b.pid && a.start == b.start; }

bool contains(const DeathKey* keys, size_t n, const DeathKey& k) {
  for (size_t i = 0; i < n; i++)
    if (same_key(keys[i], k)) return true;
  return false;
}

}  // namespace

DeathWatch::~DeathWatch() {
  if (!keys.empty()) deathwatch_clear(this);
}

bool deathwatch_enabled() {
  int s = g_support.load(std::memory_order_relaxed);
  if (s < 0) s = probe();
  return s == 1 && g_enabled.load(std::memory_order_relaxed);
}

void deathwatch_install_atfork() {
  pthread_once(&g_atfork_once, [] { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); });
}

void deathwatch_set(DeathWatch* w, const DeathKey* keys, size_t n) {
  if (!deathwatch_enabled()) {
    deathwatch_clear(w);
    return;
  }
  if (n > kDeathWatchMax) n = kDeathWatchMax;
  // Nothing changed: no lock, no syscall (the common case of a waiter that
  // loops on the same holder).
  if (w->keys.size() == n) {
    bool same = true;
    for (size_t i = 0; i < n && same; i++) same = same_key(w->keys[i], keys[i]);
    if (same) return;
  }
  deathwatch_install_atfork();
  uint32_t me = self_pid();
  std::lock_guard<std::mutex> g(g_mu);
  if (!start_locked()) return;
  for (const DeathKey& k : w->keys)
    if (!contains(keys, n, k)) unlink_locked(w, k);
  std::vector<DeathKey> now;
  now.reserve(n);
  for (size_t i = 0; i < n; i++) {
    const DeathKey& k = keys[i];
    if (k.pid == 0 || k.pid == me || contains(now.data(), now.size(), k)) continue;
    if (contains(w->keys.data(), w->keys.size(), k)) {
      now.push_back(k);
      continue;
    }
    if (link_locked(w, k) == 1) now.push_back(k);
  }
  w->keys.swap(now);
}

void deathwatch_token(DeathWatch* w, const uint8_t* base, uint32_t v) {
  uint32_t t = v & kTokenMask;
  uint32_t pid = token_pid(t);
  if (t == 0 || word_is_marker(v) || pid == self_pid() || !deathwatch_enabled()) {
    deathwatch_clear(w);
    return;
  }
  DeathKey k{pid, participant_start(base, pid)};
  deathwatch_set(w, &k, 1);
}

void deathwatch_clear(DeathWatch* w) {
  if (w->keys.empty()) return;
  std::lock_guard<std::mutex> g(g_mu);
  for (const DeathKey& k : w->keys) unlink_locked(w, k);
  w->keys.clear();
}

int deathwatch_sleep(DeathWatch* w, uint32_t* word, uint32_t val, double timeout_ms) {
  if (w->keys.empty()) {
    if (w->fired.load()) return 0;
    return futex_wait(word, val, timeout_ms);
  }
  uint32_t s = aload(w->wake);
  if (w->fired.load()) return 0;  // fired before s was read: do not sleep
  struct futex_waitv fw[2];
  fw[0].val = val;
  fw[0].uaddr = reinterpret_cast<uintptr_t>(word);
  fw[0].flags = FUTEX_32;  // shared: the word is in MAP_SHARED memory
  fw[0].__reserved = 0;
  fw[1].val = s;
  fw[1].uaddr = reinterpret_cast<uintptr_t>(w->wake);
  fw[1].flags = FUTEX_32;  // shared too, as fire_locked's futex_wake
  fw[1].__reserved = 0;
  struct timespec ts;
  struct timespec* tsp = nullptr;
  if (timeout_ms >= 0) {
    ts = abs_timespec(monotonic_ms() + timeout_ms);
    tsp = &ts;
  }
  long r = syscall(SYS_futex_waitv, fw, 2, 0, tsp, CLOCK_MONOTONIC);
  if (r >= 0) return 0;
  return -errno;
}

uint64_t participant_start(const uint8_t* base, uint32_t pid) {
  if (!base) return 0;
  const Participant* ps = reinterpret_cast<const Participant*>(base + kParticipantsOffset);
  for (uint32_t i = 0; i < kParticipants; i++) {
    if (aload(&ps[i].pid) == pid && aload(&ps[i].state) == 1) return aload(&ps[i].start);
  }
  return 0;
}

void deathwatch_stats(DeathWatchStats* out) {
  std::lock_guard<std::mutex> g(g_mu);
  out->wakes = g_wakes.load();
  out->deaths = g_deaths.load();
  out->dead_at_add = g_dead_at_add.load();
  out->adds = g_adds.load();
  out->pidfds = g_pidfds.load();
  uint32_t watched = 0;
  if (g_entries)
    for (auto& kv : *g_entries)
      if (!kv.second->watchers.empty() && !kv.second->dead) watched++;
  out->watched = watched;
  out->running = g_started ? 1 : 0;
  out->supported = g_support.load();
  out->enabled = g_enabled.load() ? 1 : 0;
}

void deathwatch_set_enabled(bool on) {
  g_knob_set.store(true);
  g_enabled.store(on);
}

void deathwatch_set_linger_ms(double ms) {
  g_linger_ms.store(ms);
  std::lock_guard<std::mutex> g(g_mu);
  kick_locked();
}

}  // namespace forksafe
