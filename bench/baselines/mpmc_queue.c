/* Dmitry Vyukov's bounded MPMC queue between fork()ed processes: the floor for a
 * shared-memory Queue of small messages.
 *
 * The ring lives in a MAP_SHARED anonymous mapping made before fork(). Each cell carries
 * a sequence number and a 64-byte message; enqueue_pos and dequeue_pos are claimed with
 * one CAS each (Vyukov, "Bounded MPMC queue", 1024cores.net). A put copies the 64 bytes
 * into the cell, a get copies them out into the caller's buffer (as a queue that hands
 * out a fresh message has to).
 *
 * Blocking: a get on an empty queue (a put on a full one) spins up to spin_us with
 * _mm_pause (sched_yield every 64 spins), then sleeps in FUTEX_WAIT on an event word
 * ("not_empty" / "not_full"). The other side bumps the word and FUTEX_WAKEs only when a
 * sleeper announced itself, so a put or get that nobody waits for makes no syscall.
 * The announce (waiters++), the re-check of the ring and the publish + waiters check
 * on the other side are sequentially consistent, so no wake-up is lost.
 *
 * Message checks: producer p writes (p, i) and a pattern derived from them; a consumer
 * checks the pattern of every message, that each producer's numbers arrive in order,
 * and the totals (count and sum of i) at the end.
 *
 * usage:
 *   mpmc_queue throughput [messages=2000000] [producers=1] [consumers=1] [capacity=1024] [spin_us=20] [repeats=3]
 *   mpmc_queue roundtrip  [round_trips=20000] [spin_us=20] [pin=none|same|split] [capacity=1024]
 *   mpmc_queue all        (throughput 1x1, throughput 4x4, round trip, with the defaults)
 * prints one JSON object per line:
 *   {"test":"mpmc_throughput","producers":P,"consumers":C,"msg_per_s":..,"ns_per_msg":..,"wall_ms":..,
 *    "samples_msg_per_s":[..],"futex_waits":..,"ok":true,...}   (median of repeats)
 *   {"test":"mpmc_roundtrip","median_ns":..,"p10_ns":..,"p90_ns":..,"mean_ns":..,"futex_waits":..,"ok":true,...}
 * futex_waits = FUTEX_WAIT calls made (per repeat, median): ~0 means the waits were served by spinning.
 */
#include "common.h"
#include <signal.h>
#include <sys/wait.h>

#define MSG 64
#define MAX_PROCS 16
#define LINE 64

struct cell {
    uint64_t seq;           /* Vyukov's sequence: == pos: free for the put at pos; == pos+1: full */
    unsigned char data[MSG];
};

/* An event word to sleep on: `seq` is bumped on every wake-up, `waiters` counts sleepers. */
struct ev {
    uint32_t seq;
    uint32_t waiters;
    char pad[LINE - 8];
};

struct ring {
    uint64_t enqueue_pos;
    char pad0[LINE - 8];
    uint64_t dequeue_pos;
    char pad1[LINE - 8];
    struct ev not_empty;    /* consumers sleep here */
    struct ev not_full;     /* producers sleep here */
    uint64_t futex_waits;
    char pad2[LINE - 8];
    uint64_t mask;
    char pad3[LINE - 8];
    struct cell cells[];    /* capacity (a power of 2) cells */
};

struct ctl {
    uint32_t ready, go;
    char pad0[LINE - 8];
    uint64_t t_start[MAX_PROCS], t_end[MAX_PROCS];
    uint64_t got[MAX_PROCS], sum[MAX_PROCS], bad[MAX_PROCS];
};

static uint64_t g_spin_ns = 20000;

static size_t ring_bytes(uint64_t cap) { return sizeof(struct ring) + cap * sizeof(struct cell); }

static struct ring *ring_new(uint64_t cap) {
    struct ring *r = shared_map(ring_bytes(cap));
    r->mask = cap - 1;
    for (uint64_t i = 0; i < cap; i++) r->cells[i].seq = i;
    return r;
}

/* Spins up to g_spin_ns while cond() is false; true if it became true. */
#define SPIN_UNTIL(cond)                                                   \
    ({                                                                     \
        int ok_ = 0;                                                       \
        uint64_t t0_ = 0;                                                  \
        for (unsigned n_ = 1;; n_++) {                                     \
            if (cond) { ok_ = 1; break; }                                  \
            if ((n_ & 63) == 0) {                                          \
                if (!t0_) t0_ = now_ns();                                  \
                else if (now_ns() - t0_ > g_spin_ns) break;                \
                sched_yield();                                             \
            } else cpu_relax();                                            \
        }                                                                  \
        ok_;                                                               \
    })

