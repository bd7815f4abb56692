/* mprotect_global.c - an input makes a page of the program's own .bss read-only. The
 * harness has a page-aligned global `static char page[4096]`; every input first checks
 * page[1] is 0 (bit 1: a write of an earlier input survived), then writes page[0] and
 * page[1] (after a leaked mprotect this write is a SIGSEGV crash); input 'A' then calls
 * mprotect(page, 4096, PROT_READ) and returns 10 (11 if mprotect fails); other inputs
 * return the bit. 'A' exits 200 + the bit instead of its result when it is set. Fork
 * mode: 'A' -> 10, anything else -> 0. A leak looks like the input after an 'A'
 * crashing with SIGSEGV.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <sys/mman.h>
#include <unistd.h>

static char page[4096] __attribute__((aligned(4096)));

int main(void) {
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    int leak = page[1] != 0;
    page[0] = 1;
    page[1] = (char)(n > 0 ? in[0] : 1);
    if (n < 1 || in[0] != 'A') return leak;
    int r = mprotect(page, sizeof page, PROT_READ) == 0 ? 10 : 11;
    return leak ? 200 + leak : r;
}
