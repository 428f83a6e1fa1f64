// Platform layer: the only place that issues raw syscalls. No N-API here.
// Every function returns 0 (or a non-negative count) on success and -errno on
// failure, so callers can propagate errors without exceptions.
#pragma once
#include <cstddef>
#include <cstdint>
#include <time.h>

namespace forksafe {

// The longest timeout the kernel can express: KTIME_MAX (2^63 - 1 ns) in ms,
// about 292 years. A timeout at or beyond it means "forever" (lib/core/validate.ts
// maps such timeouts to -1 before they reach native code).
constexpr double kForeverMs = 9223372036854.775807;
// The one ms -> timespec conversion (relative timeouts and CLOCK_MONOTONIC
// deadlines alike): NaN and negatives give 0; values beyond kForeverMs
// saturate at it, so no float -> time_t cast overflows.
void timespec_from_ms(double ms, struct timespec* out);

// futex on a 32-bit word in MAP_SHARED memory (never FUTEX_PRIVATE: the word
// is shared between processes). timeout_ms < 0 waits forever.
// Returns 0 when woken (or spuriously), -EAGAIN when *addr != expected,
// -ETIMEDOUT, -EINTR.
int futex_wait(uint32_t* addr, uint32_t expected, double timeout_ms);
// Wakes up to n waiters; returns how many were woken (all processes).
int futex_wake(uint32_t* addr, int n);

// CLOCK_MONOTONIC in milliseconds (fractional).
double monotonic_ms();

// Our own pid; cached, refreshed by refresh_process_identity() (after fork).
uint32_t self_pid();
// Our own start time (clock ticks since boot, field 22 of /proc/self/stat).
uint64_t self_start_time();
void refresh_process_identity();
uint32_t self_tid();

// Start time and state letter of a process (from /proc/<pid>/stat):
// 0 and *start/*state on success, -ESRCH if it is gone.
// Async-signal-safe (open/read/close only).
int proc_stat(uint32_t pid, uint64_t* start, char* state);
// 1 if the process exists, is not a zombie, and (when expected_start != 0)
// started at expected_start; 0 if it is dead or its pid was reused.
int process_alive(uint32_t pid, uint64_t expected_start);
// 1 if a process with this pid exists (kill(pid, 0) semantics), 0 if not.
int pid_exists(uint32_t pid);

// An anonymous, sealed-size-less memory file (memfd) of `size` bytes, mode
// 0600, close-on-exec. Returns the fd or -errno.
int memfd_create_sized(const char* label, uint64_t size);
// A memfd containing `len` bytes, positioned at offset 0 (a payload a child
// inherits and reads). Returns the fd or -errno.
int write_payload_fd(const void* data, size_t len);
// Opens another process's fd through /proc/<pid>/fd/<fd> (same user only:
// the kernel applies ptrace read checks). Returns a new fd or -errno.
int open_foreign_fd(uint32_t pid, int fd);
// POSIX shm object in /dev/shm, mode 0600. create: O_CREAT|O_EXCL.
int shm_open_named(const char* name, bool create, uint64_t size);
int shm_unlink_named(const char* name);

struct FileId { uint64_t dev; uint64_t ino; uint64_t size; };
// Device, inode and size of an open file (fstat through the kernel, see
// platform_linux.cc). Async-signal-safe.
int fd_identity(int fd, FileId* out);
// 1 if fd is a pipe or FIFO, 0 if not, -errno. Async-signal-safe.
int fd_is_fifo(int fd);

// mmap MAP_SHARED of fd (fd < 0: anonymous shared memory). Returns 0 and *out.
int map_shared(int fd, uint64_t size, void** out);
int unmap(void* addr, uint64_t size);
int close_fd(int fd);

int random_bytes(void* buf, size_t n);
// Online CPUs (spinning pays off when another CPU may run the peer).
unsigned online_cpus();
// Gives the CPU to another runnable thread (sched_yield).
void cpu_yield();
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// pidfd of a child, and a non-reaping wait on it (waitid WNOWAIT) so that
// libuv's own SIGCHLD reaper still collects the status afterwards.
int pidfd_open_pid(uint32_t pid);
// Waits up to timeout_ms for the process behind pidfd to exit.
// Returns 1 if exited (code/signal filled), 0 on timeout, -errno.
int pidfd_wait_exit(int pidfd, double timeout_ms, int* code, int* signal);

// Reaps the process behind pidfd if it has exited (waitid WEXITED|WNOHANG):
// 1 (code/signal filled), 0 if still running, -errno.
int pidfd_reap(int pidfd, int* code, int* signal);
// pidfd_send_signal(2).
int pidfd_signal(int pidfd, int sig);
// SIGKILL through the pidfd, then reap (blocking until it is gone; ECHILD if
// someone reaped it already). 0 or -errno.
int pidfd_kill_reap(int pidfd);
// Asks for `sig` when the parent (the thread that forked us) dies; returns the
// parent's pid as seen after the call (compare it: the parent may be gone
// already), or -errno.
int set_parent_death_signal(int sig);
// execve(2): replaces this process's image; returns only on failure (-errno).
int exec_replace(const char* file, char* const argv[], char* const envp[]);
// Clears FD_CLOEXEC on fd (0, or -errno).
int fd_keep_on_exec(int fd);

}  // namespace forksafe