static inline void ev_wake(struct ev *e) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the publish before, the waiters load after */
    if (__atomic_load_n(&e->waiters, __ATOMIC_SEQ_CST)) {
        __atomic_add_fetch(&e->seq, 1, __ATOMIC_SEQ_CST);
        futex_wake(&e->seq, 0x7fffffff);
    }
}

/* 1 if the cell at the current dequeue position is full (something to get). */
static inline int can_get(struct ring *r) {
    uint64_t pos = __atomic_load_n(&r->dequeue_pos, __ATOMIC_RELAXED);
    return __atomic_load_n(&r->cells[pos & r->mask].seq, __ATOMIC_ACQUIRE) == pos + 1;
}
static inline int can_put(struct ring *r) {
    uint64_t pos = __atomic_load_n(&r->enqueue_pos, __ATOMIC_RELAXED);
    return __atomic_load_n(&r->cells[pos & r->mask].seq, __ATOMIC_ACQUIRE) == pos;
}

/* Vyukov's try_enqueue / try_dequeue: 0 = done, -1 = full / empty. */
static inline int try_put(struct ring *r, const void *msg) {
    uint64_t pos = __atomic_load_n(&r->enqueue_pos, __ATOMIC_RELAXED);
    for (;;) {
        struct cell *c = &r->cells[pos & r->mask];
        uint64_t seq = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
        int64_t dif = (int64_t)seq - (int64_t)pos;
        if (dif == 0) {
            if (__atomic_compare_exchange_n(&r->enqueue_pos, &pos, pos + 1, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
                memcpy(c->data, msg, MSG);
                __atomic_store_n(&c->seq, pos + 1, __ATOMIC_RELEASE);
                return 0;
            }
        } else if (dif < 0) {
            return -1;
        } else {
            pos = __atomic_load_n(&r->enqueue_pos, __ATOMIC_RELAXED);
        }
    }
}
static inline int try_get(struct ring *r, void *msg) {
    uint64_t pos = __atomic_load_n(&r->dequeue_pos, __ATOMIC_RELAXED);
    for (;;) {
        struct cell *c = &r->cells[pos & r->mask];
        uint64_t seq = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
        int64_t dif = (int64_t)seq - (int64_t)(pos + 1);
        if (dif == 0) {
            if (__atomic_compare_exchange_n(&r->dequeue_pos, &pos, pos + 1, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
                memcpy(msg, c->data, MSG);
                __atomic_store_n(&c->seq, pos + r->mask + 1, __ATOMIC_RELEASE);
                return 0;
            }
        } else if (dif < 0) {
            return -1;
        } else {
            pos = __atomic_load_n(&r->dequeue_pos, __ATOMIC_RELAXED);
        }
    }
}

/* Sleeps on e until ready(r) (announce, re-check, FUTEX_WAIT on the word read before the re-check). */
#define SLEEP_UNTIL(r, e, ready)                                           \
    do {                                                                   \
        __atomic_add_fetch(&(e)->waiters, 1, __ATOMIC_SEQ_CST);            \
        for (;;) {                                                         \
            uint32_t v_ = __atomic_load_n(&(e)->seq, __ATOMIC_SEQ_CST);    \
            if (ready(r)) break;                                           \
            __atomic_add_fetch(&(r)->futex_waits, 1, __ATOMIC_RELAXED);    \
            futex_wait(&(e)->seq, v_);                                     \
        }                                                                  \
        __atomic_sub_fetch(&(e)->waiters, 1, __ATOMIC_SEQ_CST);            \
    } while (0)

static void put(struct ring *r, const void *msg) {
    while (try_put(r, msg) != 0) {
        if (!SPIN_UNTIL(can_put(r))) SLEEP_UNTIL(r, &r->not_full, can_put);
    }
    ev_wake(&r->not_empty);
}
static void get(struct ring *r, void *msg) {
    while (try_get(r, msg) != 0) {
        if (!SPIN_UNTIL(can_get(r))) SLEEP_UNTIL(r, &r->not_empty, can_get);
    }
    ev_wake(&r->not_full);
}

/* A message: producer id, number, then a pattern of both in the remaining 48 bytes. */
struct msg {
    uint64_t producer, i;
    uint64_t pat[6];
};
static inline void fill(struct msg *m, uint64_t p, uint64_t i) {
    m->producer = p;
    m->i = i;
    for (int k = 0; k < 6; k++) m->pat[k] = (i * 0x9E3779B97F4A7C15ull) ^ (p << 56) ^ (uint64_t)k;
}
static inline int check(const struct msg *m) {
    if (m->producer >= MAX_PROCS) return 0;
    for (int k = 0; k < 6; k++)
        if (m->pat[k] != ((m->i * 0x9E3779B97F4A7C15ull) ^ (m->producer << 56) ^ (uint64_t)k)) return 0;
    return 1;
}

static void wait_go(struct ctl *c) {
    __atomic_add_fetch(&c->ready, 1, __ATOMIC_SEQ_CST);
    while (!__atomic_load_n(&c->go, __ATOMIC_ACQUIRE)) sched_yield(); /* all start together */
}

static void producer(struct ring *r, struct ctl *c, int idx, uint64_t p, uint64_t n) {
    struct msg m;
    wait_go(c);
    c->t_start[idx] = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        fill(&m, p, i);
        put(r, &m);
    }
    c->t_end[idx] = now_ns();
    _exit(0);
}

static void consumer(struct ring *r, struct ctl *c, int idx, uint64_t n) {
    struct msg m;
    uint64_t next[MAX_PROCS] = {0}; /* per producer: the lowest number not seen yet */
    uint64_t sum = 0, bad = 0;
    wait_go(c);
    c->t_start[idx] = now_ns();
    for (uint64_t k = 0; k < n; k++) {
        get(r, &m);
        if (!check(&m) || m.i < next[m.producer]) bad++;
        else next[m.producer] = m.i + 1;
        sum += m.i;
    }
    c->t_end[idx] = now_ns();
    c->got[idx] = n;
    c->sum[idx] = sum;
    c->bad[idx] = bad;
    _exit(0);
}

static int cmp_u64_(const void *a, const void *b) { return cmp_u64(a, b); }

static int throughput(long n_total, int np, int nc, uint64_t cap, int reps) {
    if (np < 1 || nc < 1 || np + nc > MAX_PROCS) { fprintf(stderr, "producers + consumers must be 2..%d\n", MAX_PROCS); return 2; }
    uint64_t per_p = (uint64_t)n_total / np, per_c;
    uint64_t total = per_p * np;
    if (total % nc) { per_p -= per_p % nc; total = per_p * np; }
    per_c = total / nc;
    double *rate = calloc(reps, sizeof *rate);
    double *wall = calloc(reps, sizeof *wall);
    uint64_t *waits = calloc(reps, sizeof *waits);
    int ok = 1;
    for (int rep = 0; rep < reps; rep++) {
        struct ring *r = ring_new(cap);
        struct ctl *c = shared_map(sizeof *c);
        pid_t pids[MAX_PROCS];
        int nk = np + nc;
        for (int k = 0; k < nk; k++) {
            pids[k] = fork();
            if (pids[k] < 0) { perror("fork"); exit(1); }
            if (pids[k] == 0) {
                if (k < np) producer(r, c, k, (uint64_t)k, per_p);
                else consumer(r, c, k, per_c);
            }
        }
        while (__atomic_load_n(&c->ready, __ATOMIC_ACQUIRE) < (uint32_t)nk) sched_yield();
        __atomic_store_n(&c->go, 1, __ATOMIC_RELEASE);
        for (int k = 0; k < nk; k++) {
            int st;
            waitpid(pids[k], &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ok = 0;
        }
        uint64_t t0 = UINT64_MAX, t1 = 0, got = 0, sum = 0, bad = 0;
        for (int k = 0; k < nk; k++) {
            if (c->t_start[k] < t0) t0 = c->t_start[k];
            if (c->t_end[k] > t1) t1 = c->t_end[k];
            got += c->got[k];
            sum += c->sum[k];
            bad += c->bad[k];
        }
        uint64_t want_sum = (uint64_t)np * (per_p * (per_p - 1) / 2);
        if (got != total || sum != want_sum || bad) {
            ok = 0;
            fprintf(stderr, "mpmc throughput: got %llu of %llu, sum %llu (want %llu), %llu bad\n", (unsigned long long)got,
                    (unsigned long long)total, (unsigned long long)sum, (unsigned long long)want_sum, (unsigned long long)bad);
        }
        wall[rep] = (double)(t1 - t0);
        rate[rep] = total / (wall[rep] / 1e9);
        waits[rep] = r->futex_waits;
        munmap(r, ring_bytes(cap));
        munmap(c, sizeof *c);
    }
    printf("{\"test\":\"mpmc_throughput\",\"producers\":%d,\"consumers\":%d,\"messages\":%llu,\"msg_bytes\":%d,\"capacity\":%llu,"
           "\"spin_us\":%llu,\"repeats\":%d,\"samples_msg_per_s\":[",
           np, nc, (unsigned long long)total, MSG, (unsigned long long)cap, (unsigned long long)(g_spin_ns / 1000), reps);
    for (int i = 0; i < reps; i++) printf("%s%.0f", i ? "," : "", rate[i]);
    double mr = median_dbl(rate, reps), mw = median_dbl(wall, reps);
    qsort(waits, reps, sizeof *waits, cmp_u64_);
    printf("],\"msg_per_s\":%.0f,\"ns_per_msg\":%.2f,\"wall_ms\":%.3f,\"futex_waits\":%llu,\"ok\":%s}\n", mr, 1e9 / mr, mw / 1e6,
           (unsigned long long)waits[reps / 2], ok ? "true" : "false");
    fflush(stdout);
    free(rate);
    free(wall);
    free(waits);
    return ok ? 0 : 1;
}

static void pin_to(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set)) { perror("sched_setaffinity"); exit(1); }
}

