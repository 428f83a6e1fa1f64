// Shared-memory layouts. Everything here lives in MAP_SHARED memory that
// several processes map at different addresses: no pointers, only offsets,
// fixed-width fields, and every field's offset pinned by static_assert
// (lib/core/layout.ts mirrors the offsets the JS fast paths use).
#pragma once
#include <cstddef>
#include <cstdint>

namespace forksafe {

constexpr uint32_t kMagic = 0x53464B46;  // "FKFS" in memory order
constexpr uint32_t kLayoutVersion = 1;

enum SegKind : uint32_t { kSegArena = 1, kSegShm = 2 };
enum CtxKind : uint32_t { kCtxSpawn = 1, kCtxFork = 2, kCtxForkserver = 3 };

// First bytes of every segment (arena or SharedMemory). Written once by the
// creator before the segment is shared; read-only afterwards except the
// arena's next_gen counter and the kSegUnlinked bit of flags (set once, by an
// atomic or, by whichever process's unlink() comes first).
struct SegmentHeader {
  uint32_t magic;          // kMagic
  uint32_t version;        // kLayoutVersion
  uint32_t kind;           // SegKind
  uint32_t ctx;            // CtxKind
  uint64_t size;           // bytes of the whole mapping (== file size)
  uint8_t id[16];          // random, names the segment in handles
  uint32_t creator_pid;
  uint32_t flags;          // kSegPersistent | kSegUnlinked (atomic)
  uint64_t creator_start;  // creator's /proc start time (pid reuse guard)
  uint64_t data_offset;    // arena: first slot; shm: user bytes
  uint64_t data_size;      // arena: slot bytes; shm: the user's size
  uint32_t next_gen;       // arena: slot generation counter (atomic)
  uint32_t units;          // arena: number of 64-byte slot units
  char name[48];           // shm: persistent name ("" if none)
};
static_assert(sizeof(SegmentHeader) == 128, "SegmentHeader size");
static_assert(offsetof(SegmentHeader, size) == 16, "");
static_assert(offsetof(SegmentHeader, id) == 24, "");
static_assert(offsetof(SegmentHeader, creator_pid) == 40, "");
static_assert(offsetof(SegmentHeader, data_offset) == 56, "");
static_assert(offsetof(SegmentHeader, next_gen) == 72, "");
static_assert(offsetof(SegmentHeader, name) == 80, "");
constexpr uint32_t kSegPersistent = 1;
// SharedMemory (memfd) whose unlink() was called: attach refuses it; the
// mappings that exist keep working.
constexpr uint32_t kSegUnlinked = 2;

// Processes that have mapped an arena register (pid, start time) here, once
// per process per arena, so that a waiter can tell a dead owner from a live
// process that merely reuses its pid: the start time will differ.
struct Participant {
  uint32_t pid;    // 0 = free; claimed by CAS
  uint32_t state;  // 1 = start valid
  uint64_t start;
};
static_assert(sizeof(Participant) == 16, "");

// Arena: [header 128][participants 128 x 16][..pad..][bitmap @4096][slots @8192]
constexpr uint64_t kArenaSize = 1u << 20;
constexpr uint32_t kParticipants = 128;
constexpr uint64_t kParticipantsOffset = 128;
constexpr uint64_t kBitmapOffset = 4096;
constexpr uint64_t kArenaDataOffset = 8192;
constexpr uint64_t kUnit = 64;
constexpr uint32_t kArenaUnits = static_cast<uint32_t>((kArenaSize - kArenaDataOffset) / kUnit);
static_assert(kParticipantsOffset + kParticipants * sizeof(Participant) <= kBitmapOffset, "");
static_assert(kBitmapOffset + (kArenaUnits + 7) / 8 <= kArenaDataOffset, "");

// SharedMemory segment: [header 128][..pad..][user bytes @4096]
constexpr uint64_t kShmDataOffset = 4096;
constexpr uint64_t kShmMaxSize = 1ull << 40;

enum PrimKind : uint32_t {
  kPrimFree = 0,
  kPrimLock = 1,
  kPrimRLock = 2,
  kPrimSemaphore = 3,
  kPrimEvent = 4,
  kPrimCondition = 5,
  kPrimBarrier = 6,
};

// Every slot starts with this. refgen = (generation << 32) | references.
// A slot is live while references > 0; the generation changes on every
// allocation so a handle to a freed and reused slot is rejected as stale.
struct SlotHeader {
  uint32_t kind;   // PrimKind
  uint32_t units;  // slot size in kUnit
  uint64_t refgen;
};
static_assert(sizeof(SlotHeader) == 16, "");

// ---- Lock / RLock -------------------------------------------------------
// word: 0 = free, else owner token | kWaitersBit.
// token = pid (bits 0..21) | JS-thread index << 22 (bits 22..30, 1..511).
// Only the owner writes state (except the recovery paths, which first take
// ownership of the word by CAS) and count.
// Invariant the JS fast path relies on: word == 0 implies state ==
// kStateConsistent, so a successful CAS 0 -> token needs no further check.
// An owner that holds the lock in kStateInconsistent keeps kWaitersBit set,
// so its release cannot take the JS fast path (CAS token -> 0) and goes
// native, where the state transition happens.
constexpr uint32_t kWaitersBit = 0x80000000u;
constexpr uint32_t kTokenMask = 0x7FFFFFFFu;
constexpr uint32_t kPidMask = 0x003FFFFFu;
constexpr uint32_t kThreadShift = 22;
constexpr uint32_t kMaxThreads = 511;
inline uint32_t token_pid(uint32_t t) { return t & kPidMask; }
inline uint32_t token_thread(uint32_t t) { return (t & kTokenMask) >> kThreadShift; }

// Word values with thread index 0, which no live token has:
constexpr uint32_t kWordAbandoned = 1;       // owner died/left; next taker gets kOwnerDied
constexpr uint32_t kWordNotRecoverable = 2;  // permanently unusable
inline bool word_is_marker(uint32_t w) {
  uint32_t t = w & kTokenMask;
  return t == kWordAbandoned || t == kWordNotRecoverable;
}

enum LockState : uint32_t { kStateConsistent = 0, kStateInconsistent = 1, kStateNotRecoverable = 2 };

struct LockSlot {
  SlotHeader h;
  uint32_t word;      // +16 futex word
  uint32_t state;     // +20 LockState
  uint32_t count;     // +24 RLock recursion depth (owner only)
  uint32_t died_pid;  // +28 pid of the last owner that died holding it
  uint32_t died_tid;  // +32 its JS-thread index
  uint32_t pad[7];
};
static_assert(sizeof(LockSlot) == 64, "");
static_assert(offsetof(LockSlot, word) == 16 && offsetof(LockSlot, state) == 20 &&
                  offsetof(LockSlot, count) == 24, "lib/core/layout.ts depends on these");

// ---- Semaphore ------------------------------------------------------------
struct UndoEntry {
  uint32_t pid;    // 0 free, kUndoReclaiming while a recoverer empties it
  uint32_t count;  // units this process holds
  uint64_t start;  // the process's start time
};
static_assert(sizeof(UndoEntry) == 16, "");
constexpr uint32_t kUndoReclaiming = 0xFFFFFFFFu;
constexpr uint32_t kUndoEntries = 64;
constexpr uint32_t kSemUndo = 1;
constexpr uint32_t kSemBounded = 2;  // release() may not raise value above max

struct SemSlot {
  SlotHeader h;
  uint32_t value;    // +16 futex word: available units
  uint32_t waiters;  // +20 threads in futex_wait on value
  uint32_t max;      // +24 BoundedSemaphore bound (with kSemBounded)
  uint32_t flags;    // +28 kSemUndo | kSemBounded
  uint32_t pad[8];
  UndoEntry undo[];  // kUndoEntries when kSemUndo
};
static_assert(sizeof(SemSlot) == 64, "");
static_assert(offsetof(SemSlot, value) == 16 && offsetof(SemSlot, waiters) == 20 &&
                  offsetof(SemSlot, max) == 24 && offsetof(SemSlot, flags) == 28, "");

// ---- Event ----------------------------------------------------------------
struct EventSlot {
  SlotHeader h;
  uint32_t flag;     // +16 futex word: 0 clear, 1 set
  uint32_t waiters;  // +20 threads registered as (about to be) sleeping
  uint32_t pad[10];
};
static_assert(sizeof(EventSlot) == 64, "");

// ---- Condition ------------------------------------------------------------
struct CondSlot {
  SlotHeader h;
  uint32_t seq;   // +16 futex word, bumped by notify
  uint32_t pad0;  // +20
  uint64_t wt;    // +24 waiters << 32 | tickets (granted, not yet consumed)
  uint32_t pad[8];
};
static_assert(sizeof(CondSlot) == 64 && offsetof(CondSlot, wt) == 24, "");

// ---- Barrier --------------------------------------------------------------
// Guarded by ilock (a robust internal lock word with the same token format);
// gen is the futex word waiters sleep on.
struct BarrierSlot {
  SlotHeader h;
  uint32_t gen;         // +16 futex word: generation
  uint32_t count;       // +20 arrived in this generation
  uint32_t parties;     // +24
  uint32_t broken;      // +28 current generation broken
  uint32_t bgen;        // +32 generation ended by reset() while waited on
  uint32_t bgen_valid;  // +36
  uint32_t ilock;       // +40 internal lock word
  uint32_t pad;         // +44
  double timeout_ms;    // +48 default timeout in ms (-1 none); read by JS only
  uint32_t pad2[2];     // +56
  uint32_t records[];   // +64 tokens of arrived waiters, `parties` entries
};
static_assert(sizeof(BarrierSlot) == 64, "");
constexpr uint32_t kMaxParties = 8192;

inline uint32_t units_for(uint64_t bytes) {
  return static_cast<uint32_t>((bytes + kUnit - 1) / kUnit);
}

}  // namespace forksafe
