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

_Static_assert(sizeof(struct header_404) == 8 && sizeof(struct header_420) == 2, "AFL++ header sizes");
_Static_assert(sizeof(struct ints_404) == 32 && sizeof(struct ints_420) == 42 && sizeof(struct ints_422) == 72,
               "AFL++ operand sizes");
_Static_assert(sizeof(struct bytes_404) == 64 && sizeof(struct bytes_420) == 66 && sizeof(struct bytes_422) == 72,
               "AFL++ string operand sizes");

/* What differs between the layouts, for what we write: the header, where v1 sits in
 * an integer slot, and a string slot's shape. v0 is always at a slot's start. */
struct layout {
    int id;              /* FS_AFLPP_CMPLOG_* */
    size_t header_size;  /* sizeof struct header_404 or header_420 */
    unsigned ins, rtn;   /* the header's type values */
    size_t slot_size, v1_at;
    size_t fn_size, fn_v1_at, fn_v0_len_at, fn_v1_len_at, fn_cap;
    unsigned fn_slots;
};

#define FN(type) sizeof(struct type), offsetof(struct type, v1), offsetof(struct type, v0_len), \
                 offsetof(struct type, v1_len), sizeof(((struct type *)0)->v0)
static const struct layout layouts[] = {
    {FS_AFLPP_CMPLOG_404, sizeof(struct header_404), 1, 2, sizeof(struct ints_404), offsetof(struct ints_404, v1),
     FN(bytes_404), CMP_MAP_H / 4},
    {FS_AFLPP_CMPLOG_420, sizeof(struct header_420), 0, 1, sizeof(struct ints_420), offsetof(struct ints_420, v1),
     FN(bytes_420), CMP_MAP_H / 2},
    {FS_AFLPP_CMPLOG_422, sizeof(struct header_420), 0, 1, sizeof(struct ints_422), offsetof(struct ints_422, v1),
     FN(bytes_422), CMP_MAP_H / 2},
};

unsigned char *fs_aflpp_cmp_map; /* the segment; NULL when afl-fuzz did not give one */
static const struct layout *lay; /* its layout */

static size_t map_size(const struct layout *l) {
    return CMP_MAP_W * l->header_size + (size_t)CMP_MAP_W * CMP_MAP_H * l->slot_size;
}

/* Key k's slots: CMP_MAP_H integer slots, or the same bytes as string slots. */
static unsigned char *row(unsigned k) {
    return fs_aflpp_cmp_map + CMP_MAP_W * lay->header_size + (size_t)k * CMP_MAP_H * lay->slot_size;
}

/* The header's next slot for a comparison of kind type (INS or RTN); a key that last
 * held the other kind starts over. Keeps the widest shape. */
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

/* The slot number to write (not yet wrapped); attribute < 0 leaves it as it is. */
static unsigned next_hit(unsigned k, unsigned type, unsigned shape, int attribute) {
    if (lay->header_size == sizeof(struct header_404)) {
        struct header_404 *h = (struct header_404 *)fs_aflpp_cmp_map + k;
        unsigned hit = NEXT_HIT(h, type, shape);
        if (attribute >= 0) h->attribute = (unsigned)attribute;
        return hit;
    }
    struct header_420 *h = (struct header_420 *)fs_aflpp_cmp_map + k;
    unsigned hit = NEXT_HIT(h, type, shape);
    if (attribute >= 0) h->attribute = (unsigned)attribute;
    return hit;
}

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
    const struct layout *found = NULL;
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        if (map_size(&layouts[i]) == ds.shm_segsz) found = &layouts[i];
    if (!found) {
        FS_WARN("afl-fuzz's comparison map has %zu bytes, the layout of no AFL++ release this runtime knows "
                "(4.04c-4.10c, 4.20c-4.21c, 4.22a and later)", (size_t)ds.shm_segsz);
        return FS_AFLPP_CMPLOG_UNKNOWN;
    }
    void *p = shmat(shm_id, NULL, 0);
    if (p == (void *)-1) {
        FS_PWARN("cannot attach afl-fuzz's comparison map (shm id %d)", shm_id);
        return FS_AFLPP_CMPLOG_UNKNOWN;
    }
    lay = found;
    fs_aflpp_cmp_map = p;
    return lay->id;
}

typedef uint64_t unaligned_u64 __attribute__((aligned(1)));

void fs_aflpp_log_int(uintptr_t site, uint64_t left, uint64_t right, unsigned size, unsigned attribute) {
    if (left == right) return; /* as AFL++'s hooks: an equal pair says nothing to solve */
    unsigned k = key_of(site), hit = next_hit(k, lay->ins, size - 1, (int)attribute) & (CMP_MAP_H - 1);
    unsigned char *slot = row(k) + hit * lay->slot_size;
    *(unaligned_u64 *)slot = left;
    *(unaligned_u64 *)(slot + lay->v1_at) = right;
}

static void copy(unsigned char *to, const unsigned char *from, size_t n) {
    for (size_t i = 0; i < n; i++) to[i] = from[i];
}

/* string: both are C strings and each length counts its NUL (marked with 0x80) */
void fs_aflpp_log_bytes(uintptr_t site, const unsigned char *left, size_t left_len, const unsigned char *right,
                        size_t right_len, int string) {
    if (left_len > lay->fn_cap) left_len = lay->fn_cap;
    if (right_len > lay->fn_cap) right_len = lay->fn_cap;
    size_t longest = left_len > right_len ? left_len : right_len;
    if (longest < 2) return; /* AFL++ skips these too: one byte is the integer hooks' job */
    unsigned k = key_of(site), hit = next_hit(k, lay->rtn, (unsigned)longest - 1, -1) & (lay->fn_slots - 1);
    unsigned char *slot = row(k) + hit * lay->fn_size;
    uint8_t mark = string ? 0x80 : 0;
    copy(slot, left, left_len);
    copy(slot + lay->fn_v1_at, right, right_len);
    slot[lay->fn_v0_len_at] = mark + (uint8_t)left_len;
    slot[lay->fn_v1_len_at] = mark + (uint8_t)right_len;
}