/* Parent: put a 64-byte message on `ping`, get the echo from `pong`. Child: get, put back. */
static int roundtrip(long n, const char *pin, uint64_t cap) {
    int pinmode = !strcmp(pin, "same") ? 1 : !strcmp(pin, "split") ? 2 : 0;
    if (!pinmode && strcmp(pin, "none")) { fprintf(stderr, "pin must be none|same|split\n"); return 2; }
    struct ring *ping = ring_new(cap), *pong = ring_new(cap);
    long warm = n / 10 + 100;
    if (pinmode) pin_to(0);
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(1); }
    if (pid == 0) {
        if (pinmode == 2) pin_to(1);
        struct msg m;
        for (long i = 0; i < warm + n; i++) {
            get(ping, &m);
            put(pong, &m);
        }
        _exit(0);
    }
    uint64_t *rt = malloc(n * sizeof *rt);
    uint64_t bad = 0;
    struct msg m, back;
    for (long i = 0; i < warm + n; i++) {
        uint64_t t0 = now_ns();
        fill(&m, 1, (uint64_t)i);
        put(ping, &m);
        get(pong, &back);
        if (i >= warm) rt[i - warm] = now_ns() - t0;
        if (back.i != (uint64_t)i || !check(&back)) bad++;
    }
    int st;
    waitpid(pid, &st, 0);
    int ok = !bad && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    double mean = 0;
    for (long i = 0; i < n; i++) mean += rt[i];
    mean /= n;
    uint64_t waits = ping->futex_waits + pong->futex_waits;
    uint64_t med = median_u64(rt, n); /* sorts */
    printf("{\"test\":\"mpmc_roundtrip\",\"round_trips\":%ld,\"msg_bytes\":%d,\"spin_us\":%llu,\"pin\":\"%s\",\"median_ns\":%llu,"
           "\"p10_ns\":%llu,\"p90_ns\":%llu,\"mean_ns\":%.0f,\"futex_waits\":%llu,\"ok\":%s}\n",
           n, MSG, (unsigned long long)(g_spin_ns / 1000), pin, (unsigned long long)med, (unsigned long long)rt[n / 10],
           (unsigned long long)rt[n * 9 / 10], mean, (unsigned long long)waits, ok ? "true" : "false");
    fflush(stdout);
    free(rt);
    munmap(ping, ring_bytes(cap));
    munmap(pong, ring_bytes(cap));
    return ok ? 0 : 1;
}

