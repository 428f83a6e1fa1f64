// The floor for fork(): a C process holding `mib` MiB of touched private
// memory (as much as the Node parent's RSS) forks; the child stamps the
// monotonic clock in a shared page at its first instruction. Prints one JSON
// line with the medians (ms from the call) of `n` forks.
//   fork_floor <mib> <n>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 50;
  int n = argc > 2 ? atoi(argv[2]) : 9;
  if (n < 1 || n > 1000) n = 9;
  size_t bytes = mib << 20;
  char* mem = mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  volatile double* shared = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED || shared == MAP_FAILED) return 1;
  memset(mem, 1, bytes);  // resident, private: its page tables are copied at fork
  double call[1000], child[1000];
  for (int i = 0; i < n; i++) {
    shared[0] = 0;
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid == 0) {
      shared[0] = now_ms();
      _exit(0);
    }
    call[i] = now_ms() - t0;
    waitpid(pid, 0, 0);
    child[i] = shared[0] - t0;
  }
  qsort(call, n, sizeof(double), cmp);
  qsort(child, n, sizeof(double), cmp);
  printf("{\"mib\":%zu,\"n\":%d,\"call\":%.4f,\"child\":%.4f}\n", mib, n, call[n / 2], child[n / 2]);
  return 0;
}
