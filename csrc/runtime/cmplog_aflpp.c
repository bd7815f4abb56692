/* The comparison log in AFL++'s own map (struct cmp_map), for afl-fuzz -c: its CMPLOG
 * instance exports the map's SysV id in __AFL_CMPLOG_SHM_ID, and its input-to-state
 * stage reads the operands our hooks (cmplog.c) write here.
 *
 * The map's layout changed twice, and afl-fuzz does not say which one it reads. The
 * segment's size does: each layout has its own.
 *   4.04c-4.10c  8-byte headers (hits:24 id:24 shape:5 type:2 attribute:4 ...),
 *                type INS 1 / RTN 2, operands v0 v1 v0_128 v1_128, strings of 31
 *   4.20c-4.21c  2-byte headers (hits:6 shape:5 type:1 attribute:4), type INS 0 /
 *                RTN 1, operands v0 v1 v0_128 v1_128 + 10 unused bytes, strings of 32
 *   4.22a-       2-byte headers, operands v0 v0_128 v0_256[2] v1 v1_128 v1_256[2]
 *                + 8 unused, strings v0[32] v1[32] then both lengths
 * Every layout: 65,536 keys, 32 operand slots per key (16, or 8 before 4.07c, for
 * strings). A key is the call site; a string's length has 0x80 added when it is a C
 * string (its length counts the NUL), as AFL++'s runtime writes them. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/shm.h>

#include "fs_log.h"
#include "fs_runtime.h"

#define CMP_MAP_W 65536
#define CMP_MAP_H 32

struct header_404 {
    unsigned hits : 24;
    unsigned id : 24;
    unsigned shape : 5;
    unsigned type : 2;
    unsigned attribute : 4;
    unsigned overflow : 1;
    unsigned reserved : 4;
} __attribute__((packed));

struct header_420 {
    unsigned hits : 6;
    unsigned shape : 5;
    unsigned type : 1;
    unsigned attribute : 4;
} __attribute__((packed));

struct ints_404 { uint64_t v0, v1, v0_128, v1_128; } __attribute__((packed));
struct ints_420 { uint64_t v0, v1, v0_128, v1_128, unused; uint8_t unused1, unused2; } __attribute__((packed));
struct ints_422 { uint64_t v0, v0_128, v0_256[2], v1, v1_128, v1_256[2]; uint8_t unused[8]; } __attribute__((packed));

struct bytes_404 { uint8_t v0[31], v0_len, v1[31], v1_len; } __attribute__((packed));
struct bytes_420 { uint8_t v0[32], v0_len, v1[32], v1_len; } __attribute__((packed));
struct bytes_422 { uint8_t v0[32], v1[32], v0_len, v1_len, unused[6]; } __attribute__((packed));

#define MAP_SIZE(header, ints) (CMP_MAP_W * sizeof(struct header) + (size_t)CMP_MAP_W * CMP_MAP_H * sizeof(struct ints))

_Static_assert(sizeof(struct header_404) == 8 && sizeof(struct header_420) == 2, "AFL++ header sizes");
_Static_assert(sizeof(struct ints_404) == 32 && sizeof(struct ints_420) == 42 && sizeof(struct ints_422) == 72,
               "AFL++ operand sizes");
_Static_assert(sizeof(struct bytes_404) == 64 && sizeof(struct bytes_420) == 66 && sizeof(struct bytes_422) == 72,
               "AFL++ string operand sizes");

unsigned char *fs_aflpp_cmp_map; /* the segment; NULL when afl-fuzz did not give one */
static int layout;           /* FS_AFLPP_CMPLOG_* */

/* ---- one layout's view: where key k's header and slot i are ---- */

static unsigned char *slot(unsigned k, unsigned i, size_t header_size, size_t slot_size) {
    return fs_aflpp_cmp_map + CMP_MAP_W * header_size + ((size_t)k * CMP_MAP_H) * slot_size + (size_t)i * slot_size;
}

/* The header's next slot for a comparison of kind type (INS or RTN); a key that last
 * held the other kind starts over. Returns the slot number (hits, wrapped by the
 * caller), and keeps the widest shape. */
#define NEXT_HIT(h, type_value, shape_value)                                              \
    ({                                                                                    \
        unsigned hit_;                                                                    \
        if ((h)->type != (type_value)) {                                                  \
            (h)->type = (type_value);                                                     \
            (h)->hits = 1;                                                                \
            (h)->shape = (shape_value);                                                   \
            hit_ = 0;                                                                     \
        } else {                                                                          \
            hit_ = (h)->hits++;                                                           \
            if ((h)->shape < (shape_value)) (h)->shape = (shape_value);                   \
        }                                                                                 \
        hit_;                                                                             \
    })

static unsigned key_of(uintptr_t site) {
    uint64_t x = site * 0x9e3779b97f4a7c15ull; /* any stable mix: keys only need to differ */
    return (unsigned)(x >> 48) & (CMP_MAP_W - 1);
}

