/* Uncontended lock+unlock pair cost.
 *  (a) pthread mutex, PTHREAD_MUTEX_ROBUST + PTHREAD_PROCESS_SHARED, in MAP_SHARED memory
 *  (b) raw futex CAS lock: lock = CAS 0->1, unlock = exchange ->0 (wake only if it was 2);
 *      no syscall when uncontended.
 * usage: mutex_pair [iters=2000000] [repeats=7]
 * prints: {"robust_mutex_pair_ns":..,"futex_cas_pair_ns":..,...}
 */
#include "common.h"
#include <pthread.h>

static inline void cas_lock(uint32_t *w) {
    uint32_t exp = 0;
    if (__atomic_compare_exchange_n(w, &exp, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return;
    /* contended slow path (never hit here): Drepper mutex 3 */
    if (exp != 2) exp = __atomic_exchange_n(w, 2, __ATOMIC_ACQUIRE);
    while (exp != 0) { futex_wait(w, 2); exp = __atomic_exchange_n(w, 2, __ATOMIC_ACQUIRE); }
}
static inline void cas_unlock(uint32_t *w) {
    if (__atomic_exchange_n(w, 0, __ATOMIC_RELEASE) == 2) futex_wake(w, 1);
}

int main(int argc, char **argv) {
    long iters = arg_long(argc, argv, 1, 2000000);
    long reps = arg_long(argc, argv, 2, 7);
    if (iters < 1) iters = 1;
    if (reps < 1) reps = 1;

    struct shm { pthread_mutex_t m; uint32_t fw; } *s = shared_map(sizeof *s);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (pthread_mutex_init(&s->m, &a)) { perror("pthread_mutex_init"); return 1; }

    double *rm = calloc(reps, sizeof *rm), *fx = calloc(reps, sizeof *fx);
    /* warm-up */
    for (long i = 0; i < iters / 10; i++) { pthread_mutex_lock(&s->m); pthread_mutex_unlock(&s->m); }
    for (long i = 0; i < iters / 10; i++) { cas_lock(&s->fw); cas_unlock(&s->fw); }

    for (long r = 0; r < reps; r++) {
        uint64_t t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            int e = pthread_mutex_lock(&s->m);
            if (__builtin_expect(e != 0, 0)) {
                if (e == EOWNERDEAD) pthread_mutex_consistent(&s->m);
                else { fprintf(stderr, "lock: %d\n", e); return 1; }
            }
            pthread_mutex_unlock(&s->m);
        }
        uint64_t t1 = now_ns();
        for (long i = 0; i < iters; i++) { cas_lock(&s->fw); cas_unlock(&s->fw); }
        uint64_t t2 = now_ns();
        rm[r] = (double)(t1 - t0) / iters;
        fx[r] = (double)(t2 - t1) / iters;
    }
    printf("{\"robust_mutex_pair_ns\":%.2f,\"futex_cas_pair_ns\":%.2f,"
           "\"iters\":%ld,\"repeats\":%ld}\n",
           median_dbl(rm, reps), median_dbl(fx, reps), iters, reps);
    return 0;
}
