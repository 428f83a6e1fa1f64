// Segment registry, arenas and slots (Linux: memfd, /proc/<pid>/fd, /dev/shm).
#include <errno.h>
#include <string.h>

#include <atomic>
#include <pthread.h>
#include <climits>
#include <mutex>
#include <vector>

#include "core/atomics.h"
#include "core/segment.h"

namespace forksafe {

namespace {

struct Record {
  SegmentInfo info;
  int64_t views;
  bool mapped;
  bool creator;  // this process made it: it may allocate slots in it
};

std::mutex g_mu;               // guards g_records and arena bitmaps we allocate from
std::vector<Record>* g_records = nullptr;  // never freed: finalizers may run late

std::vector<Record>& records() {
  if (!g_records) g_records = new std::vector<Record>();
  return *g_records;
}

SegmentHeader* header(uint8_t* base) { return reinterpret_cast<SegmentHeader*>(base); }
uint8_t* bitmap(uint8_t* base) { return base + kBitmapOffset; }
Participant* participants(const uint8_t* base) {
  return reinterpret_cast<Participant*>(const_cast<uint8_t*>(base) + kParticipantsOffset);
}

Record* find_local(uint32_t seg) {
  auto& r = records();
  if (seg == 0 || seg > r.size()) return nullptr;
  Record* rec = &r[seg - 1];
  return rec->mapped ? rec : nullptr;
}

Record* find_by_id(const uint8_t id[16]) {
  for (auto& rec : records()) {
    if (rec.mapped && memcmp(rec.info.id, id, 16) == 0) return &rec;
  }
  return nullptr;
}

uint32_t add_record(const SegmentInfo& info, bool creator, int64_t views) {
  Record rec;
  rec.info = info;
  rec.views = views;
  rec.mapped = true;
  rec.creator = creator;
  records().push_back(rec);
  uint32_t id = static_cast<uint32_t>(records().size());
  records().back().info.local_id = id;
  return id;
}

void drop_mapping(Record* rec) {
  unmap(rec->info.base, rec->info.size);
  if (rec->info.fd >= 0) close_fd(rec->info.fd);
  rec->info.base = nullptr;
  rec->info.fd = -1;
  rec->mapped = false;
}

void init_header(uint8_t* base, uint32_t kind, uint32_t ctx, uint64_t size, uint64_t data_offset,
                 uint64_t data_size) {
  SegmentHeader* h = header(base);
  h->version = kLayoutVersion;
  h->kind = kind;
  h->ctx = ctx;
  h->size = size;
  random_bytes(h->id, sizeof(h->id));
  h->creator_pid = self_pid();
  h->creator_start = self_start_time();
  h->data_offset = data_offset;
  h->data_size = data_size;
  h->next_gen = 1;
  h->units = kind == kSegArena ? kArenaUnits : 0;
  // magic last: a reader that sees it sees a complete header.
  __atomic_store_n(&h->magic, kMagic, __ATOMIC_RELEASE);
}

// A SharedMemory whose unlink() was called (any process): attach refuses it.
bool is_unlinked(const uint8_t* base) {
  const SegmentHeader* h = reinterpret_cast<const SegmentHeader*>(base);
  return h->kind == kSegShm && (__atomic_load_n(&h->flags, __ATOMIC_ACQUIRE) & kSegUnlinked) != 0;
}

// Checks a header read from a mapping of `map_size` bytes.
bool header_valid(const uint8_t* base, uint64_t map_size, uint32_t want_kind) {
  const SegmentHeader* h = reinterpret_cast<const SegmentHeader*>(base);
  if (map_size < sizeof(SegmentHeader)) return false;
  if (h->magic != kMagic || h->version != kLayoutVersion) return false;
  if (want_kind != 0 && h->kind != want_kind) return false;
  if (h->size != map_size) return false;
  if (h->ctx < kCtxSpawn || h->ctx > kCtxForkserver) return false;
  if (h->kind == kSegArena) {
    return map_size == kArenaSize && h->data_offset == kArenaDataOffset &&
           h->units == kArenaUnits && h->data_size == kArenaUnits * kUnit;
  }
  if (h->kind == kSegShm) {
    return h->data_offset == kShmDataOffset && h->data_size <= map_size - kShmDataOffset &&
           h->data_size <= kShmMaxSize && memchr(h->name, 0, sizeof(h->name)) != nullptr;
  }
  return false;
}

int create_arena(uint32_t ctx, Record** out) {
  int fd = -1;
  if (ctx != kCtxFork) {
    fd = memfd_create_sized("forksafe-arena", kArenaSize);
    if (fd < 0) return fd;
  }
  void* p = nullptr;
  int r = map_shared(fd, kArenaSize, &p);
  if (r < 0) {
    if (fd >= 0) close_fd(fd);
    return r;
  }
  uint8_t* base = static_cast<uint8_t*>(p);
  init_header(base, kSegArena, ctx, kArenaSize, kArenaDataOffset, kArenaUnits * kUnit);
  SegmentInfo info;
  memset(&info, 0, sizeof(info));
  memcpy(info.id, header(base)->id, 16);
  info.kind = kSegArena;
  info.ctx = ctx;
  info.base = base;
  info.size = kArenaSize;
  info.fd = fd;
  info.data_offset = kArenaDataOffset;
  info.data_size = kArenaUnits * kUnit;
  if (fd >= 0) fd_identity(fd, &info.fid);
  participant_register(base);
  uint32_t id = add_record(info, true, 0);
  *out = &records()[id - 1];
  return 0;
}

bool bit_get(const uint8_t* bm, uint32_t i) {
  return (aload(&bm[i >> 3]) >> (i & 7)) & 1;
}
void bits_set(uint8_t* bm, uint32_t from, uint32_t n) {
  for (uint32_t i = from; i < from + n; i++)
    __atomic_fetch_or(&bm[i >> 3], static_cast<uint8_t>(1u << (i & 7)), __ATOMIC_SEQ_CST);
}
void bits_clear(uint8_t* bm, uint32_t from, uint32_t n) {
  for (uint32_t i = from; i < from + n; i++)
    __atomic_fetch_and(&bm[i >> 3], static_cast<uint8_t>(~(1u << (i & 7))), __ATOMIC_SEQ_CST);
}

// First fit. Only the creator process allocates in an arena (under g_mu), so
// a run found free stays free until we set it; other processes only clear.
bool find_run(uint8_t* base, uint32_t units, uint32_t* start) {
  uint8_t* bm = bitmap(base);
  uint32_t run = 0;
  for (uint32_t i = 0; i < kArenaUnits; i++) {
    if ((i & 7) == 0 && run == 0 && i + 8 <= kArenaUnits && aload(&bm[i >> 3]) == 0xFF) {
      i += 7;
      continue;
    }
    if (bit_get(bm, i)) {
      run = 0;
    } else if (++run == units) {
      *start = i + 1 - units;
      return true;
    }
  }
  return false;
}

bool slot_in_bounds(uint64_t off, uint64_t units) {
  if (off < kArenaDataOffset || (off - kArenaDataOffset) % kUnit != 0) return false;
  uint64_t first = (off - kArenaDataOffset) / kUnit;
  return units >= 1 && first + units <= kArenaUnits;
}

}  // namespace

int slot_alloc(uint32_t ctx, uint32_t kind, uint32_t units, uint32_t* seg, uint64_t* off,
               uint32_t* gen) {
  if (units == 0 || units > kArenaUnits) return -EINVAL;
  std::lock_guard<std::mutex> g(g_mu);
  Record* arena = nullptr;
  uint32_t start = 0;
  for (auto& rec : records()) {
    if (rec.mapped && rec.creator && rec.info.kind == kSegArena && rec.info.ctx == ctx &&
        find_run(rec.info.base, units, &start)) {
      arena = &rec;
      break;
    }
  }
  if (!arena) {
    int r = create_arena(ctx, &arena);
    if (r < 0) return r;
    if (!find_run(arena->info.base, units, &start)) return -ENOMEM;
  }
  uint8_t* base = arena->info.base;
  uint64_t o = kArenaDataOffset + static_cast<uint64_t>(start) * kUnit;
  memset(base + o, 0, units * kUnit);
  SlotHeader* s = reinterpret_cast<SlotHeader*>(base + o);
  uint32_t g2 = __atomic_fetch_add(&header(base)->next_gen, 1, __ATOMIC_SEQ_CST);
  if (g2 == 0) g2 = __atomic_fetch_add(&header(base)->next_gen, 1, __ATOMIC_SEQ_CST);
  s->units = units;
  s->kind = kind;
  astore(&s->refgen, (static_cast<uint64_t>(g2) << 32) | 1u);
  bits_set(bitmap(base), start, units);
  arena->views++;
  *seg = arena->info.local_id;
  *off = o;
  *gen = g2;
  return kOk;
}

int slot_ref(uint32_t seg, uint64_t off, uint32_t gen, uint32_t kind) {
  std::lock_guard<std::mutex> g(g_mu);
  Record* rec = find_local(seg);
  if (!rec || rec->info.kind != kSegArena) return kBadHandle;
  if (!slot_in_bounds(off, 1)) return kBadHandle;
  uint8_t* base = rec->info.base;
  SlotHeader* s = reinterpret_cast<SlotHeader*>(base + off);
  uint32_t units = aload(&s->units);
  if (!slot_in_bounds(off, units) || aload(&s->kind) != kind) return kBadHandle;
  uint64_t cur = aload(&s->refgen);
  for (;;) {
    if (static_cast<uint32_t>(cur >> 32) != gen || static_cast<uint32_t>(cur) == 0 ||
        static_cast<uint32_t>(cur) == UINT32_MAX) {
      return kBadHandle;  // freed, reused, or corrupt: a stale handle
    }
    if (acas(&s->refgen, &cur, cur + 1)) break;
  }
  return kOk;
}

int slot_unref(uint32_t seg, uint64_t off, const uint32_t* gen) {
  std::lock_guard<std::mutex> g(g_mu);
  Record* rec = find_local(seg);
  if (!rec || rec->info.kind != kSegArena || !slot_in_bounds(off, 1)) return kBadHandle;
  uint8_t* base = rec->info.base;
  SlotHeader* s = reinterpret_cast<SlotHeader*>(base + off);
  uint32_t units = aload(&s->units);
  uint64_t after;
  if (gen) {
    // The reference is to the slot of that generation only: a slot freed early
    // (its reference count overwritten by another process) and reused by a new
    // primitive is not this object's to drop (found by test/fuzz-shared.ts: a
    // stale object's close or finalizer freed the new occupant).
    uint64_t cur = aload(&s->refgen);
    for (;;) {
      if (static_cast<uint32_t>(cur >> 32) != *gen || static_cast<uint32_t>(cur) == 0) return kBadHandle;
      if (acas(&s->refgen, &cur, cur - 1)) break;
    }
    after = cur - 1;
  } else {
    after = __atomic_sub_fetch(&s->refgen, 1, __ATOMIC_SEQ_CST);
  }
  if (static_cast<uint32_t>(after) == 0 && slot_in_bounds(off, units)) {
    astore(&s->kind, static_cast<uint32_t>(kPrimFree));
    bits_clear(bitmap(base), static_cast<uint32_t>((off - kArenaDataOffset) / kUnit), units);
  }
  return kOk;
}

namespace {
int map_and_register(int fd, const uint8_t* want_id, uint32_t want_kind, uint32_t want_ctx,
                     const FileId* want_fid, uint32_t* seg) {
  FileId fid;
  int r = fd_identity(fd, &fid);
  if (r < 0) return r;
  if (want_fid && (fid.dev != want_fid->dev || fid.ino != want_fid->ino ||
                   fid.size != want_fid->size)) {
    return kBadHandle;
  }
  if (fid.size < sizeof(SegmentHeader) || fid.size > kShmMaxSize + kShmDataOffset)
    return kBadHandle;
  void* p = nullptr;
  r = map_shared(fd, fid.size, &p);
  if (r < 0) return r;
  uint8_t* base = static_cast<uint8_t*>(p);
  // Checked and used from one private copy: any process that maps the segment
  // can rewrite its header at any time, also between two reads of ours.
  SegmentHeader hc;
  memcpy(&hc, base, sizeof(hc));
  const SegmentHeader* h = &hc;
  if (!header_valid(reinterpret_cast<const uint8_t*>(h), fid.size, want_kind) ||
      (want_id && memcmp(h->id, want_id, 16) != 0) || (want_ctx != 0 && h->ctx != want_ctx)) {
    unmap(base, fid.size);
    return kBadHandle;
  }
  Record* existing = find_by_id(h->id);
  if (existing) {  // already mapped (e.g. adopted twice): keep one mapping
    unmap(base, fid.size);
    existing->views++;
    *seg = existing->info.local_id;
    return -EEXIST;  // caller closes its fd
  }
  SegmentInfo info;
  memset(&info, 0, sizeof(info));
  memcpy(info.id, h->id, 16);
  info.kind = h->kind;
  info.ctx = h->ctx;
  info.base = base;
  info.size = fid.size;
  info.fd = fd;
  info.fid = fid;
  memcpy(info.name, h->name, sizeof(info.name));  // NUL-terminated: header_valid
  info.data_offset = h->data_offset;
  info.data_size = h->data_size;
  info.flags = h->flags;
  if (h->kind == kSegArena) participant_register(base);
  *seg = add_record(info, false, 1);
  return kOk;
}
}  // namespace

int segment_open(const SegmentRef& ref, uint32_t* seg) {
  std::lock_guard<std::mutex> g(g_mu);
  Record* rec = find_by_id(ref.id);
  if (rec) {
    if (rec->info.kind != ref.kind || rec->info.ctx != ref.ctx || rec->info.size != ref.size)
      return kBadHandle;
    if (is_unlinked(rec->info.base)) return kUnlinked;
    rec->views++;
    *seg = rec->info.local_id;
    return kOk;
  }
  if (ref.ctx == kCtxFork) return kContext;  // anonymous memory: not reachable from here
  int fd;
  if (ref.name && ref.name[0]) {
    fd = shm_open_named(ref.name, false, 0);
  } else {
    if (ref.pid == 0 || ref.pid > kPidMask || ref.fd < 0) return kBadHandle;
    fd = open_foreign_fd(ref.pid, ref.fd);
  }
  // Resource exhaustion is a real system error; anything else (holder gone,
  // fd closed or not a file, another user's process) means the handle does
  // not name a segment we can open.
  if (fd == -EMFILE || fd == -ENFILE || fd == -ENOMEM || fd == -EINTR) return fd;
  if (fd < 0) return kBadHandle;
  FileId want = {ref.dev, ref.ino, ref.size};
  int r = map_and_register(fd, ref.id, ref.kind, ref.ctx, (ref.name && ref.name[0]) ? nullptr : &want, seg);
  if (r == -EEXIST) {
    close_fd(fd);
    r = kOk;
  } else if (r != kOk) {
    close_fd(fd);
    return r;
  }
  Record* mapped = find_local(*seg);
  if (mapped && is_unlinked(mapped->info.base)) {
    if (--mapped->views <= 0) drop_mapping(mapped);  // the view just taken
    return kUnlinked;
  }
  return kOk;
}

int segment_adopt_fd(int fd, uint32_t* seg) {
  std::lock_guard<std::mutex> g(g_mu);
  int r = map_and_register(fd, nullptr, 0, 0, nullptr, seg);
  if (r == -EEXIST) {
    close_fd(fd);
    return kOk;
  }
  return r;
}

int segment_retain(uint32_t seg) {
  std::lock_guard<std::mutex> g(g_mu);
  Record* rec = find_local(seg);
  if (!rec) return kBadHandle;
  rec->views++;
  return kOk;
}

int segment_release(uint32_t seg) {
  std::lock_guard<std::mutex> g(g_mu);
  Record* rec = find_local(seg);
  if (!rec) return kBadHandle;
  if (--rec->views <= 0) drop_mapping(rec);
  return kOk;
}

int segment_info(uint32_t seg, SegmentInfo* out) {
  std::lock_guard<std::mutex> g(g_mu);
  Record* rec = find_local(seg);
  if (!rec) return kBadHandle;
  *out = rec->info;
  return kOk;
}

int shm_create(uint32_t ctx, uint64_t size, const char* name, bool persistent, uint32_t* seg) {
  if (size == 0 || size > kShmMaxSize) return kRange;
  uint64_t page = 4096;
  uint64_t total = kShmDataOffset + (size + page - 1) / page * page;
  int fd = -1;
  bool named = persistent && name && name[0];
  if (named) {
    fd = shm_open_named(name, true, total);
    if (fd == -EEXIST) return kExists;
  } else if (ctx != kCtxFork) {
    fd = memfd_create_sized(name && name[0] ? name : "forksafe-shm", total);
  }
  if (fd < -1 || (fd < 0 && ctx != kCtxFork) || (named && fd < 0)) return fd < 0 ? fd : -EINVAL;
  void* p = nullptr;
  int r = map_shared(fd, total, &p);
  if (r < 0) {
    if (fd >= 0) close_fd(fd);
    if (named) shm_unlink_named(name);
    return r;
  }
  uint8_t* base = static_cast<uint8_t*>(p);
  SegmentHeader* h = header(base);
  if (name) strncpy(h->name, name, sizeof(h->name) - 1);
  h->flags = named ? kSegPersistent : 0;
  init_header(base, kSegShm, ctx, total, kShmDataOffset, size);
  SegmentInfo info;
  memset(&info, 0, sizeof(info));
  memcpy(info.id, h->id, 16);
  info.kind = kSegShm;
  info.ctx = ctx;
  info.base = base;
  info.size = total;
  info.fd = fd;
  if (fd >= 0) fd_identity(fd, &info.fid);
  memcpy(info.name, h->name, sizeof(info.name));
  info.data_offset = kShmDataOffset;
  info.data_size = size;
  info.flags = named ? kSegPersistent : 0;
  std::lock_guard<std::mutex> g(g_mu);
  *seg = add_record(info, true, 1);
  return kOk;
}

int shm_open_existing(const char* name, uint32_t* seg) {
  int fd = shm_open_named(name, false, 0);
  if (fd == -ENOENT) return kBadHandle;
  if (fd < 0) return fd;
  std::lock_guard<std::mutex> g(g_mu);
  int r = map_and_register(fd, nullptr, kSegShm, 0, nullptr, seg);
  if (r == -EEXIST) {
    close_fd(fd);
    return kOk;
  }
  if (r != kOk) close_fd(fd);
  return r;
}

int shm_mark_unlinked(const uint8_t id[16]) {
  std::lock_guard<std::mutex> g(g_mu);
  Record* rec = find_by_id(id);
  if (!rec || rec->info.kind != kSegShm) return kBadHandle;
  uint32_t prev = __atomic_fetch_or(&header(rec->info.base)->flags, kSegUnlinked, __ATOMIC_ACQ_REL);
  return (prev & kSegUnlinked) ? -ENOENT : kOk;
}

// ---- participants & liveness ----------------------------------------------

void participant_register(uint8_t* base) {
  Participant* ps = participants(base);
  uint32_t me = self_pid();
  uint64_t start = self_start_time();
  for (uint32_t i = 0; i < kParticipants; i++) {
    if (aload(&ps[i].pid) == me && aload(&ps[i].start) == start) return;
  }
  for (int pass = 0; pass < 2; pass++) {
    for (uint32_t i = 0; i < kParticipants; i++) {
      uint32_t cur = aload(&ps[i].pid);
      if (pass == 1 && cur != 0 && aload(&ps[i].state) == 1 &&
          !process_alive(cur, aload(&ps[i].start))) {
        // reclaim a dead process's entry
      } else if (cur != 0) {
        continue;
      }
      // Invalidate first so nobody pairs the new pid with the old start.
      uint32_t expect = cur;
      if (cur != 0) {
        if (!acas(&ps[i].pid, &expect, 0u)) continue;
        expect = 0;
      }
      astore(&ps[i].state, 0u);
      if (!acas(&ps[i].pid, &expect, me)) continue;
      astore(&ps[i].start, start);
      astore(&ps[i].state, 1u);
      return;
    }
  }
  // Table full of live processes: liveness of this pid falls back to
  // existence checks (documented in ARCHITECTURE.md).
}

bool pid_alive_in(const uint8_t* base, uint32_t pid) {
  if (pid == self_pid()) return true;
  uint64_t start = 0;
  if (base) {
    const Participant* ps = participants(base);
    for (uint32_t i = 0; i < kParticipants; i++) {
      if (aload(&ps[i].pid) == pid && aload(&ps[i].state) == 1) {
        start = aload(&ps[i].start);
        break;
      }
    }
  }
  return process_alive(pid, start) == 1;
}

namespace {
std::atomic<uint32_t> g_threads[kMaxThreads + 1];
}

int thread_alloc(uint32_t* index) {
  for (uint32_t i = 1; i <= kMaxThreads; i++) {
    uint32_t expected = 0;
    if (g_threads[i].compare_exchange_strong(expected, 1)) {
      *index = i;
      return kOk;
    }
  }
  return kTooMany;
}

void thread_free(uint32_t index) {
  if (index >= 1 && index <= kMaxThreads) g_threads[index].store(0);
}

bool thread_alive(uint32_t index) {
  return index >= 1 && index <= kMaxThreads && g_threads[index].load() == 1;
}

uint32_t make_token(uint32_t index) { return (self_pid() & kPidMask) | (index << kThreadShift); }

bool token_alive(const uint8_t* base, uint32_t token) {
  uint32_t pid = token_pid(token);
  if (pid == self_pid()) return thread_alive(token_thread(token));
  return pid_alive_in(base, pid);
}

void for_each_slot(void (*fn)(uint8_t* base, SlotHeader* slot, void* ctx), void* ctx) {
  std::lock_guard<std::mutex> g(g_mu);
  for (auto& rec : records()) {
    if (!rec.mapped || rec.info.kind != kSegArena) continue;
    uint8_t* base = rec.info.base;
    uint8_t* bm = bitmap(base);
    uint32_t u = 0;
    while (u < kArenaUnits) {
      if (!bit_get(bm, u)) {
        u++;
        continue;
      }
      SlotHeader* s = reinterpret_cast<SlotHeader*>(base + kArenaDataOffset + u * kUnit);
      // units is shared memory: any value. Compared without adding (u + units
      // wraps for units near 2^32, and `u += units` then went backwards forever).
      uint32_t units = aload(&s->units);
      uint32_t kind = aload(&s->kind);
      if (units == 0 || units > kArenaUnits - u || kind == kPrimFree) {
        u++;
        continue;
      }
      fn(base, s, ctx);
      u += units;
    }
  }
}

void registry_after_fork_child() {
  // Runs in the child right after fork(), single-threaded. g_mu was held by
  // the forking thread through the atfork prepare handler, so it is
  // consistent (and already released by the child handler).
  std::lock_guard<std::mutex> g(g_mu);
  for (auto& rec : records()) {
    if (!rec.mapped) continue;
    // The parent goes on allocating in its arenas; two allocators in one
    // bitmap would race. The child makes arenas of its own.
    rec.creator = false;
    if (rec.info.kind == kSegArena) participant_register(rec.info.base);
  }
}

void slot_addref_inherited(uint32_t seg, uint64_t off, int64_t n) {
  std::lock_guard<std::mutex> g(g_mu);
  Record* rec = find_local(seg);
  if (!rec || rec->info.kind != kSegArena || !slot_in_bounds(off, 1)) return;
  SlotHeader* s = reinterpret_cast<SlotHeader*>(rec->info.base + off);
  __atomic_add_fetch(&s->refgen, static_cast<uint64_t>(n), __ATOMIC_SEQ_CST);
}

namespace {
pthread_once_t g_registry_atfork = PTHREAD_ONCE_INIT;
}

void registry_install_atfork() {
  pthread_once(&g_registry_atfork, [] {
    pthread_atfork([] { g_mu.lock(); }, [] { g_mu.unlock(); }, [] { g_mu.unlock(); });
  });
}

void registry_stats(RegistryStats* out) {
  std::lock_guard<std::mutex> g(g_mu);
  memset(out, 0, sizeof(*out));
  for (auto& rec : records()) {
    if (!rec.mapped) continue;
    out->mapped++;
    if (rec.info.kind == kSegArena) out->arenas++;
    else out->shm++;
    out->views += static_cast<uint64_t>(rec.views);
  }
}

}  // namespace forksafe
