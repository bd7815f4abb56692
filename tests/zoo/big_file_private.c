/* big_file_private.c - a large private mapping of a file, written before the snapshot
 * and by inputs: large enough to be trapped rather than walked if it were anonymous,
 * which userfaultfd's sync write-protect does not take (the snapshot must fall back to
 * walking it, not fail). Init creates a 40 MiB temporary file (unlinked), maps it
 * MAP_PRIVATE read-write and fills page i with (i & 0xff) | 1 (every page becomes a
 * private copy). Every input first checks the pages any input of this harness writes,
 * plus the first and the last (bit 1: a write of an earlier input survived). Input 'A'
 * then writes 0 into 8 spread pages (the second input byte picks them) and returns 10.
 * Other inputs return the bit; 'A' exits 200 + the bit instead of 10 when it is set.
 * Fork mode: 'A...' -> 10, anything else -> 0; 2 if init fails. A leak looks like 1 (or
 * 201): a zero written by an earlier input is still there; a snapshot that cannot take
 * the mapping shows as an executor error.
 */
#define _GNU_SOURCE
#include "forkserver.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SIZE (40u << 20)
#define PAGE 4096u
#define PAGES (SIZE / PAGE)

static unsigned char *map;

static unsigned char pattern(size_t page) { return (unsigned char)((page & 0xff) | 1); }

/* the pages 'A' may write: 8 per value of its second byte, spread over the mapping */
static size_t target_page(unsigned k, unsigned j) { return (k * 37u + j * (PAGES / 8)) % PAGES; }

static int dirty(void) {
    if (map[0] != pattern(0) || map[SIZE - 1] != pattern(PAGES - 1)) return 1;
    for (unsigned k = 0; k < 256; k++)
        for (unsigned j = 0; j < 8; j++) {
            size_t p = target_page(k, j);
            if (map[p * PAGE + 100] != pattern(p)) return 1;
        }
    return 0;
}

int main(void) {
    char path[] = "/tmp/zoo-big-file-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 2;
    unlink(path);
    if (ftruncate(fd, SIZE) != 0) return 2;
    map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) return 2;
    close(fd);
    for (size_t i = 0; i < PAGES; i++) memset(map + i * PAGE, pattern(i), PAGE);
    FORKSERVER_INIT();

    unsigned char in[16];
    ssize_t n = read(0, in, sizeof in);
    int leak = dirty();
    if (n < 1 || in[0] != 'A') return leak;
    unsigned k = n > 1 ? in[1] : 0;
    for (unsigned j = 0; j < 8; j++) map[target_page(k, j) * PAGE + 100] = 0;
    return leak ? 200 + leak : 10;
}
