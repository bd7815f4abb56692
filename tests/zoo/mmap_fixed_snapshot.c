/* mmap_fixed_snapshot.c - an input maps a fresh page over memory that existed at the
 * snapshot. Init mmaps 2 anonymous pages and fills them with a pattern; every input
 * first checks the pattern on both pages (bit 1: it differs, e.g. the first page reads
 * as zeros); input 'A' then mmap()s a fresh zero page with MAP_FIXED over the first one
 * and returns 10 (11 if mmap fails or the page is not zeros); other inputs return the
 * bit. 'A' exits 200 + the bit instead of its result when it is set. Fork mode: 'A' ->
 * 10, anything else -> 0. A leak looks like a later input finding zeros where the
 * pattern was (1, or 201 on 'A').
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
    int r = 11;
    unsigned char *p = mmap(area, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == area && p[0] == 0 && p[4095] == 0) r = 10;
    return leak ? 200 + leak : r;
}
