/* Coverage callbacks (clang trace-pc-guard, gcc trace-pc) and the coverage map. */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#include "fs_log.h"
#include "fs_buckets.h"
#include "fs_novelty.h"
#include "fs_runtime.h"

/* Until the map is attached every counter lands in this byte; guards are 0 then. */
static unsigned char initial_map[FS_MAP_SIZE_DEFAULT];
unsigned char *fs_map = initial_map;
uint32_t fs_map_size = FS_MAP_SIZE_DEFAULT;

static uint32_t guard_count;
static int uses_trace_pc;
static int map_attached;
static size_t map_capacity;

static void attach_map(void) {
    if (map_attached) return;
    map_attached = 1;
    if (fs_st->cfg.shm_id >= 0) {
        void *p = shmat(fs_st->cfg.shm_id, NULL, 0);
        if (p == (void *)-1) {
            FS_PWARN("cannot attach the coverage map (shm id %d)", fs_st->cfg.shm_id);
            _exit(FS_ERR_EXIT_BASE + FS_ERROR_SHMAT);
        }
        struct shmid_ds ds;
        map_capacity = shmctl(fs_st->cfg.shm_id, IPC_STAT, &ds) == 0 ? ds.shm_segsz : FS_MAP_SIZE_DEFAULT;
        fs_map = p;
    } else {
        /* No fuzzer: a private map, excluded from snapshots; grown with the guards
         * (grow_private_map) */
        map_capacity = FS_OPT_MAX_MAPSIZE;
        void *p = mmap(NULL, map_capacity, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) _exit(FS_ERR_EXIT_BASE + FS_ERROR_MMAP);
        fs_map = p;
        fs_own_memory_add(p, map_capacity);
    }
}


static int map_is_private(void) { return map_attached && fs_st->cfg.shm_id < 0; }

/* A private map as large as the guards number (a constructor or a dlopen can add
 * millions): moved where it fits, as nothing else holds its address. */
static void grow_private_map(size_t needed) {
    if (!map_is_private() || needed <= map_capacity) return;
    size_t capacity = map_capacity;
    while (capacity < needed) capacity *= 2;
    void *p = mremap(fs_map, map_capacity, capacity, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) {
        FS_PWARN("cannot grow the coverage map to %zu bytes", capacity);
        _exit(FS_ERR_EXIT_BASE + FS_ERROR_MMAP);
    }
    fs_own_memory_moved(fs_map, p, capacity);
    fs_map = p;
    map_capacity = capacity;
}

uint32_t fs_coverage_map_size(void) {
    uint32_t size = guard_count ? guard_count + 1 : FS_MAP_SIZE_DEFAULT;
    if (uses_trace_pc && size < FS_MAP_SIZE_DEFAULT) size = FS_MAP_SIZE_DEFAULT;
    return size;
}

int fs_coverage_map_fits(void) { return fs_coverage_map_size() <= map_capacity; }

void __sanitizer_cov_trace_pc_guard_init(uint32_t *start, uint32_t *stop) {
    if (start == stop || *start) return; /* empty, or this module is numbered already */
    fs_runtime_init();
    for (uint32_t *g = start; g < stop; g++) *g = ++guard_count;
    fs_map_size = fs_coverage_map_size();
    grow_private_map(fs_map_size);
}

void __sanitizer_cov_trace_pc_guard(uint32_t *guard) {
    unsigned char c = fs_map[*guard] + 1;
    fs_map[*guard] = c + (c == 0); /* never zero: a wrapped counter still counts as hit */
}

extern const char __executable_start[];

/* gcc's -fsanitize-coverage=trace-pc: the caller's address, relative to the program's
 * load address (so that ASLR does not move it), hashed into a 64 KiB map. */
void __sanitizer_cov_trace_pc(void) {
    uintptr_t pc = (uintptr_t)__builtin_return_address(0) - (uintptr_t)__executable_start;
    uint32_t idx = (uint32_t)((pc ^ (pc >> 16)) * 0x9e3779b1u) >> 16;
    unsigned char c = fs_map[idx] + 1;
    fs_map[idx] = c + (c == 0);
    uses_trace_pc = 1;
}

void fs_coverage_reset_for_run(void) {
    memset(fs_map, 0, fs_map_size);
    fs_map[0] = 1;
}

static uint32_t crc_table[256];

/* Filled at start-up: static storage written after a snapshot would be rolled back. */
static void crc32_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static uint32_t crc32_update(uint32_t crc, const void *data, size_t len) {
    const unsigned char *p = data;
    crc = ~crc;
    while (len--) crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* zlib's crc32 of the hit indices (u32, little endian) followed by their buckets:
 * the orchestrator computes the same value from a map with numpy. */
uint32_t fs_coverage_hash(void) {
    uint32_t crc = 0;
    const uint64_t *words = (const uint64_t *)fs_map;
    uint32_t nwords = (fs_map_size + 7) / 8;
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t w = 0; w < nwords; w++) {
            if (!words[w]) continue;
            for (uint32_t i = w * 8; i < w * 8 + 8 && i < fs_map_size; i++) {
                if (!fs_map[i]) continue;
                if (pass == 0) crc = crc32_update(crc, &i, 4);
                else crc = crc32_update(crc, &fs_bucket_of[fs_map[i]], 1);
            }
        }
    return crc;
}

/* has-new-bits of this input's map against the orchestrator's virgin map, which it
 * updates: FS_RESULT_NEW_EDGE, FS_RESULT_NEW_BUCKET or 0. */
int fs_coverage_novelty(unsigned char *virgin) {
    int n = fs_new_bits(fs_map, virgin, fs_map_size, 1);
    return n == 2 ? FS_RESULT_NEW_EDGE : n == 1 ? FS_RESULT_NEW_BUCKET : 0;
}

void fs_coverage_init(void) {
    attach_map();
    crc32_init();
}
