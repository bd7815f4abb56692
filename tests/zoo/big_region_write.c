/* big_region_write.c - inputs write into a large heap the snapshot tracks page by
 * page through write traps. Init allocates a 64 MiB heap (malloc + memset 0; regions of
 * 32 MiB or more are write-protected, and their first writes trap). Every input first
 * checks that every byte any input of this harness writes is 0, plus the first and last
 * bytes of the heap (bit 1: a write of an earlier input survived the restore). Input
 * 'A' then writes a byte at 20 MiB + (second byte) * 4096, 8 bytes at 40 MiB + (third
 * byte) * 4096 + 4093 (across a page boundary) and the heap's last byte, and returns
 * 10. Input 'R' has the kernel write the rest of the input into the heap: a read()
 * into a three-page buffer at 60 MiB + 4090, so that a short read ends on the second
 * page and leaves the third untouched; it returns 11 when it read something. Input 'W'
 * writes the last byte of that buffer itself (the page a short read left alone) and
 * returns 12. Input 'P' (4,096 bytes in all) preads the whole input into two pages from
 * the first page boundary past 50 MiB: the read fills the first page exactly, and the
 * runtime, which opened only the pages the file's size allows, reads on from the page's
 * end to be sure there is no more; it returns 13 when the read returned the input and
 * nothing else. Input 'Q' writes the second of those pages itself (the page that read
 * found empty, opened and protected again) and returns 14. Input 'V' vforks, and the
 * child writes a byte at 30 MiB, in its parent's memory (so it takes the trap), then
 * exits; the parent returns 15 when it sees the byte. Other inputs return the bit.
 * 'A', 'R', 'W', 'P', 'Q' and 'V' exit 200 + the bit instead when it is set. Fork mode:
 * 'A...' -> 10, 'R' and more -> 11, 'W' -> 12, 'P' and 4,095 bytes -> 13, 'Q' -> 14,
 * 'V' -> 15, anything else -> 0. A leak looks like 1 (or 201): a byte written by an earlier input
 * is still there.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define HEAP_SIZE (64u << 20)
#define MIB (1u << 20)

static unsigned char *heap;
/* Written through a volatile, so that the compiler cannot turn malloc + memset(0)
 * into calloc, which leaves fresh pages unpopulated: the snapshot would see holes, not
 * a large region. */
static volatile unsigned char zero_fill;

#define READ_AT (60 * MIB + 4090)
#define READ_LEN (3 * 4096)
#define PREAD_AT (50 * MIB)
#define PREAD_LEN (2 * 4096)
#define VFORK_AT (30 * MIB)

/* page aligned: malloc's header puts the heap itself 16 bytes into its first page */
static unsigned char *pread_buf(void) { return (unsigned char *)(((uintptr_t)heap + PREAD_AT + 4095) & ~(uintptr_t)4095); }

static int dirty(void) {
    if (heap[0] || heap[HEAP_SIZE - 1] || heap[VFORK_AT]) return 1;
    for (size_t k = 0; k < READ_LEN; k++)
        if (heap[READ_AT + k]) return 1;
    for (size_t k = 0; k < PREAD_LEN; k++)
        if (pread_buf()[k]) return 1;
    for (size_t k = 0; k < 256; k++) {
        if (heap[20 * MIB + k * 4096]) return 1;
        uint64_t v;
        memcpy(&v, heap + 40 * MIB + k * 4096 + 4093, sizeof v);
        if (v) return 1;
    }
    return 0;
}

int main(void) {
    heap = malloc(HEAP_SIZE);
    if (!heap) return 2;
    memset(heap, zero_fill, HEAP_SIZE);
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, 1);
    int leak = dirty();
    if (n == 1 && in[0] == 'R') {
        ssize_t got = read(0, heap + READ_AT, READ_LEN);
        return leak ? 200 + leak : got > 0 ? 11 : 0;
    }
    if (n == 1 && in[0] == 'P') {
        unsigned char *buf = pread_buf();
        ssize_t got = pread(0, buf, PREAD_LEN, 0);
        int whole = got == 4096 && buf[0] == 'P' && buf[4095] == 'p';
        return leak ? 200 + leak : whole ? 13 : 0;
    }
    if (n == 1 && in[0] == 'Q') {
        pread_buf()[4096] = 0x5a;
        return leak ? 200 + leak : 14;
    }
    if (n == 1 && in[0] == 'V') {
        pid_t child = vfork();
        if (child == 0) {
            heap[VFORK_AT] = 0x77;
            _exit(0);
        }
        int status = 0;
        int seen = child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status) && heap[VFORK_AT] == 0x77;
        return leak ? 200 + leak : seen ? 15 : 0;
    }
    if (n == 1 && in[0] == 'W') {
        heap[READ_AT + READ_LEN - 1] = 0x5a;
        return leak ? 200 + leak : 12;
    }
    if (n == 1) n += read(0, in + 1, sizeof in - 1);
    if (n < 1 || in[0] != 'A') return leak;
    unsigned a = n > 1 ? in[1] : 0, b = n > 2 ? in[2] : 0;
    heap[20 * MIB + a * 4096] = (unsigned char)(a | 1);
    uint64_t v = 0x0102030405060708ull ^ b;
    memcpy(heap + 40 * MIB + b * 4096 + 4093, &v, sizeof v);
    heap[HEAP_SIZE - 1] = 0xff;
    return leak ? 200 + leak : 10;
}
