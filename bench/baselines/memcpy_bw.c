/* memcpy bandwidth in one thread: the ceiling for moving a big message through shared
 * memory (a queue copies a message at least once in and once out).
 *
 * For each size: a source and a destination buffer (MAP_SHARED anonymous, like a queue's
 * ring; both written once first so no page fault is timed), then memcpy(dst, src, size)
 * repeated until at least min_ms have passed; one sample = bytes copied / time. Also a
 * "cold" figure per size: each copy goes into a fresh mapping (page faults included), as a
 * receiver that allocates a new buffer per message pays.
 * GB/s = 1e9 bytes per second (bytes copied, not bytes read + written).
 *
 * usage: memcpy_bw [sizes_kib=1024,65536] [min_ms=100] [repeats=5]
 * prints one JSON line: {"test":"memcpy","sizes":{"1048576":{"gbps":..,"cold_gbps":..,"samples_gbps":[..]},...},
 *                        "memcpy_1mib_gbps":..,"memcpy_64mib_gbps":..}   (medians of repeats)
 */
#include "common.h"

static double copy_rate(size_t size, uint64_t min_ns, void *dst, const void *src) {
    uint64_t t0 = now_ns(), t;
    long n = 0;
    do {
        memcpy(dst, src, size);
        __asm__ __volatile__("" ::"r"(dst) : "memory"); /* the copy is used */
        n++;
        t = now_ns();
    } while (t - t0 < min_ns);
    return (double)size * n / ((double)(t - t0) / 1e9) / 1e9;
}

static double cold_rate(size_t size, uint64_t min_ns, const void *src) {
    uint64_t total = 0, t0 = now_ns(), t;
    do {
        void *dst = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (dst == MAP_FAILED) { perror("mmap"); exit(1); }
        memcpy(dst, src, size);
        __asm__ __volatile__("" ::"r"(dst) : "memory");
        munmap(dst, size);
        total += size;
        t = now_ns();
    } while (t - t0 < min_ns);
    return (double)total / ((double)(t - t0) / 1e9) / 1e9;
}

int main(int argc, char **argv) {
    const char *list = argc > 1 && argv[1][0] ? argv[1] : "1024,65536";
    uint64_t min_ns = (uint64_t)arg_long(argc, argv, 2, 100) * 1000000ull;
    int reps = (int)arg_long(argc, argv, 3, 5);
    if (reps < 1) reps = 1;
    double *s = calloc(reps, sizeof *s), *cs = calloc(reps, sizeof *cs);
    double m1 = -1, m64 = -1;
    printf("{\"test\":\"memcpy\",\"min_ms\":%llu,\"repeats\":%d,\"sizes\":{", (unsigned long long)(min_ns / 1000000), reps);
    char *copy = strdup(list);
    int first = 1;
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
        size_t size = (size_t)strtoul(tok, NULL, 10) * 1024;
        if (!size) continue;
        unsigned char *src = shared_map(size), *dst = shared_map(size);
        for (size_t i = 0; i < size; i++) src[i] = (unsigned char)(i * 131 + 7);
        memset(dst, 1, size);
        copy_rate(size, min_ns / 4, dst, src); /* warm-up */
        for (int r = 0; r < reps; r++) s[r] = copy_rate(size, min_ns, dst, src);
        for (int r = 0; r < reps; r++) cs[r] = cold_rate(size, min_ns, src);
        if (memcmp(src, dst, size)) { fprintf(stderr, "memcpy_bw: copy differs\n"); return 1; }
        printf("%s\"%zu\":{\"samples_gbps\":[", first ? "" : ",", size);
        for (int r = 0; r < reps; r++) printf("%s%.3f", r ? "," : "", s[r]);
        double med = median_dbl(s, reps), cmed = median_dbl(cs, reps);
        printf("],\"gbps\":%.3f,\"cold_gbps\":%.3f}", med, cmed);
        if (size == 1u << 20) m1 = med;
        if (size == 64u << 20) m64 = med;
        first = 0;
        munmap(src, size);
        munmap(dst, size);
    }
    printf("}");
    if (m1 >= 0) printf(",\"memcpy_1mib_gbps\":%.3f", m1);
    if (m64 >= 0) printf(",\"memcpy_64mib_gbps\":%.3f", m64);
    printf("}\n");
    free(copy);
    free(s);
    free(cs);
    return 0;
}
