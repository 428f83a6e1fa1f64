// Linux implementation of platform.h.
#include "core/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace forksafe {

namespace {
std::atomic<uint32_t> g_pid{0};
std::atomic<uint64_t> g_start{0};

// Parses field 22 (starttime) of /proc/<pid>/stat. The comm field may hold
// spaces and parentheses, so fields are counted from the last ')'.
// The file is opened relative to a directory fd for /proc, never by the path
// "/proc/self/stat" or "/proc/<own pid>/stat": qemu-user answers those two
// paths with a stat of its own whose starttime is its own clock reading,
// which can differ by a tick from what the kernel shows every other process
// (and a fork child inherits it), so a live owner would look dead. qemu
// matches paths only, so the relative open reaches the kernel's file.
int read_stat(uint32_t pid, uint64_t* out, char* state) {
  int dir = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return -errno;
  char rel[32];
  snprintf(rel, sizeof(rel), "%u/stat", pid);
  int fd = openat(dir, rel, O_RDONLY | O_CLOEXEC);
  int open_errno = errno;
  close(dir);
  if (fd < 0) return open_errno == ENOENT ? -ESRCH : -open_errno;
  char buf[1024];
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  int saved = errno;
  close(fd);
  if (n <= 0) return n == 0 ? -ESRCH : (saved == ESRCH ? -ESRCH : -saved);
  buf[n] = 0;
  char* p = strrchr(buf, ')');
  if (!p) return -EINVAL;
  p++;
  if (state) *state = (p[0] == ' ') ? p[1] : '?';
  // After ')' comes field 3 (state). starttime is field 22: skip 19 spaces.
  int field = 2;
  while (*p && field < 22) {
    if (*p == ' ') field++;
    p++;
  }
  if (field != 22) return -EINVAL;
  uint64_t v = 0;
  while (*p >= '0' && *p <= '9') v = v * 10 + static_cast<uint64_t>(*p++ - '0');
  *out = v;
  return 0;
}
}  // namespace

void timespec_from_ms(double ms, struct timespec* out) {
  // Written so that NaN takes the first branch.
  if (!(ms > 0)) ms = 0;
  if (ms > kForeverMs) ms = kForeverMs;
  double sec = ms / 1000.0;  // <= 9.3e9: fits time_t
  out->tv_sec = static_cast<time_t>(sec);
  long ns = static_cast<long>((ms - static_cast<double>(out->tv_sec) * 1000.0) * 1e6);
  if (ns >= 1000000000L) {
    out->tv_sec++;
    ns -= 1000000000L;
  }
  out->tv_nsec = ns < 0 ? 0 : ns;
}

int futex_wait(uint32_t* addr, uint32_t expected, double timeout_ms) {
  struct timespec ts;
  struct timespec* tsp = nullptr;
  if (timeout_ms >= 0) {
    timespec_from_ms(timeout_ms, &ts);
    tsp = &ts;
  }
  long r = syscall(SYS_futex, addr, FUTEX_WAIT, expected, tsp, nullptr, 0);
  if (r == 0) return 0;
  return -errno;
}

int futex_wake(uint32_t* addr, int n) {
  long r = syscall(SYS_futex, addr, FUTEX_WAKE, n, nullptr, nullptr, 0);
  return r < 0 ? -errno : static_cast<int>(r);
}

double monotonic_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1000.0 + static_cast<double>(ts.tv_nsec) / 1e6;
}

void refresh_process_identity() {
  g_pid.store(static_cast<uint32_t>(getpid()), std::memory_order_relaxed);
  uint64_t st = 0;
  read_stat(static_cast<uint32_t>(getpid()), &st, nullptr);
  g_start.store(st, std::memory_order_relaxed);
}

uint32_t self_pid() {
  uint32_t p = g_pid.load(std::memory_order_relaxed);
  if (p == 0) {
    refresh_process_identity();
    p = g_pid.load(std::memory_order_relaxed);
  }
  return p;
}

uint64_t self_start_time() {
  self_pid();
  return g_start.load(std::memory_order_relaxed);
}

uint32_t self_tid() { return static_cast<uint32_t>(syscall(SYS_gettid)); }

int proc_stat(uint32_t pid, uint64_t* start, char* state) { return read_stat(pid, start, state); }

int process_alive(uint32_t pid, uint64_t expected_start) {
  if (pid == 0) return 0;
  uint64_t start = 0;
  char state = '?';
  int r = proc_stat(pid, &start, &state);
  if (r == -ESRCH) return 0;
  if (r < 0) return pid_exists(pid);  // /proc unreadable: fall back to kill(0)
  // A zombie is dead for our purposes: it will never release anything, and
  // its parent may be the very process that waits for the lock.
  if (state == 'Z' || state == 'X' || state == 'x') return 0;
  if (expected_start != 0 && start != expected_start) return 0;
  return 1;
}

int pid_exists(uint32_t pid) {
  if (pid == 0) return 0;
  if (kill(static_cast<pid_t>(pid), 0) == 0) return 1;
  return errno == EPERM ? 1 : 0;
}

