/* mremap_snapshot.c - an input moves memory that existed at the snapshot elsewhere.
 * Init mmaps 2 anonymous pages and fills them with a pattern; every input first reads
 * both pages and checks the pattern (bit 1: it differs; after a leaked move the read is
 * a SIGSEGV crash); input 'A' then maps 2 fresh pages and mremap()s the old ones over
 * them (MREMAP_MAYMOVE | MREMAP_FIXED), writes into the moved copy and returns 10 (11
 * if a call fails or the pattern did not move with the pages); other inputs return the
 * bit. 'A' exits 200 + the bit instead of its result when it is set. Fork mode: 'A' ->
 * 10, anything else -> 0. A leak looks like the input after an 'A' crashing with
 * SIGSEGV, or finding the moved copy's write.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <sys/mman.h>
#include <unistd.h>

#define SIZE 8192

static unsigned char *area;

static int pattern_ok(const unsigned char *p) {
    for (unsigned i = 0; i < SIZE; i++)
        if (p[i] != (unsigned char)(i * 7 + 3)) return 0;
    return 1;
}

int main(void) {
    area = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) return 2;
    for (unsigned i = 0; i < SIZE; i++) area[i] = (unsigned char)(i * 7 + 3);
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    int leak = !pattern_ok(area);
    if (n < 1 || in[0] != 'A') return leak;
    int r = 11;
    void *dest = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (dest != MAP_FAILED) {
        unsigned char *moved = mremap(area, SIZE, SIZE, MREMAP_MAYMOVE | MREMAP_FIXED, dest);
        if (moved == dest && pattern_ok(moved)) {
            moved[0] ^= 0xff;
            r = 10;
        }
    }
    return leak ? 200 + leak : r;
}
