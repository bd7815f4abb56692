/* munmap_snapshot.c - an input unmaps memory that existed at the snapshot. Init mmaps 2
 * anonymous pages and fills them with a pattern; every input first reads both pages and
 * checks the pattern (bit 1: it differs; after a leaked munmap the read is a SIGSEGV
 * crash); input 'A' then munmap()s them and returns 10 (11 if munmap fails); other
 * inputs return the bit. 'A' exits 200 + the bit instead of its result when it is set.
 * Fork mode: 'A' -> 10, anything else -> 0. A leak looks like the input after an 'A'
 * crashing with SIGSEGV.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <sys/mman.h>
#include <unistd.h>

#define SIZE 8192

static unsigned char *area;

static int pattern_ok(void) {
    for (unsigned i = 0; i < SIZE; i++)
        if (area[i] != (unsigned char)(i * 7 + 3)) return 0;
    return 1;
}

int main(void) {
    area = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) return 2;
    for (unsigned i = 0; i < SIZE; i++) area[i] = (unsigned char)(i * 7 + 3);
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    int leak = !pattern_ok();
    if (n < 1 || in[0] != 'A') return leak;
    int r = munmap(area, SIZE) == 0 ? 10 : 11;
    return leak ? 200 + leak : r;
}
