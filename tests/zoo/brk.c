/* brk.c - an input moves the program break. Init sets up malloc's arena and records
 * syscall(SYS_brk, 0); input 'A' calls sbrk(1 MiB), writes into every page of the new
 * memory and returns 10 (11 if sbrk fails); any other first byte only observes. Every
 * input first observes: bit 1, syscall(SYS_brk, 0) differs from the break at init; bit
 * 2, sbrk(0) differs from it. An observing input exits with those bits; 'A' exits 200 +
 * the bits instead of its result when any is set. Fork mode: 'A' -> 10, anything else
 * -> 0. A leak looks like a later input that starts with the break 1 MiB higher.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static long init_brk;

int main(void) {
    free(malloc(1));
    init_brk = syscall(SYS_brk, 0);
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    int leak = 0;
    if (syscall(SYS_brk, 0) != init_brk) leak |= 1;
    if ((long)(uintptr_t)sbrk(0) != init_brk) leak |= 2;
    if (n < 1 || in[0] != 'A') return leak;
    int r = 11;
    unsigned char *p = sbrk(1 << 20);
    if (p != (void *)-1) {
        for (size_t i = 0; i < (1u << 20); i += 4096) p[i] = (unsigned char)(i >> 12);
        r = 10;
    }
    return leak ? 200 + leak : r;
}
