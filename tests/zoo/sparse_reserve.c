/* sparse_reserve.c - inputs write into large, mostly unpopulated anonymous mappings,
 * as ASan's shadow memory is. Init maps 128 GiB (MAP_NORESERVE; its unpopulated parts
 * are trapped read-only) and 256 MiB (without MAP_NORESERVE, so that the kernel does not
 * merge the two; walked at each restore), and populates a few pages of each with a
 * pattern, plus 2 MiB in the middle of the 256 MiB one (a region the walk goes around).
 * Every input first checks that the pattern is intact
 * and that every byte any input writes is 0 (bit 1: a write of an earlier input
 * survived the restore). Input 'A' then writes into unpopulated pages of both (at
 * offsets set by the second and third bytes, one across a page boundary, one in the
 * 256 MiB mapping's hole below its 2 MiB region), overwrites a
 * byte of the pattern, reads an unpopulated page, hands a written page, a written page
 * of the pattern and an untouched one back to the kernel with MADV_DONTNEED, makes a page of the big mapping
 * read-only, and maps part of a 1 GiB PROT_NONE reservation read-write (MAP_FIXED, as
 * ASan's allocator grows) and writes there; every input first also makes that part
 * readable and checks it is 0. 'A' returns 10, or 200 + the bit. Fork mode: 'A...' -> 10, anything else -> 0. A leak looks
 * like 1 (or 201): a byte an earlier input wrote is still there.
 *
 * Since the 128 GiB mapping makes the runner trap holes anyway, the 256 MiB one's are
 * trapped too; sparse_walked.c builds this file without the 128 GiB mapping
 * (SPARSE_WALKED_ONLY), and there the 256 MiB mapping is walked.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GIB (1ul << 30)
#define HUGE_SIZE (128 * GIB)
#define SMALL_SIZE (256ul << 20)

#define RESERVE_SIZE GIB
#define GROWN (300ul << 20) /* where 'A' maps part of the reservation */

static unsigned char *huge, *small, *reserve;

static unsigned char pattern(size_t i) { return (unsigned char)(i * 7 + 1); }

static size_t huge_spot(unsigned k) { return 3 * GIB + (size_t)k * 65 * 4096; }
static size_t small_spot(unsigned k) { return 100ul * (1 << 20) + (size_t)k * 4096 + 4093; }
#define BLOCK (64ul << 20) /* the 2 MiB populated block of the 256 MiB mapping */
#define BLOCK_SIZE (2ul << 20)
static size_t below_block(unsigned k) { return 32ul * (1 << 20) + (size_t)k * 4096 + 17; }

static int dirty(void) {
    for (size_t i = 0; i < 4096; i++)
        if ((huge && (huge[GIB + i] != pattern(i) || huge[2 * GIB + i] != pattern(i))) || small[i] != pattern(i))
            return 1;
    for (size_t i = 0; i < BLOCK_SIZE; i += 509)
        if (small[BLOCK + i] != pattern(i)) return 1;
    for (unsigned k = 0; k < 256; k++) {
        if (huge && (huge[huge_spot(k)] || huge[huge_spot(k) + 8192])) return 1;
        uint64_t v;
        memcpy(&v, small + small_spot(k), sizeof v);
        if (v) return 1;
        if (small[below_block(k)]) return 1;
    }
    if (huge && huge[77 * GIB]) return 1;
    /* the reservation's grown part: a fresh reservation reads 0 once readable */
    if (mprotect(reserve + GROWN, 4096, PROT_READ)) return 1;
    int grown = reserve[GROWN] != 0;
    mprotect(reserve + GROWN, 4096, PROT_NONE);
    return grown;
}

int main(void) {
#ifdef SPARSE_WALKED_ONLY
    huge = NULL;
#else
    huge = mmap(NULL, HUGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
#endif
    small = mmap(NULL, SMALL_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    reserve = mmap(NULL, RESERVE_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (huge == MAP_FAILED || small == MAP_FAILED || reserve == MAP_FAILED) return 2;
    for (size_t i = 0; i < 4096; i++) {
        small[i] = pattern(i);
        if (huge) huge[GIB + i] = huge[2 * GIB + i] = pattern(i);
    }
    for (size_t i = 0; i < BLOCK_SIZE; i++) small[BLOCK + i] = pattern(i);
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    int leak = dirty();
    if (n < 1 || in[0] != 'A') return leak;
    unsigned a = n > 1 ? in[1] : 0, b = n > 2 ? in[2] : 0;
    if (huge) {
        huge[huge_spot(a)] = (unsigned char)(a | 1);
        huge[huge_spot(a) + 8192] = 0x5a;
    }
    uint64_t v = 0x0102030405060708ull ^ b;
    memcpy(small + small_spot(b), &v, sizeof v);
    small[below_block(b)] = 0x3c;
    small[5] ^= 0xff;
    if (huge) {
        huge[GIB + 5] ^= 0xff;
        volatile unsigned char seen = huge[50 * GIB];
        (void)seen;
        huge[77 * GIB] = 1;
        madvise(huge + 77 * GIB, 4096, MADV_DONTNEED);
        huge[77 * GIB] = 2;
        mprotect(huge + 90 * GIB, 4096, PROT_READ);
        madvise(huge + 2 * GIB, 4096, MADV_DONTNEED);
    }
    madvise(small, 4096, MADV_DONTNEED);
    if (mmap(reserve + GROWN, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
        MAP_FAILED)
        return 3;
    reserve[GROWN] = 0x77;
    return leak ? 200 + leak : 10;
}