int memfd_create_sized(const char* label, uint64_t size) {
  int fd = static_cast<int>(syscall(SYS_memfd_create, label, MFD_CLOEXEC));
  if (fd < 0) return -errno;
  fchmod(fd, 0600);  // defence in depth: /proc/<pid>/fd access is already same-user only
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

int write_payload_fd(const void* data, size_t len) {
  int fd = static_cast<int>(syscall(SYS_memfd_create, "forksafe-payload", MFD_CLOEXEC));
  if (fd < 0) return -errno;
  const char* p = static_cast<const char*>(data);
  size_t done = 0;
  while (done < len) {
    ssize_t w = write(fd, p + done, len - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return -e;
    }
    done += static_cast<size_t>(w);
  }
  if (lseek(fd, 0, SEEK_SET) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

int open_foreign_fd(uint32_t pid, int fd) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%u/fd/%d", pid, fd);
  int r = open(path, O_RDWR | O_CLOEXEC);
  return r < 0 ? -errno : r;
}

int shm_open_named(const char* name, bool create, uint64_t size) {
  int flags = O_RDWR | O_CLOEXEC | (create ? (O_CREAT | O_EXCL) : 0);
  int fd = shm_open(name, flags, 0600);
  if (fd < 0) return -errno;
  if (create) {
    // shm_open honours the umask; make the mode exactly 0600 regardless.
    fchmod(fd, 0600);
    if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
      int e = errno;
      close(fd);
      shm_unlink(name);
      return -e;
    }
  }
  return fd;
}

int shm_unlink_named(const char* name) { return shm_unlink(name) == 0 ? 0 : -errno; }

// fstat(2) as a raw syscall. glibc 2.33 made fstat an exported function
// (fstat64@GLIBC_2.33), so a plain call would raise the addon's glibc floor;
// see glibc_compat_linux.cc. On x86-64 and aarch64 glibc's struct stat is the
// kernel's (asserted); elsewhere the libc function is used.
static int stat_fd(int fd, struct stat* st) {
#if defined(__x86_64__) || defined(__aarch64__)
#if defined(__x86_64__)
  static_assert(sizeof(struct stat) == 144, "struct stat is not the kernel's (x86-64)");
#else
  static_assert(sizeof(struct stat) == 128, "struct stat is not the kernel's (asm-generic)");
#endif
  return syscall(SYS_fstat, fd, st) == 0 ? 0 : -errno;
#else
  return fstat(fd, st) == 0 ? 0 : -errno;
#endif
}

int fd_is_fifo(int fd) {
  struct stat st;
  int r = stat_fd(fd, &st);
  return r < 0 ? r : S_ISFIFO(st.st_mode) ? 1 : 0;
}

int fd_identity(int fd, FileId* out) {
  struct stat st;
  int r = stat_fd(fd, &st);
  if (r < 0) return r;
  out->dev = static_cast<uint64_t>(st.st_dev);
  out->ino = static_cast<uint64_t>(st.st_ino);
  out->size = static_cast<uint64_t>(st.st_size);
  return 0;
}

int map_shared(int fd, uint64_t size, void** out) {
  int flags = MAP_SHARED | (fd < 0 ? MAP_ANONYMOUS : 0);
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, fd, 0);
  if (p == MAP_FAILED) return -errno;
  *out = p;
  return 0;
}

int unmap(void* addr, uint64_t size) { return munmap(addr, size) == 0 ? 0 : -errno; }
int close_fd(int fd) { return close(fd) == 0 ? 0 : -errno; }

int random_bytes(void* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(static_cast<char*>(buf) + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    got += static_cast<size_t>(r);
  }
  return 0;
}

unsigned online_cpus() {
  // All online CPUs, not this process's affinity mask: a process pinned to one
  // CPU still gains from spinning while its peer runs on another CPU, and the
  // spin loop yields, so a peer on the same CPU is not starved.
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1u;
}

void cpu_yield() { sched_yield(); }

int pidfd_open_pid(uint32_t pid) {
  long r = syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0);
  return r < 0 ? -errno : static_cast<int>(r);
}

int pidfd_wait_exit(int pidfd, double timeout_ms, int* code, int* signal) {
  struct pollfd pfd = {pidfd, POLLIN, 0};
  double deadline = timeout_ms < 0 ? -1 : monotonic_ms() + timeout_ms;
  for (;;) {
    int wait_ms = -1;
    if (deadline >= 0) {
      double left = deadline - monotonic_ms();
      if (left < 0) left = 0;
      wait_ms = left > INT_MAX ? INT_MAX : static_cast<int>(left + 0.999);
    }
    int r = poll(&pfd, 1, wait_ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) return 0;
    break;
  }
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  // WNOWAIT: leave the zombie for libuv's reaper, which owns the child.
  if (waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info,
             WEXITED | WNOWAIT) != 0) {
    return -errno;
  }
  *code = -1;
  *signal = 0;
  if (info.si_code == CLD_EXITED) {
    *code = info.si_status;
  } else {
    *signal = info.si_status;
  }
  return 1;
}

int pidfd_reap(int pidfd, int* code, int* signal) {
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  if (waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED | WNOHANG) != 0)
    return -errno;
  if (info.si_pid == 0) return 0;
  *code = -1;
  *signal = 0;
  if (info.si_code == CLD_EXITED) *code = info.si_status;
  else *signal = info.si_status;
  return 1;
}

int pidfd_signal(int pidfd, int sig) {
  long r = syscall(424 /* SYS_pidfd_send_signal */, pidfd, sig, nullptr, 0);
  return r < 0 ? -errno : 0;
}

int pidfd_kill_reap(int pidfd) {
  pidfd_signal(pidfd, SIGKILL);
  siginfo_t info;
  for (;;) {
    memset(&info, 0, sizeof(info));
    if (waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED) == 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

}  // namespace forksafe

namespace forksafe {

int fd_keep_on_exec(int fd) {
  int fl = fcntl(fd, F_GETFD);
  if (fl < 0 || fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC) < 0) return -errno;
  return 0;
}

int exec_replace(const char* file, char* const argv[], char* const envp[]) {
  execve(file, argv, envp);
  return -errno;
}

int set_parent_death_signal(int sig) {
  if (prctl(PR_SET_PDEATHSIG, static_cast<unsigned long>(sig), 0, 0, 0) != 0) return -errno;
  return static_cast<int>(getppid());
}

}  // namespace forksafe
