/* Cross-process ping-pong through two futex "event" flags in MAP_SHARED memory.
 * Parent: set(ping); wait(pong); clear(pong).   Child: wait(ping); clear(ping); set(pong).
 * One round trip = one set/wait/clear in each direction (like two Event objects).
 *  mode "block": waiter checks the flag then goes straight to FUTEX_WAIT; setter always FUTEX_WAKEs.
 *  mode "spin" : waiter spins on the flag up to spin_us (default 20 us) with _mm_pause
 *                (sched_yield every 64 spins) before falling back to FUTEX_WAIT;
 *                setter FUTEX_WAKEs only if a waiter announced itself.
 *  pin "none" (default) lets the scheduler place the two processes; "same" pins both to
 *  CPU 0, "split" pins the parent to CPU 0 and the child to CPU 1 (where they run decides
 *  what spinning costs: two spinners on one CPU only burn each other's time slices).
 * usage: futex_pingpong [mode=both|block|spin] [round_trips=20000] [spin_us=20] [pin=none|same|split]
 * prints: {"futex_pingpong_block_ns":..,"futex_pingpong_spin_ns":..,...} (median round trip)
 */
#include "common.h"
#include <signal.h>
#include <sys/wait.h>

struct ev { uint32_t flag; uint32_t waiters; char pad[56]; };
struct shm { struct ev ping, pong; };

static int g_spin;          /* 0 = block mode */
static int g_pin;           /* 0 none, 1 same CPU, 2 split */

static void pin_to(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set)) { perror("sched_setaffinity"); exit(1); }
}
static uint64_t g_spin_ns;

static void ev_set(struct ev *e) {
    __atomic_store_n(&e->flag, 1, __ATOMIC_SEQ_CST);
    if (!g_spin || __atomic_load_n(&e->waiters, __ATOMIC_SEQ_CST))
        futex_wake(&e->flag, 1);
}
static void ev_clear(struct ev *e) { __atomic_store_n(&e->flag, 0, __ATOMIC_RELEASE); }
static void ev_wait(struct ev *e) {
    if (g_spin) {
        uint64_t t0 = now_ns();
        for (unsigned n = 1;; n++) {
            if (__atomic_load_n(&e->flag, __ATOMIC_ACQUIRE)) return;
            if ((n & 63) == 0) {
                sched_yield();
                if (now_ns() - t0 > g_spin_ns) break;
            } else cpu_relax();
        }
        __atomic_add_fetch(&e->waiters, 1, __ATOMIC_SEQ_CST);
        while (!__atomic_load_n(&e->flag, __ATOMIC_SEQ_CST)) futex_wait(&e->flag, 0);
        __atomic_sub_fetch(&e->waiters, 1, __ATOMIC_SEQ_CST);
        return;
    }
    while (!__atomic_load_n(&e->flag, __ATOMIC_ACQUIRE)) futex_wait(&e->flag, 0);
}

static uint64_t run(int spin, long n, long spin_us) {
    g_spin = spin;
    g_spin_ns = (uint64_t)spin_us * 1000;
    struct shm *s = shared_map(sizeof *s);
    long warm = n / 10 + 100;
    if (g_pin) pin_to(0);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(1); }
    if (pid == 0) {
        if (g_pin == 2) pin_to(1);
        for (long i = 0; i < warm + n; i++) { ev_wait(&s->ping); ev_clear(&s->ping); ev_set(&s->pong); }
        _exit(0);
    }
    uint64_t *rt = malloc(n * sizeof *rt);
    for (long i = 0; i < warm + n; i++) {
        uint64_t t0 = now_ns();
        ev_set(&s->ping);
        ev_wait(&s->pong);
        ev_clear(&s->pong);
        if (i >= warm) rt[i - warm] = now_ns() - t0;
    }
    int st;
    waitpid(pid, &st, 0);
    uint64_t med = median_u64(rt, n);
    free(rt);
    munmap(s, sizeof *s);
    return med;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "both";
    long n = arg_long(argc, argv, 2, 20000);
    long spin_us = arg_long(argc, argv, 3, 20);
    const char *pin = argc > 4 ? argv[4] : "none";
    if (n < 1) n = 1;
    if (!strcmp(pin, "same")) g_pin = 1;
    else if (!strcmp(pin, "split")) g_pin = 2;
    else if (strcmp(pin, "none")) { fprintf(stderr, "pin must be none|same|split\n"); return 2; }
    int do_block = !strcmp(mode, "both") || !strcmp(mode, "block");
    int do_spin = !strcmp(mode, "both") || !strcmp(mode, "spin");
    if (!do_block && !do_spin) { fprintf(stderr, "mode must be both|block|spin\n"); return 2; }
    printf("{");
    if (do_block) printf("\"futex_pingpong_block_ns\":%llu,", (unsigned long long)run(0, n, spin_us));
    if (do_spin) printf("\"futex_pingpong_spin_ns\":%llu,", (unsigned long long)run(1, n, spin_us));
    printf("\"round_trips\":%ld,\"spin_us\":%ld,\"pin\":\"%s\"}\n", n, spin_us, pin);
    return 0;
}
