/* scattered_heap.c - large anonymous mappings populated in many scattered places, as
 * ASan's shadow is once its allocator has used many size classes: the allocator's
 * regions lie gigabytes apart, and the shadow of each splits into its own mappings.
 *
 * Init reserves 1 TiB (MAP_NORESERVE) and writes one page every 8 GiB of it: 128
 * populated ranges in one mapping whose holes are trapped. It also makes 80 mappings
 * of 40 MiB (each one walked at every restore), separated by 64 KiB read-write-execute
 * pieces (a protection of their own keeps each a mapping apart) that hold a pattern,
 * and writes the first page of every 40 MiB mapping.
 *
 * Every input first checks that all of it is as init left it (bit 1: a write of an
 * earlier input survived the restore). Input 'A' then writes, at places set by its
 * second byte: a populated page and a hole of the 1 TiB mapping, a hole and the
 * populated page of one 40 MiB mapping, and the piece after it. 'A' returns 10, or
 * 200 + the bit. Fork mode: 'A...' -> 10, anything else -> 0. A leak looks like 1 (or
 * 201): a byte an earlier input wrote is still there.
 *
 * Since the 1 TiB mapping makes the runner trap holes anyway, the 40 MiB mappings' are
 * trapped too; scattered_walked.c builds this file without the 1 TiB mapping
 * (SCATTERED_WALKED_ONLY), and there the 40 MiB mappings are walked.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#define GIB (1ul << 30)
#define MIB (1ul << 20)
#define FAR_SIZE (1024 * GIB)
#define FAR_STEP (8 * GIB)
#define FAR_PAGES (FAR_SIZE / FAR_STEP)
#define PIECES 80
#define PIECE_SIZE (40 * MIB)
#define SEAM_SIZE (64ul << 10)
#define STRIDE (PIECE_SIZE + SEAM_SIZE)

static unsigned char *far, *pieces;

static unsigned char pattern(size_t i) { return (unsigned char)(i * 13 + 5); }
static unsigned char *piece(unsigned k) { return pieces + (size_t)k * STRIDE; }
static unsigned char *seam(unsigned k) { return piece(k) + PIECE_SIZE; }

static int dirty(void) {
    for (size_t p = 0; far && p < FAR_PAGES; p++) {
        if (far[p * FAR_STEP] != pattern(p) || far[p * FAR_STEP + 4095] != pattern(p + 1)) return 1;
        if (far[p * FAR_STEP + 5 * MIB] || far[p * FAR_STEP + 3 * GIB]) return 1;
    }
    for (unsigned k = 0; k < PIECES; k++) {
        if (piece(k)[0] != pattern(k) || piece(k)[17 * MIB] || piece(k)[PIECE_SIZE - 1]) return 1;
        for (size_t i = 0; i < SEAM_SIZE; i += 1021)
            if (seam(k)[i] != pattern(i + k)) return 1;
    }
    return 0;
}

int main(void) {
#ifdef SCATTERED_WALKED_ONLY
    far = NULL;
#else
    far = mmap(NULL, FAR_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
#endif
    pieces = mmap(NULL, PIECES * STRIDE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (far == MAP_FAILED || pieces == MAP_FAILED) return 2;
    for (size_t p = 0; far && p < FAR_PAGES; p++) {
        far[p * FAR_STEP] = pattern(p);
        far[p * FAR_STEP + 4095] = pattern(p + 1);
    }
    for (unsigned k = 0; k < PIECES; k++) {
        piece(k)[0] = pattern(k);
        if (mprotect(seam(k), SEAM_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC)) return 2;
        for (size_t i = 0; i < SEAM_SIZE; i++) seam(k)[i] = pattern(i + k);
    }
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    int leak = dirty();
    if (n < 1 || in[0] != 'A') return leak;
    unsigned a = n > 1 ? in[1] : 0;
    size_t p = a % FAR_PAGES;
    unsigned k = a % PIECES;
    if (far) {
        far[p * FAR_STEP] ^= 0xff;
        far[p * FAR_STEP + 5 * MIB] = 0x11;
        far[((p + 7) % FAR_PAGES) * FAR_STEP + 3 * GIB] = 0x22;
    }
    piece(k)[0] ^= 0xff;
    piece(k)[17 * MIB] = 0x33;
    piece((k + 1) % PIECES)[PIECE_SIZE - 1] = 0x44;
    seam(k)[1021 * 3] ^= 0xff;
    return leak ? 200 + leak : 10;
}
