/* rte_hash lookup ceiling for statewall-bench.
 * usage: rte_hash_bench KEYS_FILE ORDER_FILE [BURST]
 *   KEYS_FILE: N keys of 16 bytes (IPv4 5-tuple, 13 bytes, zero-padded), written by
 *              statewall-bench in the order of its flows.
 *   ORDER_FILE: M little-endian u32 flow indices: the same access order statewall times.
 * Inserts every key, then for each burst copies BURST keys into a hot buffer (untimed, as
 * statewall copies its frames into a burst buffer) and times rte_hash_lookup_bulk.
 * Prints: "rte_hash keys=N lookups=M ns_per_key=X found=F". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include <rte_eal.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_errno.h>
#include <rte_memory.h>

static void *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END); *len = ftell(f); fseek(f, 0, SEEK_SET);
    void *p = malloc(*len ? *len : 1);
    if (fread(p, 1, *len, f) != *len) { perror("read"); exit(2); }
    fclose(f);
    return p;
}

static inline uint64_t now_ns(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s KEYS ORDER [BURST]\n", argv[0]); return 2; }
    unsigned burst = argc > 3 ? (unsigned)atoi(argv[3]) : 32;
    if (burst == 0 || burst > RTE_HASH_LOOKUP_BULK_MAX) burst = 32;
    char *eal[] = {"rte_hash_bench", "--no-huge", "--no-pci", "-m", "2048", "--no-shconf",
                   "--no-telemetry", "-l", "0", "--log-level", "lib.eal:error", NULL};
    int eargc = (int)(sizeof(eal) / sizeof(eal[0])) - 1;
    if (rte_eal_init(eargc, eal) < 0)
        fprintf(stderr, "rte_hash_bench: EAL init failed (%s); trying rte_hash_create anyway\n",
                rte_strerror(rte_errno));
    size_t klen, olen;
    uint8_t *keys = slurp(argv[1], &klen);
    uint32_t *order = slurp(argv[2], &olen);
    uint32_t n = klen / 16, m = olen / 4;
    struct rte_hash_parameters p = {
        .name = "statewall_peer", .entries = n + n / 4 + 64, .key_len = 16,
        .hash_func = rte_hash_crc, .hash_func_init_val = 0, .socket_id = SOCKET_ID_ANY,
        .extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE,
    };
    struct rte_hash *h = rte_hash_create(&p);
    if (!h) { fprintf(stderr, "rte_hash_bench: rte_hash_create failed: %s\n", rte_strerror(rte_errno)); return 3; }
    for (uint32_t i = 0; i < n; i++)
        if (rte_hash_add_key(h, keys + 16 * (size_t)i) < 0) { fprintf(stderr, "add %u failed\n", i); return 4; }
    uint8_t hot[RTE_HASH_LOOKUP_BULK_MAX][16] __attribute__((aligned(64)));
    const void *ptrs[RTE_HASH_LOOKUP_BULK_MAX];
    int32_t pos[RTE_HASH_LOOKUP_BULK_MAX];
    for (unsigned k = 0; k < burst; k++) ptrs[k] = hot[k];
    uint64_t found = 0, timed = 0, sum = 0;
    uint32_t done = 0;
    /* one untimed warm-up pass over the first 10% of the order */
    for (int pass = 0; pass < 2; pass++) {
        uint32_t end = pass == 0 ? m / 10 : m;
        for (uint32_t i = 0; i + burst <= end; i += burst) {
            for (unsigned k = 0; k < burst; k++) memcpy(hot[k], keys + 16 * (size_t)order[i + k], 16);
            uint64_t t0 = now_ns();
            rte_hash_lookup_bulk(h, ptrs, burst, pos);
            uint64_t t1 = now_ns();
            if (pass == 1) {
                timed += t1 - t0;
                for (unsigned k = 0; k < burst; k++) { found += pos[k] >= 0; sum += (uint32_t)pos[k]; }
                done += burst;
            }
        }
    }
    printf("rte_hash keys=%u lookups=%u ns_per_key=%.3f found=%lu check=%lu\n", n, done,
           (double)timed / (done ? done : 1), (unsigned long)found, (unsigned long)sum);
    rte_hash_free(h);
    rte_eal_cleanup();
    return 0;
}