static uint64_t pow2(long x) {
    uint64_t c = 2;
    while (c < (uint64_t)x) c <<= 1;
    return c;
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "all";
    signal(SIGCHLD, SIG_DFL);
    if (!strcmp(what, "throughput")) {
        long n = arg_long(argc, argv, 2, 2000000);
        int np = (int)arg_long(argc, argv, 3, 1), nc = (int)arg_long(argc, argv, 4, 1);
        uint64_t cap = pow2(arg_long(argc, argv, 5, 1024));
        g_spin_ns = (uint64_t)arg_long(argc, argv, 6, 20) * 1000;
        int reps = (int)arg_long(argc, argv, 7, 3);
        return throughput(n < 1 ? 1 : n, np, nc, cap, reps < 1 ? 1 : reps);
    }
    if (!strcmp(what, "roundtrip")) {
        long n = arg_long(argc, argv, 2, 20000);
        g_spin_ns = (uint64_t)arg_long(argc, argv, 3, 20) * 1000;
        const char *pin = argc > 4 && argv[4][0] ? argv[4] : "none";
        uint64_t cap = pow2(arg_long(argc, argv, 5, 1024));
        return roundtrip(n < 1 ? 1 : n, pin, cap);
    }
    if (!strcmp(what, "all")) {
        int rc = throughput(2000000, 1, 1, 1024, 3);
        rc |= throughput(2000000, 4, 4, 1024, 3);
        rc |= roundtrip(20000, "none", 1024);
        return rc;
    }
    fprintf(stderr, "usage: mpmc_queue throughput|roundtrip|all [args]\n");
    return 2;
}
