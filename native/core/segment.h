// Process-local registry of mapped segments (arenas of primitive slots and
// SharedMemory regions), slot allocation, and owner liveness. No N-API.
//
// Ownership: a segment stays mapped in this process while its `views` count
// is positive; every live JS object (any thread) and every in-flight native
// user holds one view. At zero the mapping and the fd are released.
#pragma once
#include <cstdint>

#include "core/layout.h"
#include "core/platform.h"

namespace forksafe {

// Library statuses (>= 0). Negative returns are -errno.
enum Status : int {
  kOk = 0,
  kTimedOut = 1,
  kOwnerDied = 2,
  kNotRecoverable = 3,
  kNotOwner = 4,
  kDeadlock = 5,
  kBroken = 6,
  kBadHandle = 7,
  kContext = 8,
  kRange = 9,
  kTooMany = 10,
  kNotEqual = 11,
  kExists = 12,
  kUnlinked = 13,  // a SharedMemory unlink() marked: attach refuses it
};

// This process's own copy of what it checked or wrote when it mapped the
// segment. The header in the mapping can be rewritten by any process that maps
// it, so nothing that bounds a memory access is read from there afterwards.
struct SegmentInfo {
  uint32_t local_id;
  uint8_t id[16];
  uint32_t kind;
  uint32_t ctx;
  uint8_t* base;
  uint64_t size;
  int fd;
  FileId fid;
  char name[48];
  uint64_t data_offset;  // as validated (header_valid) or written (creator)
  uint64_t data_size;
  uint32_t flags;        // kSegPersistent
};

// What a handle says about the segment it lives in.
struct SegmentRef {
  uint8_t id[16];
  uint32_t kind;
  uint32_t ctx;
  uint32_t pid;  // a process that held the fd when the handle was made
  int fd;
  uint64_t dev;
  uint64_t ino;
  uint64_t size;
  const char* name;  // persistent SharedMemory name, or nullptr
};

// Allocates a slot of `units` 64-byte units for a primitive of `kind` in an
// arena of context `ctx` made by this process (a new arena if none has room).
// The slot starts with one reference and the caller gets one view of the
// segment (to hand to a buffer, then release).
int slot_alloc(uint32_t ctx, uint32_t kind, uint32_t units, uint32_t* seg, uint64_t* off,
               uint32_t* gen);
// Validates (off, gen, kind) against a mapped arena and takes a reference.
int slot_ref(uint32_t seg, uint64_t off, uint32_t gen, uint32_t kind);
// Drops a reference (freeing the slot at zero). Views are not touched.
// Drops one reference; at zero the slot is freed. With `gen`, only if the slot
// still has that generation (and a reference to drop): else kBadHandle, nothing done.
int slot_unref(uint32_t seg, uint64_t off, const uint32_t* gen = nullptr);

// Finds or maps the segment a handle names; takes a view. kContext when the
// segment lives in anonymous 'fork' memory this process does not have,
// kUnlinked when it is a SharedMemory that unlink() marked (no view taken).
int segment_open(const SegmentRef& ref, uint32_t* seg);
// Maps an fd inherited from a parent (the spawn bootstrap). Takes ownership of
// fd and one view.
int segment_adopt_fd(int fd, uint32_t* seg);
int segment_retain(uint32_t seg);
int segment_release(uint32_t seg);
int segment_info(uint32_t seg, SegmentInfo* out);

// SharedMemory: a new segment of `size` user bytes. name != nullptr with
// persistent: a /dev/shm object that outlives every process until unlinked.
int shm_create(uint32_t ctx, uint64_t size, const char* name, bool persistent, uint32_t* seg);
// Opens an existing persistent segment by name (no handle needed).
int shm_open_existing(const char* name, uint32_t* seg);
// SharedMemory.unlink() of a memfd (non-persistent) segment: sets the
// kSegUnlinked bit in the shared header of the segment with this id, so that
// every later attach of its handle, in any process, is refused (kUnlinked).
// kOk; -ENOENT if the bit was set already (a second unlink, from any
// process); kBadHandle if this process does not map the segment.
int shm_mark_unlinked(const uint8_t id[16]);

// Registers this process in an arena's participant table (idempotent).
void participant_register(uint8_t* arena_base);
// Whether the holder of a token is alive: its JS thread if it is ours, else
// its process (pid reuse detected through the arena's participant table).
bool token_alive(const uint8_t* arena_base, uint32_t token);
bool pid_alive_in(const uint8_t* arena_base, uint32_t pid);

// JS-thread table (per process): indices 1..kMaxThreads.
int thread_alloc(uint32_t* index);
void thread_free(uint32_t index);
bool thread_alive(uint32_t index);
uint32_t make_token(uint32_t index);

// Visits every live slot of every mapped arena (for the thread-exit scan).
// The callback gets the arena base and the slot. Registry lock held.
void for_each_slot(void (*fn)(uint8_t* base, SlotHeader* slot, void* ctx), void* ctx);

// fork(): the registry mutex is held across fork() (pthread_atfork), so the
// child's copy is consistent. Installed once, before the first fork.
void registry_install_atfork();
void registry_after_fork_child();
void slot_addref_inherited(uint32_t seg, uint64_t off, int64_t n);

// Counts for tests and leak checks.
struct RegistryStats {
  uint32_t mapped;
  uint32_t arenas;
  uint32_t shm;
  uint64_t views;
};
void registry_stats(RegistryStats* out);

}  // namespace forksafe