int fs_aflpp_cmplog_attach(void) {
    const char *id = getenv(FS_ENV_AFLPP_CMPLOG_SHM_ID);
    if (!id || !*id) return FS_AFLPP_CMPLOG_NONE;
    struct shmid_ds ds;
    int shm_id = atoi(id);
    if (shmctl(shm_id, IPC_STAT, &ds) != 0) {
        FS_PWARN("cannot read afl-fuzz's comparison map (shm id %d)", shm_id);
        return FS_AFLPP_CMPLOG_UNKNOWN;
    }
    size_t size = ds.shm_segsz;
    layout = size == MAP_SIZE(header_404, ints_404)   ? FS_AFLPP_CMPLOG_404
             : size == MAP_SIZE(header_420, ints_420) ? FS_AFLPP_CMPLOG_420
             : size == MAP_SIZE(header_420, ints_422) ? FS_AFLPP_CMPLOG_422
                                                      : FS_AFLPP_CMPLOG_UNKNOWN;
    if (layout == FS_AFLPP_CMPLOG_UNKNOWN) {
        FS_WARN("afl-fuzz's comparison map has %zu bytes, the layout of no AFL++ release this runtime knows "
                "(4.04c-4.10c, 4.20c-4.21c, 4.22a and later)", size);
        return layout;
    }
    void *p = shmat(shm_id, NULL, 0);
    if (p == (void *)-1) {
        FS_PWARN("cannot attach afl-fuzz's comparison map (shm id %d)", shm_id);
        return FS_AFLPP_CMPLOG_UNKNOWN;
    }
    fs_aflpp_cmp_map = p;
    return layout;
}

void fs_aflpp_log_int(uintptr_t site, uint64_t left, uint64_t right, unsigned size, unsigned attribute) {
    if (left == right) return; /* as AFL++'s hooks: an equal pair says nothing to solve */
    unsigned k = key_of(site), shape = size - 1, hit;
    switch (layout) {
    case FS_AFLPP_CMPLOG_404: {
        struct header_404 *h = (struct header_404 *)fs_aflpp_cmp_map + k;
        hit = NEXT_HIT(h, 1, shape) & (CMP_MAP_H - 1);
        h->attribute = attribute;
        struct ints_404 *o = (void *)slot(k, hit, sizeof *h, sizeof *o);
        o->v0 = left, o->v1 = right;
        break;
    }
    case FS_AFLPP_CMPLOG_420: {
        struct header_420 *h = (struct header_420 *)fs_aflpp_cmp_map + k;
        hit = NEXT_HIT(h, 0, shape) & (CMP_MAP_H - 1);
        h->attribute = attribute;
        struct ints_420 *o = (void *)slot(k, hit, sizeof *h, sizeof *o);
        o->v0 = left, o->v1 = right;
        break;
    }
    case FS_AFLPP_CMPLOG_422: {
        struct header_420 *h = (struct header_420 *)fs_aflpp_cmp_map + k;
        hit = NEXT_HIT(h, 0, shape) & (CMP_MAP_H - 1);
        h->attribute = attribute;
        struct ints_422 *o = (void *)slot(k, hit, sizeof *h, sizeof *o);
        o->v0 = left, o->v1 = right;
        break;
    }
    }
}

static void copy(uint8_t *to, const unsigned char *from, size_t n) {
    for (size_t i = 0; i < n; i++) to[i] = from[i];
}

/* string: both are C strings and each length counts its NUL (marked with 0x80) */
void fs_aflpp_log_bytes(uintptr_t site, const unsigned char *left, size_t left_len, const unsigned char *right,
                        size_t right_len, int string) {
    size_t cap = layout == FS_AFLPP_CMPLOG_404 ? 31 : 32;
    if (left_len > cap) left_len = cap;
    if (right_len > cap) right_len = cap;
    size_t longest = left_len > right_len ? left_len : right_len;
    if (longest < 2) return; /* AFL++ skips these too: one byte is the integer hooks' job */
    unsigned k = key_of(site), shape = (unsigned)longest - 1, hit;
    uint8_t mark = string ? 0x80 : 0;
    switch (layout) {
    case FS_AFLPP_CMPLOG_404: {
        struct header_404 *h = (struct header_404 *)fs_aflpp_cmp_map + k;
        hit = NEXT_HIT(h, 2, shape) & (CMP_MAP_H / 4 - 1);
        struct bytes_404 *o = (void *)slot(k, 0, sizeof *h, sizeof(struct ints_404));
        copy(o[hit].v0, left, left_len), copy(o[hit].v1, right, right_len);
        o[hit].v0_len = mark + (uint8_t)left_len, o[hit].v1_len = mark + (uint8_t)right_len;
        break;
    }
    case FS_AFLPP_CMPLOG_420: {
        struct header_420 *h = (struct header_420 *)fs_aflpp_cmp_map + k;
        hit = NEXT_HIT(h, 1, shape) & (CMP_MAP_H / 2 - 1);
        struct bytes_420 *o = (void *)slot(k, 0, sizeof *h, sizeof(struct ints_420));
        copy(o[hit].v0, left, left_len), copy(o[hit].v1, right, right_len);
        o[hit].v0_len = mark + (uint8_t)left_len, o[hit].v1_len = mark + (uint8_t)right_len;
        break;
    }
    case FS_AFLPP_CMPLOG_422: {
        struct header_420 *h = (struct header_420 *)fs_aflpp_cmp_map + k;
        hit = NEXT_HIT(h, 1, shape) & (CMP_MAP_H / 2 - 1);
        struct bytes_422 *o = (void *)slot(k, 0, sizeof *h, sizeof(struct ints_422));
        copy(o[hit].v0, left, left_len), copy(o[hit].v1, right, right_len);
        o[hit].v0_len = mark + (uint8_t)left_len, o[hit].v1_len = mark + (uint8_t)right_len;
        break;
    }
    }
}
