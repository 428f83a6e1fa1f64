/* N processes each do K locked increments of one shared counter.
 *  (a) pthread mutex, ROBUST + PROCESS_SHARED, in MAP_SHARED memory
 *  (b) futex mutex with waiters state (Drepper, "Futexes Are Tricky", mutex 3):
 *      0 = unlocked, 1 = locked, 2 = locked with (possible) waiters.
 * Workers are forked first and released together through a start flag; wall time is
 * from release until the last worker has exited. The final counter must equal N*K.
 * usage: contended [procs=2,4] [K=500000] [repeats=5]     (procs: comma list, each 1..16)
 * prints: {"k_per_proc":K,"robust_mutex":{"2":{...},"4":{...}},"futex_mutex3":{...},"all_ok":true}
 *   each {...} = {"wall_ms","ops_per_s","ns_per_op","total","expected","ok","overlap"} (median wall of repeats;
 *   overlap = median of (sum of the workers' loop times / wall): the average number of workers
 *   inside their loop, 1 = they ran one after another)
 */
#include "common.h"
#include <pthread.h>
#include <sys/wait.h>

struct shm {
    pthread_mutex_t m;
    char pad0[64];
    uint32_t fw;            /* futex mutex word */
    char pad1[60];
    volatile uint64_t counter;
    char pad2[56];
    uint32_t ready, go;
    char pad3[56];
    uint64_t slow_waits;    /* futex_wait calls in m3_lock slow path (contention indicator) */
    char pad4[56];
    uint64_t t_start[16], t_end[16];  /* per worker: when its loop started and ended */
};
static uint64_t *g_slow;

static inline void m3_lock(uint32_t *w) {
    uint32_t c = 0;
    if (__atomic_compare_exchange_n(w, &c, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return;
    if (c != 2) c = __atomic_exchange_n(w, 2, __ATOMIC_ACQUIRE);
    while (c != 0) {
        __atomic_add_fetch(g_slow, 1, __ATOMIC_RELAXED);
        futex_wait(w, 2);
        c = __atomic_exchange_n(w, 2, __ATOMIC_ACQUIRE);
    }
}
static inline void m3_unlock(uint32_t *w) {
    if (__atomic_fetch_sub(w, 1, __ATOMIC_RELEASE) != 1) {
        __atomic_store_n(w, 0, __ATOMIC_RELEASE);
        futex_wake(w, 1);
    }
}

static void worker(struct shm *s, int kind, long k, int idx) {
    __atomic_add_fetch(&s->ready, 1, __ATOMIC_SEQ_CST);
    g_slow = &s->slow_waits;
    while (!__atomic_load_n(&s->go, __ATOMIC_ACQUIRE)) sched_yield(); /* spin-yield: all start together */
    s->t_start[idx] = now_ns();
    if (kind == 0) {
        for (long i = 0; i < k; i++) {
            int e = pthread_mutex_lock(&s->m);
            if (e == EOWNERDEAD) pthread_mutex_consistent(&s->m);
            else if (e) _exit(3);
            s->counter++;
            pthread_mutex_unlock(&s->m);
        }
    } else {
        for (long i = 0; i < k; i++) { m3_lock(&s->fw); s->counter++; m3_unlock(&s->fw); }
    }
    s->t_end[idx] = now_ns();
    _exit(0);
}

/* returns wall ns; *total gets the final counter; *overlap = sum of the workers' loop
 * times / wall (1 = they ran one after another, nproc = all the time side by side) */
static uint64_t run_once(int kind, int nproc, long k, uint64_t *total, uint64_t *slow, double *overlap) {
    struct shm *s = shared_map(sizeof *s);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&s->m, &a);
    pid_t *pids = calloc(nproc, sizeof *pids);
    for (int i = 0; i < nproc; i++) {
        pids[i] = fork();
        if (pids[i] < 0) { perror("fork"); exit(1); }
        if (pids[i] == 0) worker(s, kind, k, i);
    }
    while (__atomic_load_n(&s->ready, __ATOMIC_ACQUIRE) < (uint32_t)nproc) usleep(100);
    uint64_t t0 = now_ns();
    __atomic_store_n(&s->go, 1, __ATOMIC_RELEASE);
    int bad = 0;
    for (int i = 0; i < nproc; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) bad = 1;
    }
    uint64_t t1 = now_ns();
    *total = bad ? 0 : s->counter;
    *slow = s->slow_waits;
    uint64_t busy = 0;
    for (int i = 0; i < nproc; i++) busy += s->t_end[i] - s->t_start[i];
    *overlap = (double)busy / (double)(t1 - t0);
    free(pids);
    munmap(s, sizeof *s);
    return t1 - t0;
}

static int report(const char *name, int kind, int *procs, int np, long k, long reps, int first) {
    int all_ok = 1;
    printf("%s\"%s\":{", first ? "" : ",", name);
    for (int p = 0; p < np; p++) {
        double *w = calloc(reps, sizeof *w), *ov = calloc(reps, sizeof *ov);
        uint64_t expected = (uint64_t)procs[p] * k, total = 0, slow = 0, *sl = calloc(reps, sizeof *sl);
        int ok = 1;
        for (long r = 0; r < reps; r++) {
            w[r] = (double)run_once(kind, procs[p], k, &total, &sl[r], &ov[r]);
            if (total != expected) ok = 0;
        }
        double wall = median_dbl(w, reps);
        slow = median_u64(sl, reps);
        double overlap = median_dbl(ov, reps);
        all_ok &= ok;
        printf("%s\"%d\":{\"wall_ms\":%.2f,\"ops_per_s\":%.0f,\"ns_per_op\":%.1f,"
               "\"total\":%llu,\"expected\":%llu,\"ok\":%s,\"overlap\":%.2f",
               p ? "," : "", procs[p], wall / 1e6, expected / (wall / 1e9), wall / expected,
               (unsigned long long)total, (unsigned long long)expected, ok ? "true" : "false", overlap);
        if (kind == 1) printf(",\"futex_waits\":%llu", (unsigned long long)slow);
        printf("}");
        free(w); free(sl); free(ov);
    }
    printf("}");
    return all_ok;
}

int main(int argc, char **argv) {
    int procs[16], np = 0;
    const char *pl = (argc > 1 && argv[1][0]) ? argv[1] : "2,4";
    char *dup = strdup(pl), *save = NULL;
    for (char *t = strtok_r(dup, ",", &save); t && np < 16; t = strtok_r(NULL, ",", &save))
        if (atoi(t) > 0 && atoi(t) <= 16) procs[np++] = atoi(t);  /* t_start/t_end hold 16 */
    long k = arg_long(argc, argv, 2, 500000);
    long reps = arg_long(argc, argv, 3, 5);
    if (np == 0 || k < 1 || reps < 1) { fprintf(stderr, "usage: contended [procs=2,4] [K] [repeats]\n"); return 2; }
    printf("{\"k_per_proc\":%ld,\"repeats\":%ld,", k, reps);
    int ok = report("robust_mutex", 0, procs, np, k, reps, 1);
    ok &= report("futex_mutex3", 1, procs, np, k, reps, 0);
    printf(",\"all_ok\":%s}\n", ok ? "true" : "false");
    fflush(stdout);
    return ok ? 0 : 1;
}
