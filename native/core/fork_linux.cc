// Linux fork support: MADV_DOFORK over /proc/self/maps, fork with signals
// blocked, and the child-side fixups of the segment registry.
#include "core/fork.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <dirent.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/platform.h"

namespace forksafe {

namespace {

// Parses "start-end ..." lines without allocating (the maps file can be long).
bool parse_hex(const char*& p, const char* end, uintptr_t* out) {
  uintptr_t v = 0;
  bool any = false;
  while (p < end) {
    char c = *p;
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else break;
    v = (v << 4) | static_cast<uintptr_t>(d);
    any = true;
    p++;
  }
  *out = v;
  return any;
}

}  // namespace

int mark_all_dofork() {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  static char buf[1 << 16];
  size_t have = 0;  // bytes in buf
  size_t pos = 0;   // start of the first unparsed line
  int ranges = 0;
  bool eof = false;
  for (;;) {
    // Parse every complete line in [pos, have).
    for (;;) {
      const char* line = buf + pos;
      const char* nl = static_cast<const char*>(memchr(line, '\n', have - pos));
      if (!nl) break;
      const char* p = line;
      uintptr_t start = 0, stop = 0;
      if (parse_hex(p, nl, &start) && p < nl && *p == '-') {
        p++;
        if (parse_hex(p, nl, &stop) && stop > start) {
          // [vsyscall] and similar refuse (EINVAL): nothing to do for them.
          if (madvise(reinterpret_cast<void*>(start), stop - start, MADV_DOFORK) == 0) ranges++;
        }
      }
      pos = static_cast<size_t>(nl - buf) + 1;
    }
    if (eof) break;
    // Move the partial line (if any) to the front once, then read more.
    if (pos > 0) {
      memmove(buf, buf + pos, have - pos);
      have -= pos;
      pos = 0;
    }
    if (have == sizeof(buf)) have = 0;  // an absurdly long line: drop it
    ssize_t n = read(fd, buf + have, sizeof(buf) - have);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return -e;
    }
    if (n == 0) eof = true;
    have += static_cast<size_t>(n);
  }
  close(fd);
  return ranges;
}

int fork_blocked(void (*in_child)(void* ctx), void* ctx) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return -e;
  }
  if (pid == 0) {
    refresh_process_identity();
    registry_after_fork_child();
    if (in_child) in_child(ctx);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return pid;
}

void stdio_own_blocking() {
  for (int fd = 1; fd <= 2; fd++) {
    if (fd_is_fifo(fd) != 1) continue;
    char path[32];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    int nfd = open(path, O_WRONLY | O_CLOEXEC);
    if (nfd < 0) continue;
    dup2(nfd, fd);  // dup2 clears FD_CLOEXEC on fd; the new description is blocking
    close(nfd);
  }
}

void exit_now(int code) { _exit(code); }

int other_threads(ThreadName* out, int max) {
  DIR* d = opendir("/proc/self/task");
  if (!d) return -errno;
  const uint32_t me = self_tid();
  int n = 0;
  while (struct dirent* e = readdir(d)) {
    char* endp = nullptr;
    unsigned long tid = strtoul(e->d_name, &endp, 10);
    if (e->d_name[0] < '0' || e->d_name[0] > '9' || *endp != '\0' || tid == me) continue;
    if (n < max) {
      char path[64];
      snprintf(path, sizeof path, "/proc/self/task/%lu/comm", tid);
      out[n].tid = static_cast<uint32_t>(tid);
      char* name = out[n].name;
      name[0] = '\0';
      int fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        ssize_t r = read(fd, name, 15);
        close(fd);
        if (r < 0) r = 0;
        name[r] = '\0';
        if (r > 0 && name[r - 1] == '\n') name[r - 1] = '\0';
      }
      // A thread that ended between readdir and open keeps an empty name: it
      // is still counted (it was running a moment ago).
    }
    n++;
  }
  closedir(d);
  return n;
}

}  // namespace forksafe
