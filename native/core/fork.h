// fork() of the running process with what Node needs around it. No N-API.
#pragma once
#include <cstdint>

namespace forksafe {

// Marks every mapping of this process MADV_DOFORK (V8 marks its heap
// MADV_DONTFORK; a child without it has no JS heap). Returns the number of
// ranges marked, or -errno if /proc/self/maps cannot be read.
int mark_all_dofork();

// fork() with every signal blocked around it (the child must not run a
// handler before it is set up). Returns the child's pid in the parent, 0 in
// the child, or -errno. The pthread_atfork handlers of the library (waiter
// threads parked, registry locked) run inside.
int fork_blocked(void (*in_child)(void* ctx), void* ctx);

// In the child, before any JS runs: our pid and start time, our participant
// entry in every mapped arena, arenas no longer ours to allocate in, and one
// more reference on every slot this process inherited a reference to.
void registry_after_fork_child();
void slot_addref_inherited(uint32_t seg, uint64_t off, int64_t n);

// In the child: stdout/stderr pipes get an open file description of their own,
// in blocking mode, so that what the child writes is written before _exit and
// the parent's O_NONBLOCK flag is not shared. Files, ttys and sockets are left.
void stdio_own_blocking();

// This process's threads other than the calling one: tid and name
// (/proc/self/task/<tid>/comm, at most 15 bytes), up to `max` of them.
// Returns how many threads there are (may exceed max), or -errno.
struct ThreadName {
  uint32_t tid;
  char name[16];
};
int other_threads(ThreadName* out, int max);

// _exit(2): ends the process without atexit handlers or static destructors
// (Node's teardown would touch threads a forked child does not have).
[[noreturn]] void exit_now(int code);

}  // namespace forksafe
